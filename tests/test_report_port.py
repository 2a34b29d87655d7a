"""The report's losses, ported from its code, against this project's on identical tensors.

The port below is written from the report code's last commit (meffmadd/intro-tc-vae 2ea2130:
solvers/vae.py, tc.py, intro.py, intro_tc.py) and the ops.py it imports (the archived version
whose functions match those imports; docs/objectives.md, "The report's code", says what could and
could not be recovered). It keeps the source's expressions -- batch means where the source takes
them, its weight matrix built by the same stride walk, the clamp, BCE on the sigmoid output -- so
that a paraphrase in the project cannot pass by agreeing with itself.

Two readings of the source's ``reconstruction_loss(..., reduction="mean")`` are tested, each
against the project's matching ``rec_reduction``: "pixel" (the archived ops.py: a mean over pixels
and batch, rec_reduction="mean") and "image" (a per-image sum averaged over the batch, as
Soft-Intro-VAE's ``calc_reconstruction_loss`` does for MSE: rec_reduction="sum").
"""

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainables import objectives as obj
from trainables.data import load_dataset
from trainables.trainer import TrainConfig, Trainer

PAPER = dict(beta_rec=8.0, beta_kl=8.0, beta_neg=8.0, gamma_r=1e-8)  # the report's weights; alpha 2, gamma 1
READINGS = {"pixel": "mean", "image": "sum"}  # port reading -> the project's rec_reduction
TC_VARIANTS = ("beta_tcvae", "sintro_tc")


# --- the port --------------------------------------------------------------------------------------
def ref_gaussian_log_density(x, mu, logvar):
    """ops.gaussian_log_density: per dimension, clamped below at -50."""
    normalization = math.log(2.0 * math.pi)
    inv_sigma = torch.exp(-logvar)
    tmp = x - mu
    return torch.clamp(-0.5 * (tmp * tmp * inv_sigma + logvar + normalization), min=-50)


def ref_log_importance_weight_matrix(batch_size, dataset_size):
    """ops.log_importance_weight_matrix: the entries are set by a stride walk of the flattened matrix."""
    n, m = dataset_size, batch_size - 1
    strat_weight = (n - m) / (n * m)
    w = torch.full((batch_size, batch_size), 1 / m, dtype=torch.float64)
    w.view(-1)[:: m + 1] = 1 / n
    w.view(-1)[1 :: m + 1] = strat_weight
    w[m - 1, 0] = strat_weight
    return w.log()


def ref_total_correlation(z, mu, logvar, dataset_size, reduce):
    """ops.total_correlation with minibatch_stratified_sampling; rows index the sample j."""
    b = z.size(0)
    log_qz_prob = ref_gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))
    log_iw = ref_log_importance_weight_matrix(b, dataset_size).to(log_qz_prob.dtype)
    log_qz_product = torch.logsumexp(log_iw.view(b, b, 1) + log_qz_prob, dim=1, keepdim=False).sum(dim=1)
    log_qz = torch.logsumexp(log_iw + log_qz_prob.sum(dim=2), dim=1, keepdim=False)
    tc = log_qz - log_qz_product
    return tc.mean() if reduce == "mean" else tc


def ref_kl_divergence(logvar, mu, reduce):
    kl = -0.5 * (1 + logvar - logvar.exp() - mu.pow(2)).sum(1)
    return kl.mean() if reduce == "mean" else kl


def ref_reconstruction_loss(x, recon_x, reduction, reading):
    """ops.reconstruction_loss(loss_type="bce"): BCE on probabilities (the decoder ends in a
    sigmoid), the target detached; "mean" read as described in the module docstring."""
    recon_x = recon_x.view(recon_x.size(0), -1)
    x = x.view(x.size(0), -1).detach()
    if reduction == "mean" and reading == "image":
        return F.binary_cross_entropy(recon_x, x, reduction="none").sum(1).mean()
    return F.binary_cross_entropy(recon_x, x, reduction=reduction)


