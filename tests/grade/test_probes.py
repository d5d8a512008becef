"""The judge's self-test, part 1: planted degradations of the baseline's answers (pure functions)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from judge.config import JudgeConfig
from judge.grade.probes import (DEFAULT_PROBES, EXPECTED_ISSUES, KIND_ORDER, LOOP_REPEATS, REFUSAL,
                                make_probes, repetition, sentences, shuffled, truncated, wrong_number)
from judge.schemas import ISSUE_KINDS, PROBE_KINDS, Answer, AnswerChoice, Question

LONG = ("Rain forms when water vapour condenses around dust. The droplets merge until they are heavy. "
        "Then they fall as rain over the land. Most of it returns to the sea in rivers.")


def test_truncated_keeps_40_percent_on_a_word_boundary() -> None:
    cut = truncated(LONG)
    assert LONG.startswith(cut) and LONG[len(cut)] == " "
    assert int(0.4 * len(LONG)) - 15 < len(cut) <= int(0.4 * len(LONG))
    assert truncated("Too short to cut.") is None  # fewer than 12 words


def test_shuffled_is_another_order_of_the_same_sentences() -> None:
    out = shuffled(LONG, random.Random(0))
    assert out is not None and out != LONG
    assert sorted(sentences(out)) == sorted(sentences(LONG))
    assert sentences(out) != sentences(LONG)
    assert shuffled("One. Two.", random.Random(0)) is None  # fewer than 3 sentences
    assert shuffled("Same. Same. Same.", random.Random(0)) is None  # no other order exists


def test_repetition_appends_a_loop_of_the_last_sentence() -> None:
    out = repetition(LONG)
    assert out.startswith(LONG.rstrip())
    assert out[len(LONG):].count("Most of it returns to the sea in rivers.") == LOOP_REPEATS


def test_wrong_number_only_where_the_answer_matches_the_reference() -> None:
    assert wrong_number("So 12 x 3 = 36.", "36") == "So 12 x 3 = 37."
    assert wrong_number("The total is 1,250.5 dollars", "The answer is 1250.5") == \
        "The total is 1251.5 dollars"
    assert wrong_number("So it is 35.", "36") is None  # the intact answer is already wrong
    assert wrong_number("No number here.", "36") is None
    assert wrong_number("It is 36.", None) is None


def _questions(n: int) -> tuple[list[Question], dict[str, Answer]]:
    cats = ["writing", "math", "stem", "roleplay"]
    qs, answers = [], {}
    for i in range(1, n + 1):
        cat = cats[i % len(cats)]
        ref = [f"The result is {i * 6}.", f"Then {i * 6 + 1}."] if cat == "math" else None
        qs.append(Question(question_id=i, category=cat, turns=[f"Q{i}?", f"Q{i} again?"],
                           reference=ref))
        t1 = f"Answer {i} starts here with words. {LONG} So the result is {i * 6}."
        t2 = f"Second answer {i}, long enough to work with here. {LONG} Then {i * 6 + 1}."
        answers[str(i)] = Answer(question_id=i, answer_id=f"a{i}", model_id="m",
                                 choices=[AnswerChoice(turns=[t1, t2])], tstamp=0.0)
    return qs, answers


def test_make_probes_spreads_the_budget_over_every_kind() -> None:
    qs, answers = _questions(8)
    probes = make_probes(qs, answers, 24, seed=0)
    assert len(probes) == 24 and len({p.probe_id for p in probes}) == 24
    kinds = Counter(p.kind for p in probes)
    assert set(kinds) == set(PROBE_KINDS) and len(kinds) >= 5
    assert max(kinds.values()) - min(kinds.values()) <= 1  # round robin
    for p in probes:
        intact = answers[str(p.question_id)].turns[p.turn - 1]
        assert p.text != intact and p.text.strip()
        assert p.expected_issues == list(EXPECTED_ISSUES[p.kind])
        assert set(p.expected_issues) <= set(ISSUE_KINDS)
        if p.kind == "wrong_number":
            assert qs[int(p.question_id) - 1].category == "math"
        if p.kind == "refusal":
            assert p.text == REFUSAL
        if p.kind == "substituted":  # the same turn of another question, from another category
            other = [a for q, a in answers.items() if a.turns[p.turn - 1] == p.text]
            assert other and other[0].question_id != p.question_id


def test_make_probes_is_deterministic_and_seeded() -> None:
    qs, answers = _questions(6)
    a = make_probes(qs, answers, 12, seed=3)
    assert a == make_probes(qs, answers, 12, seed=3)
    assert [p.probe_id for p in a] != [p.probe_id for p in make_probes(qs, answers, 12, seed=4)]
    # the budget is a cap: only what qualifies is made, and none at all for 0
    assert make_probes(qs, answers, 0) == []
    few = make_probes(qs[:1], {"1": answers["1"]}, 100)
    assert len(few) == len({p.probe_id for p in few}) <= 2 * len(KIND_ORDER)
    # answers too short for anything but a loop, a refusal or (with another question) a swap
    short = {"1": answers["1"].model_copy(update={"choices": [AnswerChoice(turns=["Yes.", "No."])]})}
    kinds = {p.kind for p in make_probes(qs[:1], short, 10)}
    assert kinds == {"repetition", "refusal"}


def test_default_budget_is_the_configs() -> None:
    assert JudgeConfig().probes == DEFAULT_PROBES == 24


@pytest.mark.parametrize("kind", list(KIND_ORDER))
def test_every_kind_has_an_expected_issue(kind: str) -> None:
    assert EXPECTED_ISSUES[kind]
