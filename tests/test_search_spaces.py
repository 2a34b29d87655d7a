"""The search spaces: valid TrainConfigs, conditional parameters, the report's fixed points,
every sampler, seeds per configuration, and what docs/search_spaces.md promises."""

import dataclasses
import pickle
from pathlib import Path

import optuna
import pytest

import search_spaces
from search_spaces import SPACES, fixed_points, get_space
from study.searcher import SAMPLERS, SeededSpace, make_sampler
from trainables.trainer import TrainConfig
from trainables.vocabulary import VARIANT_NAMES as VARIANTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "search_spaces.md"
FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(space, n, *, dataset=None, sampler=None, seed=0):
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=seed))
    if dataset:
        study.set_user_attr("dataset", dataset)
    out = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial) or {}
        out.append((trial, constants))
        study.tell(trial, 0.0)
    return study, out


def test_registry_holds_the_six_spaces_and_names_them_on_error():
    assert set(SPACES) == {"beta", "beta_tc", "sintro", "sintro_tc", "compare", "paper"}
    with pytest.raises(ValueError, match="unknown search space 'nope': use one of beta, beta_tc, compare"):
        get_space("nope")


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("dataset", ["dsprites_small", "ukiyoe"])
def test_every_space_gives_valid_train_configs(name, dataset):
    _, trials = sample(get_space(name), 25, dataset=dataset)
    for trial, constants in trials:
        config = {**trial.params, **constants}
        assert set(config) <= FIELDS, f"{name}: not TrainConfig fields: {set(config) - FIELDS}"
        assert not set(trial.params) & set(constants), "a constant would shadow a sampled parameter"
        TrainConfig(**config, dataset=dataset)  # validates the values
        assert config.get("variant", constants.get("variant")) in VARIANTS


def test_single_variant_spaces_fix_their_variant_and_explore_their_parameters():
    expected = {
        "beta": ("beta_vae", {"latent_dim", "lr", "beta_kl"}),
        "beta_tc": ("beta_tcvae", {"latent_dim", "lr", "batch_size", "tc_weight"}),
        "sintro": ("sintro", {"latent_dim", "lr", "batch_size", "beta_rec", "beta_kl", "beta_neg", "alpha", "gamma"}),
        "sintro_tc": ("sintro_tc", {"latent_dim", "lr", "batch_size", "beta_rec", "beta_kl", "beta_neg", "alpha",
                                    "gamma", "tc_weight"}),
    }
    for name, (variant, params) in expected.items():
        _, trials = sample(get_space(name), 5)
        for trial, constants in trials:
            assert constants["variant"] == variant
            assert set(trial.params) == params


def test_compare_makes_the_variant_a_parameter_with_conditional_parameters():
    _, trials = sample(get_space("compare"), 60)
    seen = {}
    for trial, _ in trials:
        seen.setdefault(trial.params["variant"], set()).update(trial.params)
    assert set(seen) == set(VARIANTS)
    assert "beta_neg" not in seen["beta_vae"] and "tc_weight" not in seen["beta_vae"]
    assert "tc_weight" in seen["beta_tcvae"] and "alpha" not in seen["beta_tcvae"]
    assert {"alpha", "gamma", "beta_neg"} <= seen["sintro"] and "tc_weight" not in seen["sintro"]
    assert {"alpha", "gamma", "beta_neg", "tc_weight"} <= seen["sintro_tc"]


def test_ranges_depend_on_the_data_set():
    _, sprites = sample(get_space("sintro"), 40, dataset="dsprites_small")
    _, faces = sample(get_space("sintro"), 40, dataset="ukiyoe")
    assert all(6 <= t.params["latent_dim"] <= 16 for t, _ in sprites)
    assert all(32 <= t.params["latent_dim"] <= 128 for t, _ in faces)
    assert all(t.params["beta_neg"] >= 64 for t, _ in faces)