@dataclasses.dataclass
class RefSolver:
    """VAESolver / TCSovler / IntroSolver / IntroTCSovler: the loss expressions of their train_step."""

    variant: str
    dataset_size: int
    scale: float
    reading: str
    beta_rec: float = PAPER["beta_rec"]
    beta_kl: float = PAPER["beta_kl"]
    beta_neg: float = PAPER["beta_neg"]
    gamma_r: float = PAPER["gamma_r"]

    def compute_kl_loss(self, z, mu, logvar, reduce="mean", beta=None):
        if beta is None:
            beta = self.beta_kl
        kl = ref_kl_divergence(logvar, mu, reduce=reduce)
        if self.variant in TC_VARIANTS:  # TCSovler._compute_kl_loss_simple
            tc = ref_total_correlation(z, mu, logvar, self.dataset_size, reduce=reduce)
            return (beta - 1.0) * tc + kl
        return beta * kl

    def compute_rec_loss(self, x, recon_x, reduction, beta=None):
        if beta is None:
            beta = self.beta_rec
        return beta * ref_reconstruction_loss(x, recon_x, reduction, self.reading)

    def vae_loss(self, real, rec, mu, logvar, z):
        return self.scale * (self.compute_rec_loss(real, rec, "mean") + self.compute_kl_loss(z, mu, logvar))

    def encoder_loss(self, real, rec, real_post, rec_post, rec_rec, fake, fake_post, rec_fake):
        """IntroSolver.train_step, "Update E"; *_post = (mu, logvar, z). Returns (lossE, expelbo terms (2B,))."""
        loss_rec = self.compute_rec_loss(real, rec, "mean")
        lossE_real_kl = self.compute_kl_loss(real_post[2], real_post[0], real_post[1])
        kl_rec = self.compute_kl_loss(rec_post[2], rec_post[0], rec_post[1], reduce="none", beta=self.beta_neg)
        kl_fake = self.compute_kl_loss(fake_post[2], fake_post[0], fake_post[1], reduce="none", beta=self.beta_neg)
        loss_rec_rec_e = self.compute_rec_loss(rec, rec_rec, "none")
        while len(loss_rec_rec_e.shape) > 1:
            loss_rec_rec_e = loss_rec_rec_e.sum(-1)
        loss_rec_fake_e = self.compute_rec_loss(fake, rec_fake, "none")
        while len(loss_rec_fake_e.shape) > 1:
            loss_rec_fake_e = loss_rec_fake_e.sum(-1)
        exp_rec = (-2 * self.scale * (loss_rec_rec_e + kl_rec)).exp()
        exp_fake = (-2 * self.scale * (loss_rec_fake_e + kl_fake)).exp()
        lossE = self.scale * (loss_rec + lossE_real_kl) + 0.25 * (exp_rec.mean() + exp_fake.mean())
        return lossE, torch.cat([exp_rec, exp_fake])

    def decoder_loss(self, real, rec, rec_post, rec_rec, fake, fake_post, rec_fake):
        """IntroSolver.train_step, "Update D"."""
        loss_rec = self.compute_rec_loss(real, rec, "mean")
        loss_rec_rec = self.compute_rec_loss(rec.detach(), rec_rec, "mean", beta=self.gamma_r * self.beta_rec)
        loss_fake_rec = self.compute_rec_loss(fake.detach(), rec_fake, "mean", beta=self.gamma_r * self.beta_rec)
        lossD_rec_kl = self.compute_kl_loss(rec_post[2], rec_post[0], rec_post[1])
        lossD_fake_kl = self.compute_kl_loss(fake_post[2], fake_post[0], fake_post[1])
        return self.scale * (loss_rec + (lossD_rec_kl + lossD_fake_kl) * 0.5 + (loss_rec_rec + loss_fake_rec) * 0.5)


