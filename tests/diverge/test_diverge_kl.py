"""The numeric core of divergence: hand-computed values, a float64 reference, the cache bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from judge.diverge.kl import (CacheRows, bucket_divergences, divergence_from_cache,
                                   tail_samples, token_divergence, topk_cache)


def _log(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).log().to(torch.float32)


# --------------------------------------------------------------------------- hand-computed values


def test_two_token_kl_reverse_jsd_dp_by_hand():
    # P = (0.9, 0.1), Q = (0.6, 0.4), actual token 1
    out = token_divergence(_log([[0.9, 0.1]]), _log([[0.6, 0.4]]), torch.tensor([1]),
                           reverse=True, jsd=True)
    kl = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)  # 0.2262891...
    rkl = 0.6 * math.log(0.6 / 0.9) + 0.4 * math.log(0.4 / 0.1)  # 0.3112386...
    m = (0.75, 0.25)
    js = 0.5 * (0.9 * math.log(0.9 / m[0]) + 0.1 * math.log(0.1 / m[1])
                + 0.6 * math.log(0.6 / m[0]) + 0.4 * math.log(0.4 / m[1]))
    assert out["kl"].item() == pytest.approx(0.2262891615, abs=1e-6)
    assert out["kl"].item() == pytest.approx(kl, abs=1e-6)
    assert out["reverse_kl"].item() == pytest.approx(0.3112386795, abs=1e-6)
    assert out["reverse_kl"].item() == pytest.approx(rkl, abs=1e-6)
    assert out["jsd"].item() == pytest.approx(js, abs=1e-6)
    assert out["dp"].item() == pytest.approx(0.4 - 0.1, abs=1e-6)
    assert out["p_base_tok"].item() == pytest.approx(0.1, abs=1e-7)
    assert out["nll_comp"].item() == pytest.approx(-math.log(0.4), abs=1e-6)
    assert out["same_top1"].item() is True  # both argmax token 0


def test_three_token_jsd_and_top1_disagreement():
    # P = (1/2, 1/4, 1/4), Q = (1/4, 1/2, 1/4): KL = ln2 / 4 both ways;
    # M = (3/8, 3/8, 1/4): JSD = ln(4/3) / 2 + ln(2/3) / 4 = 0.0424747...
    out = token_divergence(_log([[0.5, 0.25, 0.25]]), _log([[0.25, 0.5, 0.25]]), torch.tensor([0]),
                           reverse=True, jsd=True)
    assert out["kl"].item() == pytest.approx(math.log(2) / 4, abs=1e-7)
    assert out["reverse_kl"].item() == pytest.approx(math.log(2) / 4, abs=1e-7)
    assert out["jsd"].item() == pytest.approx(0.0424747592, abs=1e-7)
    assert out["same_top1"].item() is False
    assert out["dp"].item() == pytest.approx(-0.25, abs=1e-7)


def test_zero_probability_conventions():
    # 0 log 0 = 0: P = (1, 0), Q = (1/2, 1/2) -> KL = ln 2, no NaN; reverse KL is +inf
    lp = torch.tensor([[0.0, -math.inf]])
    lq = _log([[0.5, 0.5]])
    out = bucket_divergences(lp, lq, reverse=True, jsd=True)
    assert out["kl"].item() == pytest.approx(math.log(2), abs=1e-7)
    assert math.isinf(out["reverse_kl"].item()) and out["reverse_kl"].item() > 0
    # JSD stays finite: (ln(1/(3/4)) + (1/2 ln(1/2 / 3/4) + 1/2 ln(1/2 / 1/4))) / 2
    js = 0.5 * (math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert out["jsd"].item() == pytest.approx(js, abs=1e-7)


def test_top1_ties_count_as_agreement():
    logits = torch.tensor([[2.0, 2.0, 0.0]])
    comp = torch.tensor([[1.0, 3.0, 3.0]])  # baseline argmax 0 (first of a tie); comp max is 1 or 2
    assert token_divergence(logits, logits, torch.tensor([0]))["same_top1"].item() is True
    assert token_divergence(logits, comp, torch.tensor([0]))["same_top1"].item() is False
    tied = torch.tensor([[2.0, 3.0, 3.0]])  # baseline's top token 1 ties with 2 in comp
    assert token_divergence(tied, comp, torch.tensor([0]))["same_top1"].item() is True


def test_cache_bound_by_hand():
    # K = 1 on P = (1/2, 1/4, 1/4), Q = (1/4, 1/2, 1/4): buckets {0}, tail:
    # P' = (1/2, 1/2), Q' = (1/4, 3/4) -> KL = ln(2)/2 + ln(2/3)/2 = ln(4/3)/2 <= ln(2)/4
    lp, lq, tgt = _log([[0.5, 0.25, 0.25]]), _log([[0.25, 0.5, 0.25]]), torch.tensor([2])
    rows = topk_cache(lp, tgt, 1)
    assert rows.ids.tolist() == [[0]]
    assert rows.log_tail.item() == pytest.approx(math.log(0.5), abs=1e-7)
    assert rows.logp_target.item() == pytest.approx(math.log(0.25), abs=1e-7)
    out = divergence_from_cache(rows, lq, tgt)
    assert out["kl"].item() == pytest.approx(math.log(4 / 3) / 2, abs=1e-7)
    assert out["kl"].item() < math.log(2) / 4
    assert out["dp"].item() == pytest.approx(0.0, abs=1e-7)  # the actual token has 1/4 in both
    assert out["same_top1"].item() is False


# --------------------------------------------------------------------------- float64 reference


def _reference(base: np.ndarray, comp: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Brute force in float64 numpy, written independently of the torch code."""
    def logsoftmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    lp, lq = logsoftmax(base.astype(np.float64)), logsoftmax(comp.astype(np.float64))
    p, q = np.exp(lp), np.exp(lq)
    m = (p + q) / 2
    rows = np.arange(len(targets))
    return {
        "kl": (p * (lp - lq)).sum(1),
        "reverse_kl": (q * (lq - lp)).sum(1),
        "jsd": 0.5 * ((p * np.log(p / m)).sum(1) + (q * np.log(q / m)).sum(1)),
        "same_top1": base.argmax(1) == comp.argmax(1),
        "dp": q[rows, targets] - p[rows, targets],
        "nll_base": -lp[rows, targets],
        "nll_comp": -lq[rows, targets],
    }


