"""The search spaces: one define-by-run Optuna function per space.

Every public function of this module is a space, registered under its own name (see
``search_spaces.SPACES``): adding a space is adding one function here. A space takes an
``optuna.Trial``, suggests parameters whose names are ``TrainConfig`` fields, and returns the
constants of the space (the variant, fixed weights) as a dict; Ray Tune merges both into the
trial's config. Ranges and the reasons for them are in docs/search_spaces.md.

Spaces read the data set of the study from the study's user attribute ``dataset`` (the launcher
sets it; a bare study defaults to ``dsprites_small``): latent sizes and Soft-Intro's negative
weight live on different scales for 64x64 sprites and for face images.

Fixed points that should be evaluated first are attached with ``@enqueue(...)`` and enqueued by
the launcher through OptunaSearch's ``points_to_evaluate``. ``@enqueue(..., only=True)`` makes
them the whole study (a fixed design, like the report's four configurations): the launcher then
trains exactly these points, each with every seed, and samples nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import optuna

from trainables.vocabulary import VARIANT_NAMES as VARIANTS

Space = Callable[[optuna.Trial], "dict[str, Any] | None"]


def enqueue(*points: dict[str, Any], only: bool = False) -> Callable[[Space], Space]:
    """Attach fixed points (parameter dicts) that the study evaluates before sampling; with
    ``only``, the study is exactly these points (times its seeds)."""

    def mark(space: Space) -> Space:
        space.points_to_evaluate = [dict(p) for p in points]  # type: ignore[attr-defined]
        space.fixed_design = only  # type: ignore[attr-defined]
        return space

    return mark


def dataset_of(trial: optuna.Trial) -> str:
    """The study's data set (user attribute ``dataset``), ``dsprites_small`` when unset."""
    return str(trial.study.user_attrs.get("dataset", "dsprites_small"))


def _faces(trial: optuna.Trial) -> bool:
    return dataset_of(trial) == "ukiyoe"


# --- building blocks, shared by the spaces -------------------------------------------------------
def _latent(trial: optuna.Trial) -> None:
    if _faces(trial):  # the report: 48 for Ukiyo-e
        trial.suggest_int("latent_dim", 32, 128, step=16)
    else:  # the report: 10 = twice the five dSprites factors (Locatello et al. 2019 use 10)
        trial.suggest_int("latent_dim", 6, 16, step=2)


def _optimiser(trial: optuna.Trial, *, lr: tuple[float, float], batch: bool) -> None:
    trial.suggest_float("lr", *lr, log=True)
    if batch:  # the TC estimators and Soft-Intro's game both depend on the minibatch
        trial.suggest_categorical("batch_size", [32, 64, 128])


def _tc(trial: optuna.Trial) -> None:
    # Chen et al. 2018 use 6 on dSprites; Locatello et al. 2019 sweep 1, 2, 4, 6, 8, 10.
    trial.suggest_float("tc_weight", 1.0, 12.0, log=True)


def _soft_intro(trial: optuna.Trial) -> None:
    # The report: alpha=2, gamma=1, beta_rec=beta_kl=beta_neg=8. Soft-Intro-VAE reference code:
    # beta_rec, beta_kl about 1, beta_neg 256 (MNIST, CIFAR-10) to 1024 (CelebA-HQ).
    trial.suggest_float("beta_rec", 0.25, 16.0, log=True)
    trial.suggest_float("beta_kl", 0.25, 16.0, log=True)
    if _faces(trial):
        trial.suggest_float("beta_neg", 64.0, 4096.0, log=True)
    else:
        trial.suggest_float("beta_neg", 4.0, 2048.0, log=True)
    trial.suggest_float("alpha", 0.5, 4.0, log=True)
    trial.suggest_float("gamma", 0.25, 2.0, log=True)


_BETA_LR = (1e-4, 1e-3)  # Adam: 1e-4 in disentanglement_lib, 1e-3 in Chen et al.
# Around the Soft-Intro reference's 2e-4, up to 2e-3: a short CPU study (the README's main job)
# needs the fast end, where the game diverges more often (a diverged trial is a FAIL to Optuna).
_SINTRO_LR = (5e-5, 2e-3)


def _beta_params(trial: optuna.Trial) -> dict[str, Any]:
    _latent(trial)
    _optimiser(trial, lr=_BETA_LR, batch=False)
    # For a plain VAE only beta_kl / beta_rec matters (Adam is invariant to the loss scale).
    trial.suggest_float("beta_kl", 1.0, 16.0, log=True)
    return {"variant": "beta_vae", "beta_rec": 1.0, "batch_size": 64}


