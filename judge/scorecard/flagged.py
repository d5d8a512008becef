"""Flagged responses: the (question, turn) items where a compressed answer regressed or diverged most.

An item is flagged when any of these holds (reasons):
  * ``baseline_win``: the swapped pairwise games agree the baseline answer is better
    (``strong_loss`` too when at least one order says "much better");
  * ``grade_drop``: baseline grade - compressed grade >= 2 (both graded ok);
  * ``checked_flip``: the checker (``RUN/checks/``, code, no judge) finds the baseline's answer
    correct and the compressed model's incorrect; where both answers were checked this replaces
  * ``correctness_flip``: correct under the baseline, incorrect under the compressed model, by the
    judge's reference verdicts;
  * ``diverged``: among the role's answers that differ from the baseline's, one of the
    ``diverged_count(n)`` = min(10, max(3, ceil(n / 10))) that diverged most (n: answers compared):
    largest KL mass (the item's summed per-token KL on the baseline's answer), then earliest first
    differing token. So the list shows where the models differ even when the judge sees nothing;
    identical answers are never flagged as diverged.
``severity = 3 * flip (checked or judged) + 2 * baseline_win + 1 * strong_loss + max(grade drop, 0)``. Regressions
(items with any other reason) come first, ordered by severity, then by the item's mean KL (both
descending; items without KL last), then by question and turn; items flagged only as diverged
follow, ordered by KL mass (descending), then first difference. Ranks 1.. run across every role.

The baseline answer's tokens are coloured by KL: token ids from the divergence arrays are decoded
with the baseline's tokenizer, lazily and only for flagged items; without a tokenizer or arrays
(imported runs) ``tokens`` stays None.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from collections import Counter
from typing import Any

from judge.schemas import SingleJudgment
from judge.scorecard.behaviour import AnswerDiff, answer_diffs
from judge.scorecard.data import ItemKey, ItemTokens, RunData, correctness
from judge.scorecard.schema import FlaggedItem, FlagReason, GameView, TokenSpan

log = logging.getLogger(__name__)

GRADE_DROP_FLAG = 2.0
DIVERGED_MIN, DIVERGED_MAX, DIVERGED_SHARE = 3, 10, 0.1
_DECODE_WINDOW = 8  # tokens of left context when decoding one token (a UTF-8 char is <= 4 bytes)


def _reasons(data: RunData, key: ItemKey, role: str) -> tuple[list[FlagReason], float, float | None]:
    q, t = key
    reasons: list[FlagReason] = []
    b, c = data.single.get((q, t, "baseline")), data.single.get((q, t, role))
    pair = data.pairwise.get((q, t, role))
    drop = None
    if b is not None and c is not None and b.status == "ok" and c.status == "ok":
        drop = float(b.score - c.score)
    severity = 0.0
    cb, cc = data.checked("baseline", key), data.checked(role, key)
    if cb is not None and cc is not None:
        if cb and not cc:
            reasons.append("checked_flip")
            severity += 3
    elif correctness(b) is True and correctness(c) is False:
        reasons.append("correctness_flip")
        severity += 3
    if pair is not None and pair.status == "ok" and pair.winner == "baseline":
        reasons.append("baseline_win")
        severity += 2
        if any(g.winner == "baseline" and g.strength == 2 for g in pair.games or []):
            reasons.append("strong_loss")
            severity += 1
    if drop is not None and drop >= GRADE_DROP_FLAG:
        reasons.append("grade_drop")
    severity += max(drop or 0.0, 0.0)
    return reasons, severity, drop


def _explanation(row: SingleJudgment | None) -> str | None:
    """The judge's explanation; the raw text for imported FastChat rows; the error when failed."""
    if row is None:
        return None
    if row.status != "ok":
        return f"{row.status}: {row.error or row.judgment or 'no detail'}"
    return row.verdict.explanation if row.verdict is not None else (row.judgment or None)


def _turn_text(turns: list[str] | None, turn: int) -> str | None:
    return turns[turn - 1] if turns is not None and 0 < turn <= len(turns) else None


def diverged_count(n_answers: int) -> int:
    """How many of a role's differing answers are flagged as diverged."""
    return min(DIVERGED_MAX, max(DIVERGED_MIN, math.ceil(DIVERGED_SHARE * n_answers)))


def _kl_mass(data: RunData, role: str, key: ItemKey) -> float | None:
    div = data.divergence.get(role, {}).get(key)
    if div is None or not div.stats.n_tokens or math.isnan(div.stats.kl_mean):
        return None
    return div.stats.kl_mean * div.stats.n_tokens


