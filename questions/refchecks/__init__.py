"""Independent checks of the reference answers in this folder's question sets.

Each check is registered for one (question_id, turn) and receives that turn's reference text. It
recomputes the answer on its own (arithmetic with fractions, brute force over every case, a search,
or tests run against the reference code) and compares it with what the reference states. Only the
stated final value is parsed out of the text; nothing else from the reference is trusted.

A check returns a one-line description of what it verified, or raises ``RefCheckFailed``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

CheckFn = Callable[[str], str]
CHECKS: dict[tuple[int, int], CheckFn] = {}


class RefCheckFailed(AssertionError):
    """A reference answer disagrees with the independent computation (or cannot be parsed)."""


def check(question_id: int, turn: int) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check of ``question_id``'s reference for ``turn`` (1-based)."""

    def register(fn: CheckFn) -> CheckFn:
        key = (question_id, turn)
        if key in CHECKS:
            raise RuntimeError(f"two checks registered for question {question_id} turn {turn}")
        CHECKS[key] = fn
        return fn

    return register


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise RefCheckFailed(message)


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:/\d+)?")


def final_clause(reference: str) -> str:
    """The text after the last 'answer is' (the stated final answer), up to the end of the reference."""
    idx = reference.lower().rfind("answer is")
    if idx < 0:
        raise RefCheckFailed("reference does not state its final value ('... the answer is X.')")
    return reference[idx + len("answer is"):]


def stated_numbers(reference: str) -> list[Fraction]:
    """Every number in the final clause, in order, as exact fractions ('14.4' -> 72/5, '29/2')."""
    clause = final_clause(reference)
    nums = [Fraction(tok) for tok in _NUMBER.findall(clause)]
    if not nums:
        raise RefCheckFailed(f"no number in the final answer {clause.strip()!r}")
    return nums


def expect_numbers(reference: str, expected: list[Fraction]) -> str:
    stated = stated_numbers(reference)
    expect(stated == expected,
           f"reference states {[str(x) for x in stated]}, recomputed {[str(x) for x in expected]}")
    return ", ".join(str(x) for x in expected)


_FENCE = re.compile(r"```([a-zA-Z0-9_+-]*)\n(.*?)```", re.DOTALL)


def code_block(reference: str, language: str = "python") -> str:
    """The single fenced code block of a coding reference (``language`` must match its tag)."""
    blocks = _FENCE.findall(reference)
    expect(len(blocks) == 1, f"expected exactly one fenced code block, found {len(blocks)}")
    tag, code = blocks[0]
    expect(tag == language, f"code block is tagged {tag!r}, expected {language!r}")
    return code


def run_code(reference: str, name: str) -> dict[str, object]:
    """Execute the reference's Python block in a fresh namespace and return that namespace."""
    code = code_block(reference, "python")
    namespace: dict[str, object] = {"__name__": name}
    exec(compile(code, f"<reference {name}>", "exec"), namespace)  # noqa: S102 - our own references
    return namespace


def defined(ns: dict[str, object], name: str) -> Callable[..., Any]:
    fn = ns.get(name)
    expect(callable(fn), f"reference code defines no {name}()")
    return fn  # type: ignore[return-value]


def raises(fn: Callable[..., Any], *args: Any, exc: type[BaseException] = ValueError) -> bool:
    try:
        fn(*args)
    except exc:
        return True
    return False
