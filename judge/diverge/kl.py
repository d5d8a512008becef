"""The numeric core of the divergence stage: per-token KL, reverse KL, JSD, top-1 agreement, Δp.

Pure torch functions over logits of answer positions, shape ``(n, V)`` (n positions, V vocabulary),
on whatever device the logits live. Everything is computed in float32 after a float32
``log_softmax``, in chunks of positions so that the float32 temporaries stay bounded
(``chunk_elements`` floats each) even for a 128k vocabulary and thousands of positions.

Two paths share one formula, a divergence between two distributions over B buckets (last dim):

* **exact** (`token_divergence`): the buckets are the V tokens;
* **cached** (`topk_cache` then `divergence_from_cache`): the baseline pass keeps, per position,
  its top-K log-probs and ids, the log of the remaining tail mass and the log-prob of the actual
  token. The compressed pass then compares over K + 1 buckets: the K baseline-top tokens and "all
  the rest" (q_tail = the compressed model's mass outside those K ids, computed as a logsumexp over
  the complement, never as 1 - sum, so it stays accurate when the tail is tiny).

Merging tokens into buckets can only lose information, so by the data-processing inequality (which
holds for every f-divergence) the bucketed KL, reverse KL and JSD are all **lower bounds** of the
exact values, and equal them when K = V (an empty tail).

The bound misses exactly p_tail · D(p̃ ‖ q̃), the divergence *inside* the tail (p̃, q̃: both
distributions restricted to the tail and renormalised). For a flat model that is several percent of
the KL at K = 64, so the cache also keeps S **tail samples** per position: token ids drawn from p̃
by systematic sampling (one uniform offset, S evenly spaced points on the tail's CDF; each point is
marginally a draw from p̃) with their baseline log-probs. Writing an f-divergence as
D = Σ p f(q/p) (KL: f = -log t, reverse KL: t log t, JSD: ½ log(2/(1+t)) + ½ t log(2t/(1+t))), the
tail's exact share minus its bucket term is

    p_tail · E_{i~p̃}[ f(ρ_i) - f(ρ_t) - f'(ρ_t)(ρ_i - ρ_t) ],   ρ_i = q_i/p_i, ρ_t = q_tail/p_tail,

(E_p̃[ρ_i] = ρ_t, so the linear term has mean zero and only lowers the variance). The bracket is a
Bregman divergence of a convex f, never negative: for KL it is r - 1 - log r with r = ρ_i/ρ_t. The
sample mean of it, added to the bound, is an **unbiased estimate of the exact value that is never
below the bound**; `divergence_from_cache` returns it as ``kl`` (and ``reverse_kl``, ``jsd``) with
the bound kept as ``kl_bound``.

Seeding: the draws of one sequence (a (question, turn) answer) come from one generator seeded by
`tail_seed` (question, turn): every position gets its own offset, the sequences get independent
streams (a fixed seed per call would give position j of every answer the same offset, correlating
the estimator's noise across answers), and a sequence's draws do not depend on which shard or run
computed it. The noise is then independent across positions and answers, so the spread of a mean
over tokens or questions already includes it. A single token's estimate stays noisy (upper
quantiles and the maximum of estimates lean upward): statistics of the tail of the KL distribution
are taken over ``kl_bound`` instead (`judge.stats.kl_summary`).

Conventions: 0 · log 0 = 0 (a zero-probability bucket contributes nothing); p > 0 where q = 0 gives
+inf, as it should. ``same_top1`` is true when the baseline's argmax token is also a maximum of the
compressed distribution (so exact ties never count as disagreement, and a model scored against
itself agrees everywhere). Δp = p_compressed(actual token) - p_baseline(actual token).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHUNK_ELEMENTS = 1 << 24  # floats per temporary (64 MiB in float32)
TOKEN_FIELDS = ("kl", "same_top1", "p_base_tok", "p_comp_tok", "nll_base", "nll_comp")
TAIL_SEED = 0x7A11  # the tail samples are a deterministic function of the logits and `tail_seed`


def tail_seed(key: str, turn: int) -> int:
    """The seed of the tail draws of question ``key``, turn ``turn``: the first 8 bytes of
    sha256("7a11/<key>/<turn>") as an integer below 2**63 (torch seeds are int64)."""
    digest = hashlib.sha256(f"{TAIL_SEED:x}/{key}/{turn}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _chunks(n: int, vocab: int, chunk_elements: int) -> list[slice]:
    rows = max(1, chunk_elements // max(1, vocab))
    return [slice(s, min(s + rows, n)) for s in range(0, n, rows)] or [slice(0, 0)]


def log_probs(logits: "torch.Tensor") -> "torch.Tensor":
    """float32 log-softmax over the last dim; idempotent on log-probs (up to rounding)."""
    import torch

    return torch.log_softmax(logits.to(torch.float32), dim=-1)


def bucket_divergences(lp: "torch.Tensor", lq: "torch.Tensor", *, reverse: bool = False,
                       jsd: bool = False) -> dict[str, "torch.Tensor"]:
    """KL(P‖Q), optionally KL(Q‖P) and JSD(P, Q), in nats, from log-probs over buckets.

    lp, lq: (n, B) float32 log-probabilities (each row sums to 1 in probability); -inf allowed.
    KL = sum_b p_b (log p_b - log q_b);  JSD = (KL(P‖M) + KL(Q‖M)) / 2 with M = (P + Q) / 2.
    Returns (n,) tensors.
    """
    import torch

    zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
    p = lp.exp()  # (n, B)
    out = {"kl": torch.where(p > 0, p * (lp - lq), zero).sum(-1)}
    q = lq.exp() if (reverse or jsd) else None
    if reverse:
        out["reverse_kl"] = torch.where(q > 0, q * (lq - lp), zero).sum(-1)
    if jsd:
        # log m = max + log((1 + e^-|lp - lq|) / 2), exactly lp where lp == lq (no rounding)
        lm = torch.maximum(lp, lq) + torch.log1p(torch.expm1(-(lp - lq).abs()) / 2)  # (n, B)
        kl_pm = torch.where(p > 0, p * (lp - lm), zero).sum(-1)
        kl_qm = torch.where(q > 0, q * (lq - lm), zero).sum(-1)
        out["jsd"] = 0.5 * (kl_pm + kl_qm)
    return out


def _token_terms(lq: "torch.Tensor", top1_base: "torch.Tensor", targets: "torch.Tensor",
                 logp_target_base: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    """Top-1 agreement and the actual token's probabilities under both models. Shapes (n,)."""
    lq_tok = lq.gather(1, targets[:, None]).squeeze(1)  # (n,)
    same = lq.gather(1, top1_base[:, None]).squeeze(1) >= lq.max(dim=-1).values
    return {"same_top1": same, "p_base_tok": logp_target_base.exp(), "p_comp_tok": lq_tok.exp(),
            "nll_base": -logp_target_base, "nll_comp": -lq_tok}