@pytest.mark.parametrize("dataset, latent", [("dsprites_small", 10), ("ukiyoe", 48)])
def test_paper_enqueues_the_reports_four_configurations(dataset, latent):
    assert fixed_points("paper") == [{"variant": v} for v in VARIANTS]
    study = optuna.create_study()
    study.set_user_attr("dataset", dataset)
    for point in fixed_points("paper"):
        study.enqueue_trial(point)
    for variant in VARIANTS:
        trial = study.ask()
        constants = get_space("paper")(trial)
        assert trial.params == {"variant": variant}
        assert constants["alpha"] == 2.0 and constants["gamma"] == 1.0
        assert constants["beta_rec"] == constants["beta_kl"] == constants["beta_neg"] == 8.0
        # The report code's losses, whatever the variant; the model is the preset's.
        assert constants["loss_form"] == "report" and constants["tc_estimator"] == "mss_report"
        assert constants["latent_dim"] == latent and "arch" not in constants
        study.tell(trial, 0.0)
    assert all(fixed_points(n) == [] for n in SPACES if n not in ("paper", "compare"))
    # The searching spaces keep the project's decomposed form (the TrainConfig default).
    assert all("loss_form" not in get_space(n)(optuna.create_study().ask()) for n in ("beta_tc", "sintro_tc"))


def test_compare_starts_with_one_trial_per_variant():
    study = optuna.create_study()
    for point in fixed_points("compare"):
        study.enqueue_trial(point)
    variants = []
    for _ in range(4):
        trial = study.ask()
        get_space("compare")(trial)
        variants.append(trial.params["variant"])
        assert len(trial.params) > 1  # the rest is sampled
        study.tell(trial, 0.0)
    assert variants == list(VARIANTS)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_drives_the_conditional_space_multi_objective(sampler):
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler, seed=0, trials=12))
    for i in range(12 if sampler != "gp" else 6):
        trial = study.ask()
        get_space("compare")(trial)
        study.tell(trial, [trial.params.get("lr", 1e-4) * 100, float(i)])
    assert len(study.best_trials) >= 1


def test_seeds_train_each_configuration_with_consecutive_seeds():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=1))
    space = SeededSpace("sintro_tc", seeds=3, base_seed=10)
    configs = []
    for _ in range(9):
        trial = study.ask()
        configs.append((trial, space(trial)))
        study.tell(trial, [0.1, 1.0])
    for group in range(3):
        members = configs[3 * group:3 * group + 3]
        assert [c["seed"] for _, c in members] == [10, 11, 12]
        assert len({c["config_group"] for _, c in members}) == 1
        assert all(t.params == members[0][0].params for t, _ in members)
        assert [c["optuna_number"] for _, c in members] == [t.number for t, _ in members]
    assert configs[0][0].params != configs[3][0].params


def test_seeded_space_pickles_for_ray_tune_restore():
    space = pickle.loads(pickle.dumps(SeededSpace("compare", seeds=2, base_seed=0)))
    assert space.space == "compare" and space.seeds == 2
    for fn in SPACES.values():
        assert pickle.loads(pickle.dumps(fn)) is fn  # module-level functions, not lambdas


def test_adding_a_space_is_adding_one_function():
    public = {n for n, f in vars(search_spaces.spaces).items()
              if callable(f) and getattr(f, "__module__", "") == "search_spaces.spaces" and not n.startswith("_")}
    assert public - {"enqueue", "dataset_of"} == set(SPACES)


def test_docs_explain_every_space_and_parameter():
    text = DOC.read_text()
    for name in SPACES:
        assert f"`{name}`" in text, f"docs/search_spaces.md does not describe {name}"
    for param in ("alpha", "gamma", "beta_rec", "beta_kl", "beta_neg", "tc_weight", "latent_dim", "lr", "batch_size"):
        assert f"`{param}`" in text


def test_fixed_points_get_all_their_seeds_before_the_next_point():
    space = SeededSpace("paper", seeds=3, base_seed=0, points=fixed_points("paper"))
    study = optuna.create_study(directions=["maximize", "minimize"])
    for point in space.first_points:  # what OptunaSearch's points_to_evaluate does
        study.enqueue_trial(point)
    rows = []
    for _ in range(12):
        trial = study.ask()
        config = space(trial)
        rows.append((trial.params["variant"], config["seed"], config["config_group"]))
        study.tell(trial, [0.0, 1.0])
    assert rows == [(v, s, 3 * i) for i, v in enumerate(VARIANTS) for s in range(3)]
