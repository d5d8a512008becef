"""Reasoning references (questions 1021-1030), checked by brute force over every possibility.

Each puzzle's clues are encoded as predicates; every assignment (orderings, truth values, schedules,
codes, match results) is enumerated, or the state space is searched, and the set of solutions must
be exactly what the reference states.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import Callable, Sequence
from itertools import combinations, permutations, product

from refchecks import check, expect, final_clause, stated_numbers

# --------------------------------------------------------------------------- 1021 runners

RUNNERS = ("Ana", "Ben", "Chloé", "Dev", "Emil")


def _runner_orders(ben_won: bool) -> set[tuple[str, ...]]:
    out = set()
    for order in permutations(RUNNERS):
        p = {name: i for i, name in enumerate(order)}
        ok = p["Ben"] < p["Emil"] and p["Chloé"] == p["Ana"] + 1 and p["Emil"] != 4
        ok = ok and (p["Ben"] == 0 if ben_won else (p["Ana"] != 0 and p["Ben"] != 0))
        if ok:
            out.add(order)
    return out


def _stated_orders(text: str) -> set[tuple[str, ...]]:
    name = "|".join(RUNNERS)
    pattern = re.compile(rf"((?:{name})(?: > (?:{name})){{4}})")
    return {tuple(m.split(" > ")) for m in pattern.findall(text)}


@check(1021, 1)
def runners(ref: str) -> str:
    sols = _runner_orders(ben_won=False)
    expect(len(sols) == 1, f"puzzle has {len(sols)} solutions, not one")
    stated = _stated_orders(final_clause(ref))
    expect(stated == sols, f"reference order(s) {stated} != {sols}")
    return " > ".join(next(iter(sols)))


@check(1021, 2)
def runners_ben_won(ref: str) -> str:
    sols = _runner_orders(ben_won=True)
    expect(_stated_orders(ref) == sols, f"reference lists {sorted(_stated_orders(ref))}, brute force {sorted(sols)}")
    expect(stated_numbers(ref) == [len(sols)], f"stated count != {len(sols)}")
    return f"{len(sols)} orders"


# --------------------------------------------------------------------------- 1022 knights and knaves


def _islanders(with_dee: bool) -> list[tuple[bool, ...]]:
    n = 4 if with_dee else 3
    sols = []
    for t in product((True, False), repeat=n):  # True = knight
        ada, bo, cy = t[:3]
        says = [sum(t[:3]) == 1, bo != cy, ada == cy]
        if with_dee:
            says.append(t[3] == cy)
        if all(t[i] == says[i] for i in range(n)):  # knights say true things, knaves false ones
            sols.append(t)
    return sols


@check(1022, 1)
def knights(ref: str) -> str:
    sols = _islanders(with_dee=False)
    expect(len(sols) == 1, f"{len(sols)} consistent assignments")
    stated = dict(re.findall(r"(Ada|Bo|Cy) is a (knight|knave)", final_clause(ref)))
    truth = {name: ("knight" if k else "knave") for name, k in zip(("Ada", "Bo", "Cy"), sols[0])}
    expect(stated == truth, f"reference says {stated}, brute force {truth}")
    return ", ".join(f"{k} {v}" for k, v in truth.items())


@check(1022, 2)
def knights_dee(ref: str) -> str:
    expect(_islanders(with_dee=True) == [], "some knight/knave assignment makes Dee consistent")
    expect("cannot be a knight or a knave" in ref, "reference does not conclude Dee is neither")
    return "no consistent type for Dee"


# --------------------------------------------------------------------------- 1023 schedule

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri")
VOLUNTEERS = ("Farah", "Gus", "Hana", "Ivo", "Jo")


def _schedules(farah_not_tuesday: bool) -> list[dict[str, str]]:
    out = []
    for order in permutations(VOLUNTEERS):
        d = {name: i for i, name in enumerate(order)}  # day index per volunteer
        ok = (d["Farah"] > d["Gus"] and d["Hana"] not in (0, 4) and d["Ivo"] == d["Hana"] + 1
              and d["Jo"] in (2, 4) and abs(d["Farah"] - d["Jo"]) != 1)
        if ok and not (farah_not_tuesday and d["Farah"] == 1):
            out.append({DAYS[i]: name for i, name in enumerate(order)})
    return out


@check(1023, 1)
def schedule(ref: str) -> str:
    sols = _schedules(False)
    expect(len(sols) == 1, f"{len(sols)} schedules")
    stated = dict(re.findall(r"(Mon|Tue|Wed|Thu|Fri): (\w+)", final_clause(ref)))
    expect(stated == sols[0], f"reference {stated} != brute force {sols[0]}")
    return ", ".join(f"{k} {v}" for k, v in sols[0].items())


@check(1023, 2)
def schedule_impossible(ref: str) -> str:
    expect(_schedules(True) == [], "a schedule exists with Farah off on Tuesday")
    expect(ref.startswith("No"), "reference does not say no schedule exists")
    return "no valid schedule"


# --------------------------------------------------------------------------- 1024 jugs


def _jug_moves(state: tuple[int, int], caps: tuple[int, int]) -> set[tuple[int, int]]:
    a, b = state
    ca, cb = caps
    into_b = min(a, cb - b)
    into_a = min(b, ca - a)
    return {(ca, b), (a, cb), (0, b), (a, 0), (a - into_b, b + into_b), (a + into_a, b - into_a)}


def _jug_bfs(caps: tuple[int, int], goal: Callable[[tuple[int, int]], bool]) -> int | None:
    dist = {(0, 0): 0}
    queue = deque([(0, 0)])
    while queue:
        s = queue.popleft()
        if goal(s):
            return dist[s]
        for n in _jug_moves(s, caps):
            if n not in dist:
                dist[n] = dist[s] + 1
                queue.append(n)
    return None


@check(1024, 1)
def jugs(ref: str) -> str:
    best = _jug_bfs((7, 4), lambda s: s[0] == 6)
    states = [(int(a), int(b)) for a, b in re.findall(r"\((\d+), (\d+)\)", ref.split("Fewer moves")[0])]
    expect(states[0] == (0, 0) and states[-1][0] == 6, f"stated sequence {states} does not go from (0, 0) to 6")
    for s, n in zip(states, states[1:]):
        expect(n in _jug_moves(s, (7, 4)), f"{s} -> {n} is not a legal move")
    expect(len(states) - 1 == best, f"stated sequence has {len(states) - 1} moves, optimum is {best}")
    expect(stated_numbers(ref) == [best], f"stated answer != {best}")
    return f"{best} moves, sequence replayed"


@check(1024, 2)
def jugs_impossible(ref: str) -> str:
    expect(_jug_bfs((6, 4), lambda s: 5 in s) is None, "5 litres is reachable")
    expect("impossible" in ref.split(".")[0], "reference does not say it is impossible")
    return "5 litres unreachable"


# --------------------------------------------------------------------------- 1025 days

WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _stated_day(ref: str) -> str:
    found = re.findall("|".join(WEEK), final_clause(ref))
    expect(len(found) == 1, f"final answer names {found}")
    return found[0]


@check(1025, 1)
def yesterday(ref: str) -> str:
    thursday = WEEK.index("Thursday")
    todays = [t for t in range(7) if (t + 2) % 7 == (thursday - 2) % 7]
    expect(len(todays) == 1, "today is not determined")
    answer = WEEK[(todays[0] - 1) % 7]
    expect(_stated_day(ref) == answer, f"reference says {_stated_day(ref)}, brute force {answer}")
    return answer


@check(1025, 2)
def hundred_days(ref: str) -> str:
    todays = [t for t in range(7) if (t + 2 - 3) % 7 == WEEK.index("Friday")]
    expect(len(todays) == 1, "today is not determined")
    answer = WEEK[(todays[0] + 100) % 7]
    expect(_stated_day(ref) == answer, f"reference says {_stated_day(ref)}, brute force {answer}")
    return answer


# --------------------------------------------------------------------------- 1026 padlock

HINTS = [("678", 0, 1), ("342", 0, 1), ("360", 0, 0), ("594", 1, 0), ("256", 0, 2)]


def _codes(hints: Sequence[tuple[str, int, int]]) -> list[str]:
    out = []
    for digits in permutations("0123456789", 3):  # three different digits
        code = "".join(digits)
        ok = True
        for guess, right_place, wrong_place in hints:
            placed = sum(c == g for c, g in zip(code, guess))
            common = len(set(code) & set(guess))
            ok = ok and placed == right_place and common - placed == wrong_place
        if ok:
            out.append(code)
    return out


def _stated_codes(ref: str) -> list[str]:
    return sorted(re.findall(r"\b\d{3}\b", final_clause(ref)))


@check(1026, 1)
def padlock(ref: str) -> str:
    sols = _codes(HINTS)
    expect(len(sols) == 1 and _stated_codes(ref) == sols, f"reference {_stated_codes(ref)}, brute force {sols}")
    return sols[0]


@check(1026, 2)
def padlock_smudged(ref: str) -> str:
    sols = _codes([h for h in HINTS if h[0] != "594"])
    expect(_stated_codes(ref) == sols, f"reference {_stated_codes(ref)}, brute force {sols}")
    return ", ".join(sols)


# --------------------------------------------------------------------------- 1027 bridge

HIKERS = (1, 3, 6, 8, 12)


def _bridge(capacity: int) -> int:
    """Dijkstra over (hikers still on the start side, torch side)."""
    everyone = frozenset(range(len(HIKERS)))
    start = (everyone, 0)
    dist = {start: 0}
    heap = [(0, 0, start)]
    tiebreak = 1
    while heap:
        d, _, (left, side) = heapq.heappop(heap)
        if d > dist[(left, side)]:
            continue
        if not left:
            return d
        here = left if side == 0 else everyone - left
        for k in range(1, capacity + 1):
            for group in combinations(sorted(here), k):
                moved = left - set(group) if side == 0 else left | set(group)
                nxt = (frozenset(moved), 1 - side)
                nd = d + max(HIKERS[i] for i in group)
                if nd < dist.get(nxt, 1 << 30):
                    dist[nxt] = nd
                    heapq.heappush(heap, (nd, tiebreak, nxt))
                    tiebreak += 1
    raise AssertionError("bridge search found no schedule")


def _replay(schedule: str, capacity: int) -> int:
    """Replay a stated schedule ('1 and 3 cross (3 min); 1 returns (1); ...') and return its time."""
    left, total, side = set(HIKERS), 0, 0
    for step in schedule.split(";"):
        people = [int(x) for x in re.findall(r"\d+", step.split("(")[0])]
        expect(0 < len(people) <= capacity, f"step {step!r} moves {people}")
        here = left if side == 0 else set(HIKERS) - left
        expect(set(people) <= here, f"step {step!r}: not all of {people} are on the torch side")
        left = left - set(people) if side == 0 else left | set(people)
        total += max(people)
        side = 1 - side
    expect(not left, f"schedule leaves {sorted(left)} behind")
    return total


@check(1027, 1)
def bridge_pairs(ref: str) -> str:
    best = _bridge(2)
    schedule = ref.split("One optimal schedule: ")[1].split(". ")[0]
    expect(_replay(schedule, 2) == best, f"stated schedule does not take the optimal {best} minutes")
    expect(stated_numbers(ref) == [best], f"stated answer != {best}")
    return f"{best} minutes"


@check(1027, 2)
def bridge_triples(ref: str) -> str:
    best = _bridge(3)
    schedule = ref.split(": ", 1)[1].split(". ")[0]
    expect(_replay(schedule, 3) == best, f"stated schedule does not take the optimal {best} minutes")
    expect(stated_numbers(ref) == [best], f"stated answer != {best}")
    return f"{best} minutes"


# --------------------------------------------------------------------------- 1028 vase

PUPILS = ("Mira", "Noor", "Otto", "Pia")


def _culprits(true_statements: int) -> list[str]:
    out = []
    for g in PUPILS:
        mira = g in ("Noor", "Pia")
        says = [mira, g == "Otto", g != "Mira", not mira]
        if sum(says) == true_statements:
            out.append(g)
    return out


def _stated_pupil(ref: str) -> list[str]:
    return re.findall("|".join(PUPILS), final_clause(ref))


@check(1028, 1)
def vase_one_truth(ref: str) -> str:
    sols = _culprits(1)
    expect(len(sols) == 1 and _stated_pupil(ref) == sols, f"reference {_stated_pupil(ref)}, brute force {sols}")
    return sols[0]


@check(1028, 2)
def vase_one_lie(ref: str) -> str:
    sols = _culprits(3)
    expect(len(sols) == 1 and _stated_pupil(ref) == sols, f"reference {_stated_pupil(ref)}, brute force {sols}")
    return sols[0]


# --------------------------------------------------------------------------- 1029 houses

HouseAssignment = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _house_clues(names: Sequence[str], colours: Sequence[str], pets: Sequence[str],
                 drinks: Sequence[str]) -> list[bool]:
    return [
        pets.index("cat") < colours.index("green"),
        drinks[colours.index("blue")] != "milk",
        pets[names.index("Mo")] == "dog",
        drinks.index("coffee") < colours.index("blue"),
        pets.index("parrot") + 1 == names.index("Lea"),
    ]


def _houses() -> list[HouseAssignment]:
    out = []
    for names, colours, pets, drinks in product(permutations(("Lea", "Mo", "Sam")),
                                                permutations(("red", "green", "blue")),
                                                permutations(("cat", "dog", "parrot")),
                                                permutations(("tea", "coffee", "milk"))):
        if all(_house_clues(names, colours, pets, drinks)):
            out.append((names, colours, pets, drinks))
    return out


@check(1029, 1)
def houses(ref: str) -> str:
    sols = _houses()
    expect(len(sols) == 1, f"{len(sols)} solutions")
    names, colours, pets, drinks = sols[0]
    stated = re.findall(r"House (\d): (\w+), (\w+), (\w+), (\w+)", final_clause(ref))
    truth = [(str(i + 1), names[i], colours[i], pets[i], drinks[i]) for i in range(3)]
    expect(stated == truth, f"reference {stated} != brute force {truth}")
    return "; ".join(" ".join(t) for t in truth)


@check(1029, 2)
def houses_swap(ref: str) -> str:
    names, colours, pets, drinks = _houses()[0]
    swapped = list(pets)
    i, j = names.index("Lea"), names.index("Mo")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    false = [n + 1 for n, ok in enumerate(_house_clues(names, colours, swapped, drinks)) if not ok]
    stated = [int(x) for x in stated_numbers(ref)]
    expect(stated == false, f"reference says clues {stated}, recomputed {false}")
    return f"clues {false} become false"


# --------------------------------------------------------------------------- 1030 tournament

TEAMS = "ABCDE"
MATCHES = list(combinations(TEAMS, 2))
POINTS = {"A": 10, "B": 8, "C": 5, "D": 3, "E": 1}


def _tables() -> list[dict[tuple[str, str], str]]:
    """Every assignment of results (home win / draw / away win) that yields the final points."""
    out = []
    for results in product("HDA", repeat=len(MATCHES)):
        pts = dict.fromkeys(TEAMS, 0)
        for (x, y), r in zip(MATCHES, results):
            if r == "H":
                pts[x] += 3
            elif r == "A":
                pts[y] += 3
            else:
                pts[x] += 1
                pts[y] += 1
        if pts == POINTS:
            out.append(dict(zip(MATCHES, results)))
    return out


@check(1030, 1)
def tournament_draws(ref: str) -> str:
    draws = {sum(r == "D" for r in t.values()) for t in _tables()}
    expect(len(draws) == 1, f"draw count not determined: {draws}")
    expect(stated_numbers(ref) == [draws.pop()], "stated number of draws is wrong")
    return f"{stated_numbers(ref)[0]} draws"


@check(1030, 2)
def tournament_table(ref: str) -> str:
    tables = _tables()
    expect(len(tables) == 1, f"{len(tables)} result tables fit the standings")
    stated: dict[tuple[str, str], str] = {}
    full = ref.split("In full:")[1]
    for x, y in re.findall(r"\b([A-E]) beat ([A-E])\b", full):
        key = (x, y) if x < y else (y, x)
        stated[key] = "H" if key[0] == x else "A"
    for x, y in re.findall(r"\b([A-E]) drew with ([A-E])\b", full):
        stated[(min(x, y), max(x, y))] = "D"
    expect(stated == tables[0], f"reference table {stated} != brute force {tables[0]}")
    return "unique table matches"
