"""Coding references 1041-1045 (strings and arrays): each reference's code is run against tests here.

The tests compare the reference code with a small oracle written independently of it (a different
algorithm or a brute force), on hand-picked edge cases and on seeded random inputs.
"""

from __future__ import annotations

import bisect
import random
import re
from itertools import product

from refchecks import check, defined, expect, raises, run_code


# --------------------------------------------------------------------------- 1041 ISBN


def _isbn10_oracle(s: str) -> bool:
    core = s.replace("-", "").replace(" ", "")
    if not re.fullmatch(r"[0-9]{9}[0-9X]", core):
        return False
    values = [10 if c == "X" else int(c) for c in core]
    return sum(w * v for w, v in zip(range(10, 0, -1), values)) % 11 == 0


def _isbn10_with_check(rng: random.Random) -> str:
    body = [rng.randrange(10) for _ in range(9)]
    check_value = -sum(w * v for w, v in zip(range(10, 1, -1), body)) % 11
    return "".join(map(str, body)) + ("X" if check_value == 10 else str(check_value))


ISBN_CASES = {"0-306-40615-2": True, "0306406152": True, "080442957X": True, "0 8044 2957 X": True,
              "0306406153": False, "X306406152": False, "030640615": False, "03064061522": False,
              "0306a06152": False, "": False, "080442957x": False, "0-306-40615-\u00b2": False,
              "1-56619-909-3": True, "156619909X": False}


@check(1041, 1)
def isbn10(ref: str) -> str:
    valid = defined(run_code(ref, "isbn_t1"), "is_valid_isbn10")
    rng = random.Random(1041)
    cases = dict(ISBN_CASES)
    for _ in range(3000):
        cases["".join(rng.choice("0123456789X- ") for _ in range(rng.randint(8, 13)))] = None
        cases[_isbn10_with_check(rng)] = True
    for s, known in cases.items():
        want = _isbn10_oracle(s)
        if known is not None:
            expect(want == known, f"oracle disagrees with the hand-checked case {s!r}")
        expect(valid(s) is want, f"is_valid_isbn10({s!r}) should be {want}")
    return f"{len(cases)} inputs"


@check(1041, 2)
def isbn13(ref: str) -> str:
    ns = run_code(ref, "isbn_t2")
    convert = defined(ns, "isbn10_to_isbn13")
    expect(convert("0-306-40615-2") == "9780306406157", "known conversion of 0-306-40615-2 fails")
    rng = random.Random(1042)
    n = 0
    for _ in range(2000):
        s = _isbn10_with_check(rng)
        out = convert(s)
        digits = "978" + s[:9]
        expect(isinstance(out, str) and len(out) == 13 and out[:12] == digits, f"{s} -> {out!r}")
        # an ISBN-13 is valid when the 1,3,1,3,... weighted sum is a multiple of 10
        expect(sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(out)) % 10 == 0, f"{out} check digit")
        n += 1
    for bad in ("0306406153", "", "12345", "X306406152"):
        expect(raises(convert, bad), f"isbn10_to_isbn13({bad!r}) must raise ValueError")
    expect(defined(ns, "is_valid_isbn10")("080442957X") is True, "turn-2 validator broken")
    return f"{n} conversions + 4 invalid inputs"


# --------------------------------------------------------------------------- 1042 intervals


