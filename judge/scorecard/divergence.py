"""The scorecard's divergence summary: per-(question, turn) KL rows pooled per scope, histogram.

Pooling is token-weighted, so each pooled mean equals the mean over all tokens of the scope:
``kl_mean = sum_i n_i kl_mean_i / sum_i n_i`` (same for same-top-1 and the log-perplexity ratio),
``dp_rms = sqrt(sum_i n_i dp_rms_i^2 / sum_i n_i)``, ``kl_max = max_i kl_max_i``. Quantiles and
the standard error of the mean need every token's KL, so they come from the per-token arrays
(numpy "linear" percentiles, as `judge.stats.kl_summary`) and are None when those are missing.
``kl_se`` treats tokens as independent (as llama.cpp does) and is too small: the tokens of one
answer move together. The intervals ``kl_mean_ci`` and ``same_top1_ci`` resample whole questions
(`judge.stats.bootstrap_ratio_ci` over each item's token sum and token count), so they carry that.

With tail samples the per-token KL is the top-K bound plus a noisy, unbiased estimate of the tail's
share: fine for a mean, but upper quantiles and the maximum of noisy values lean upward. So the
quantiles, the maximum and the histogram are taken over the per-token **lower bound** when there
is one (each then bounds the exact value from below); ``quantiles_of`` says which it was.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numpy.typing import NDArray

from judge.errors import JudgeError
from judge.schemas import MT_BENCH_CATEGORIES, TurnDivergence
from judge.scorecard.data import ItemKey, RunData
from judge.scorecard.schema import DivergenceRow, KLHistogram
from judge.stats import bootstrap_ratio_ci

log = logging.getLogger(__name__)
_LOWEST_EDGE_NATS = 1e-5  # the first histogram bin holds everything below (zeros included)


def _token_kl(data: RunData, role: str, keys: list[ItemKey], *, bound: bool = False
              ) -> NDArray[np.float64] | None:
    """Every token's KL over ``keys`` (its lower bound when ``bound`` and the arrays have one),
    or None unless every item has its arrays."""
    lookup = data.token_lookup(role)
    if lookup is None:
        return None
    parts = []
    for q, t in keys:
        item = lookup(q, t)
        if item is None:
            return None
        parts.append(item.kl_bound if bound and item.kl_bound is not None else item.kl)
    return np.concatenate(parts) if parts else np.zeros(0)


def _has_bound(data: RunData, role: str, keys: list[ItemKey]) -> bool:
    lookup = data.token_lookup(role)
    item = lookup(*keys[0]) if lookup is not None and keys else None
    return item is not None and item.kl_bound is not None


def _pool(scope: str, label: str, rows: list[TurnDivergence], kl: NDArray[np.float64] | None,
          kl_for_quantiles: NDArray[np.float64] | None = None, quantiles_of: str = "kl",
          boot: dict | None = None) -> DivergenceRow:
    """One scope's row. ``kl``: every token's KL (for the SE); ``kl_for_quantiles``: what the
    quantiles are taken over (default ``kl``); ``boot``: bootstrap settings of the intervals."""
    rows = [r for r in rows if r.stats.n_tokens > 0 and not math.isnan(r.stats.kl_mean)]
    n = np.array([r.stats.n_tokens for r in rows], dtype=np.float64)  # (items,)
    total = float(n.sum())
    qkl = kl if kl_for_quantiles is None else kl_for_quantiles

    def wmean(values: list[float]) -> float:
        v = np.asarray(values, dtype=np.float64)
        ok = ~np.isnan(v)
        return float((n[ok] * v[ok]).sum() / n[ok].sum()) if ok.any() else float("nan")

    quantiles: dict[str, float | None] = {"kl_se": None, "kl_median": None, "kl_p90": None,
                                          "kl_p99": None}
    if kl is not None and qkl is not None and len(kl):
        p50, p90, p99 = np.percentile(qkl, [50.0, 90.0, 99.0], method="linear")
        se = float(kl.std(ddof=1) / math.sqrt(len(kl))) if len(kl) > 1 else float("nan")
        quantiles = {"kl_se": se, "kl_median": float(p50), "kl_p90": float(p90),
                     "kl_p99": float(p99)}
    intervals = {}
    if boot is not None and rows:
        groups = [str(r.question_id) for r in rows]
        intervals = {
            "kl_mean_ci": bootstrap_ratio_ci(n * np.array([r.stats.kl_mean for r in rows]), n,
                                             groups, **boot),
            "same_top1_ci": bootstrap_ratio_ci(n * np.array([r.stats.same_top1 for r in rows]), n,
                                               groups, **boot)}
    # kl_max: over the tokens the quantiles use, else the items' maxima (the divergence stage
    # takes those of the bound too when there is one: `judge.stats.kl_summary`)
    kl_max = (float(qkl.max()) if qkl is not None and len(qkl)
              else max((r.stats.kl_max for r in rows), default=float("nan")))
    return DivergenceRow(
        scope=scope, label=label, n_items=len(rows), n_tokens=int(total),  # type: ignore[arg-type]
        kl_mean=wmean([r.stats.kl_mean for r in rows]) if rows else float("nan"),
        kl_max=kl_max, quantiles_of=quantiles_of, **intervals,  # type: ignore[arg-type]
        same_top1=wmean([r.stats.same_top1 for r in rows]) if rows else float("nan"),
        dp_rms=math.sqrt(wmean([r.stats.dp_rms ** 2 for r in rows])) if rows else float("nan"),
        log_ppl_ratio=wmean([r.stats.log_ppl_ratio for r in rows]) if rows else float("nan"),
        **quantiles,
    )


def divergence_rows(data: RunData, role: str, boot: dict | None = None) -> list[DivergenceRow]:
    """Overall, per turn and per category; empty when the role has no divergence rows.

    ``boot``: keyword arguments of `judge.stats.bootstrap_ratio_ci` for the question-level
    intervals of mean KL and same-top-1 (None: no intervals)."""
    div = data.divergence.get(role)
    if not div:
        return []
    keys = sorted(div)
    scopes: list[tuple[str, str, list[ItemKey]]] = [("overall", "overall", keys)]
    for turn in sorted({t for _, t in keys}):
        scopes.append(("turn", f"turn {turn}", [k for k in keys if k[1] == turn]))
    cats = {k: div[k].category for k in keys}
    ordered = [c for c in MT_BENCH_CATEGORIES if c in set(cats.values())]
    ordered += sorted(set(cats.values()) - set(ordered))
    for cat in ordered:
        scopes.append(("category", cat, [k for k in keys if cats[k] == cat]))
    bound = _has_bound(data, role, keys)
    of = ("kl lower bound" if bound or any(r.stats.quantiles_of == "kl lower bound"
                                           for r in div.values()) else "kl")
    return [_pool(scope, label, [div[k] for k in ks], _token_kl(data, role, ks),
                  _token_kl(data, role, ks, bound=True) if bound else None,
                  of, boot)
            for scope, label, ks in scopes]


def kl_method(data: RunData, role: str) -> str | None:
    """How the role's KL was computed, in words, from its divergence summary; None without one."""
    try:
        from judge.diverge import load_summary

        s = load_summary(data.run, role)
    except (JudgeError, OSError, ValueError, ImportError) as err:
        log.info("divergence summary of %s not read: %s", role, err)
        return None
    from judge.diverge import describe_kl

    return describe_kl(s)


