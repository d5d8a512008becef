"""The behaviour axis: does the compressed model still say what the baseline says? (No judge.)

Per (question, turn) answered by both models (`answer_diffs`): the two answers are compared by
their generated token ids, or by their text when either side has none (imported runs); an answer
is *identical* when the sequences are equal, and otherwise its *first difference* is the 1-based
position of the first token (character) where they differ -- one past the shorter when one is a
prefix of the other. Turn 2 answers follow each model's own turn 1, as users see them.

Status rules (`behaviour_axis`):
  * no answers of both models: ``unknown``;
  * **noise floor** (the run has a control re-run of the baseline): per question, does this model
    differ from the baseline on any turn, and does the control? ``changed`` when the questions
    where this model differs and the control does not outnumber the reverse beyond chance: a
    one-sided exact sign test, ``P(X >= b | b + c, 1/2) < alpha`` (b, c those two counts; questions
    are the units, so the turns of one question are not counted as independent); else ``unchanged``
    (any difference is within what a re-run of the baseline shows);
  * **exact identity** (no control run): ``unchanged`` when every answer is identical; ``changed``
    when any differs and every compared answer was decoded greedily (so a difference cannot be
    sampling noise); ``unknown`` when answers differ but were sampled, or their decoding is not
    recorded (imported runs): only a control run can tell that noise from a change.
KL, same top-1 and the checked flips are reported beside the status, never decide it: without a
control there is no floor to hold them against. KL and same top-1 are token-weighted means over the
baseline's answers (KL mass / tokens) with question-cluster bootstrap intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from judge.scorecard.data import ItemKey, RunData, item_sort
from judge.scorecard.schema import Behaviour
from judge.stats import CI, FlipCounts, bootstrap_ratio_ci, wilson_ci


@dataclass(frozen=True)
class AnswerDiff:
    identical: bool
    first_diff: int | None  # 1-based; None when identical
    unit: str  # "token" | "character"
    greedy: bool | None  # both answers greedy; None when either's decoding is not recorded


def _first_diff(a: list[int] | str, b: list[int] | str) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i + 1
    return None if len(a) == len(b) else min(len(a), len(b)) + 1


def answer_diffs(data: RunData, role: str, against: str = "baseline") -> dict[ItemKey, AnswerDiff]:
    """(question, turn) -> how ``role``'s answer compares with ``against``'s."""
    base, other = data.answers.get(against, {}), data.answers.get(role, {})
    out: dict[ItemKey, AnswerDiff] = {}
    for qid, b in base.items():
        o = other.get(qid)
        if o is None:
            continue
        greedy = None
        if b.sampling is not None and o.sampling is not None:
            greedy = b.sampling.temperature == 0 and o.sampling.temperature == 0
        for t in range(1, min(len(b.turns), len(o.turns)) + 1):
            ids_b = b.token_ids[t - 1] if b.token_ids and len(b.token_ids) >= t else None
            ids_o = o.token_ids[t - 1] if o.token_ids and len(o.token_ids) >= t else None
            if ids_b is not None and ids_o is not None:
                pos, unit = _first_diff(ids_b, ids_o), "token"
            else:
                pos, unit = _first_diff(b.turns[t - 1], o.turns[t - 1]), "character"
            out[(qid, t)] = AnswerDiff(pos is None, pos, unit, greedy)
    return out


def _kl_cis(data: RunData, role: str, kw: dict) -> tuple[CI | None, CI | None]:
    """Token-weighted mean KL and same top-1 over the role's divergence rows, clustered by question."""
    rows = [r for r in (data.divergence.get(role) or {}).values()
            if r.stats.n_tokens > 0 and not math.isnan(r.stats.kl_mean)]
    if not rows:
        return None, None
    rows.sort(key=lambda r: item_sort((str(r.question_id), r.turn)))
    n = np.array([r.stats.n_tokens for r in rows], dtype=np.float64)  # (items,)
    groups = [str(r.question_id) for r in rows]
    kl = bootstrap_ratio_ci(n * np.array([r.stats.kl_mean for r in rows]), n, groups, **kw)
    top1 = bootstrap_ratio_ci(n * np.array([r.stats.same_top1 for r in rows]), n, groups, **kw)
    return kl, top1


