"""Final-answer extraction and the checks that need no code (judge.check.extract)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from judge.check import check_turn, final_segment, find_json, numbers
from judge.schemas import ChoiceCheck, JsonCheck, MappingCheck, NumberCheck, OrderCheck


def num(value: str | None = None, values: list[str] | None = None, tol: float = 1e-9) -> NumberCheck:
    return NumberCheck(kind="number", value=value, values=values, tolerance=tol)


def status(check, text: str) -> str:
    return check_turn(check, [text], 1).status


@pytest.mark.parametrize("text, segment", [
    ("We get 3, then 4.\nThe answer is 17/64.", "17/64"),
    ("The answer is 6. Moves: fill (7, 0), pour (3, 4).", "6"),
    ("So the answer is 14.4 km/h.", "14.4 km/h"),
    ("so **Answer: 12** apples, not 13", "12 apples, not 13"),
    (r"First 5, then \boxed{\frac{2}{7}} and 9 more words", r"\frac{2}{7}"),
    ("Step 1: 10\nStep 2: 20\n\nSo 42 in total.", "So 42 in total."),
])
def test_final_segment(text: str, segment: str) -> None:
    assert final_segment(text) == segment


def test_numbers_read_fractions_decimals_percentages_and_separators() -> None:
    assert numbers("1,640 and 3.5 and -7 and 2/7 and 16.2% but x - 5") == [
        [Fraction(1640)], [Fraction(7, 2)], [Fraction(-7)], [Fraction(2, 7)],
        [Fraction(162, 1000), Fraction(162, 10)], [Fraction(5)]]
    assert numbers(r"\frac{65}{81}") == [[Fraction(65, 81)]]
    assert numbers("v2 and 2/0") == []  # "v2" is a name; 2/0 is no number


@pytest.mark.parametrize("text, ok", [
    ("The answer is 2/7.", "pass"),
    ("The probability is about 0.2857.", "pass"),            # within the 0.2% tolerance
    ("That is roughly 28.6%.", "pass"),                       # a percentage means p/100
    ("The answer is 3/7.", "fail"),
    ("I cannot say.", "fail"),
    ("First 2/7 by counting; no wait, the answer is 0.5", "fail"),  # the last stated value counts
])
def test_number_check(text: str, ok: str) -> None:
    assert status(num("2/7", tol=0.002), text) == ok


def test_number_set_check_needs_exactly_the_set() -> None:
    check = num(values=["527", "725", "825"])
    assert status(check, "So the codes are 825, 527 and 725.") == "pass"
    out = check_turn(check, ["The answer is 527 and 725."], 1)
    assert out.status == "fail" and out.reason == "missing 825"
    out = check_turn(check, ["The answer is 527, 725, 825 and 925."], 1)
    assert out.status == "fail" and out.reason == "unexpected 925"


def test_choice_takes_the_last_named_option_longest_first() -> None:
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    check = ChoiceCheck(kind="choice", options=days, answer=["Saturday"])
    assert status(check, "Today is Sunday, so yesterday was **Saturday**.") == "pass"
    assert status(check, "The answer is Friday (not Saturday, as it may seem): Friday.") == "fail"
    assert status(check, "Yesterday was Saturday.\nHope this helps!") == "pass"  # no explicit answer
    out = check_turn(check, ["Yesterday was Saturday.\nThe answer is: nobody knows."], 1)
    assert out.status == "fail" and out.reason == "the stated answer names none of the options"
    yes_no = ChoiceCheck(kind="choice", options=["no valid schedule", "valid schedule", "no"],
                         answer=["no valid schedule"])
    out = check_turn(yes_no, ["Every case fails, so there is no valid schedule."], 1)
    assert out.status == "pass" and out.extracted == "no valid schedule"


def test_order_check_with_accents() -> None:
    check = OrderCheck(kind="order", answer=["Dev", "Ben", "Emil", "Ana", "Chloé"])
    assert status(check, "Reasoning about Ana and Ben...\n\nFinal order: Dev, Ben, Emil, Ana, Chloe.") == "pass"
    out = check_turn(check, ["Order: Ben, Dev, Emil, Ana, Chloé"], 1)
    assert out.status == "fail" and out.extracted == "Ben > Dev > Emil > Ana > Chloé"
    assert status(check, "Dev wins.") == "fail"


def test_mapping_check() -> None:
    check = MappingCheck(kind="mapping", answer={"Ada": ["knight"], "Bo": ["knave"], "Cy": ["knave"]})
    assert status(check, "So Ada is a knight, Bo is a knave and Cy is a knave.") == "pass"
    out = check_turn(check, ["Ada is a knave; Bo is a knave; Cy is a knight."], 1)
    assert out.status == "fail" and "Ada: knave" in out.reason


def test_json_check() -> None:
    check = JsonCheck(kind="json", required=["rooms", "rent"], count=2,
                      match=[{"rooms": 2, "rent": 890, "pets": None}], tolerance=0.5)
    good = 'Here:\n```json\n[{"rooms": 2, "rent": "890", "pets": null}, {"rooms": 4, "rent": 1640}]\n```'
    assert status(check, good) == "pass"
    assert status(check, 'Sure: [{"rooms": 2, "rent": 890, "pets": null}] done') == "fail"  # one entry
    assert check_turn(check, ['[{"rooms": 2, "rent": 890, "pets": false}, {"rooms": 1, "rent": 1}]'],
                      1).reason.startswith("no entry matches")
    assert check_turn(check, ['[{"rooms": 2}, {"rooms": 1}]'], 1).reason == "entry 1 lacks rent"
    assert find_json("no json here {not: json}") is None
    assert check_turn(check.model_copy(update={"count": None}), ["```json\n[]\n```"], 1).reason == "no entries"