def _cat(parts: list[dict[str, "torch.Tensor"]]) -> dict[str, "torch.Tensor"]:
    import torch

    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def token_divergence(base_logits: "torch.Tensor", comp_logits: "torch.Tensor",
                     targets: "torch.Tensor", *, reverse: bool = False, jsd: bool = False,
                     chunk_elements: int = CHUNK_ELEMENTS) -> dict[str, "torch.Tensor"]:
    """Exact per-position statistics over the full vocabulary.

    base_logits, comp_logits: (n, V) logits (or log-probs) predicting targets (n,) int64.
    Returns (n,) tensors: kl, same_top1 (bool), p_base_tok, p_comp_tok, nll_base, nll_comp, dp,
    and reverse_kl / jsd when asked.
    """
    if base_logits.shape != comp_logits.shape:
        raise ValueError(f"logits shapes differ: {tuple(base_logits.shape)} vs "
                         f"{tuple(comp_logits.shape)}")
    n, vocab = base_logits.shape
    parts = []
    for sl in _chunks(n, vocab, chunk_elements):
        lp, lq = log_probs(base_logits[sl]), log_probs(comp_logits[sl])  # (c, V)
        tgt = targets[sl]
        part = bucket_divergences(lp, lq, reverse=reverse, jsd=jsd)
        part.update(_token_terms(lq, lp.argmax(dim=-1), tgt, lp.gather(1, tgt[:, None]).squeeze(1)))
        parts.append(part)
    out = _cat(parts)
    out["dp"] = out["p_comp_tok"] - out["p_base_tok"]
    return out


@dataclass
class CacheRows:
    """The baseline pass of n positions as kept in the cache (torch tensors, any device).

    logp: (n, K) float32 top-K log-probs, descending; for a full cache (n, V), in token order.
    ids: (n, K) int64 token ids of ``logp``; None for a full cache (ids = 0..V-1).
    log_tail: (n,) float32 log of the probability outside the top K (-inf when nothing is left).
    logp_target: (n,) float32 log-prob of the actual next token.
    top1: (n,) int64 the baseline's argmax token.
    tail_ids: (n, S) int64 tokens drawn from the tail (see the module docstring); None: no samples.
    tail_logp: (n, S) float32 their baseline log-probs (over the whole vocabulary).
    """

    logp: "torch.Tensor"
    ids: "torch.Tensor | None"
    log_tail: "torch.Tensor"
    logp_target: "torch.Tensor"
    top1: "torch.Tensor"
    tail_ids: "torch.Tensor | None" = None
    tail_logp: "torch.Tensor | None" = None

    @property
    def full(self) -> bool:
        return self.ids is None


