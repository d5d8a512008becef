"""Grade one answer turn with its check: pick the answer's code or text and call the right rule.

Code is read from fenced blocks: Python from blocks tagged ``python``/``py``/``python3`` or
untagged; for a later turn the earlier turns' Python blocks run first (a follow-up answer may
reuse a function it wrote before). SQL is the last block tagged ``sql``, else the last block that
holds a ``SELECT``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from judge.check.extract import (Outcome, check_choice, check_json, check_mapping, check_number,
                                 check_order)
from judge.check.sandbox import Limits, run_python, run_sql
from judge.schemas import (ChoiceCheck, JsonCheck, MappingCheck, NumberCheck, OrderCheck,
                           PythonCheck, SqlCheck)

AnyCheck = NumberCheck | ChoiceCheck | OrderCheck | MappingCheck | PythonCheck | SqlCheck | JsonCheck

_BLOCK = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def code_blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    """Fenced blocks whose tag is one of ``languages`` ("" = untagged), in order."""
    return [body for tag, body in _BLOCK.findall(text) if tag.lower() in languages]


PY_TAGS = ("python", "py", "python3", "")


def sql_query(text: str) -> str | None:
    tagged = code_blocks(text, ("sql", "sqlite"))
    if tagged:
        return tagged[-1]
    loose = [b for b in code_blocks(text, ("",)) if re.search(r"(?i)\bselect\b", b)]
    return loose[-1] if loose else None


def check_turn(check: AnyCheck, answer_turns: Sequence[str], turn: int,
               limits: Limits = Limits()) -> Outcome:
    """Grade turn ``turn`` (1-based) of ``answer_turns`` with ``check``."""
    text = answer_turns[turn - 1]
    if isinstance(check, NumberCheck):
        return check_number(text, check)
    if isinstance(check, ChoiceCheck):
        return check_choice(text, check)
    if isinstance(check, OrderCheck):
        return check_order(text, check)
    if isinstance(check, MappingCheck):
        return check_mapping(text, check)
    if isinstance(check, JsonCheck):
        return check_json(text, check)
    if isinstance(check, SqlCheck):
        query = sql_query(text)
        if query is None:
            return Outcome(status="fail", reason="no SQL query in the answer")
        return run_sql(query, check)
    own = code_blocks(text, PY_TAGS)
    if not own:
        return Outcome(status="fail", reason="no Python code block in the answer")
    earlier = [b for t in answer_turns[: turn - 1] for b in code_blocks(t, PY_TAGS)]
    return run_python(earlier + own, check, limits)
