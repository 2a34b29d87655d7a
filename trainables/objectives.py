"""The objectives of the four variants, as pure functions on tensors with per-sample outputs (B,).

Notation (docs/objectives.md has the derivations): encoder q(z|x) = N(mu, diag(exp(logvar))),
prior p(z) = N(0, I), z = mu + exp(logvar/2) * eps. Every loss is per sample, shape (B,); the
trainer takes the batch mean. Shapes: x, out (B, C, H, W); z, mu, logvar (B, L).

- beta-VAE (Higgins et al. 2017):          beta_rec * R + beta_kl * KL
- beta-TCVAE (Chen et al. 2018; report eq. (2)):  beta_rec * R + beta_kl * (a*MI + b*TC + c*DWKL)
- Soft-Intro-VAE (Daniel & Tamar 2021; the report's eqs. (3) and (4)): soft_intro_encoder_loss,
  soft_intro_decoder_loss, with KL as the regulariser.
- Soft-Intro-TCVAE (the report's eqs. (5) and (6)): the same two losses with the decomposed
  regulariser in every ELBO.
"""

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")
ESTIMATORS = ("mws", "mss")
_LOG_2PI = math.log(2 * math.pi)


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


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) = 0.5 * sum_l (mu^2 + exp(logvar) - logvar - 1), (B, L) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)


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
    and each row sums to 1/N + (M-1)/M + (N-M)/(N M) = 1. A widely copied implementation fills
    columns 0 and 1 with strides of B instead of the diagonal and super-diagonal; these entries
    are built explicitly. Needs 2 <= B <= N.
    """
    b, n = int(batch_size), int(dataset_size)
    if b < 2 or n < b:
        raise ValueError(f"MSS needs 2 <= batch_size <= dataset_size; got batch_size={batch_size}, "
                         f"dataset_size={dataset_size}. Use estimator='mws' or a larger batch.")
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(b)
    w[rows, rows] = 1.0 / n
    w[rows, (rows + 1) % b] = (n - m) / (n * m)
    return w.log()


def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, dataset_size: int,
                     estimator: str = "mws") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (MI, TC, DWKL), each (B,), of the decomposition of Chen et al. 2018 (the report's
    eq. (2)), estimated on the batch:

        MI   = log q(z|x)      - log q(z)          index-code mutual information
        TC   = log q(z)        - sum_l log q(z_l)  total correlation
        DWKL = sum_l log q(z_l) - log p(z)         dimension-wise KL

    so MI + TC + DWKL = log q(z|x) - log p(z), the single-sample estimate of KL(q(z|x) || p(z)).
    log q(z_i) = logsumexp_j (log W[i, j] + log q(z_i | x_j)), and per dimension for q(z_il):
    - "mws" (minibatch weighted sampling, Chen et al.'s appendix): W[i, j] = 1/(B N) for all
      entries. Its rows sum to 1/N, not 1: it is a lower bound on log q(z), about log N too low
      when the posteriors overlap, so MI reads about log N high, TC about (L-1) log N high and
      DWKL about L log N low (the offsets cancel in the sum).
    - "mss" (minibatch stratified sampling, same appendix): W = exp(mss_log_weights(B, N)), rows
      sum to 1; consistent as B grows.
    Every constant (the log(B N) terms and log W) is kept: they do not change the gradients of a
    plain beta-TCVAE but they shift each term, and inside Soft-Intro's exp() that matters.
    z, mu, logvar: (B, L); q(z_i | x_j) is evaluated for every pair, (B, B, L) memory.
    """
    b = z.shape[0]
    if estimator == "mws":
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be >= 1; got {dataset_size}")
        log_w = torch.full((b, b), -math.log(b * dataset_size), dtype=z.dtype, device=z.device)
    elif estimator == "mss":
        log_w = mss_log_weights(b, dataset_size).to(dtype=z.dtype, device=z.device)
    else:
        raise ValueError(f"unknown estimator {estimator!r}; valid names: {', '.join(ESTIMATORS)}")

    log_q_pairs = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # (B, B, L): [i, j, l]
    log_q_zx = log_q_pairs.diagonal(dim1=0, dim2=1).sum(0)                     # (B,)  log q(z_i | x_i)
    log_qz = torch.logsumexp(log_w + log_q_pairs.sum(2), dim=1)                # (B,)  log q(z_i)
    log_qz_marginals = torch.logsumexp(log_w[:, :, None] + log_q_pairs, dim=1).sum(1)  # (B,) sum_l log q(z_il)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)  # (B,)

    mi = log_q_zx - log_qz
    tc = log_qz - log_qz_marginals
    dwkl = log_qz_marginals - log_pz
    return mi, tc, dwkl