@pytest.fixture(scope="module")
def random_logits():
    g = torch.Generator().manual_seed(0)
    n, vocab = 37, 3001
    base = torch.randn(n, vocab, generator=g) * 3
    comp = base + torch.randn(n, vocab, generator=g) * 0.5  # a perturbed "compressed" model
    targets = torch.randint(0, vocab, (n,), generator=g)
    return base, comp, targets


@pytest.mark.parametrize("chunk_elements", [1, 5000, 1 << 24])  # 1 row, 1 row, all rows per chunk
def test_exact_path_matches_float64_reference(random_logits, chunk_elements):
    base, comp, targets = random_logits
    out = token_divergence(base, comp, targets, reverse=True, jsd=True,
                           chunk_elements=chunk_elements)
    ref = _reference(base.numpy(), comp.numpy(), targets.numpy())
    for key in ("kl", "reverse_kl", "jsd", "dp", "nll_base", "nll_comp"):
        np.testing.assert_allclose(out[key].numpy(), ref[key], rtol=2e-5, atol=2e-6, err_msg=key)
    assert (out["same_top1"].numpy() == ref["same_top1"]).all()
    assert 0 < ref["same_top1"].mean() < 1  # the check compares both outcomes


def test_bf16_logits_are_upcast(random_logits):
    base, comp, targets = random_logits
    out = token_divergence(base.bfloat16(), comp.bfloat16(), targets)
    ref = _reference(base.bfloat16().float().numpy(), comp.bfloat16().float().numpy(),
                     targets.numpy())
    assert out["kl"].dtype == torch.float32
    np.testing.assert_allclose(out["kl"].numpy(), ref["kl"], rtol=2e-5, atol=2e-6)


# --------------------------------------------------------------------------- the cache bound


def test_cache_kl_is_a_lower_bound_and_exact_at_full_vocabulary(random_logits):
    base, comp, targets = random_logits
    vocab = base.shape[1]
    exact = token_divergence(base, comp, targets, reverse=True, jsd=True)
    previous = np.zeros(len(targets))
    for k in (1, 4, 64, 512, vocab - 1):
        rows = topk_cache(base, targets, k, chunk_elements=7000)
        got = divergence_from_cache(rows, comp, targets, reverse=True, jsd=True, chunk_elements=9000)
        for key in ("kl", "reverse_kl", "jsd"):  # data processing: every f-divergence shrinks
            assert (got[key].numpy() <= exact[key].numpy() + 1e-6).all(), (k, key)
        assert (got["kl"].numpy() >= previous - 1e-6).all()  # finer buckets, larger bound
        previous = got["kl"].numpy()
        for key in ("dp", "nll_base", "nll_comp", "same_top1"):  # exact whatever K
            np.testing.assert_array_equal(got[key].numpy(), exact[key].numpy())
    # K = V as top-K (all ids, empty tail) and K = None (full rows) both give the exact values
    for k in (vocab, None):
        rows = topk_cache(base, targets, k)
        got = divergence_from_cache(rows, comp, targets, reverse=True, jsd=True)
        for key in ("kl", "reverse_kl", "jsd"):
            np.testing.assert_allclose(got[key].numpy(), exact[key].numpy(), rtol=1e-6, atol=1e-7)
    full = divergence_from_cache(topk_cache(base, targets, None), comp, targets)
    assert torch.equal(full["kl"], token_divergence(base, comp, targets)["kl"])  # same arithmetic


