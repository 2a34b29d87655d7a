"""The objectives of the four variants, as pure functions on tensors with per-sample outputs (B,).

Notation (docs/objectives.md has the derivations and the sources): encoder q(z|x) =
N(mu, diag(exp(logvar))), prior p(z) = N(0, I), z = mu + exp(logvar/2) * eps. Every loss is per
sample, shape (B,); the trainer takes the batch mean. Shapes: x, out (B, C, H, W); z, mu, logvar (B, L).

Each ELBO's regulariser enters a loss already weighted by its beta, W(beta) (`weighted_regulariser`):

- beta-VAE, Soft-Intro-VAE:         W(beta) = beta * KL
- beta-TCVAE, Soft-Intro-TCVAE, loss_form "decomposed" (this project's; Chen et al. 2018):
                                    W(beta) = beta * (a*MI + b*TC + c*DWKL)
- the same, loss_form "report" (the report's code, meffmadd/intro-tc-vae 2ea2130, solvers/tc.py):
                                    W(beta) = KL + (beta - 1) * TC

and the losses are
- beta-VAE / beta-TCVAE (Higgins et al. 2017; the report's eq. (1)): scale * (beta_rec * R + W(beta_kl))
- Soft-Intro-VAE / -TCVAE (Daniel & Tamar 2021; the report's eqs. (3)-(6)): soft_intro_encoder_loss,
  soft_intro_decoder_loss, with W(beta_kl) for real images and the decoder's terms and W(beta_neg)
  for the encoder's terms of generated images.
"""

import math

import torch
import torch.nn.functional as F

from trainables.vocabulary import LIKELIHOODS, LOSS_FORMS
from trainables.vocabulary import TC_ESTIMATORS as ESTIMATORS

_LOG_2PI = math.log(2 * math.pi)
REPORT_LOG_DENSITY_FLOOR = -50.0  # the report code clamps every per-dimension log density here


# --- the two ELBO terms ---------------------------------------------------------------------------
def reconstruction_loss(x: torch.Tensor, out: torch.Tensor, likelihood: str) -> torch.Tensor:
    """R(x, out): per-sample negative log-likelihood summed over pixels, (B,).

    "bernoulli": BCE with logits (out are logits, x in [0, 1]); "gaussian": squared error
    sum(out - x)^2 (the unit-variance Gaussian NLL times 2, without its constant; Soft-Intro's
    "mse, sum" convention).
    """
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(out, x, reduction="none")
    elif likelihood == "gaussian":
        per_pixel = (out - x) ** 2
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; valid names: {', '.join(LIKELIHOODS)}")
    return per_pixel.flatten(1).sum(1)