def ref_reparameterize(mu, logvar):
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def ref_soft_intro_step(model, solver, real, opt_e, opt_d, grads):
    """IntroSolver.train_step on `model` (the report's decoder is this decoder plus a sigmoid);
    the gradients of each step go into grads["encoder"] and grads["decoder"]."""
    sample = lambda z: torch.sigmoid(model.decode(z))  # noqa: E731
    noise_batch = torch.randn(real.size(0), model.latent_dim, dtype=real.dtype)
    model.encoder.requires_grad_(True)
    model.decoder.requires_grad_(False)
    fake = sample(noise_batch)
    real_mu, real_logvar = model.encode(real)
    z = ref_reparameterize(real_mu, real_logvar)
    rec = sample(z)

    def through(image):  # model(image.detach()): mu, logvar, z, decoded
        mu, logvar = model.encode(image.detach())
        z_ = ref_reparameterize(mu, logvar)
        return (mu, logvar, z_), sample(z_)

    rec_post, rec_rec = through(rec)
    fake_post, rec_fake = through(fake)
    loss_e, _ = solver.encoder_loss(real, rec, (real_mu, real_logvar, z), rec_post, rec_rec, fake, fake_post, rec_fake)
    opt_e.zero_grad()
    loss_e.backward()
    grads["encoder"] = [p.grad.clone() for p in model.encoder.parameters()]
    opt_e.step()

    model.encoder.requires_grad_(False)
    model.decoder.requires_grad_(True)
    fake = sample(noise_batch)
    rec = sample(z.detach())
    rec_mu, rec_logvar = model.encode(rec)
    z_rec = ref_reparameterize(rec_mu, rec_logvar)
    fake_mu, fake_logvar = model.encode(fake)
    z_fake = ref_reparameterize(fake_mu, fake_logvar)
    rec_rec, rec_fake = sample(z_rec.detach()), sample(z_fake.detach())
    loss_d = solver.decoder_loss(real, rec, (rec_mu, rec_logvar, z_rec), rec_rec, fake, (fake_mu, fake_logvar, z_fake),
                                 rec_fake)
    opt_d.zero_grad()
    loss_d.backward()
    grads["decoder"] = [p.grad.clone() for p in model.decoder.parameters()]
    opt_d.step()
    model.encoder.requires_grad_(True)
    return loss_e.detach(), loss_d.detach()


# --- 1. the objectives on identical tensors, all four variants --------------------------------------
B, L, N = 16, 10, 7200
SCALE = 1 / 4096


def _tensors(seed):
    g = torch.Generator().manual_seed(seed)

    def posterior():
        mu = torch.randn(B, L, generator=g, dtype=torch.float64)
        logvar = -1.0 + 0.5 * torch.randn(B, L, generator=g, dtype=torch.float64)
        return mu, logvar, mu + torch.exp(0.5 * logvar) * torch.randn(B, L, generator=g, dtype=torch.float64)

    def logits():
        return 3.0 * torch.randn(B, 1, 64, 64, generator=g, dtype=torch.float64)

    real = (torch.rand(B, 1, 64, 64, generator=g, dtype=torch.float64) < 0.1).double()
    names = ("real_post", "rec_post", "fake_post", "rec_post_d", "fake_post_d")
    out = {name: posterior() for name in names}
    for name in ("rec", "rec_rec", "fake", "rec_fake", "rec_d", "rec_rec_d", "fake_d", "rec_fake_d"):
        out[name] = logits()
    out["real"] = real
    return out


