"""Math references (questions 1031-1040), recomputed by enumeration or exact fraction arithmetic.

Each check derives the answer by a route different from the reference's worked solution where one
exists (enumerating outcomes instead of counting formulas, solving a Markov chain instead of using a
known result, scanning instead of solving), then compares it with the stated final value.
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations, product

from refchecks import check, expect, expect_numbers, stated_numbers

F = Fraction


@check(1031, 1)
def marbles_without_replacement(ref: str) -> str:
    bag = ["r"] * 4 + ["b"] * 3 + ["g"] * 2
    draws = list(combinations(range(len(bag)), 3))  # every set of three marbles, equally likely
    good = sum(1 for d in draws if len({bag[i] for i in d}) == 3)
    return expect_numbers(ref, [F(good, len(draws))])


@check(1031, 2)
def marbles_with_replacement(ref: str) -> str:
    bag = ["r"] * 4 + ["b"] * 3 + ["g"] * 2
    draws = list(product(range(len(bag)), repeat=3))  # ordered draws with replacement
    good = sum(1 for d in draws if len({bag[i] for i in d}) < 3)
    return expect_numbers(ref, [F(good, len(draws))])


@check(1032, 1)
def last_two_digits(ref: str) -> str:
    return expect_numbers(ref, [F((7**2024 + 3**2024) % 100)])  # exact big integers


@check(1032, 2)
def divisible_by_ten(ref: str) -> str:
    return expect_numbers(ref, [F(sum(1 for n in range(1, 101) if (7**n + 3**n) % 10 == 0))])


@check(1033, 1)
def triangle_radii(ref: str) -> str:
    a, b = 20, 21
    c = math.isqrt(a * a + b * b)
    expect(c * c == a * a + b * b, "hypotenuse is not an integer")
    s = F(a + b + c, 2)
    area = F(a * b, 2)
    heron = s * (s - a) * (s - b) * (s - c)  # Heron's formula, independent of the legs-product
    expect(heron == area * area, "Heron and legs disagree on the area")
    return expect_numbers(ref, [area / s, F(a * b * c) / (4 * area)])  # r = K/s, R = abc/4K


@check(1033, 2)
def inscribed_square(ref: str) -> str:
    # Largest s with (s, s) inside the triangle x >= 0, y >= 0, 21x + 20y <= 420: bisect exactly.
    lo, hi = F(0), F(20)
    for _ in range(80):
        mid = (lo + hi) / 2
        if 21 * mid + 20 * mid <= 420:
            lo = mid
        else:
            hi = mid
    stated = stated_numbers(ref)
    expect(len(stated) == 1, f"expected one number, got {stated}")
    expect(21 * stated[0] + 20 * stated[0] == 420, f"{stated[0]} does not put the corner on the hypotenuse")
    expect(abs(stated[0] - lo) < F(1, 10**20), f"{stated[0]} is not the bisection limit {float(lo)}")
    return str(stated[0])


@check(1034, 1)
def average_speed(ref: str) -> str:
    # total distance / total time, for several distances: the answer must not depend on d
    speeds = {F(2) * d / (d / 18 + d / 12) for d in (F(36), F(7), F(1, 3))}
    expect(len(speeds) == 1, "average depends on distance")
    return expect_numbers(ref, [speeds.pop()])


@check(1034, 2)
def required_outbound_speed(ref: str) -> str:
    stated = stated_numbers(ref)
    expect(len(stated) == 1, f"expected one number, got {stated}")
    v = stated[0]
    d = F(10)
    expect(2 * d / (d / v + d / 12) == 16, f"riding out at {v} km/h does not average 16 km/h")
    # The average is strictly increasing in v, so the solution is unique.
    expect(2 * d / (d / (v - F(1, 1000)) + d / 12) < 16 < 2 * d / (d / (v + F(1, 1000)) + d / 12),
           "average speed is not increasing around the stated value")
    return str(v)


def _five_digit_sum9() -> list[int]:
    return [n for n in range(10000, 100000) if sum(map(int, str(n))) == 9]


@check(1035, 1)
def five_digit_sum_nine(ref: str) -> str:
    return expect_numbers(ref, [F(len(_five_digit_sum9()))])


@check(1035, 2)
def five_digit_sum_nine_div5(ref: str) -> str:
    return expect_numbers(ref, [F(sum(1 for n in _five_digit_sum9() if n % 5 == 0))])


def _solve(a: list[list[Fraction]], b: list[Fraction]) -> list[Fraction]:
    """Gauss-Jordan elimination over the rationals (small dense systems)."""
    n = len(b)
    m = [row[:] + [rhs] for row, rhs in zip(a, b)]
    for col in range(n):
        piv = next(r for r in range(col, n) if m[r][col] != 0)
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


@check(1036, 1)
def two_sixes_in_a_row(ref: str) -> str:
    # States: 0 = last roll not a six, 1 = last roll a six. E_s = 1 + sum_t P(s->t) E_t, E_done = 0.
    p6 = F(1, 6)
    e = _solve([[1 - (1 - p6), -p6], [-(1 - p6), F(1)]], [F(1), F(1)])
    return expect_numbers(ref, [e[0]])


@check(1036, 2)
def all_six_faces(ref: str) -> str:
    # Markov chain on the set of faces seen so far (64 subsets), solved exactly - no formula used.
    full = (1 << 6) - 1
    states = [s for s in range(1 << 6) if s != full]
    index = {s: i for i, s in enumerate(states)}
    a = [[F(0)] * len(states) for _ in states]
    b = [F(1)] * len(states)
    for s in states:
        a[index[s]][index[s]] += 1
        for face in range(6):
            t = s | (1 << face)
            if t != full:
                a[index[s]][index[t]] -= F(1, 6)
    return expect_numbers(ref, [_solve(a, b)[index[0]]])


def _sum_sequence(n: int) -> int:
    return 3 * n * n + 5 * n


@check(1037, 1)
def arithmetic_term(ref: str) -> str:
    terms = [_sum_sequence(n) - _sum_sequence(n - 1) for n in range(1, 30)]
    diffs = {y - x for x, y in zip(terms, terms[1:])}
    expect(len(diffs) == 1, "sequence is not arithmetic")
    return expect_numbers(ref, [F(terms[9])])


@check(1037, 2)
def geometric_sum(ref: str) -> str:
    a1 = F(_sum_sequence(1))
    a2 = F(_sum_sequence(2) - _sum_sequence(1))
    r = a2 / a1
    return expect_numbers(ref, [sum(a1 * r**k for k in range(5))])


@check(1038, 1)
def bayes_one_positive(ref: str) -> str:
    # Count an exact population of 10^6 people instead of applying Bayes' formula.
    pop = 10**6
    sick = pop * 2 // 100
    true_pos = sick * 95 // 100
    false_pos = (pop - sick) * 10 // 100
    return expect_numbers(ref, [F(true_pos, true_pos + false_pos)])


@check(1038, 2)
def bayes_two_positives(ref: str) -> str:
    pop = 10**8
    sick = pop * 2 // 100
    both_sick = sick * 95 // 100 * 95 // 100
    both_healthy = (pop - sick) * 10 // 100 * 10 // 100
    return expect_numbers(ref, [F(both_sick, both_sick + both_healthy)])


def _count_exact(k: Fraction) -> int:
    """Real solutions of sqrt(x + 7) = x - k, exactly: the x >= k with (x - k)^2 = x + 7.

    That quadratic is g(x) = x^2 - (2k + 1)x + k^2 - 7, with vertex at k + 1/2 > k and g(k) = -k - 7.
    Count its roots on [k, inf) from the discriminant and the sign of g at the boundary.
    """
    disc = (2 * k + 1) ** 2 - 4 * (k * k - 7)
    if disc < 0:
        return 0
    if disc == 0:
        return 1  # double root at the vertex, which lies right of k
    return 1 if -k - 7 < 0 else 2  # g(k) < 0: k between the roots; otherwise both roots are >= k


def _count_scan(k: Fraction) -> int:
    """The same count numerically: sign changes of f(x) = sqrt(x + 7) - x + k on a fine grid.

    Used only to cross-check ``_count_exact`` at a few values of k (it is slow). The grid step
    (1/2000) puts the tangency point x = -27/4 of k = -29/4 exactly on a grid point.
    """
    steps_per_unit = 2000
    lo = -7
    hi = int(max(float(k), -7.0)) + 12
    count = 0
    prev: bool | None = None
    for i in range((hi - lo) * steps_per_unit + 1):
        x = lo + i / steps_per_unit
        fx = math.sqrt(x + 7) - x + float(k)
        if abs(fx) < 1e-12:
            count += 1
            prev = None
            continue
        if prev is not None and (fx > 0) != prev:
            count += 1
        prev = fx > 0
    return count


@check(1039, 1)
def radical_equation(ref: str) -> str:
    roots = [F(x) for x in range(-7, 100) if x - 5 >= 0 and x + 7 == (x - 5) ** 2]
    return expect_numbers(ref, roots)


@check(1039, 2)
def radical_parameter(ref: str) -> str:
    stated = stated_numbers(ref)
    expect(len(stated) == 2, f"expected an isolated value and a threshold, got {stated}")
    isolated, threshold = stated
    for k in (F(-29, 4), F(-57, 8), F(-7), F(-13, 2), F(0), F(3)):
        expect(_count_exact(k) == _count_scan(k), f"exact and numeric counts disagree at k = {k}")
    # The isolated value is a tangency (double root): exactly one solution there, none just below.
    expect(_count_exact(isolated) == 1, f"k = {isolated} does not give exactly one solution")
    expect(_count_exact(isolated - F(1, 1000)) == 0, f"k just below {isolated} still has solutions")
    samples = [F(i, 64) for i in range(-1280, 1281)] + [threshold + F(1, 10**6), threshold - F(1, 10**6)]
    for k in samples:
        if k == isolated:
            continue
        want_one = k > threshold
        got = _count_exact(k)
        expect((got == 1) == want_one, f"k = {k}: {got} solutions, stated set says "
               f"{'exactly one' if want_one else 'not exactly one'}")
    return f"k = {isolated} or k > {threshold} (checked at {len(samples)} values of k)"


def _hand_angle(minutes_after_midnight: Fraction) -> Fraction:
    hour_deg = (minutes_after_midnight / 2) % 360  # 0.5 degrees per minute
    minute_deg = (minutes_after_midnight * 6) % 360
    diff = abs(hour_deg - minute_deg)
    return min(diff, 360 - diff)


@check(1040, 1)
def clock_angle(ref: str) -> str:
    return expect_numbers(ref, [_hand_angle(F(3 * 60 + 40))])


@check(1040, 2)
def next_right_angle(ref: str) -> str:
    # The minute hand gains 11/2 degrees per minute, so the hands are at 90 degrees exactly when
    # 11t/2 = 90 (mod 180) for t in minutes after 12:00, i.e. t = (180 + 360j)/11: every such instant
    # is a multiple of 1/11 minute. Scanning that grid forward from 3:40 cannot miss one.
    start = F(3 * 60 + 40)
    t = start + F(1, 11)
    while _hand_angle(t) != 90:
        t += F(1, 11)
    hours, minutes = divmod(t, 60)
    return expect_numbers(ref, [minutes, F(int(hours))])