def as_image(out: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Decoder output -> image space: the Bernoulli logits through a sigmoid, a Gaussian mean as it is."""
    return torch.sigmoid(out) if likelihood == "bernoulli" else out


def kl_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_l|x) || N(0, 1)) = 0.5 * (mu^2 + exp(logvar) - logvar - 1) per latent, (B, L)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)), the sum of kl_per_latent over the latents, (B, L) -> (B,)."""
    return kl_per_latent(mu, logvar).sum(1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar)) = -0.5 * (log 2pi + logvar + (z - mu)^2 / exp(logvar));
    broadcasts."""
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


# --- beta-TCVAE: the decomposition of the KL term (Chen et al. 2018) ------------------------------
def mss_log_weights(batch_size: int, dataset_size: int) -> torch.Tensor:
    """Log importance weights of minibatch stratified sampling (MSS; Chen et al. 2018, appendix),
    (B, B) float64: q(z_i) ~ sum_j W[i, j] q(z_i | x_j), z_i drawn from q(z | x_i).

    Derivation. Write B = M + 1 (the sample's own x_i plus M others), N = dataset_size. The
    aggregate posterior is q(z) = (1/N) sum_n q(z|n). Partition the N indices into M strata of
    N/M each; x_i lies in one of them, S*. Then
        q(z) = (1/N) q(z|x_i)                                   # x_i itself, exact
             + sum over the M-1 other strata of (N/M)/N * E_{n in S}[q(z|n)]
             + (N/M - 1)/N * E_{n in S* minus x_i}[q(z|n)].
    One draw per stratum estimates each expectation without bias; the M other batch members are
    a uniform draw without replacement, so by symmetry any of them may stand for any stratum.
    Hence, in row i:
        W[i, i]            = 1/N                           (the diagonal)
        W[i, (i+1) mod B]  = (N - M)/(N M) = (N-B+1)/(N (B-1))   (the one stratified entry)
        W[i, j], others    = 1/M = 1/(B-1)
    and each row sums to 1/N + (M-1)/M + (N-M)/(N M) = 1. Needs 2 <= B <= N.
    """
    b, n = _check_mss(batch_size, dataset_size)
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(b)
    w[rows, rows] = 1.0 / n
    w[rows, (rows + 1) % b] = (n - m) / (n * m)
    return w.log()


def report_mss_log_weights(batch_size: int, dataset_size: int) -> torch.Tensor:
    """The MSS weight matrix as the report's code builds it (ops.log_importance_weight_matrix,
    the version of rtqichen/beta-tcvae that many repositories copy), (B, B) float64 log weights.

    It sets the entries by stepping through the flattened matrix with stride B = M + 1, which
    walks down columns, not along the diagonal: column 0 gets 1/N, column 1 gets the stratified
    weight (N - M)/(N M), entry [B-2, 0] the stratified weight again, and every other entry 1/M.
    So for rows i >= 2 the sample's own density is weighted 1/M instead of 1/N, and rows no longer
    sum to 1. Kept only to reproduce the report (estimator "mss_report").
    """
    b, n = _check_mss(batch_size, dataset_size)
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    w[:, 0] = 1.0 / n
    w[:, 1] = (n - m) / (n * m)
    w[m - 1, 0] = (n - m) / (n * m)
    return w.log()


def _check_mss(batch_size: int, dataset_size: int) -> tuple[int, int]:
    b, n = int(batch_size), int(dataset_size)
    if b < 2 or n < b:
        raise ValueError(f"MSS needs 2 <= batch_size <= dataset_size; got batch_size={batch_size}, "
                         f"dataset_size={dataset_size}. Use estimator='mws' or a larger batch.")
    return b, n


def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, dataset_size: int,
                     estimator: str = "mss") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (MI, TC, DWKL), each (B,), of the decomposition of Chen et al. 2018 (the report's
    eq. (2)), estimated on the batch:

        MI   = log q(z|x)      - log q(z)          index-code mutual information
        TC   = log q(z)        - sum_l log q(z_l)  total correlation
        DWKL = sum_l log q(z_l) - log p(z)         dimension-wise KL

    so MI + TC + DWKL = log q(z|x) - log p(z), the single-sample estimate of KL(q(z|x) || p(z)).
    log q(z_i) = logsumexp_j (log W[i, j] + log q(z_i | x_j)), and per dimension for q(z_il):
    - "mss" (minibatch stratified sampling, Chen et al.'s appendix): W = exp(mss_log_weights(B, N)),
      rows sum to 1; consistent as B grows. The default.
    - "mws" (minibatch weighted sampling, same appendix): W[i, j] = 1/(B N) for all entries. Its
      rows sum to 1/N, not 1: it is a lower bound on log q(z), about log N too low when the
      posteriors overlap, so MI reads about log N high, TC about (L-1) log N high and DWKL about
      L log N low (the offsets cancel in the sum).
    - "mss_report": the report code's estimator: the weights of `report_mss_log_weights` and every
      per-dimension log q(z_il | x_j) clamped below at -50 (ops.gaussian_log_density there).
    Every constant (the log(B N) terms and log W) is kept: they do not change the gradients of a
    plain beta-TCVAE but they shift each term, and inside Soft-Intro's exp() that matters.
    z, mu, logvar: (B, L); q(z_i | x_j) is evaluated for every pair, (B, B, L) memory.
    """
    b = z.shape[0]
    log_q_pairs = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # (B, B, L): [i, j, l]
    if estimator == "mss":
        log_w = mss_log_weights(b, dataset_size).to(dtype=z.dtype, device=z.device)
    elif estimator == "mws":
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be >= 1; got {dataset_size}")
        log_w = torch.full((b, b), -math.log(b * dataset_size), dtype=z.dtype, device=z.device)
    elif estimator == "mss_report":
        log_w = report_mss_log_weights(b, dataset_size).to(dtype=z.dtype, device=z.device)
        log_q_pairs = log_q_pairs.clamp(min=REPORT_LOG_DENSITY_FLOOR)
    else:
        raise ValueError(f"unknown estimator {estimator!r}; valid names: {', '.join(ESTIMATORS)}")

    log_q_zx = log_q_pairs.diagonal(dim1=0, dim2=1).sum(0)                     # (B,)  log q(z_i | x_i)
    log_qz = torch.logsumexp(log_w + log_q_pairs.sum(2), dim=1)                # (B,)  log q(z_i)
    log_qz_marginals = torch.logsumexp(log_w[:, :, None] + log_q_pairs, dim=1).sum(1)  # (B,) sum_l log q(z_il)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)  # (B,)

    mi = log_q_zx - log_qz
    tc = log_qz - log_qz_marginals
    dwkl = log_qz_marginals - log_pz
    return mi, tc, dwkl