def most_diverged(data: RunData, role: str, diffs: dict[ItemKey, AnswerDiff]) -> list[ItemKey]:
    """The items flagged ``diverged`` for ``role``: differing answers, most diverged first."""
    differing = [k for k, d in diffs.items() if not d.identical]

    def order(k: ItemKey) -> tuple:
        mass = _kl_mass(data, role, k)
        first = diffs[k].first_diff
        return (-(mass if mass is not None else -math.inf), first if first is not None else math.inf,
                _qkey(k[0]), k[1])

    return sorted(differing, key=order)[:diverged_count(len(diffs))]


def _qkey(qid: str) -> tuple:
    return (0, int(qid), "") if qid.lstrip("-").isdigit() else (1, 0, qid)


def _item(data: RunData, key: ItemKey, role: str, reasons: list[FlagReason], severity: float,
          drop: float | None, diff: AnswerDiff | None = None) -> FlaggedItem:
    q, t = key
    b, c = data.single.get((q, t, "baseline")), data.single.get((q, t, role))
    pair = data.pairwise.get((q, t, role))
    question = data.questions.get(q)
    base_ans, comp_ans = data.answers.get("baseline", {}).get(q), data.answers.get(role, {}).get(q)
    div = data.divergence.get(role, {}).get(key)
    games = []
    for g in (pair.games or []) if pair is not None else []:
        games.append(GameView(a_role=g.a_role, b_role=g.b_role,
                              label=g.verdict.verdict if g.verdict else None, winner=g.winner,
                              explanation=g.verdict.explanation if g.verdict else (g.error or None)))

    def ok(row):  # noqa: ANN001, ANN202
        return row is not None and row.status == "ok"

    return FlaggedItem(
        rank=0, role=role, question_id=q, turn=t, category=data.category(q), reasons=reasons,
        severity=severity, question=_turn_text(question.turns if question else None, t),
        baseline_answer=_turn_text(base_ans.turns if base_ans else None, t),
        compressed_answer=_turn_text(comp_ans.turns if comp_ans else None, t),
        baseline_status=b.status if b is not None else None,
        compressed_status=c.status if c is not None else None,
        baseline_score=float(b.score) if ok(b) else None,
        compressed_score=float(c.score) if ok(c) else None, grade_drop=drop,
        baseline_correct=correctness(b), compressed_correct=correctness(c),
        baseline_explanation=_explanation(b), compressed_explanation=_explanation(c),
        baseline_issues=list(b.verdict.issues) if ok(b) and b.verdict else [],
        compressed_issues=list(c.verdict.issues) if ok(c) and c.verdict else [],
        pair_status=pair.status if pair is not None else None,
        pair_winner=pair.winner if pair is not None and pair.status == "ok" else None,
        pair_consistent=pair.consistent if pair is not None and pair.status == "ok" else None,
        games=games,
        kl_mean=div.stats.kl_mean if div and div.stats.n_tokens else None,
        kl_max=div.stats.kl_max if div and div.stats.n_tokens else None,
        same_top1=div.stats.same_top1 if div and div.stats.n_tokens else None,
        kl_mass=_kl_mass(data, role, key),
        answers_identical=diff.identical if diff is not None else None,
        first_diff=diff.first_diff if diff is not None else None,
        first_diff_unit=diff.unit if diff is not None and diff.first_diff is not None else None,  # type: ignore[arg-type]
        checked_flip=_checked_flip(data, key, role),
    )


def _checked_flip(data: RunData, key: ItemKey, role: str) -> str | None:
    cb, cc = data.checked("baseline", key), data.checked(role, key)
    if cb is None or cc is None or cb == cc:
        return None
    return "correct_to_incorrect" if cb else "incorrect_to_correct"


def _sort_key(item: FlaggedItem) -> tuple:
    qkey = _qkey(item.question_id)
    if item.reasons == ["diverged"]:  # after every regression: most KL mass, earliest difference
        mass = item.kl_mass if item.kl_mass is not None else -math.inf
        first = item.first_diff if item.first_diff is not None else math.inf
        return (1, -mass, first, qkey, item.turn, item.role)
    kl = item.kl_mean if item.kl_mean is not None and not math.isnan(item.kl_mean) else -math.inf
    return (0, -item.severity, -kl, qkey, item.turn, item.role)