def tail_samples(lp_tail: "torch.Tensor", log_tail: "torch.Tensor", n: int,
                 generator: "torch.Generator") -> "torch.Tensor":
    """(c, n) int64 ids drawn from each row's tail distribution by systematic sampling.

    lp_tail: (c, V) log-probs with the top-K entries set to -inf; log_tail: (c,) their logsumexp.
    One uniform offset u per row; the draws are the tokens where the tail's CDF (float64, token
    order) first exceeds (j + u) / n of the tail mass, j = 0..n-1. A token of zero tail probability
    (a top-K token) is never drawn; a row with an empty tail yields arbitrary ids (weight 0).
    """
    import torch

    c, vocab = lp_tail.shape
    finite = torch.isfinite(log_tail)  # (c,)
    w = torch.where(finite[:, None], (lp_tail - torch.where(finite, log_tail, 0.0)[:, None]).exp(),
                    0.0).to(torch.float64)  # (c, V), rows sum to 1 (or 0 for an empty tail)
    cdf = w.cumsum(dim=-1)  # (c, V)
    offset = torch.rand((c, 1), generator=generator, dtype=torch.float64).to(lp_tail.device)
    points = (torch.arange(n, dtype=torch.float64, device=lp_tail.device) + offset) / n
    idx = torch.searchsorted(cdf, points * cdf[:, -1:], right=True)  # (c, n)
    return idx.clamp_(max=vocab - 1)