def _merge_oracle(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of closed intervals as runs of covered points on a doubled grid.

    Doubling keeps touching intervals together ((1, 3), (3, 5) -> 2..6, 6..10) and separates
    (1, 2), (3, 4) (-> 2..4, 6..8, with 5 uncovered).
    """
    points = sorted({p for s, e in intervals for p in range(2 * s, 2 * e + 1)})
    runs: list[list[int]] = []
    for p in points:
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return [(a // 2, b // 2) for a, b in runs]


def _random_intervals(rng: random.Random, n: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        s = rng.randint(-5, 25)
        out.append((s, s + rng.randint(0, 6)))
    return out


@check(1042, 1)
def merge_intervals(ref: str) -> str:
    merge = defined(run_code(ref, "intervals_t1"), "merge_intervals")
    expect(merge([(1, 3), (3, 5)]) == [(1, 5)], "touching intervals must merge")
    expect(merge([(4, 6), (1, 2)]) == [(1, 2), (4, 6)], "unsorted disjoint input")
    expect(merge([]) == [], "empty input")
    expect(raises(merge, [(3, 1)]), "start > end must raise ValueError")
    rng = random.Random(1042)
    for _ in range(1500):
        iv = _random_intervals(rng, rng.randint(0, 8))
        got = [tuple(x) for x in merge(list(iv))]
        expect(got == _merge_oracle(iv), f"merge_intervals({iv}) = {got}, expected {_merge_oracle(iv)}")
    return "1500 random inputs + edge cases"


@check(1042, 2)
def interval_set(ref: str) -> str:
    cls = defined(run_code(ref, "intervals_t2"), "IntervalSet")
    rng = random.Random(4242)
    for _ in range(400):
        ivs = cls()
        seen: list[tuple[int, int]] = []
        for s, e in _random_intervals(rng, rng.randint(1, 12)):
            ivs.add(s, e)
            seen.append((s, e))
            want = _merge_oracle(seen)
            got = [tuple(x) for x in ivs.intervals()]
            expect(got == want, f"after adding {seen}: {got}, expected {want}")
            expect(ivs.covered() == sum(b - a for a, b in want), f"covered() wrong after {seen}")
    expect(raises(cls().add, 5, 2), "add(5, 2) must raise ValueError")
    return "400 random streams"


# --------------------------------------------------------------------------- 1043 brackets

OPEN, CLOSE = "([{", ")]}"


def _brackets_oracle(s: str, literals: bool) -> int:
    """The specification as a two-pass scan: find literals and brackets first, then match."""
    brackets: list[int] = []
    unterminated = -1
    i = 0
    while i < len(s):
        if literals and s[i] == '"':
            j = i + 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            if j >= len(s):
                unterminated = i
                break
            i = j + 1
            continue
        if s[i] in OPEN or s[i] in CLOSE:
            brackets.append(i)
        i += 1
    stack: list[int] = []
    for i in brackets:
        if s[i] in OPEN:
            stack.append(i)
        elif not stack or OPEN.index(s[stack[-1]]) != CLOSE.index(s[i]):
            return i  # a mismatch is reported where it happens, before any later literal
        else:
            stack.pop()
    if unterminated >= 0:
        return unterminated
    return stack[0] if stack else -1


BRACKET_CASES_T1 = {"": -1, "a(b)c": -1, "([]{})": -1, "a(b[c)d]": 5, "((x)": 0, ")": 0, "(]": 1,
                    "{[()]}(": 6, "x(y(z": 1}
BRACKET_CASES_T2 = {'f("a)b")': -1, 'f("a\\"b)': 2, 'x]"': 1, '"(': 0, '("': 1, '"\\\\"(': 4,
                    '("x")': -1, '("\\"")': -1, 'a"b': 1, '(("': 2}


@check(1043, 1)
def brackets(ref: str) -> str:
    fn = defined(run_code(ref, "brackets_t1"), "first_bracket_error")
    for s, want in BRACKET_CASES_T1.items():
        expect(_brackets_oracle(s, False) == want, f"oracle wrong on {s!r}")
        expect(fn(s) == want, f"first_bracket_error({s!r}) = {fn(s)}, expected {want}")
    rng = random.Random(1043)
    for _ in range(4000):
        s = "".join(rng.choice("()[]{}a") for _ in range(rng.randint(0, 10)))
        expect(fn(s) == _brackets_oracle(s, False), f"first_bracket_error({s!r}) disagrees with the oracle")
    return "4000 random strings + 9 hand cases"


@check(1043, 2)
def brackets_literals(ref: str) -> str:
    fn = defined(run_code(ref, "brackets_t2"), "first_bracket_error")
    for s, want in BRACKET_CASES_T2.items():
        expect(_brackets_oracle(s, True) == want, f"oracle wrong on {s!r}")
        expect(fn(s) == want, f"first_bracket_error({s!r}) = {fn(s)}, expected {want}")
    rng = random.Random(2043)
    for _ in range(6000):
        s = "".join(rng.choice('()[]{}"\\a') for _ in range(rng.randint(0, 12)))
        expect(fn(s) == _brackets_oracle(s, True), f"first_bracket_error({s!r}) disagrees with the oracle")
    return "6000 random strings + 10 hand cases"


# --------------------------------------------------------------------------- 1044 binary search


def _sorted_lists(rng: random.Random, count: int) -> list[list[int]]:
    return [sorted(rng.randint(-3, 8) for _ in range(rng.randint(0, 9))) for _ in range(count)]


@check(1044, 1)
def first_at_least(ref: str) -> str:
    fn = defined(run_code(ref, "bisect_t1"), "first_at_least")
    rng = random.Random(1044)
    n = 0
    for a in _sorted_lists(rng, 600):
        for x in range(-5, 11):
            expect(fn(a, x) == bisect.bisect_left(a, x), f"first_at_least({a}, {x}) = {fn(a, x)}")
            n += 1
    return f"{n} searches against bisect_left"


@check(1044, 2)
def count_between(ref: str) -> str:
    fn = defined(run_code(ref, "bisect_t2"), "count_between")
    rng = random.Random(2044)
    n = 0
    for a in _sorted_lists(rng, 300):
        for lo in range(-5, 11):
            for hi in range(-5, 11):
                want = sum(1 for v in a if lo <= v <= hi)
                expect(fn(a, lo, hi) == want, f"count_between({a}, {lo}, {hi}) = {fn(a, lo, hi)}, expected {want}")
                n += 1
    return f"{n} range counts against a linear scan"


# --------------------------------------------------------------------------- 1045 stock profit


def _profit_oracle(prices: list[int], transactions: int) -> int:
    n = len(prices)
    best = 0
    trades = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for t in trades:
        best = max(best, prices[t[1]] - prices[t[0]])
    if transactions == 2:
        for (i, j), (k, m) in product(trades, trades):
            if j <= k:
                best = max(best, prices[j] - prices[i] + prices[m] - prices[k])
    return best


@check(1045, 1)
def max_profit(ref: str) -> str:
    fn = defined(run_code(ref, "stock_t1"), "max_profit")
    expect(fn([]) == 0 and fn([5]) == 0 and fn([5, 4, 3]) == 0, "no-profit cases must give 0")
    expect(fn([7, 1, 5, 3, 6, 4]) == 5, "max_profit([7, 1, 5, 3, 6, 4]) should be 5")
    rng = random.Random(1045)
    for _ in range(2000):
        p = [rng.randint(0, 20) for _ in range(rng.randint(0, 9))]
        expect(fn(list(p)) == _profit_oracle(p, 1), f"max_profit({p}) = {fn(list(p))}")
    return "2000 random price lists + edge cases"


@check(1045, 2)
def max_profit_two(ref: str) -> str:
    fn = defined(run_code(ref, "stock_t2"), "max_profit_two")
    expect(fn([3, 3, 5, 0, 0, 3, 1, 4]) == 6, "max_profit_two([3, 3, 5, 0, 0, 3, 1, 4]) should be 6")
    expect(fn([]) == 0 and fn([9, 7, 1]) == 0, "no-profit cases must give 0")
    rng = random.Random(2045)
    for _ in range(1500):
        p = [rng.randint(0, 20) for _ in range(rng.randint(0, 8))]
        expect(fn(list(p)) == _profit_oracle(p, 2), f"max_profit_two({p}) = {fn(list(p))}")
    return "1500 random price lists + edge cases"