def _project_terms(variant, post):
    mu, logvar, z = post
    return obj.regulariser_terms(z, mu, logvar, decomposed=variant in TC_VARIANTS, dataset_size=N,
                                 estimator="mss_report")


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize("variant", ["beta_vae", "beta_tcvae", "sintro", "sintro_tc"])
def test_project_losses_equal_the_report_code_on_identical_tensors(variant, reading):
    t = _tensors(seed=1)
    ref = RefSolver(variant, dataset_size=N, scale=SCALE, reading=reading)
    unit = SCALE if READINGS[reading] == "mean" else 1.0  # rec_reduction "mean": R per pixel
    rec = lambda x, logits: obj.reconstruction_loss(x, logits, "bernoulli")  # noqa: E731
    weighted = lambda post, beta: obj.weighted_regulariser(_project_terms(variant, post), beta, form="report")  # noqa: E731
    sig = torch.sigmoid

    if not variant.startswith("sintro"):
        mu, logvar, z = t["real_post"]
        expected = ref.vae_loss(t["real"], sig(t["rec"]), mu, logvar, z)
        got = obj.beta_vae_loss(rec(t["real"], t["rec"]) * unit, weighted(t["real_post"], PAPER["beta_kl"]),
                                beta_rec=PAPER["beta_rec"], scale=SCALE)
        assert got.mean().item() == pytest.approx(expected.item(), rel=1e-5)
        return

    # Encoder: generated images are the sigmoid outputs, their re-decodings compared with them.
    expected_e, expected_exp = ref.encoder_loss(
        t["real"], sig(t["rec"]), t["real_post"], t["rec_post"], sig(t["rec_rec"]),
        sig(t["fake"]), t["fake_post"], sig(t["rec_fake"]))
    rec_gen = torch.cat([rec(sig(t["rec"]), t["rec_rec"]), rec(sig(t["fake"]), t["rec_fake"])])
    reg_gen = torch.cat([weighted(t["rec_post"], PAPER["beta_neg"]), weighted(t["fake_post"], PAPER["beta_neg"])])
    got_e, got_exp = obj.soft_intro_encoder_loss(
        rec(t["real"], t["rec"]) * unit, weighted(t["real_post"], PAPER["beta_kl"]), rec_gen, reg_gen,
        scale=SCALE, alpha=2.0, beta_rec=PAPER["beta_rec"])
    assert got_e.mean().item() == pytest.approx(expected_e.item(), rel=1e-5)
    torch.testing.assert_close(got_exp, expected_exp, rtol=1e-5, atol=0)  # per generated sample

    # Decoder.
    expected_d = ref.decoder_loss(t["real"], sig(t["rec_d"]), t["rec_post_d"], sig(t["rec_rec_d"]),
                                  sig(t["fake_d"]), t["fake_post_d"], sig(t["rec_fake_d"]))
    rec_regen = torch.cat([rec(sig(t["rec_d"]), t["rec_rec_d"]), rec(sig(t["fake_d"]), t["rec_fake_d"])])
    reg_gen_d = torch.cat([weighted(t["rec_post_d"], PAPER["beta_kl"]), weighted(t["fake_post_d"], PAPER["beta_kl"])])
    got_d = obj.soft_intro_decoder_loss(rec(t["real"], t["rec_d"]) * unit, reg_gen_d, rec_regen * unit,
                                        scale=SCALE, gamma=1.0, gamma_r=PAPER["gamma_r"], beta_rec=PAPER["beta_rec"])
    assert got_d.mean().item() == pytest.approx(expected_d.item(), rel=1e-5)


def test_the_port_tells_the_forms_and_estimators_apart():
    """The comparison above can fail: the project's own form, or the corrected estimator, differ by
    far more than its tolerance (1e-5)."""
    t = _tensors(seed=2)
    ref = RefSolver("beta_tcvae", dataset_size=N, scale=SCALE, reading="image")
    mu, logvar, z = t["real_post"]
    expected = ref.vae_loss(t["real"], torch.sigmoid(t["rec"]), mu, logvar, z).item()
    rec = obj.reconstruction_loss(t["real"], t["rec"], "bernoulli")
    for form, estimator in (("decomposed", "mss_report"), ("report", "mss")):
        terms = obj.regulariser_terms(z, mu, logvar, decomposed=True, dataset_size=N, estimator=estimator)
        reg = obj.weighted_regulariser(terms, 8.0, form=form, tc_weight=8.0)
        got = obj.beta_vae_loss(rec, reg, beta_rec=8.0, scale=SCALE).mean().item()
        assert abs(got - expected) > 1e-4 * abs(expected), (form, estimator)


# --- 2. one training step of the trainer against the reference's step -------------------------------
@pytest.fixture(scope="module")
def sprites():
    """64 dsprites_small images; at 16x16 as well, for a residual model that steps in a second."""
    data = load_dataset("dsprites_small")
    keep = np.sort(np.random.default_rng(0).choice(len(data), 64, replace=False))
    full = dataclasses.replace(data, images=np.ascontiguousarray(data.images[keep]))
    small = dataclasses.replace(full, images=np.ascontiguousarray(full.images[:, :, ::4, ::4]))
    return {64: full, 16: small}