def _noise_floor(diffs: dict[ItemKey, AnswerDiff], ctrl: dict[ItemKey, AnswerDiff]
                 ) -> tuple[int, int, int, float]:
    """(questions, b, c, one-sided sign-test p) over the questions both comparisons cover."""
    qids = sorted({q for q, _ in diffs} & {q for q, _ in ctrl}, key=lambda q: item_sort((q, 0)))
    b = c = 0
    for q in qids:
        d_self = any(not d.identical for (qq, _), d in diffs.items() if qq == q)
        d_ctrl = any(not d.identical for (qq, _), d in ctrl.items() if qq == q)
        b += d_self and not d_ctrl
        c += d_ctrl and not d_self
    p = float(sps.binom.sf(b - 1, b + c, 0.5)) if b + c else 1.0
    return len(qids), b, c, p


def behaviour_axis(data: RunData, role: str, *, alpha: float, seed: int, n_resamples: int,
                   dp_rms: float | None = None, checked_flips: FlipCounts | None = None
                   ) -> Behaviour:
    """The behaviour axis of ``role`` against the baseline (rules in the module docstring)."""
    kw = {"seed": seed, "n_resamples": n_resamples, "alpha": alpha}
    diffs = answer_diffs(data, role)
    kl, top1 = _kl_cis(data, role, kw)
    differing = [d for d in diffs.values() if not d.identical]
    units = {d.unit for d in diffs.values()}
    greedy_all = (None if any(d.greedy is None for d in diffs.values())
                  else all(d.greedy for d in diffs.values()))
    flip_rate = None
    if checked_flips is not None and checked_flips.n:
        flip_rate = wilson_ci(checked_flips.correct_to_incorrect + checked_flips.incorrect_to_correct,
                              checked_flips.n, alpha=alpha)
    common = dict(
        compared_by=("token ids" if units == {"token"} else "text") if diffs else None,
        n_answers=len(diffs), n_identical=len(diffs) - len(differing),
        first_diff_median=float(np.median([d.first_diff for d in differing])) if differing else None,
        first_diff_unit=("token" if units == {"token"} else "character") if differing else None,
        greedy=greedy_all, kl_mean=kl, same_top1=top1, dp_rms=dp_rms,
        checked_flips=checked_flips, flip_rate=flip_rate)
    if not diffs:
        return Behaviour(status="unknown", rule="none", **common,  # type: ignore[arg-type]
                         reason="no question was answered by both models")
    ctrl = answer_diffs(data, "control") if role != "control" and "control" in data.answers else {}
    if ctrl:
        nq, b, c, p = _noise_floor(diffs, ctrl)
        status = "changed" if p < alpha else "unchanged"
        ctrl_diff = sum(not d.identical for d in ctrl.values())
        reason = (f"against the noise floor: on {b} of {nq} questions this model's answers differ from "
                  f"the baseline's where the control re-run's do not, the reverse on {c} (one-sided "
                  f"sign test p = {p:.3g}, {'below' if p < alpha else 'not below'} {alpha:g})")
        return Behaviour(status=status, rule="noise floor", reason=reason,  # type: ignore[arg-type]
                         control_n_answers=len(ctrl), control_n_identical=len(ctrl) - ctrl_diff,
                         n_questions=nq, beyond_floor=b, below_floor=c, sign_test_p=p, **common)
    if not differing:
        status, reason = "unchanged", "against exact identity (no control run): every answer is identical"
    elif greedy_all:
        status, reason = "changed", ("against exact identity (no control run): greedy answers that "
                                     "differ cannot be sampling noise")
    else:
        why = "were sampled" if greedy_all is False else "have no recorded decoding (imported)"
        status, reason = "unknown", (f"answers differ but {why}, and there is no control run to "
                                     "tell sampling noise from a change (add --control)")
    return Behaviour(status=status, rule="exact identity", reason=reason, **common)  # type: ignore[arg-type]