def kl_histogram(data: RunData, role: str) -> KLHistogram | None:
    """Counts in half-decade bins from 1e-5 nats up; per token when the arrays exist (of the
    lower bound when there is one, see the module docstring), else per item."""
    div = data.divergence.get(role)
    if not div:
        return None
    bound = _has_bound(data, role, sorted(div))
    values = _token_kl(data, role, sorted(div), bound=bound)
    unit = "token"
    if values is None:
        unit = "item"
        values = np.array([r.stats.kl_mean for r in div.values() if r.stats.n_tokens > 0])
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    top = max(float(values.max()), 1e-3)
    top_exp = math.ceil(2 * math.log10(top)) / 2  # half-decades
    n_bins = int(round((top_exp - math.log10(_LOWEST_EDGE_NATS)) * 2))
    edges = [0.0] + [10 ** (math.log10(_LOWEST_EDGE_NATS) + i / 2) for i in range(n_bins + 1)]
    edges[-1] = max(edges[-1], float(values.max()))  # never lose the maximum to rounding
    # np.histogram puts a value equal to the last edge in the last bin; clip negatives (rounding)
    counts, _ = np.histogram(np.clip(values, 0.0, None), bins=np.array(edges))
    return KLHistogram(unit=unit, edges=edges, counts=[int(c) for c in counts],  # type: ignore[arg-type]
                       of="kl lower bound" if bound and unit == "token" else "kl")
