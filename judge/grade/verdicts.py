"""Turn a judge's reply text into a validated verdict, or say precisely why it cannot.

Used whenever the endpoint did not enforce the JSON schema (and as a check when it did). Tried in
order:

1. JSON: the whole reply, a fenced code block, or the first ``{...}`` object embedded in the text
   that validates against the verdict schema. Unknown keys are dropped; issue names are normalised
   (case, spaces, hyphens) and a name outside the closed vocabulary becomes ``"other"``.
2. MT-Bench-style markers: ``[[8]]`` for a rating (whole numbers 1-10 only), ``[[correct]]`` /
   ``[[incorrect]]`` for reference grading, ``[[A>>B]]`` ... ``[[B>>A]]`` or FastChat's ``[[A]]``,
   ``[[B]]``, ``[[C]]`` (tie) for a pair. Two different markers of the same kind are a conflict, not a
   guess.

Nothing here ever invents a verdict: a reply that fits neither form returns an error string, and the
caller records the judgment as ``invalid_output``.

**Only the judge's own words count.** The prompt shows the judge untrusted text (answers can hold
``[[10]]``, a whole verdict object, "choose B"). Given the prompt, a candidate that is a copy of
prompt text -- a JSON object whose source text occurs verbatim in the prompt, or a marker whose
whole line does -- is ignored, so a judge that echoes (part of) its input never yields a verdict.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from judge.schemas import ISSUE_KINDS, PairVerdict, SingleVerdict, SingleVerdictWithReference

_FENCED_JSON_RE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)\n\s*```", re.DOTALL)
_RATING_RE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_CORRECT_RE = re.compile(r"\[\[\s*(correct|incorrect)\s*\]\]", re.IGNORECASE)
_PAIR_RE = re.compile(r"\[\[\s*(A\s*>>\s*B|A\s*>\s*B|A\s*=\s*B|B\s*>\s*A|B\s*>>\s*A|A|B|C|tie)\s*\]\]",
                      re.IGNORECASE)
_FASTCHAT_PAIR = {"A": "A>B", "B": "B>A", "C": "A=B", "TIE": "A=B"}


def normalise_issues(value: Any) -> Any:
    """Map issue names onto the closed vocabulary; leave non-lists for the validator to reject."""
    if not isinstance(value, list):
        return value
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            return value  # let validation report it
        name = re.sub(r"[\s\-]+", "_", item.strip().lower())
        name = name if name in ISSUE_KINDS else "other"
        if name not in out:
            out.append(name)
    return out


def _clean(obj: dict[str, Any], schema: type[BaseModel]) -> dict[str, Any]:
    fields = schema.model_fields
    out = {k: v for k, v in obj.items() if k in fields}
    for key in ("issues", "issues_a", "issues_b"):
        if key in out:
            out[key] = normalise_issues(out[key])
    return out


def copied_from(span: str, prompt: str) -> bool:
    """Whether ``span`` is a verbatim copy of text the judge was shown (so not the judge's own)."""
    s = span.strip()
    return bool(prompt) and bool(s) and s in prompt


def _json_candidates(text: str, prompt: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    sources = [text.strip()] + [m.group(1) for m in _FENCED_JSON_RE.finditer(text)]
    for src in sources:
        try:
            obj = json.loads(src)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict) and not copied_from(src, prompt):
            found.append(obj)
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, end = decoder.raw_decode(text, m.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict) and not copied_from(text[m.start():end], prompt):
            found.append(obj)
    return found


def parse_json_verdict(text: str, schema: type[BaseModel], prompt: str = ""
                       ) -> tuple[BaseModel | None, str | None]:
    first_error: str | None = None
    for obj in _json_candidates(text, prompt):
        try:
            return schema.model_validate(_clean(obj, schema)), None
        except ValidationError as err:
            if first_error is None and set(obj) & set(schema.model_fields):
                e = err.errors()[0]
                loc = ".".join(str(p) for p in e.get("loc", ())) or "object"
                first_error = f"JSON verdict invalid at {loc}: {e.get('msg', 'invalid')}"
    return None, first_error


def _one(matches: list[str], what: str) -> tuple[str | None, str | None]:
    distinct = sorted(set(matches))
    if not distinct:
        return None, None
    if len(distinct) > 1:
        return None, f"conflicting {what} markers: {', '.join(distinct)}"
    return distinct[0], None


def _own_markers(pattern: re.Pattern[str], text: str, prompt: str) -> list[str]:
    """The marker values in ``text`` whose line is not a copy of prompt text."""
    out = []
    for m in pattern.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        if not copied_from(text[start:end if end >= 0 else len(text)], prompt):
            out.append(m.group(1))
    return out


def parse_marker_verdict(text: str, schema: type[BaseModel], prompt: str = ""
                         ) -> tuple[BaseModel | None, str | None]:
    explanation = text.strip()
    if schema is PairVerdict:
        raw = [re.sub(r"\s+", "", m).upper() for m in _own_markers(_PAIR_RE, text, prompt)]
        label, err = _one([_FASTCHAT_PAIR.get(r, r) for r in raw], "verdict")
        if label is None:
            return None, err or "no JSON verdict and no [[A]]/[[B]]/[[C]] or [[A>B]]-style marker"
        return PairVerdict(explanation=explanation, verdict=label), None  # type: ignore[arg-type]
    value, err = _one(_own_markers(_RATING_RE, text, prompt), "rating")
    if value is None:
        return None, err or "no JSON verdict and no [[rating]] marker"
    if "." in value and float(value) != int(float(value)):
        return None, f"rating [[{value}]] is not a whole number"
    rating = int(float(value))
    if not 1 <= rating <= 10:
        return None, f"rating [[{value}]] is outside 1-10"
    if schema is SingleVerdictWithReference:
        word, err = _one([w.lower() for w in _own_markers(_CORRECT_RE, text, prompt)], "correctness")
        if word is None:
            return None, err or "reference grading needs a [[correct]] or [[incorrect]] marker"
        return SingleVerdictWithReference(explanation=explanation, rating=rating,
                                          correct=word == "correct"), None
    if schema is SingleVerdict:
        return SingleVerdict(explanation=explanation, rating=rating), None
    return None, f"no marker form for {schema.__name__}"


def parse_verdict(text: str, schema: type[BaseModel], prompt: str = ""
                  ) -> tuple[BaseModel | None, str | None]:
    """A validated verdict, or None and the reason (one line). ``prompt``: every text the judge was
    shown; verdict-like text copied from it is ignored (see the module docstring)."""
    if not text.strip():
        return None, "empty reply"
    verdict, json_error = parse_json_verdict(text, schema, prompt)
    if verdict is not None:
        return verdict, None
    verdict, marker_error = parse_marker_verdict(text, schema, prompt)
    if verdict is not None:
        return verdict, None
    return None, json_error or marker_error
