"""Judge–human agreement on labelled flagged items.

A reviewer labels a flagged item ``real_regression`` (the compressed answer is worse, as flagged),
``judge_wrong`` (the judge's complaint is wrong) or ``acceptable`` (the answer differs, and that is
fine). The judge *claims a regression* on an item flagged for a judge reason (a baseline win, a
strong loss, a grade drop; correctness flips count too, as the judge's or a checker's verdict);
an item flagged only as ``diverged`` carries no such claim. Agreement per labelled item:

  human label        judge claims a regression   judge makes no claim
  real_regression    agree                       disagree (the judge missed it)
  judge_wrong        disagree                    agree
  acceptable         disagree                    agree

``agreement`` = agreeing items / labelled items. Per item the newest label wins (across
reviewers); items no longer in the flagged list are left out.
"""

from __future__ import annotations

from typing import Literal

from judge.schemas import Record
from judge.scorecard.schema import FlaggedItem

HumanLabel = Literal["real_regression", "judge_wrong", "acceptable"]
JUDGE_REASONS = {"baseline_win", "strong_loss", "grade_drop", "correctness_flip"}


class HumanAgreement(Record):
    n_labelled: int
    n_agree: int
    agreement: float | None  # n_agree / n_labelled; None without labels
    counts: dict[str, int]  # human label -> items
    judge_claims: int  # labelled items the judge flagged as a regression
    confirmed: int  # of those, labelled real_regression


def item_key(role: str, question_id: str, turn: int) -> str:
    return f"{role}/{question_id}/{turn}"


def human_agreement(items: list[FlaggedItem], labels: list[tuple[str, str, float]]) -> HumanAgreement:
    """``labels``: (item key, label, time); the newest label per item counts."""
    latest: dict[str, tuple[float, str]] = {}
    for key, label, t in labels:
        if key not in latest or t >= latest[key][0]:
            latest[key] = (t, label)
    by_key = {item_key(i.role, i.question_id, i.turn): i for i in items}
    counts = {"real_regression": 0, "judge_wrong": 0, "acceptable": 0}
    n = agree = claims = confirmed = 0
    for key, (_, label) in latest.items():
        item = by_key.get(key)
        if item is None or label not in counts:
            continue
        n += 1
        counts[label] += 1
        claim = bool(JUDGE_REASONS & set(item.reasons))
        claims += claim
        confirmed += claim and label == "real_regression"
        agree += (label == "real_regression") == claim
    return HumanAgreement(n_labelled=n, n_agree=agree, agreement=agree / n if n else None,
                          counts=counts, judge_claims=claims, confirmed=confirmed)