def regulariser_terms(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, decomposed: bool,
                      dataset_size: int | None = None, estimator: str = "mss") -> dict[str, torch.Tensor]:
    """The terms one ELBO's regulariser is made of, each (B,): {"kl"} (the analytic KL) and, when
    `decomposed` (the TC variants), the estimated {"mi", "tc", "dwkl"} as well."""
    terms = {"kl": kl_divergence(mu, logvar)}
    if decomposed:
        if dataset_size is None:
            raise ValueError("decomposed=True needs dataset_size (the N of the TC estimators)")
        terms["mi"], terms["tc"], terms["dwkl"] = tc_decomposition(
            z, mu, logvar, dataset_size=dataset_size, estimator=estimator)
    return terms


def weighted_regulariser(terms: dict[str, torch.Tensor], beta: float, *, form: str = "decomposed",
                         mi_weight: float = 1.0, tc_weight: float = 1.0, dwkl_weight: float = 1.0) -> torch.Tensor:
    """W(beta), the regulariser of one ELBO with its weight, (B,), from `regulariser_terms`:

        beta * KL                                      terms without "tc" (beta-VAE, Soft-Intro-VAE)
        beta * (mi_weight*MI + tc_weight*TC + dwkl_weight*DWKL)   form "decomposed" (Chen et al. use 1, beta, 1)
        KL + (beta - 1) * TC                           form "report": the report code's
                                                       TCSovler._compute_kl_loss_simple (analytic KL,
                                                       estimated TC; the weights a, b, c are unused)
    """
    if "tc" not in terms:
        return beta * terms["kl"]
    if form == "decomposed":
        return beta * (mi_weight * terms["mi"] + tc_weight * terms["tc"] + dwkl_weight * terms["dwkl"])
    if form == "report":
        return terms["kl"] + (beta - 1.0) * terms["tc"]
    raise ValueError(f"unknown loss form {form!r}; valid names: {', '.join(LOSS_FORMS)}")


# --- the losses of the four variants --------------------------------------------------------------
def beta_vae_loss(rec: torch.Tensor, reg: torch.Tensor, *, beta_rec: float, scale: float = 1.0) -> torch.Tensor:
    """-ELBO with weights (the report's eq. (1)), (B,): scale * (beta_rec * R + W(beta_kl)), reg =
    W(beta_kl). The same function serves beta-VAE and beta-TCVAE; the report's code multiplies by
    scale = 1/(C*H*W) (solvers/vae.py), this project's form by 1 (Adam hardly notices either)."""
    return scale * (beta_rec * rec + reg)