def _beta_tc_params(trial: optuna.Trial) -> dict[str, Any]:
    _latent(trial)
    _optimiser(trial, lr=_BETA_LR, batch=True)
    _tc(trial)
    return {"variant": "beta_tcvae", "beta_rec": 1.0, "beta_kl": 1.0, "mi_weight": 1.0, "dwkl_weight": 1.0}


def _sintro_params(trial: optuna.Trial) -> dict[str, Any]:
    _latent(trial)
    _optimiser(trial, lr=_SINTRO_LR, batch=True)
    _soft_intro(trial)
    return {"variant": "sintro"}


def _sintro_tc_params(trial: optuna.Trial) -> dict[str, Any]:
    _latent(trial)
    _optimiser(trial, lr=_SINTRO_LR, batch=True)
    _soft_intro(trial)
    _tc(trial)
    return {"variant": "sintro_tc", "mi_weight": 1.0, "dwkl_weight": 1.0}


# --- the spaces ----------------------------------------------------------------------------------
def beta(trial: optuna.Trial) -> dict[str, Any]:
    """beta-VAE: the KL weight, latent size and learning rate."""
    return _beta_params(trial)


def beta_tc(trial: optuna.Trial) -> dict[str, Any]:
    """beta-TCVAE: the TC weight, latent size, learning rate and batch size."""
    return _beta_tc_params(trial)


def sintro(trial: optuna.Trial) -> dict[str, Any]:
    """Soft-Intro-VAE: alpha, gamma, beta_rec / beta_kl / beta_neg, latent size, lr, batch."""
    return _sintro_params(trial)


def sintro_tc(trial: optuna.Trial) -> dict[str, Any]:
    """Soft-Intro-TCVAE (the report's model): the Soft-Intro weights plus the TC weight."""
    return _sintro_tc_params(trial)


_BY_VARIANT = {"beta_vae": _beta_params, "beta_tcvae": _beta_tc_params,
               "sintro": _sintro_params, "sintro_tc": _sintro_tc_params}


@enqueue(*({"variant": v} for v in VARIANTS))
def compare(trial: optuna.Trial) -> dict[str, Any]:
    """All four variants in one study: the variant is a parameter, the rest is conditional on it.
    The first four trials take one variant each (their other parameters are sampled), so even a
    four-trial budget covers every variant."""
    variant = trial.suggest_categorical("variant", list(VARIANTS))
    constants = _BY_VARIANT[variant](trial)
    constants.pop("variant")  # suggested above; a returned constant would shadow the parameter
    return constants


@enqueue(*({"variant": v} for v in VARIANTS), only=True)
def paper(trial: optuna.Trial) -> dict[str, Any]:
    """The report's four configurations and nothing else: a study of 4 x seeds trainings, each
    with the report code's losses (docs/objectives.md, "The report's code"): its regulariser form
    KL + (beta - 1) TC, its TC estimator, its 1/(C*H*W) scale on the beta-VAE losses. The model
    comes from the preset: the report code's residual model (``residual_report``) in
    ``paper_full``, the standard model in ``paper_cpu`` (docs/paper.md says why)."""
    trial.suggest_categorical("variant", list(VARIANTS))
    return {
        "loss_form": "report", "tc_estimator": "mss_report", "rec_reduction": "sum",
        "alpha": 2.0, "gamma": 1.0, "gamma_r": 1e-8,
        "beta_rec": 8.0, "beta_kl": 8.0, "beta_neg": 8.0,
        # The report: 10 latents on dSprites, 48 on Ukiyo-e; its code's defaults: Adam, lr 2e-4,
        # batch 128. The likelihood follows the data set (BCE on dSprites, MSE on Ukiyo-e).
        "latent_dim": 48 if _faces(trial) else 10,
        "lr": 2e-4, "batch_size": 128,
        "precision": "fp32",  # the report's code trained in float32; bf16 would be another experiment
    }


# Every public function defined above is a space, except the two helpers.
SPACES: dict[str, Space] = {
    name: fn for name, fn in list(globals().items())
    if inspect.isfunction(fn) and fn.__module__ == __name__ and not name.startswith("_")
    and name not in ("enqueue", "dataset_of")
}
