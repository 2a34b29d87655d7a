"""Known-answer tests of trainables.objectives (docs/objectives.md has the equations)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal
from torch.distributions import kl_divergence as torch_kl

from trainables import objectives as obj


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- reconstruction, KL, log density: equal to torch's own -----------------------------------------
def test_reconstruction_loss_matches_torch():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = _rand(4, 3, 8, 8, seed=2)
    bern = obj.reconstruction_loss(x, out, "bernoulli")
    assert bern.shape == (4,)
    torch.testing.assert_close(bern, -Bernoulli(logits=out, validate_args=False).log_prob(x).flatten(1).sum(1))
    torch.testing.assert_close(bern, F.binary_cross_entropy(torch.sigmoid(out), x, reduction="none").flatten(1).sum(1))
    gauss = obj.reconstruction_loss(x, out, "gaussian")
    torch.testing.assert_close(gauss, F.mse_loss(out, x, reduction="none").flatten(1).sum(1))
    with pytest.raises(ValueError, match="bernoulli, gaussian"):
        obj.reconstruction_loss(x, out, "laplace")


def test_kl_and_log_density_match_torch():
    mu, logvar, z = _rand(5, 7, seed=3), _rand(5, 7, seed=4), _rand(5, 7, seed=5)
    std = torch.exp(0.5 * logvar)
    expected = torch_kl(Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    torch.testing.assert_close(obj.kl_divergence(mu, logvar), expected)
    torch.testing.assert_close(obj.gaussian_log_density(z, mu, logvar), Normal(mu, std).log_prob(z))


# --- MSS weights ------------------------------------------------------------------------------------
def test_mss_weight_entries():
    n, b = 100, 5  # M = 4 others
    w = obj.mss_log_weights(b, n).exp()
    assert w.shape == (5, 5) and w.dtype == torch.float64
    for i in range(b):
        for j in range(b):
            if j == i:
                expected = 1 / 100                      # the sample's own x_i
            elif j == (i + 1) % b:
                expected = (100 - 4) / (100 * 4)        # the stratified entry, 0.24
            else:
                expected = 1 / 4                        # 1/M
            assert w[i, j].item() == pytest.approx(expected, rel=1e-12), (i, j)
    torch.testing.assert_close(w.sum(1), torch.ones(b, dtype=torch.float64))
    # B = 2: the only other sample is the stratified one.
    torch.testing.assert_close(obj.mss_log_weights(2, 10).exp(),
                               torch.tensor([[0.1, 0.9], [0.9, 0.1]], dtype=torch.float64))


def test_mss_weights_give_unbiased_q_of_z():
    """Averaged over every ordered draw of the M others (without replacement), the MSS estimate
    of q(z) for z from q(z|n*) is exactly (1/N) sum_n q(z|n), wherever n* sits in the batch."""
    n, b = 6, 4
    f = torch.tensor([0.3, 2.0, 0.7, 1.1, 5.0, 0.05], dtype=torch.float64)  # q(z | n), any values
    w = obj.mss_log_weights(b, n).exp()
    for star, row in itertools.product(range(n), range(b)):
        others = [k for k in range(n) if k != star]
        estimates = []
        for draw in itertools.permutations(others, b - 1):
            batch = list(draw[:row]) + [star] + list(draw[row:])
            estimates.append((w[row] * f[batch]).sum())
        assert torch.stack(estimates).mean().item() == pytest.approx(f.mean().item(), rel=1e-12)


def test_mss_rejects_impossible_batches():
    with pytest.raises(ValueError, match="batch_size"):
        obj.mss_log_weights(1, 10)
    with pytest.raises(ValueError, match="dataset_size"):
        obj.mss_log_weights(20, 10)


# --- the TC decomposition -----------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["mws", "mss"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_decomposition_telescopes_to_single_sample_kl(estimator, dtype):
    b, l = 64, 10
    mu, logvar = _rand(b, l, seed=6, dtype=dtype), 0.5 * _rand(b, l, seed=7, dtype=dtype)
    z = mu + torch.exp(0.5 * logvar) * _rand(b, l, seed=8, dtype=dtype)
    mi, tc, dwkl = obj.tc_decomposition(z, mu, logvar, dataset_size=737_280, estimator=estimator)
    assert mi.shape == tc.shape == dwkl.shape == (b,)
    kl_single = (obj.gaussian_log_density(z, mu, logvar)
                 - obj.gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))).sum(1)
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(mi + tc + dwkl, kl_single, atol=tol, rtol=0)


def test_mws_keeps_its_constants():
    """MWS TC = logsumexp(joint) - sum_l logsumexp(marginal) + (L-1) log(B N): the constant is
    about 159 nats for L=10, B=64, N=737,280 and must not be dropped."""
    b, l, n = 64, 10, 737_280
    mu, logvar = _rand(b, l, seed=9), _rand(b, l, seed=10)
    z = mu + torch.exp(0.5 * logvar) * _rand(b, l, seed=11)
    pairs = obj.gaussian_log_density(z[:, None], mu[None], logvar[None])
    tc_without = torch.logsumexp(pairs.sum(2), 1) - torch.logsumexp(pairs, 1).sum(1)
    _, tc, _ = obj.tc_decomposition(z, mu, logvar, dataset_size=n, estimator="mws")
    constant = (l - 1) * math.log(b * n)
    assert constant == pytest.approx(159.03, abs=0.01)
    torch.testing.assert_close(tc - tc_without, torch.full((b,), constant, dtype=torch.float64))
    with pytest.raises(ValueError, match="mss, mws, mss_report"):
        obj.tc_decomposition(z, mu, logvar, dataset_size=n, estimator="exact")


# Large-batch known answers. mu ~ N(0, C), posterior N(mu, s2 I): the aggregate posterior is
# exactly N(0, S) with S = C + s2 I, so
#   TC = -0.5 log det corr(S),   MI = 0.5 log det S - 0.5 L log s2,
#   DWKL = sum_l 0.5 (S_ll - 1 - log S_ll).
# MSS estimates them consistently. MWS's weights 1/(B N) sum to 1/N per row: log q(z) and each
# log q(z_l) read log N low, so MWS's TC reads (L-1) log N high and its MI log N high.
_B, _N, _S2 = 2000, 10**6, 0.1
_CORRELATIONS = {
    "independent": torch.eye(3, dtype=torch.float64),
    "correlated": torch.tensor([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]], dtype=torch.float64),
}


@pytest.mark.parametrize("case", sorted(_CORRELATIONS))
def test_tc_large_batch_closed_form(case):
    c = _CORRELATIONS[case]
    l = c.shape[0]
    g = torch.Generator().manual_seed(12)
    mu = torch.randn(_B, l, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c).T
    logvar = torch.full((_B, l), math.log(_S2), dtype=torch.float64)
    z = mu + math.sqrt(_S2) * torch.randn(_B, l, generator=g, dtype=torch.float64)

    s = c + _S2 * torch.eye(l, dtype=torch.float64)
    d = s.diagonal().sqrt()
    tc_true = -0.5 * torch.logdet(s / d[:, None] / d[None, :]).item()
    mi_true = 0.5 * torch.logdet(s).item() - 0.5 * l * math.log(_S2)
    dwkl_true = (0.5 * (s.diagonal() - 1 - s.diagonal().log())).sum().item()
    if case == "independent":
        assert tc_true == pytest.approx(0.0, abs=1e-12)
    else:
        assert tc_true == pytest.approx(0.4966, abs=1e-3)

    mi, tc, dwkl = obj.tc_decomposition(z, mu, logvar, dataset_size=_N, estimator="mss")
    assert tc.mean().item() == pytest.approx(tc_true, abs=0.1)
    assert mi.mean().item() == pytest.approx(mi_true, abs=0.1)
    assert dwkl.mean().item() == pytest.approx(dwkl_true, abs=0.05)

    mi, tc, dwkl = obj.tc_decomposition(z, mu, logvar, dataset_size=_N, estimator="mws")
    log_n = math.log(_N)
    assert tc.mean().item() - (l - 1) * log_n == pytest.approx(tc_true, abs=0.1)
    assert dwkl.mean().item() + l * log_n == pytest.approx(dwkl_true, abs=0.1)
    # MWS also weighs the sample's own q(z_i|x_i) like any other (1/(B N), not 1/N): log q(z)
    # reads a little high, MI a little low (about 0.06-0.09 nats here).
    assert mi.mean().item() - log_n == pytest.approx(mi_true - 0.07, abs=0.1)


def test_regulariser_terms_and_their_weighting():
    mu, logvar = _rand(8, 4, seed=13), _rand(8, 4, seed=14)
    z = mu + torch.exp(0.5 * logvar) * _rand(8, 4, seed=15)
    kl = obj.kl_divergence(mu, logvar)
    terms = obj.regulariser_terms(z, mu, logvar, decomposed=False)
    assert set(terms) == {"kl"}
    for form in obj.LOSS_FORMS:  # without TC terms every form is beta * KL
        torch.testing.assert_close(obj.weighted_regulariser(terms, 3.0, form=form), 3.0 * kl)

    mi, tc, dwkl = obj.tc_decomposition(z, mu, logvar, dataset_size=100, estimator="mss")
    terms = obj.regulariser_terms(z, mu, logvar, decomposed=True, dataset_size=100, estimator="mss")
    torch.testing.assert_close(terms["tc"], tc)
    torch.testing.assert_close(terms["kl"], kl)
    weights = dict(mi_weight=1.0, tc_weight=8.0, dwkl_weight=0.5)
    torch.testing.assert_close(obj.weighted_regulariser(terms, 2.0, form="decomposed", **weights),
                               2.0 * (mi + 8.0 * tc + 0.5 * dwkl))
    # The report's form ignores the per-term weights: analytic KL plus (beta - 1) TC.
    torch.testing.assert_close(obj.weighted_regulariser(terms, 8.0, form="report", **weights), kl + 7.0 * tc)
    torch.testing.assert_close(obj.weighted_regulariser(terms, 1.0, form="report"), kl)
    with pytest.raises(ValueError, match="decomposed, report"):
        obj.weighted_regulariser(terms, 1.0, form="paper")
    with pytest.raises(ValueError, match="dataset_size"):
        obj.regulariser_terms(z, mu, logvar, decomposed=True)


def test_report_mss_weights_fill_columns_not_the_diagonal():
    """The report code's matrix: column 0 = 1/N, column 1 = the stratified weight, [B-2, 0] the
    stratified weight, the rest 1/M; so only rows 0 and 1 give the sample's own density 1/N."""
    n, b = 100, 5
    w = obj.report_mss_log_weights(b, n).exp()
    strat = (100 - 4) / (100 * 4)
    expected = torch.full((5, 5), 1 / 4, dtype=torch.float64)
    expected[:, 0], expected[:, 1], expected[3, 0] = 1 / 100, strat, strat
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=0)
    assert w.diagonal()[:2].tolist() == pytest.approx([1 / 100, strat])
    # The same matrix the source's stride walk over the flattened tensor gives:
    walk = torch.full((b, b), 1 / 4, dtype=torch.float64)
    walk.view(-1)[::b] = 1 / n
    walk.view(-1)[1::b] = strat
    walk[b - 2, 0] = strat
    torch.testing.assert_close(w, walk, rtol=1e-12, atol=0)