def _halves(t: torch.Tensor, b: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B,) ordered [rec..., fake...] -> the two (B,) halves."""
    if t.shape != (2 * b,):
        raise ValueError(f"{name} must have shape (2B,) = ({2 * b},), ordered [rec..., fake...]; "
                         f"got {tuple(t.shape)}")
    return t[:b], t[b:]


def soft_intro_encoder_loss(rec_real: torch.Tensor, reg_real: torch.Tensor, rec_gen: torch.Tensor,
                            reg_gen: torch.Tensor, *, scale: float, alpha: float,
                            beta_rec: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-Intro encoder loss (Daniel & Tamar 2021; the report's eq. (3), or (5) with the TC
    regulariser), per real sample b, (B,):

        scale * (beta_rec * R(x_b) + W(beta_kl)(x_b))                            # -ELBO(x), real
        + (1/alpha) * 0.5 * (exp(-alpha * scale * (beta_rec * R(g_b) + W(beta_neg)(g_b)))
                            + exp(-alpha * ... same for g_{b+B}))                # exp(alpha ELBO(D(z)))

    The sign of the second term is that of a loss to minimise: the encoder pushes the ELBO of
    generated images down. With alpha=2 the factor is 0.25, the reference code's
    0.25 * (expelbo_rec.mean() + expelbo_fake.mean()).

    rec_real (B,): R of the real batch; reg_real (B,): W(beta_kl) of the real batch; rec_gen,
    reg_gen (2B,): R and W(beta_neg) of the generated images [rec = D(E(x)) ..., fake = D(z_p) ...].
    Returns (loss (B,), exp_elbo_gen (2B,) detached, the exp(-alpha * scale * l_neg) terms for logging).
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the reference uses 2); got alpha={alpha}")
    b = rec_real.shape[0]
    _halves(rec_gen, b, "rec_gen")
    _halves(reg_gen, b, "reg_gen")
    exp_elbo_gen = torch.exp(-alpha * scale * (beta_rec * rec_gen + reg_gen))  # (2B,)
    exp_rec, exp_fake = exp_elbo_gen[:b], exp_elbo_gen[b:]
    loss = scale * (beta_rec * rec_real + reg_real) + (1.0 / alpha) * 0.5 * (exp_rec + exp_fake)
    return loss, exp_elbo_gen.detach()


def soft_intro_decoder_loss(rec_real: torch.Tensor, reg_gen: torch.Tensor, rec_regen: torch.Tensor, *,
                            scale: float, gamma: float, gamma_r: float, beta_rec: float) -> torch.Tensor:
    """Soft-Intro decoder loss (Daniel & Tamar 2021; the report's eq. (4), or (6) with the TC
    regulariser), per real sample b, (B,):

        scale * (beta_rec * R(x_b)                                            # -ELBO(x), rec part
                 + gamma * 0.5 * (W(beta_kl)(g_b) + W(beta_kl)(g_{b+B}))      # gamma * -ELBO(D(z)), reg part
                 + gamma_r * 0.5 * beta_rec * (R(g_b, D(E(g_b))) + R(g_{b+B}, D(E(g_{b+B})))))

    The regulariser of the real images is constant for the decoder and is left out, as in the
    reference code; gamma_r (default 1e-8 there) weights the re-reconstruction of the generated
    images. rec_real: (B,); reg_gen (W(beta_kl) of the generated images), rec_regen: (2B,) ordered
    [rec..., fake...].
    """
    b = rec_real.shape[0]
    reg_rec, reg_fake = _halves(reg_gen, b, "reg_gen")
    rr_rec, rr_fake = _halves(rec_regen, b, "rec_regen")
    return scale * (beta_rec * rec_real
                    + gamma * 0.5 * (reg_rec + reg_fake)
                    + gamma_r * 0.5 * beta_rec * (rr_rec + rr_fake))