def build_flagged(data: RunData, *, tokens: bool = True, max_token_items: int = 200
                  ) -> list[FlaggedItem]:
    """Every regressed item of every compressed role, ranked (see the module docstring)."""
    items = []
    for role in data.compressed_roles:
        diffs = answer_diffs(data, role)
        diverged = set(most_diverged(data, role, diffs))
        keys = ({(q, t) for q, t, r in data.single if r in ("baseline", role)}
                | {(q, t) for q, t, r in data.pairwise if r == role} | diverged
                | set(data.checks.get(role, {})))
        for key in keys:
            reasons, severity, drop = _reasons(data, key, role)
            if key in diverged:
                reasons.append("diverged")
            if reasons:
                items.append(_item(data, key, role, reasons, severity, drop, diffs.get(key)))
    items.sort(key=_sort_key)
    items = [it.model_copy(update={"rank": i}) for i, it in enumerate(items, start=1)]
    if tokens and items:
        items = _with_tokens(data, items, max_token_items)
    return items


def flagged_counts(items: list[FlaggedItem]) -> dict[str, int]:
    return dict(Counter(it.role for it in items))


# --------------------------------------------------------------------------- token colouring


def load_baseline_tokenizer(data: RunData) -> Any | None:
    """The baseline's tokenizer from its local folder, or None (imported runs, moved folders)."""
    info = data.manifest.models.get("baseline") if data.manifest else None
    if info is None or not info.path or not Path(info.path).is_dir():
        return None  # e.g. an imported FastChat run, or the model folder moved away
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(info.path, local_files_only=True)
    except (OSError, ValueError, ImportError) as err:
        log.warning("baseline tokenizer not loaded from %s (no token colouring): %s", info.path, err)
        return None


def decode_spans(tokenizer: Any, arrays: ItemTokens) -> list[TokenSpan]:
    """One span per token with its KL; a token that ends inside a UTF-8 character is merged into
    the next (the span keeps the largest KL); special tokens, which decode to nothing, are dropped.
    """
    ids = [int(i) for i in arrays.token_ids]
    spans: list[TokenSpan] = []
    pending_kl, pending_top1 = -math.inf, True
    for i in range(len(ids)):
        start = max(0, i - _DECODE_WINDOW)
        kw = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
        before = tokenizer.decode(ids[start:i], **kw) if i > start else ""
        full = tokenizer.decode(ids[start:i + 1], **kw)
        kl = float(arrays.kl[i]) if i < len(arrays.kl) else math.nan
        top1 = bool(arrays.same_top1[i]) if arrays.same_top1 is not None and i < len(arrays.same_top1) else True
        pending_kl = max(pending_kl, kl) if not math.isnan(kl) else pending_kl
        pending_top1 = pending_top1 and top1
        if full.endswith("\ufffd"):
            continue  # an incomplete character: wait for the next token
        piece = full[len(before):] if full.startswith(before) else full[len(before.rstrip("\ufffd")):]
        if piece:
            spans.append(TokenSpan(text=piece, kl=pending_kl if pending_kl > -math.inf else math.nan,
                                   top1=pending_top1))
        pending_kl, pending_top1 = -math.inf, True
    return spans


def _with_tokens(data: RunData, items: list[FlaggedItem], max_items: int) -> list[FlaggedItem]:
    tokenizer = None
    out = []
    for item in items:
        lookup = data.token_lookup(item.role) if item.rank <= max_items or not item.rank else None
        arrays = lookup(item.question_id, item.turn) if lookup is not None else None
        if arrays is not None:
            if tokenizer is None:
                tokenizer = load_baseline_tokenizer(data) or False
            if tokenizer:
                item = item.model_copy(update={"tokens": decode_spans(tokenizer, arrays)})
        out.append(item)
    return out


def question_views(data: RunData, question_id: str, roles: list[str], *, tokens: bool = True
                   ) -> list[FlaggedItem]:
    """Every turn of one question for the given compressed roles, flagged or not (rank 0 if not)."""
    items = []
    for role in roles:
        diffs = answer_diffs(data, role)
        diverged = set(most_diverged(data, role, diffs))
        turns = sorted({t for q, t, r in data.single if q == question_id and r in ("baseline", role)}
                       | {t for q, t, r in data.pairwise if q == question_id and r == role}
                       | {t for q, t in diffs if q == question_id})
        for turn in turns:
            key = (question_id, turn)
            reasons, severity, drop = _reasons(data, key, role)
            if key in diverged:
                reasons.append("diverged")
            items.append(_item(data, key, role, reasons, severity, drop, diffs.get(key)))
    return _with_tokens(data, items, len(items)) if tokens else items