# --- the losses of the four variants, on hand-computed numbers ------------------------------------
def test_beta_vae_loss():
    rec, reg = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])  # reg = W(beta_kl), already weighted
    torch.testing.assert_close(obj.beta_vae_loss(rec, reg, beta_rec=8.0), torch.tensor([8.5, 19.0]))
    torch.testing.assert_close(obj.beta_vae_loss(rec, reg, beta_rec=8.0, scale=0.5), torch.tensor([4.25, 9.5]))


# B = 2; generated terms ordered [rec_0, rec_1, fake_0, fake_1].
_REC_REAL = torch.tensor([1.0, 2.0], dtype=torch.float64)
_REG_REAL = torch.tensor([0.5, 1.0], dtype=torch.float64)
_REC_GEN = torch.tensor([1.0, 0.0, 2.0, 1.0], dtype=torch.float64)
_REG_GEN = torch.tensor([0.0, 1.0, 0.5, 0.0], dtype=torch.float64)


def test_soft_intro_encoder_loss_hand_computed():
    # scale 0.5, alpha 2, beta_rec 1, beta_kl 2, beta_neg 3:
    #   real:  0.5 * (R + 2 KL)         = [1.0, 2.0]
    #   exp(-2 * 0.5 * (R + 3 KL_gen))  = exp(-[1, 3, 3.5, 1]) = [0.36787944, 0.04978707, 0.03019738, 0.36787944]
    #   loss_0 = 1 + 0.25 * (0.36787944 + 0.03019738) = 1.09951920
    #   loss_1 = 2 + 0.25 * (0.04978707 + 0.36787944) = 2.10441663
    loss, exp_elbo = obj.soft_intro_encoder_loss(_REC_REAL, 2.0 * _REG_REAL, _REC_GEN, 3.0 * _REG_GEN,
                                                 scale=0.5, alpha=2.0, beta_rec=1.0)
    torch.testing.assert_close(loss, torch.tensor([1.09951920, 2.10441663], dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(exp_elbo, torch.tensor([0.36787944, 0.04978707, 0.03019738, 0.36787944],
                                                      dtype=torch.float64), atol=1e-8, rtol=0)
    # The reference code's form (Daniel & Tamar, train_soft_intro_vae.py), batch means:
    expelbo_rec = torch.exp(-2 * 0.5 * (1.0 * _REC_GEN[:2] + 3.0 * _REG_GEN[:2])).mean()
    expelbo_fake = torch.exp(-2 * 0.5 * (1.0 * _REC_GEN[2:] + 3.0 * _REG_GEN[2:])).mean()
    reference = 0.25 * (expelbo_rec + expelbo_fake) + 0.5 * (1.0 * _REC_REAL.mean() + 2.0 * _REG_REAL.mean())
    assert loss.mean().item() == pytest.approx(reference.item(), abs=1e-12)
    assert loss.mean().item() == pytest.approx(1.60196792, abs=1e-8)


def test_soft_intro_encoder_loss_reference_form_random():
    b, scale = 16, 1 / 4096
    rec_real, reg_real = 3000 * torch.rand(b, dtype=torch.float64), 20 * torch.rand(b, dtype=torch.float64)
    rec_gen, reg_gen = 3000 * torch.rand(2 * b, dtype=torch.float64), 20 * torch.rand(2 * b, dtype=torch.float64)
    loss, _ = obj.soft_intro_encoder_loss(rec_real, 8.0 * reg_real, rec_gen, 256.0 * reg_gen,
                                          scale=scale, alpha=2.0, beta_rec=8.0)
    exp_rec = (-2 * scale * (8.0 * rec_gen[:b] + 256.0 * reg_gen[:b])).exp().mean()
    exp_fake = (-2 * scale * (8.0 * rec_gen[b:] + 256.0 * reg_gen[b:])).exp().mean()
    reference = scale * (8.0 * rec_real.mean() + 8.0 * reg_real.mean()) + 0.25 * (exp_rec + exp_fake)
    assert loss.mean().item() == pytest.approx(reference.item(), rel=1e-12)


def test_soft_intro_encoder_loss_rejects_bad_input():
    kwargs = dict(scale=0.5, beta_rec=1.0)
    with pytest.raises(ValueError, match="alpha"):
        obj.soft_intro_encoder_loss(_REC_REAL, _REG_REAL, _REC_GEN, _REG_GEN, alpha=0.0, **kwargs)
    with pytest.raises(ValueError, match=r"\(2B,\)"):
        obj.soft_intro_encoder_loss(_REC_REAL, _REG_REAL, _REC_GEN[:2], _REG_GEN, alpha=2.0, **kwargs)


def test_soft_intro_decoder_loss_hand_computed():
    # scale 0.5, gamma 1, gamma_r 0.1, beta_rec 1, beta_kl 2; reg_gen = 2 * _REG_GEN, rec_regen = _REC_GEN:
    #   loss_0 = 0.5 * (1 + 1 * 0.5 * 2 * (0 + 0.5) + 0.1 * 0.5 * 1 * (1 + 2)) = 0.5 * 1.65 = 0.825
    #   loss_1 = 0.5 * (2 + 1 * 0.5 * 2 * (1 + 0)   + 0.1 * 0.5 * 1 * (0 + 1)) = 0.5 * 3.05 = 1.525
    loss = obj.soft_intro_decoder_loss(_REC_REAL, 2.0 * _REG_GEN, _REC_GEN, scale=0.5, gamma=1.0, gamma_r=0.1,
                                       beta_rec=1.0)
    torch.testing.assert_close(loss, torch.tensor([0.825, 1.525], dtype=torch.float64))
    with pytest.raises(ValueError, match="reg_gen"):
        obj.soft_intro_decoder_loss(_REC_REAL, _REG_GEN[:3], _REC_GEN, scale=0.5, gamma=1.0, gamma_r=0.1,
                                    beta_rec=1.0)