def topk_cache(base_logits: "torch.Tensor", targets: "torch.Tensor", k: int | None, *,
               n_tail_samples: int = 0, seed: int = TAIL_SEED,
               chunk_elements: int = CHUNK_ELEMENTS) -> CacheRows:
    """Compress a baseline pass to top-K log-probs + ids + log tail mass (k=None: keep all),
    plus ``n_tail_samples`` draws from the tail per position (see `tail_samples`) from one
    generator seeded with ``seed`` (the divergence stage passes `tail_seed` of the sequence).

    log_tail = logsumexp of the log-probs outside the top K, computed directly over the
    complement (scatter -inf into the kept ids), so it is accurate even when the tail is ~1e-30.
    """
    import torch

    n, vocab = base_logits.shape
    full = k is None or k >= vocab
    sampled = n_tail_samples > 0 and not full
    gen = torch.Generator().manual_seed(seed) if sampled else None
    parts: list[dict[str, torch.Tensor]] = []
    for sl in _chunks(n, vocab, chunk_elements // (3 if sampled else 1)):
        lp = log_probs(base_logits[sl])  # (c, V)
        tgt = targets[sl]
        part = {"logp_target": lp.gather(1, tgt[:, None]).squeeze(1)}
        if full:
            part.update(logp=lp, top1=lp.argmax(dim=-1),
                        log_tail=torch.full((lp.shape[0],), -math.inf, device=lp.device))
        else:
            top_logp, top_ids = torch.topk(lp, k, dim=-1, sorted=True)  # (c, K)
            lp_tail = lp.scatter(1, top_ids, -math.inf)  # (c, V)
            log_tail = lp_tail.logsumexp(dim=-1)
            part.update(logp=top_logp, ids=top_ids, top1=top_ids[:, 0], log_tail=log_tail)
            if sampled:
                draws = tail_samples(lp_tail, log_tail, n_tail_samples, gen)  # (c, S)
                part.update(tail_ids=draws, tail_logp=lp.gather(1, draws))
        parts.append(part)
    out = _cat(parts)
    return CacheRows(logp=out["logp"], ids=out.get("ids"), log_tail=out["log_tail"],
                     logp_target=out["logp_target"], top1=out["top1"],
                     tail_ids=out.get("tail_ids"), tail_logp=out.get("tail_logp"))


def _f_jsd(lt: "torch.Tensor") -> "torch.Tensor":
    """JSD's generator f(t) = ½ log(2/(1+t)) + ½ t log(2t/(1+t)), from lt = log t (float64)."""
    import torch.nn.functional as F

    sp = F.softplus(lt)  # log(1 + t)
    return 0.5 * ((math.log(2) - sp) + lt.exp() * (math.log(2) + lt - sp))


def tail_corrections(log_tail: "torch.Tensor", log_q_tail: "torch.Tensor",
                     tail_logp: "torch.Tensor", tail_logq: "torch.Tensor", *, reverse: bool = False,
                     jsd: bool = False) -> dict[str, "torch.Tensor"]:
    """Estimated divergence inside the tail, to add to the bucketed values (module docstring).

    log_tail, log_q_tail: (n,) log tail masses of P and Q; tail_logp, tail_logq: (n, S) both
    models' log-probs of the sampled tail tokens. Returns (n,) float32 tensors, each >= 0:
    p_tail · mean_s B_f(ρ_s, ρ_t) for KL, and for reverse KL / JSD when asked.
    """
    import torch

    lpt, lqt = log_tail.to(torch.float64), log_q_tail.to(torch.float64)  # (n,)
    has = torch.isfinite(lpt)
    lpt_, lqt_ = torch.where(has, lpt, 0.0), torch.where(has, lqt, 0.0)
    log_rho = tail_logq.to(torch.float64) - tail_logp.to(torch.float64)  # (n, S): log q_i/p_i
    log_rho_t = (lqt_ - lpt_)[:, None]  # (n, 1)
    x = log_rho - log_rho_t  # log r, r = ρ_i / ρ_t
    p_t = torch.where(has, lpt_.exp(), 0.0)
    zero = torch.zeros((), dtype=torch.float64, device=x.device)

    def weighted(bregman: "torch.Tensor", weight: "torch.Tensor") -> "torch.Tensor":
        mean = torch.where(has[:, None], bregman.clamp_min(0.0), zero).mean(dim=-1)
        return (weight * mean).to(torch.float32)

    out = {"kl": weighted(torch.expm1(x) - x, p_t)}  # r - 1 - log r
    if reverse:  # q_tail · (r log r - r + 1)
        out["reverse_kl"] = weighted(x.exp() * x - torch.expm1(x), torch.where(has, lqt_.exp(), 0.0))
    if jsd:
        f_prime_t = 0.5 * (math.log(2) + log_rho_t - torch.nn.functional.softplus(log_rho_t))
        b = _f_jsd(log_rho) - _f_jsd(log_rho_t) - f_prime_t * (log_rho.exp() - log_rho_t.exp())
        out["jsd"] = weighted(b, p_t)
    return out


def divergence_from_cache(rows: CacheRows, comp_logits: "torch.Tensor", targets: "torch.Tensor",
                          *, reverse: bool = False, jsd: bool = False,
                          chunk_elements: int = CHUNK_ELEMENTS) -> dict[str, "torch.Tensor"]:
    """Per-position statistics of the compressed logits (n, V) against a cached baseline pass.

    KL bound = sum_{top K} p (log p - log q) + p_tail (log p_tail - log q_tail), with
    q_tail = the compressed mass outside the same K ids: a lower bound of the exact KL, equal to it
    for a full cache (which takes exactly the `token_divergence` arithmetic). With tail samples,
    ``kl`` is the bound plus the estimated divergence inside the tail and ``kl_bound`` the bound
    (likewise ``reverse_kl`` and ``jsd``, whose bounds are not returned). Otherwise the same keys
    as `token_divergence`.
    """
    import torch

    n, vocab = comp_logits.shape
    if rows.logp.shape[0] != n:
        raise ValueError(f"cache has {rows.logp.shape[0]} positions but the logits have {n}")
    if rows.full and rows.logp.shape[1] != vocab:
        raise ValueError(f"cache vocabulary {rows.logp.shape[1]} != logits vocabulary {vocab}")
    sampled = rows.tail_ids is not None and rows.tail_ids.shape[-1] > 0 and not rows.full
    parts = []
    for sl in _chunks(n, vocab, chunk_elements):
        lq = log_probs(comp_logits[sl])  # (c, V)
        if rows.ids is None:
            lp_b, lq_b = rows.logp[sl].to(torch.float32), lq  # (c, V)
        else:
            ids = rows.ids[sl].to(torch.int64)  # (c, K)
            log_q_tail = lq.scatter(1, ids, -math.inf).logsumexp(dim=-1)  # (c,)
            lp_b = torch.cat([rows.logp[sl].to(torch.float32), rows.log_tail[sl, None]], dim=1)
            lq_b = torch.cat([lq.gather(1, ids), log_q_tail[:, None]], dim=1)  # (c, K + 1)
        part = bucket_divergences(lp_b, lq_b, reverse=reverse, jsd=jsd)
        if sampled:
            tail_ids = rows.tail_ids[sl].to(torch.int64)  # type: ignore[index]
            corr = tail_corrections(rows.log_tail[sl], log_q_tail, rows.tail_logp[sl],  # type: ignore[index]
                                    lq.gather(1, tail_ids), reverse=reverse, jsd=jsd)
            part["kl_bound"] = part["kl"]
            for key, value in corr.items():
                part[key] = part[key] + value
        part.update(_token_terms(lq, rows.top1[sl], targets[sl], rows.logp_target[sl]))
        parts.append(part)
    out = _cat(parts)
    out["dp"] = out["p_comp_tok"] - out["p_base_tok"]
    return out