def test_tiny_tail_mass_is_accurate():
    # one peaked row: the mass outside the top token is 999 e^-30 ~ 1e-10, below float32's
    # epsilon, so 1 - sum(top K) would be 0; the cache keeps its log accurately
    base = torch.zeros(1, 1000)
    base[0, 0] = 30.0
    tgt = torch.tensor([0])
    rows = topk_cache(base, tgt, 1)
    ref_tail = math.log(999) - 30 - math.log1p(999 * math.exp(-30))
    assert rows.log_tail.item() == pytest.approx(ref_tail, abs=1e-4)
    comp = base.clone()
    comp[0, 5] = 25.0  # the compressed model moves mass (~e^-5) into the baseline's tail
    exact = token_divergence(base, comp, tgt, reverse=True)
    bound = divergence_from_cache(rows, comp, tgt, reverse=True)
    ref = _reference(base.numpy(), comp.numpy(), tgt.numpy())
    assert exact["kl"].item() == pytest.approx(ref["kl"][0], rel=1e-4)
    assert 0 < bound["kl"].item() <= exact["kl"].item() + 1e-9
    assert bound["kl"].item() == pytest.approx(exact["kl"].item(), rel=1e-3)
    # reverse KL over the buckets: finite thanks to the accurate tail, and a lower bound
    q_tail = 1 - 1 / (1 + math.exp(-5) + 998 * math.exp(-30))
    p_tail = 999 * math.exp(-30) / (1 + 999 * math.exp(-30))
    q0, p0 = 1 - q_tail, 1 - p_tail
    by_hand = q0 * math.log(q0 / p0) + q_tail * math.log(q_tail / p_tail)
    assert bound["reverse_kl"].item() == pytest.approx(by_hand, rel=1e-4)
    assert bound["reverse_kl"].item() < exact["reverse_kl"].item()


def test_model_against_itself_is_exactly_zero(random_logits):
    base, _, targets = random_logits
    ties = base.clone()
    ties[:, 1] = ties.max(dim=1).values  # exact ties at the top
    for logits in (base, ties, base.bfloat16()):
        for k, samples in ((8, 0), (8, 16), (None, 0)):
            out = divergence_from_cache(topk_cache(logits, targets, k, n_tail_samples=samples),
                                        logits, targets, reverse=True, jsd=True)
            for key in ("kl", "reverse_kl", "jsd", "dp"):
                assert (out[key] == 0).all(), (k, key)
            assert out["same_top1"].all()
        exact = token_divergence(logits, logits, targets)
        assert (exact["kl"] == 0).all() and exact["same_top1"].all()


def test_empty_positions():
    empty = torch.zeros(0, 50)
    tgt = torch.zeros(0, dtype=torch.long)
    rows = topk_cache(empty, tgt, 8)
    out = divergence_from_cache(rows, empty, tgt)
    assert out["kl"].shape == (0,)


# --------------------------------------------------------------------------- tail samples


def test_tail_estimate_by_hand():
    # P = (0.4, 0.3, 0.15, 0.15), Q = (0.3, 0.3, 0.1, 0.3), K = 2: the tail is tokens {2, 3} with
    # p̃ = (1/2, 1/2), so S = 2 systematic draws take each tail token once, whatever the offset,
    # and the estimate is the exact value; the bound misses p_tail x KL(p̃ ‖ q̃).
    p, q = [0.4, 0.3, 0.15, 0.15], [0.3, 0.3, 0.1, 0.3]
    lp, lq, tgt = _log([p]), _log([q]), torch.tensor([0])
    rows = topk_cache(lp, tgt, 2, n_tail_samples=2)
    assert sorted(rows.tail_ids[0].tolist()) == [2, 3]
    np.testing.assert_allclose(rows.tail_logp[0].numpy(), np.log([0.15, 0.15]), rtol=1e-6)
    out = divergence_from_cache(rows, lq, tgt, reverse=True, jsd=True)
    kl = sum(a * math.log(a / b) for a, b in zip(p, q))  # 0.0719205...
    bound = 0.4 * math.log(4 / 3) + 0 + 0.3 * math.log(0.3 / 0.4)
    rkl = sum(b * math.log(b / a) for a, b in zip(p, q))
    js = sum(0.5 * a * math.log(2 * a / (a + b)) + 0.5 * b * math.log(2 * b / (a + b))
             for a, b in zip(p, q))
    assert kl == pytest.approx(0.4 * math.log(4 / 3) + 0.15 * math.log(0.75), abs=1e-12)
    assert kl == pytest.approx(0.0719205181, abs=1e-9)
    assert out["kl_bound"].item() == pytest.approx(bound, abs=1e-6)
    assert bound < kl - 0.04  # the tail matters here: 0.0288 vs 0.0719
    assert out["kl"].item() == pytest.approx(kl, abs=1e-6)
    assert out["reverse_kl"].item() == pytest.approx(rkl, abs=1e-6)
    assert out["jsd"].item() == pytest.approx(js, abs=1e-6)


