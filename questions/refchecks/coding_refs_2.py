"""Coding references 1046-1050 (SQL, caches, grids, numerals, graphs), run against tests here.

As in ``coding_refs_1``: independent oracles (a brute force, a model implementation, union-find),
hand-picked edge cases and seeded random inputs. The SQL references run on in-memory SQLite.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from itertools import permutations, product
from typing import Any

from refchecks import check, code_block, defined, expect, raises, run_code


# --------------------------------------------------------------------------- 1046 SQL

SCHEMA = """
CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                        dept_id INTEGER REFERENCES departments(id), salary INTEGER NOT NULL);
"""

Company = tuple[list[tuple[int, str]], list[tuple[int, str, int | None, int]]]


def _companies(rng: random.Random, count: int) -> list[Company]:
    fixed: Company = (
        [(1, "Sales"), (2, "Eng"), (3, "Empty"), (4, "Flat")],
        [(1, "ann", 1, 50), (2, "bob", 1, 70), (3, "cid", 1, 70), (4, "dee", 2, 90), (5, "eve", 2, 60),
         (6, "fay", 2, 60), (7, "gus", 4, 40), (8, "hal", 4, 40), (9, "ivy", None, 99)],
    )
    out = [fixed]
    for _ in range(count):
        depts = [(i, f"d{rng.randrange(1000):03d}_{i}") for i in range(1, rng.randint(1, 5) + 1)]
        emps = []
        for i in range(1, rng.randint(0, 12) + 1):
            emps.append((i, f"e{rng.randrange(1000):03d}_{i}", rng.choice(depts)[0], rng.choice([10, 20, 30, 40])))
        out.append((depts, emps))
    return out


def _run_sql(query: str, company: Company) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO departments VALUES (?, ?)", company[0])
        db.executemany("INSERT INTO employees VALUES (?, ?, ?, ?)", company[1])
        cur = db.execute(query)
        cols = [d[0] for d in cur.description]
        return [tuple(cols)] + [tuple(r) for r in cur.fetchall()]
    finally:
        db.close()


@check(1046, 1)
def sql_top_earners(ref: str) -> str:
    query = code_block(ref, "sql")
    rng = random.Random(1046)
    for depts, emps in _companies(rng, 150):
        dname = dict(depts)
        top = {d: max((e[3] for e in emps if e[2] == d), default=None) for d in dname}
        want = sorted((dname[e[2]], e[1], e[3]) for e in emps if e[2] in dname and e[3] == top[e[2]])
        got = _run_sql(query, (depts, emps))
        expect(got[0] == ("department", "employee", "salary"), f"columns are {got[0]}")
        expect(got[1:] == want, f"rows {got[1:]} != expected {want}")
    return "151 databases"


@check(1046, 2)
def sql_second_salary(ref: str) -> str:
    query = code_block(ref, "sql")
    rng = random.Random(2046)
    for depts, emps in _companies(rng, 150):
        want = []
        for d, name in sorted(depts, key=lambda x: x[1]):
            distinct = sorted({e[3] for e in emps if e[2] == d}, reverse=True)
            want.append((name, distinct[1] if len(distinct) > 1 else None))
        got = _run_sql(query, (depts, emps))
        expect(got[0] == ("department", "second_salary"), f"columns are {got[0]}")
        expect(got[1:] == want, f"rows {got[1:]} != expected {want}")
    return "151 databases"


# --------------------------------------------------------------------------- 1047 LRU cache


class _ModelCache:
    """Executable specification: entries with value, write time and last-use tick."""

    def __init__(self, capacity: int, ttl_s: float | None = None, clock: Callable[[], float] = lambda: 0.0):
        self.capacity, self.ttl_s, self.clock = capacity, ttl_s, clock
        self.entries: dict[Any, list[Any]] = {}
        self.tick = 0

    def _expired(self, written: float, now: float) -> bool:
        return self.ttl_s is not None and now >= written + self.ttl_s

    def get(self, key: Any) -> Any:
        self.tick += 1
        if key not in self.entries:
            return None
        if self._expired(self.entries[key][1], self.clock()):
            del self.entries[key]
            return None
        self.entries[key][2] = self.tick
        return self.entries[key][0]

    def put(self, key: Any, value: Any) -> None:
        self.tick += 1
        now = self.clock()
        if key not in self.entries and len(self.entries) >= self.capacity:
            for k in [k for k, v in self.entries.items() if self._expired(v[1], now)]:
                del self.entries[k]
            if len(self.entries) >= self.capacity:
                del self.entries[min(self.entries, key=lambda k: self.entries[k][2])]
        self.entries[key] = [value, now, self.tick]


def _drive_caches(ref_cls: Callable[..., Any], rng: random.Random, ttl: bool) -> int:
    ops = 0
    for _ in range(300):
        now = [0.0]

        def clock() -> float:
            return now[0]

        capacity = rng.randint(1, 4)
        if ttl:
            ttl_s = float(rng.choice([1, 2, 5]))
            ref, model = ref_cls(capacity, ttl_s, clock=clock), _ModelCache(capacity, ttl_s, clock)
        else:
            ref, model = ref_cls(capacity), _ModelCache(capacity)
        for step in range(40):
            key = rng.randrange(6)
            if rng.random() < 0.5:
                value = (key, step)
                ref.put(key, value)
                model.put(key, value)
            else:
                got, want = ref.get(key), model.get(key)
                expect(got == want, f"get({key}) = {got}, expected {want} (capacity {capacity}, t={now[0]})")
            ops += 1
            if ttl:
                now[0] += rng.choice([0.0, 0.5, 1.0])
    return ops


@check(1047, 1)
def lru(ref: str) -> str:
    cls = defined(run_code(ref, "lru_t1"), "LRUCache")
    c = cls(2)
    c.put("a", 1)
    c.put("b", 2)
    expect(c.get("a") == 1, "get after put")
    c.put("c", 3)  # evicts b, since a was used more recently
    expect(c.get("b") is None and c.get("a") == 1 and c.get("c") == 3, "LRU eviction order")
    return f"{_drive_caches(cls, random.Random(1047), ttl=False)} random operations"


@check(1047, 2)
def lru_ttl(ref: str) -> str:
    cls = defined(run_code(ref, "lru_t2"), "LRUCache")
    now = [0.0]
    c = cls(2, 10.0, clock=lambda: now[0])
    c.put("a", 1)
    now[0] = 5.0
    c.put("b", 2)
    expect(c.get("a") == 1, "live entry")
    now[0] = 10.0  # a expires exactly now (live while now < t + ttl); b is still live
    c.put("c", 3)  # full: drop expired a first, so b must survive although a was used later
    expect(c.get("a") is None and c.get("b") == 2 and c.get("c") == 3, "expired entries go before LRU eviction")
    return f"{_drive_caches(cls, random.Random(2047), ttl=True)} random operations with a fake clock"


# --------------------------------------------------------------------------- 1048 islands


def _islands_oracle(grid: list[str], torus: bool) -> int:
    """Union-find over land cells."""
    rows, cols = len(grid), len(grid[0]) if grid else 0
    parent = {(r, c): (r, c) for r in range(rows) for c in range(cols) if grid[r][c] == "#"}

    def find(x: tuple[int, int]) -> tuple[int, int]:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r, c in list(parent):
        for nr, nc in ((r + 1, c), (r, c + 1)):
            if torus:
                nr, nc = nr % rows, nc % cols
            if (nr, nc) in parent:
                parent[find((r, c))] = find((nr, nc))
    return len({find(x) for x in parent})


def _grids(rng: random.Random, count: int) -> list[list[str]]:
    out = []
    for _ in range(count):
        h, w, p = rng.randint(1, 7), rng.randint(1, 7), rng.random()
        out.append(["".join("#" if rng.random() < p else "." for _ in range(w)) for _ in range(h)])
    return out


@check(1048, 1)
def islands(ref: str) -> str:
    fn = defined(run_code(ref, "islands_t1"), "count_islands")
    expect(fn(["#.#", ".#.", "#.#"]) == 5, "diagonal cells are not connected")
    expect(fn(["##.", "#..", "..#"]) == 2, "simple map")
    for g in _grids(random.Random(1048), 1500):
        expect(fn(g) == _islands_oracle(g, False), f"count_islands({g}) = {fn(g)}")
    return "1500 random maps + hand cases"


@check(1048, 2)
def islands_torus(ref: str) -> str:
    fn = defined(run_code(ref, "islands_t2"), "count_islands_torus")
    expect(fn(["#..#"]) == 1, "left and right edges touch")
    expect(fn(["#.", "..", "#."]) == 1, "top and bottom edges touch")
    expect(fn(["#.#", ".#.", "#.#"]) == 2, "corners wrap to one island; the centre is separate")
    for g in _grids(random.Random(2048), 1500):
        expect(fn(g) == _islands_oracle(g, True), f"count_islands_torus({g}) = {fn(g)}")
    big = ["#" * 200] * 200  # one 40,000-cell island: a recursive flood fill would overflow the stack
    expect(fn(big) == 1, "200 x 200 land map")
    return "1500 random maps + hand cases + a 200x200 map"


# --------------------------------------------------------------------------- 1049 Roman numerals


def _roman_oracle(n: int) -> str:
    ones = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"]
    tens = ["", "X", "XX", "XXX", "XL", "L", "LX", "LXX", "LXXX", "XC"]
    hundreds = ["", "C", "CC", "CCC", "CD", "D", "DC", "DCC", "DCCC", "CM"]
    return "M" * (n // 1000) + hundreds[n // 100 % 10] + tens[n // 10 % 10] + ones[n % 10]


@check(1049, 1)
def roman(ref: str) -> str:
    ns = run_code(ref, "roman_t1")
    to_roman, from_roman = defined(ns, "to_roman"), defined(ns, "from_roman")
    for n in range(1, 4000):
        s = to_roman(n)
        expect(s == _roman_oracle(n), f"to_roman({n}) = {s!r}, expected {_roman_oracle(n)!r}")
        expect(from_roman(s) == n, f"from_roman({s!r}) = {from_roman(s)}")
    for bad in (0, 4000, -1):
        expect(raises(to_roman, bad), f"to_roman({bad}) must raise ValueError")
    return "all of 1..3999 both ways"


@check(1049, 2)
def roman_strict(ref: str) -> str:
    ns = run_code(ref, "roman_t2")
    from_roman = defined(ns, "from_roman")
    canonical = {_roman_oracle(n): n for n in range(1, 4000)}
    candidates = set(canonical) | {"", "iv", "Iv", " X", "X ", "MMMM", "IIII", "IC", "VX", "XM", "IIV", "ABC"}
    for length in range(1, 5):
        candidates.update("".join(p) for p in product("IVXLCDM", repeat=length))
    for s in candidates:
        if s in canonical:
            expect(from_roman(s) == canonical[s], f"from_roman({s!r}) should be {canonical[s]}")
        else:
            expect(raises(from_roman, s), f"from_roman({s!r}) must raise ValueError")
    return f"{len(candidates)} strings (every numeral, every string of up to 4 letters)"


# --------------------------------------------------------------------------- 1050 build order


def _random_deps(rng: random.Random, acyclic: bool) -> dict[str, list[str]]:
    names = [chr(ord("a") + i) for i in range(rng.randint(1, 6))]
    rng.shuffle(names)  # names[i] may depend on names[j] for j > i when acyclic
    deps: dict[str, list[str]] = {}
    for i, t in enumerate(names):
        pool = names[i + 1:] if acyclic else names
        chosen = [d for d in pool if rng.random() < 0.35]
        if chosen or rng.random() < 0.6:
            deps[t] = chosen
    return deps


def _all_targets(deps: dict[str, list[str]]) -> set[str]:
    return set(deps) | {d for ds in deps.values() for d in ds}


def _is_valid_order(deps: dict[str, list[str]], order: list[str]) -> bool:
    pos = {t: i for i, t in enumerate(order)}
    return (len(order) == len(pos) and set(order) == _all_targets(deps)
            and all(pos[d] < pos[t] for t, ds in deps.items() for d in ds))


def _acyclic(deps: dict[str, list[str]]) -> bool:
    """Repeatedly remove targets whose dependencies are all removed; a cycle blocks it."""
    left = _all_targets(deps)
    while left:
        free = {t for t in left if not (set(deps.get(t, [])) & left)}
        if not free:
            return False
        left -= free
    return True


def _smallest_order(deps: dict[str, list[str]]) -> list[str]:
    """permutations() of a sorted list come in lexicographic order: the first valid one is the min."""
    for p in permutations(sorted(_all_targets(deps))):
        if _is_valid_order(deps, list(p)):
            return list(p)
    raise AssertionError("no valid order for an acyclic graph")


@check(1050, 1)
def build_order(ref: str) -> str:
    fn = defined(run_code(ref, "build_t1"), "build_order")
    expect(raises(fn, {"a": ["b"], "b": ["a"]}), "a 2-cycle must raise ValueError")
    rng = random.Random(1050)
    for _ in range(800):
        deps = _random_deps(rng, acyclic=rng.random() < 0.6)
        if not _acyclic(deps):
            expect(raises(fn, deps), f"build_order({deps}) must raise ValueError")
        else:
            order = fn(deps)
            expect(_is_valid_order(deps, order), f"build_order({deps}) = {order} is not a valid order")
    return "800 random dependency graphs"


@check(1050, 2)
def build_order_smallest(ref: str) -> str:
    ns = run_code(ref, "build_t2")
    fn = defined(ns, "build_order")
    cycle_error = ns.get("CycleError")
    expect(isinstance(cycle_error, type) and issubclass(cycle_error, ValueError), "CycleError must subclass ValueError")
    rng = random.Random(2050)
    for _ in range(800):
        deps = _random_deps(rng, acyclic=rng.random() < 0.5)
        if _acyclic(deps):
            want = _smallest_order(deps)
            expect(fn(deps) == want, f"build_order({deps}) = {fn(deps)}, smallest is {want}")
            continue
        try:
            fn(deps)
        except cycle_error as err:  # type: ignore[misc]
            cyc = err.cycle
            expect(len(cyc) >= 2 and cyc[0] == cyc[-1], f"{cyc} is not closed")
            expect(all(b in deps.get(a, []) for a, b in zip(cyc, cyc[1:])), f"{cyc} is not a cycle of {deps}")
        else:
            raise AssertionError(f"build_order({deps}) did not raise CycleError")
    return "800 random graphs against brute-force smallest order / cycle check"