def regulariser(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, decomposed: bool,
                dataset_size: int | None = None, estimator: str = "mws", mi_weight: float = 1.0,
                tc_weight: float = 1.0, dwkl_weight: float = 1.0
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The regulariser of one ELBO, (B,): the analytic KL when not decomposed (beta-VAE,
    Soft-Intro-VAE), else mi_weight*MI + tc_weight*TC + dwkl_weight*DWKL (beta-TCVAE,
    Soft-Intro-TCVAE; Chen et al. use 1, beta, 1). Also returns its parts for logging:
    {"kl"} or {"kl", "mi", "tc", "dwkl"}, each (B,); the analytic KL is always among them."""
    kl = kl_divergence(mu, logvar)
    if not decomposed:
        return kl, {"kl": kl}
    if dataset_size is None:
        raise ValueError("decomposed=True needs dataset_size (the N of the MWS/MSS estimators)")
    mi, tc, dwkl = tc_decomposition(z, mu, logvar, dataset_size=dataset_size, estimator=estimator)
    return mi_weight * mi + tc_weight * tc + dwkl_weight * dwkl, {"kl": kl, "mi": mi, "tc": tc, "dwkl": dwkl}


# --- the losses of the four variants --------------------------------------------------------------
def beta_vae_loss(rec: torch.Tensor, reg: torch.Tensor, *, beta_rec: float, beta_kl: float) -> torch.Tensor:
    """-ELBO with weights (the report's eq. (1)), (B,): beta_rec * R + beta_kl * reg. The same
    function serves beta-VAE (reg = KL) and beta-TCVAE (reg = the decomposed regulariser)."""
    return beta_rec * rec + beta_kl * reg


def _halves(t: torch.Tensor, b: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(2B,) ordered [rec..., fake...] -> the two (B,) halves."""
    if t.shape != (2 * b,):
        raise ValueError(f"{name} must have shape (2B,) = ({2 * b},), ordered [rec..., fake...]; "
                         f"got {tuple(t.shape)}")
    return t[:b], t[b:]


def soft_intro_encoder_loss(rec_real: torch.Tensor, reg_real: torch.Tensor, rec_gen: torch.Tensor,
                            reg_neg_gen: torch.Tensor, *, scale: float, alpha: float, beta_rec: float,
                            beta_kl: float, beta_neg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-Intro encoder loss (Daniel & Tamar 2021; the report's eq. (3), or (5) with the
    decomposed regulariser), per real sample b, (B,):

        scale * (beta_rec * R(x_b) + beta_kl * reg(x_b))                         # -ELBO(x), real
        + (1/alpha) * 0.5 * (exp(-alpha * scale * (beta_rec * R(g_b) + beta_neg * reg(g_b)))
                            + exp(-alpha * ... same for g_{b+B}))                # exp(alpha ELBO(D(z)))

    The sign of the second term is that of a loss to minimise: the encoder pushes the ELBO of
    generated images down. With alpha=2 the factor is 0.25, the reference code's
    0.25 * (expelbo_rec.mean() + expelbo_fake.mean()).

    rec_real, reg_real: (B,) for the real batch; rec_gen, reg_neg_gen: (2B,) for the generated
    images [rec = D(E(x)) ..., fake = D(z_p) ...], encoded in one batched pass (reg_neg_gen is
    their regulariser, weighted by beta_neg). Returns (loss (B,), exp_elbo_gen (2B,) detached,
    the exp(-alpha * scale * l_neg) terms for logging).
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the reference uses 2); got alpha={alpha}")
    b = rec_real.shape[0]
    _halves(rec_gen, b, "rec_gen")
    _halves(reg_neg_gen, b, "reg_neg_gen")
    neg_elbo_real = beta_rec * rec_real + beta_kl * reg_real               # (B,)
    neg_elbo_gen = beta_rec * rec_gen + beta_neg * reg_neg_gen             # (2B,)
    exp_elbo_gen = torch.exp(-alpha * scale * neg_elbo_gen)                # (2B,)
    exp_rec, exp_fake = exp_elbo_gen[:b], exp_elbo_gen[b:]
    loss = scale * neg_elbo_real + (1.0 / alpha) * 0.5 * (exp_rec + exp_fake)
    return loss, exp_elbo_gen.detach()


def soft_intro_decoder_loss(rec_real: torch.Tensor, reg_gen: torch.Tensor, rec_regen: torch.Tensor, *,
                            scale: float, gamma: float, gamma_r: float, beta_rec: float,
                            beta_kl: float) -> torch.Tensor:
    """Soft-Intro decoder loss (Daniel & Tamar 2021; the report's eq. (4), or (6) with
    the decomposed regulariser), per real sample b, (B,):

        scale * (beta_rec * R(x_b)                                            # -ELBO(x), rec part
                 + gamma * 0.5 * beta_kl * (reg(g_b) + reg(g_{b+B}))          # gamma * -ELBO(D(z)), reg part
                 + gamma_r * 0.5 * beta_rec * (R(g_b, D(E(g_b))) + R(g_{b+B}, D(E(g_{b+B})))))

    The KL of the real images is constant for the decoder and is left out, as in the reference
    code; gamma_r (default 1e-8 there) weights the re-reconstruction of the generated images.
    rec_real: (B,); reg_gen, rec_regen: (2B,) ordered [rec..., fake...].
    """
    b = rec_real.shape[0]
    reg_rec, reg_fake = _halves(reg_gen, b, "reg_gen")
    rr_rec, rr_fake = _halves(rec_regen, b, "rec_regen")
    return scale * (beta_rec * rec_real
                    + gamma * 0.5 * beta_kl * (reg_rec + reg_fake)
                    + gamma_r * 0.5 * beta_rec * (rr_rec + rr_fake))