def _step_both(sprites, *, arch, variant, reading, pooled=False):
    """One project step and one reference step from the same weights, batch and random numbers.
    Returns (project losses and grads, reference losses and grads, both models)."""
    size = 64 if arch == "standard" else 16
    data = sprites[size]
    config = TrainConfig(variant=variant, arch=arch, loss_form="report", tc_estimator="mss_report",
                         rec_reduction=READINGS[reading], batch_size=8, lr=2e-4, latent_dim=L, seed=3, **PAPER)
    trainer = Trainer(config, data)
    trainer.model.double()
    if pooled:
        trainer.model.batch_dependent = False  # the wrong path for BatchNorm: one pooled pass
    trainer.opt_e = torch.optim.Adam(trainer.model.encoder.parameters(), lr=config.lr)
    trainer.opt_d = torch.optim.Adam(trainer.model.decoder.parameters(), lr=config.lr)
    reference = copy.deepcopy(trainer.model)
    ref_opt_e = torch.optim.Adam(reference.encoder.parameters(), lr=config.lr)
    ref_opt_d = torch.optim.Adam(reference.decoder.parameters(), lr=config.lr)
    x = torch.from_numpy(data.images[:8]).double()

    grads = {}
    step_e, step_d = trainer.opt_e.step, trainer.opt_d.step

    def capture(name, params, step):
        def wrapped(*a, **kw):
            grads[name] = [p.grad.clone() for p in params]
            return step(*a, **kw)
        return wrapped

    trainer.opt_e.step = capture("encoder", list(trainer.model.encoder.parameters()), step_e)
    trainer.opt_d.step = capture("decoder", list(trainer.model.decoder.parameters()), step_d)
    torch.manual_seed(11)
    result = trainer._soft_intro_step(x)
    ref_grads = {}
    solver = RefSolver(variant, dataset_size=len(data), scale=1 / (size * size), reading=reading)
    torch.manual_seed(11)
    ref_e, ref_d = ref_soft_intro_step(reference, solver, x, ref_opt_e, ref_opt_d, ref_grads)
    return (result, grads), (ref_e, ref_d, ref_grads), (trainer.model, reference)


def _relative_gap(a, b):
    return max(((p - q).norm() / q.norm().clamp_min(1e-300)).item() for p, q in zip(a, b))


@pytest.mark.parametrize(("arch", "variant", "reading"), [
    ("residual_report", "sintro_tc", "pixel"),
    ("residual_report", "sintro", "image"),
    ("standard", "sintro_tc", "image"),
    ("standard", "sintro", "pixel"),
])
def test_soft_intro_step_equals_the_reference_step(sprites, arch, variant, reading):
    """Separate passes for the BatchNorm model, one batched pass for the standard model: either
    way the encoder and decoder gradients of one step are the reference's, and so are the
    BatchNorm running statistics the step leaves behind."""
    (result, grads), (ref_e, ref_d, ref_grads), (model, reference) = _step_both(
        sprites, arch=arch, variant=variant, reading=reading)
    assert result["loss_encoder"].item() == pytest.approx(ref_e.item(), rel=1e-9)
    assert result["loss_decoder"].item() == pytest.approx(ref_d.item(), rel=1e-9)
    assert _relative_gap(grads["encoder"], ref_grads["encoder"]) < 1e-6
    assert _relative_gap(grads["decoder"], ref_grads["decoder"]) < 1e-6
    for (name, a), b in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)


def test_a_pooled_pass_would_not_equal_the_reference_with_batchnorm(sprites):
    """The control: pooling reconstructions and prior samples into one BatchNorm pass changes
    the gradients, so the test above tells the two paths apart."""
    (_, grads), (_, _, ref_grads), _ = _step_both(sprites, arch="residual_report", variant="sintro",
                                                  reading="image", pooled=True)
    assert _relative_gap(grads["decoder"], ref_grads["decoder"]) > 1e-2


@pytest.mark.parametrize(("variant", "reading"), [("beta_vae", "pixel"), ("beta_tcvae", "image")])
def test_beta_step_equals_the_reference_step(sprites, variant, reading):
    data = sprites[64]
    config = TrainConfig(variant=variant, arch="standard", loss_form="report", tc_estimator="mss_report",
                         rec_reduction=READINGS[reading], batch_size=8, latent_dim=L, seed=3, **PAPER)
    trainer = Trainer(config, data)
    trainer.model.double()
    reference = copy.deepcopy(trainer.model)
    x = torch.from_numpy(data.images[:8]).double()
    torch.manual_seed(5)
    result = trainer._beta_step(x)
    grads = [p.grad.clone() for p in trainer.model.parameters()]
    torch.manual_seed(5)
    mu, logvar = reference.encode(x)
    z = ref_reparameterize(mu, logvar)
    solver = RefSolver(variant, dataset_size=len(data), scale=1 / 4096, reading=reading)
    loss = solver.vae_loss(x, torch.sigmoid(reference.decode(z)), mu, logvar, z)
    loss.backward()
    assert result["loss"].item() == pytest.approx(loss.item(), rel=1e-9)
    assert _relative_gap(grads, [p.grad for p in reference.parameters()]) < 1e-6