def test_tail_draws_follow_the_tail_distribution():
    # V = 6, K = 2: tail tokens 2..5 with p̃ = (0.1, 0.2, 0.3, 0.4); 4000 offsets x S = 1
    probs = torch.tensor([[0.35, 0.25, 0.04, 0.08, 0.12, 0.16]], dtype=torch.float64)
    lp = probs.log().float()
    lp_tail = lp.clone()
    lp_tail[0, :2] = -math.inf
    log_tail = lp_tail.logsumexp(-1)
    g = torch.Generator().manual_seed(1)
    draws = torch.cat([tail_samples(lp_tail, log_tail, 1, g) for _ in range(4000)]).flatten()
    counts = torch.bincount(draws, minlength=6).numpy()
    assert counts[:2].tolist() == [0, 0]  # never a top-K token
    expected = np.array([0.1, 0.2, 0.3, 0.4]) * 4000
    sd = np.sqrt(expected * (1 - expected / 4000))
    assert (np.abs(counts[2:] - expected) < 4 * sd).all(), counts
    # systematic: S = 10 evenly spaced points hit each token in proportion, within one draw
    many = tail_samples(lp_tail, log_tail, 10, g)[0]
    assert (np.abs(np.bincount(many.numpy(), minlength=6)[2:] - [1, 2, 3, 4]) <= 1).all()


def test_tail_estimate_is_unbiased_and_never_below_the_bound(random_logits):
    base, comp, targets = random_logits  # 3001 tokens: a flat P with a heavy tail
    exact = token_divergence(base, comp, targets, reverse=True, jsd=True)
    rows = topk_cache(base, targets, 64, n_tail_samples=8)
    assert rows.tail_ids.shape == (len(targets), 8)
    assert not (rows.tail_ids[:, :, None] == rows.ids[:, None, :]).any()  # never a top-K token
    lp = torch.log_softmax(base.float(), -1)
    lp_tail = lp.scatter(1, rows.ids, -math.inf)
    g = torch.Generator().manual_seed(7)
    means: dict[str, list[float]] = {"kl": [], "reverse_kl": [], "jsd": []}
    for _ in range(200):  # 200 independent offsets: the average converges to the exact value
        draws = tail_samples(lp_tail, rows.log_tail, 8, g)
        r = CacheRows(logp=rows.logp, ids=rows.ids, log_tail=rows.log_tail,
                      logp_target=rows.logp_target, top1=rows.top1, tail_ids=draws,
                      tail_logp=lp.gather(1, draws))
        out = divergence_from_cache(r, comp, targets, reverse=True, jsd=True)
        assert (out["kl"] >= out["kl_bound"]).all()  # every single estimate
        for key in means:
            means[key].append(float(out[key].double().mean()))
    bound = float(out["kl_bound"].double().mean())
    assert bound < 0.85 * float(exact["kl"].double().mean())  # a loose bound here (0.79 of exact)
    for key, values in means.items():
        v = np.array(values)
        se = v.std(ddof=1) / math.sqrt(len(v))
        truth = float(exact[key].double().mean())
        assert abs(v.mean() - truth) < 4 * se + 1e-6, (key, v.mean(), truth, se)
        assert abs(v.mean() / truth - 1) < 0.01, key


def test_empty_tail_adds_nothing():
    # all mass on the top 2 tokens (the rest at -inf): the tail is empty, the estimate is the bound
    base = torch.full((3, 10), -math.inf)
    base[:, :2] = torch.tensor([1.0, 0.5])
    comp = torch.randn(3, 10)
    tgt = torch.zeros(3, dtype=torch.long)
    rows = topk_cache(base, tgt, 2, n_tail_samples=4)
    assert torch.isinf(rows.log_tail).all()
    out = divergence_from_cache(rows, comp, tgt, reverse=True, jsd=True)
    for key in ("kl", "jsd"):
        assert torch.isfinite(out[key]).all(), key
    assert torch.equal(out["kl"], out["kl_bound"])
    assert (out["reverse_kl"] == math.inf).all()  # Q has mass where P has none: +inf, not NaN
