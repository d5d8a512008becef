"""Statistics and records of the divergence stage's results, and their terminal table.

`summarize` applies llama.cpp's statistics set (`judge.stats.kl_summary`) to any subset of the
per-token arrays; `DivergenceSummary` (``RUN/divergence/<role>.summary.json``) holds them overall,
per turn, per category and per question, with the baseline cache's size against llama.cpp's.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from judge.diverge.cache import TokenArrays
from judge.schemas import KLSummary, Record, TurnDivergence

KLKind = Literal["exact", "top-k lower bound", "top-k + tail estimate"]


class CacheInfo(Record):
    path: str
    top_k: int | None
    tail_samples: int = 0  # tail draws per position
    vocab_size: int
    n_sequences: int
    n_tokens: int  # scored positions
    bytes: int  # the whole cache folder (sequences included)
    bytes_per_token: float
    payload_bytes_per_token: int  # the per-position rows alone
    llama_cpp_bytes_per_token: int  # 2 bytes x vocabulary
    times_smaller_than_llama_cpp: float
    # mean baseline probability outside the top K (0 for a full cache). The bound misses exactly
    # p_tail x KL(baseline ‖ compressed within the tail), which the tail samples estimate
    mean_tail_mass: float
    sequences_sha256: str
    format_version: int | None = None  # of the cache (judge.diverge.cache.CACHE_FORMAT_VERSION)


class DivergenceSummary(Record):
    """``RUN/divergence/<role>.summary.json``."""

    role: str
    baseline: str
    compressed: str
    top_k: int | None
    kl_kind: KLKind
    reverse_jsd_kind: Literal["exact", "bucketed lower bound", "top-k + tail estimate"] | None
    dtype: str
    cache: CacheInfo
    overall: KLSummary
    per_turn: dict[str, KLSummary]
    per_category: dict[str, KLSummary]
    per_question: dict[str, KLSummary]
    seconds: float


# --------------------------------------------------------------------------- statistics


def summarize(arrays: TokenArrays, mask: np.ndarray | None = None) -> KLSummary:
    """llama.cpp's statistics (`judge.stats.kl_summary`) over the positions selected by ``mask``."""
    from judge.stats import kl_summary

    m = np.ones(arrays.n_tokens, dtype=bool) if mask is None else mask

    def f64(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[m].astype(np.float64)

    nll_base, nll_comp = f64(arrays.nll_base), f64(arrays.nll_comp)
    return kl_summary(f64(arrays.kl), arrays.same_top1[m], np.exp(-nll_base), np.exp(-nll_comp),
                      nll_base, nll_comp, reverse_kl=f64(arrays.reverse_kl), jsd=f64(arrays.jsd),
                      kl_bound=f64(arrays.kl_bound))


def grouped_summaries(arrays: TokenArrays, label: list[str]) -> dict[str, KLSummary]:
    groups: dict[str, list[int]] = {}
    for i, g in enumerate(label):
        groups.setdefault(g, []).append(i)
    return {g: summarize(arrays, arrays.mask(idx)) for g, idx in groups.items()}


def turn_rows(arrays: TokenArrays, role: str, ids: dict[str, int | str]) -> list[TurnDivergence]:
    """One `TurnDivergence` per (question, turn) segment."""
    return [TurnDivergence(question_id=ids.get(k, k), category=c, turn=int(t), role=role,
                           stats=summarize(arrays, arrays.mask([i])))
            for i, (k, t, c) in enumerate(zip(arrays.keys, arrays.turns.tolist(), arrays.categories))]




# --------------------------------------------------------------------------- terminal table


def describe_kl(summary: DivergenceSummary) -> str:
    """How the summary's KL was computed, in one sentence (the table caption and the scorecard)."""
    if summary.kl_kind == "exact":
        return "exact, over the whole vocabulary"
    if summary.kl_kind == "top-k lower bound":
        return (f"top-{summary.top_k} lower bound (the tail's own divergence is missed; --top-k "
                "full is exact)")
    from judge.diverge.cache import SHARED_OFFSET_VERSIONS

    bound = summary.overall.kl_bound_mean
    text = (f"top-{summary.top_k} log-probs + {summary.cache.tail_samples} tail samples per token: "
            f"the lower bound{'' if bound is None else f' ({bound:.4f})'} plus an unbiased "
            "estimate of the tail's share (--top-k full is exact)")
    if summary.overall.quantiles_of == "kl lower bound":
        text += "; quantiles, maximum and histogram are of the lower bound"
    if summary.cache.format_version in SHARED_OFFSET_VERSIONS:
        text += ("; this cache (format 2) drew every answer's tail samples with the same random "
                 "offsets, so their noise is correlated across answers: delete it to redraw")
    return text


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None or x != x else format(x, fmt)  # x != x: NaN


def _pm(mean: float, se: float, fmt: str = ".4g", se_fmt: str = ".2g") -> str:
    return f"{_num(mean, fmt)} ± {_num(se, se_fmt)}"


def _stat_lines(s: KLSummary) -> list[tuple[str, str]]:
    """llama.cpp's statistics of one scope, as (name, value) lines."""
    q = " (bound)" if s.quantiles_of == "kl lower bound" else ""
    lines = [("tokens", str(s.n_tokens)), ("mean KL", _pm(s.kl_mean, s.kl_se)),
             (f"median KL{q}", _num(s.kl_median)), (f"p90 KL{q}", _num(s.kl_p90)),
             (f"p99 KL{q}", _num(s.kl_p99)), (f"p99.9 KL{q}", _num(s.kl_p999)),
             (f"max KL{q}", _num(s.kl_max)),
             ("same top-1 %", _pm(100 * s.same_top1, 100 * s.same_top1_se, ".2f", ".2f")),
             ("mean Δp %", _num(100 * s.dp_mean, ".3f")), ("RMS Δp %", _num(100 * s.dp_rms, ".3f")),
             ("ln PPL ratio", _pm(s.log_ppl_ratio, s.log_ppl_ratio_se))]
    if s.kl_bound_mean is not None:
        lines.append(("mean KL bound", _num(s.kl_bound_mean)))
    if s.reverse_kl_mean is not None:
        lines.append(("mean reverse KL", _num(s.reverse_kl_mean)))
    if s.jsd_mean is not None:
        lines.append(("mean JSD", _num(s.jsd_mean)))
    return lines


def summary_table(summary: DivergenceSummary) -> Any:
    """Rich renderables: llama.cpp's statistics overall and per turn (one column each), then the
    main ones per category (one row each). Fits an 80-column terminal for two turns."""
    from rich import box
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    kind = {"exact": "exact", "top-k lower bound": f"top-{summary.top_k} lower bound",
            "top-k + tail estimate": f"top-{summary.top_k} + {summary.cache.tail_samples} tail "
            "samples"}[summary.kl_kind]
    title = escape(f"{summary.role}: KL({summary.baseline} ‖ {summary.compressed}) in nats, {kind}")
    main = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption_justify="left")
    scopes = [("all", summary.overall)] + [(f"turn {t}", s) for t, s in summary.per_turn.items()]
    main.add_column("statistic")
    for name, _ in scopes:
        main.add_column(name, justify="right")
    columns = [_stat_lines(s) for _, s in scopes]
    for i, (name, _) in enumerate(columns[0]):
        main.add_row(name, *(col[i][1] for col in columns))
    c = summary.cache
    notes = [f"baseline cache: {c.bytes_per_token:,.0f} B/token ({c.payload_bytes_per_token} B rows) "
             f"vs llama.cpp's {c.llama_cpp_bytes_per_token:,}: {c.times_smaller_than_llama_cpp:,.0f}x "
             "smaller"]
    if summary.top_k is not None:
        notes.append(f"mean baseline mass outside the top {summary.top_k}: "
                     f"{100 * c.mean_tail_mass:.2f}%")
    notes.append(f"KL: {describe_kl(summary)}")
    notes.append("± SE as llama.cpp's, tokens taken as independent (too small: an answer's tokens "
                 "move together; the scorecard's intervals resample whole questions)")
    if summary.reverse_jsd_kind == "bucketed lower bound":
        notes.append("reverse KL and JSD are bucketed lower bounds")
    main.caption = escape("; ".join(notes))
    cats = Table(box=box.SIMPLE_HEAD)
    for name in ("category", "tokens", "mean KL ± SE", "p99 KL", "same top-1 %", "ln PPL ratio"):
        cats.add_column(name, justify="left" if name == "category" else "right")
    for cat, s in sorted(summary.per_category.items()):
        cats.add_row(escape(cat), str(s.n_tokens), _pm(s.kl_mean, s.kl_se), _num(s.kl_p99),
                     _pm(100 * s.same_top1, 100 * s.same_top1_se, ".1f", ".1f"),
                     _pm(s.log_ppl_ratio, s.log_ppl_ratio_se))
    return Group(main, cats)
