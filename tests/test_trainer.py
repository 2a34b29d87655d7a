"""The trainer on real dSprites images: learning, exact resume, real divergence, gradient routing."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.data import load_dataset
from trainables.trainer import Diverged, TrainConfig, Trainer
from trainables.vocabulary import VARIANT_NAMES as VARIANTS


@pytest.fixture(scope="module")
def small_data():
    """A random 512-image subset of dsprites_small: the same images, a quicker epoch."""
    data = load_dataset("dsprites_small")
    keep = np.sort(np.random.default_rng(0).choice(len(data), 512, replace=False))
    return dataclasses.replace(data, images=data.images[keep])


def config(variant, **kw):
    base = dict(variant=variant, batch_size=64, lr=1e-3, beta_neg=16.0, epochs=3, seed=0, check_every=8)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_learns(variant, small_data):
    trainer = Trainer(config(variant), small_data)
    history = [trainer.train_epoch() for _ in range(3)]
    assert history[-1]["rec_loss"] < 0.8 * history[0]["rec_loss"]
    expected = {"loss", "rec_loss", "kl"}
    if variant in ("beta_tcvae", "sintro_tc"):
        expected |= {"mi", "tc", "dwkl"}
    if variant.startswith("sintro"):
        expected |= {"loss_encoder", "loss_decoder", "exp_elbo_rec", "exp_elbo_fake", "kl_fake", "kl_fake_minus_real"}
    assert expected <= set(history[-1])
    assert all(np.isfinite(v) for h in history for v in h.values())


def test_tc_terms_telescope_to_kl_estimate(small_data):
    """On average MI + TC + dimension-wise KL is the KL estimate: close to the analytic KL."""
    h = Trainer(config("beta_tcvae", epochs=1), small_data).train_epoch()
    assert h["mi"] + h["tc"] + h["dwkl"] == pytest.approx(h["kl"], rel=0.25)


@pytest.mark.parametrize("variant", ["beta_tcvae", "sintro_tc"])
def test_resume_reproduces_the_uninterrupted_run(variant, small_data, tmp_path):
    straight = Trainer(config(variant, epochs=2), small_data)
    expected = [straight.train_epoch() for _ in range(2)][1]

    first = Trainer(config(variant, epochs=2), small_data)
    first.train_epoch()
    first.save_checkpoint(tmp_path / "trainer.pt")
    del first
    torch.manual_seed(12345)  # whatever happens in between must not matter
    resumed = Trainer.from_checkpoint(tmp_path / "trainer.pt", small_data)
    got = resumed.train_epoch()

    timing = {"epoch_time_s", "images_per_s"}
    assert {k: v for k, v in got.items() if k not in timing} == {k: v for k, v in expected.items() if k not in timing}
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_real_divergence_is_a_typed_error(small_data):
    """Soft-Intro with a tiny beta_neg and a huge learning rate really blows up."""
    trainer = Trainer(config("sintro", lr=5.0, beta_neg=1e-3, alpha=8.0, check_every=1), small_data)
    with pytest.raises(Diverged) as info:
        for _ in range(3):
            trainer.train_epoch()
    assert info.value.epoch >= 1 and info.value.step >= 0
    assert f"epoch {info.value.epoch}" in str(info.value)


def test_soft_intro_gradients_reach_only_the_stepped_network(small_data):
    trainer = Trainer(config("sintro_tc"), small_data)
    encoder, decoder = list(trainer.model.encoder.parameters()), list(trainer.model.decoder.parameters())
    seen = {}
    step_e, step_d = trainer.opt_e.step, trainer.opt_d.step

    def encoder_step(*a, **kw):
        seen["decoder_grads_in_encoder_step"] = [p.grad for p in decoder]
        seen["encoder_grads"] = [p.grad.clone() for p in encoder]
        return step_e(*a, **kw)

    def decoder_step(*a, **kw):
        seen["encoder_grads_after_decoder_backward"] = [p.grad for p in encoder]
        return step_d(*a, **kw)

    trainer.opt_e.step, trainer.opt_d.step = encoder_step, decoder_step
    trainer._soft_intro_step(trainer.images[:64].float())
    assert all(g is None for g in seen["decoder_grads_in_encoder_step"])
    assert all(g.abs().sum() > 0 for g in seen["encoder_grads"][:2])
    for before, after in zip(seen["encoder_grads"], seen["encoder_grads_after_decoder_backward"]):
        assert torch.equal(before, after)  # the decoder's backward left the encoder alone
    assert all(p.grad is not None for p in decoder)


def test_images_are_written_as_png_grids(small_data, tmp_path):
    trainer = Trainer(config("beta_vae", latent_dim=6), small_data)
    paths = trainer.save_images(tmp_path)
    assert sorted(p.name for p in paths) == ["recon.png", "samples_std1.png", "samples_std3.png", "traversals.json",
                                             "traversals.png"]
    traversal = np.asarray(Image.open(tmp_path / "traversals.png"))
    assert traversal.shape == (6 * 66 + 2, 9 * 66 + 2)  # 6 latents x 9 steps of 64 px with 2 px padding
    info = json.loads((tmp_path / "traversals.json").read_text())
    assert sorted(info["latents"]) == list(range(6)) and info["kl"] == sorted(info["kl"], reverse=True)
    assert info["values"][0] == -2.5 and info["values"][-1] == 2.5 and len(info["values"]) == 9
    recon = np.asarray(Image.open(tmp_path / "recon.png"))
    assert recon.shape == (2 * 66 + 2, 8 * 66 + 2) and recon.max() == 255


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown TrainConfig key"):
        TrainConfig.from_dict({"varient": "beta_vae"})
    with pytest.raises(ValueError, match="variant 'vae' is unknown"):
        TrainConfig(variant="vae")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_reused_decoder_passes_give_the_separate_passes_step_bit_for_bit(small_data, precision):
    """Without BatchNorm the decoder step reuses the encoder step's decoder passes: two steps of
    Soft-Intro-TCVAE give the same losses and weights, to the last bit, as separate passes."""
    trainers = []
    for reuse in (True, False):
        trainer = Trainer(config("sintro_tc", precision=precision), small_data)
        assert trainer.reuse_decoder_passes  # the standard model has no BatchNorm
        trainer.reuse_decoder_passes = reuse
        x = (trainer.images[:64].float()).contiguous(memory_format=trainer.memory_format)
        torch.manual_seed(7)
        results = [trainer._soft_intro_step(x) for _ in range(2)]
        trainers.append((trainer, results))
    (a, ra), (b, rb) = trainers
    for step_a, step_b in zip(ra, rb):
        assert step_a.keys() == step_b.keys()
        assert all(torch.equal(step_a[k], step_b[k]) for k in step_a)
    for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(p, q)


def test_precision_resolves_per_device_and_is_recorded():
    from trainables.device import cpu_has_native_bf16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision 'fp16' is unknown"):
        TrainConfig(precision="fp16")


def test_a_checkpoint_from_before_precision_loads_as_what_it_ran(small_data, tmp_path):
    trainer = Trainer(config("beta_vae", precision="bf16"), small_data)
    trainer.save_checkpoint(tmp_path / "trainer.pt")
    state = torch.load(tmp_path / "trainer.pt", weights_only=False)
    state["config"].pop("precision")
    state["config"]["amp"] = True  # the old flag: bf16 autocast on CUDA only
    torch.save(state, tmp_path / "old.pt")
    assert Trainer.from_checkpoint(tmp_path / "old.pt", small_data, device="cpu").precision == "fp32"
