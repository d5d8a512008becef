"""Final-answer extraction and the checks that need no code execution (number, choice, order,
mapping, json).

Rules (documented in questions/README.md, "Checks"):

* **Final segment.** The part of an answer that states its result: the content of the last
  ``\\boxed{...}``; else the text after the last "answer is" / "answer:" (case-insensitive) up to
  the end of that sentence (a period followed by a space) or line; else the last non-empty line.
  Markdown emphasis (``*``, ``_``, backticks) is removed first.
* **Numbers.** Integers and decimals (thousands separators: a comma or a thin space, ``1,640``, when the
  groups have three digits), fractions ``a/b`` (also LaTeX ``\\frac{a}{b}``), mixed numbers are not
  read; a leading minus counts only when attached to the digits (``-7``; not ``x - 7``); ``p%`` is
  read as both ``p/100`` and ``p``. A single-value check takes the LAST number of the final segment;
  a set check needs the numbers of the final segment, as a set, to equal the expected set.
* **Choice.** The last option named (whole words, case- and accent-insensitive, longest option
  first) in the final segment must be an accepted one; when the final segment is only the last
  line (no explicit answer) and names none, the last option named in the whole answer counts.
* **Order.** First mentions of the items, in the final segment when it names them all, else in the
  last paragraph that does, else in the whole answer, must come in the expected order.
* **Mapping.** Within the final segment (else the whole answer), the last clause (split at commas,
  semicolons, sentence ends and newlines) naming a key must name all of its values and none of
  another key's values.
* **JSON.** The last fenced ``json`` block, else the longest JSON object or array found in the text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel

from judge.schemas import ChoiceCheck, JsonCheck, MappingCheck, NumberCheck, OrderCheck

Status = Literal["pass", "fail", "error"]


class Outcome(BaseModel):
    """What one check said about one answer (before it becomes a `judge.schemas` record)."""

    status: Status
    extracted: str | None = None  # the value, choice, order or JSON the check read
    reason: str = ""


# --------------------------------------------------------------------------- final segment

_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER = re.compile(r"answer(?:\s+is)?\s*[:=]?\s*", re.IGNORECASE)
_ANSWER_MARK = re.compile(r"\banswer\s*(?:is\b|:)", re.IGNORECASE)


def _strip_markup(text: str) -> str:
    return re.sub(r"[*_`]", "", text)


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    i, depth = starts[-1], 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return text[i:]


def stated_answer(text: str) -> tuple[str, bool]:
    """The final segment (module docstring) and whether the answer stated it explicitly
    (``\\boxed{}`` or "answer is/answer:") rather than by position (the last line)."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed, True
    text = _strip_markup(text)
    marks = list(_ANSWER_MARK.finditer(text))
    if marks:
        rest = text[marks[-1].end():].lstrip(" :=\t")
        line = re.split(r"\.(?:\s|$)", rest.split("\n", 1)[0], maxsplit=1)[0].strip()
        if line:
            return line, True
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else ""), False


def final_segment(text: str) -> str:
    """The part of ``text`` that states the final answer (module docstring)."""
    return stated_answer(text)[0]


# --------------------------------------------------------------------------- numbers

_NUM = re.compile(
    r"(?<![\w.])(?P<sign>-|−)?(?P<int>\d{1,3}(?:[,\u2009\u202f]\d{3})+|\d+)(?:\.(?P<dec>\d+))?"
    r"(?:\s*/\s*(?P<den>\d+)(?!\d|\.\d))?(?P<pct>\s*%)?")
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")


def numbers(text: str) -> list[list[Fraction]]:
    """Every number stated in ``text``, in order; each entry lists the values it may mean (a
    percentage means both p/100 and p)."""
    text = _FRAC.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
    out: list[list[Fraction]] = []
    for m in _NUM.finditer(text):
        start = m.start()
        if m.group("sign") and start > 0 and text[start - 1].isalnum():
            continue
        digits = re.sub(r"[,\u2009\u202f]", "", m.group("int"))
        value = Fraction(digits + ("." + m.group("dec") if m.group("dec") else ""))
        if m.group("den"):
            den = int(m.group("den"))
            if den == 0:
                continue
            value /= den
        if m.group("sign"):
            value = -value
        out.append([value / 100, value] if m.group("pct") else [value])
    return out


def _close(x: Fraction, v: Fraction, tolerance: float) -> bool:
    if x == v:
        return True
    return abs(float(x - v)) <= tolerance * max(abs(float(v)), 1e-12)


def _show(vals: list[Fraction]) -> str:
    v = vals[-1]
    return str(v) if v.denominator == 1 else f"{v} ({float(v):.6g})"


def check_number(text: str, check: NumberCheck) -> Outcome:
    seg = final_segment(text)
    found = numbers(seg)
    if not found:
        return Outcome(status="fail", reason="no number in the final answer")
    if check.value is not None:
        want = Fraction(check.value)
        last = found[-1]
        ok = any(_close(x, want, check.tolerance) for x in last)
        return Outcome(status="pass" if ok else "fail", extracted=_show(last),
                       reason="" if ok else f"expected {check.value}")
    wants = [Fraction(v) for v in check.values or []]
    matched_want = [any(any(_close(x, w, check.tolerance) for x in f) for f in found) for w in wants]
    extra = [f for f in found if not any(_close(x, w, check.tolerance) for x in f for w in wants)]
    extracted = ", ".join(_show(f) for f in found)
    if all(matched_want) and not extra:
        return Outcome(status="pass", extracted=extracted)
    missing = [v for v, ok in zip(check.values or [], matched_want) if not ok]
    reason = (f"missing {', '.join(missing)}" if missing else "") + \
        ("; " if missing and extra else "") + \
        (f"unexpected {', '.join(_show(f) for f in extra)}" if extra else "")
    return Outcome(status="fail", extracted=extracted, reason=reason)


# --------------------------------------------------------------------------- words

def _fold(text: str) -> str:
    """Lower case without accents, so "Chloé" and "chloe" match."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _word_re(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(_fold(word)) + r"(?!\w)")


def _mentions(text: str, words: list[str]) -> list[tuple[int, str]]:
    """(position, word) of every mention, the longest word winning where mentions overlap."""
    folded = _fold(text)
    hits: list[tuple[int, int, str]] = []
    for w in sorted(words, key=len, reverse=True):
        for m in _word_re(w).finditer(folded):
            if not any(s <= m.start() < e or s < m.end() <= e for s, e, _ in hits):
                hits.append((m.start(), m.end(), w))
    return sorted((s, w) for s, _, w in hits)


def check_choice(text: str, check: ChoiceCheck) -> Outcome:
    segment, explicit = stated_answer(text)
    hits = _mentions(segment, check.options)
    if not hits and explicit:
        return Outcome(status="fail", extracted=segment[:200],
                       reason="the stated answer names none of the options")
    hits = hits or _mentions(_strip_markup(text), check.options)
    if not hits:
        return Outcome(status="fail", reason="names none of the options")
    pick = hits[-1][1]
    ok = pick in check.answer
    return Outcome(status="pass" if ok else "fail", extracted=pick,
                   reason="" if ok else f"expected {' or '.join(check.answer)}")


def check_order(text: str, check: OrderCheck) -> Outcome:
    plain = _strip_markup(text)
    paragraphs = [p for p in re.split(r"\n\s*\n", plain) if p.strip()]
    candidates = [final_segment(text), *reversed(paragraphs), plain]
    for part in candidates:
        hits = _mentions(part, check.answer)
        named = {w for _, w in hits}
        if named == set(check.answer):
            seen: list[str] = []
            for _, w in hits:
                if w not in seen:
                    seen.append(w)
            ok = seen == list(check.answer)
            return Outcome(status="pass" if ok else "fail", extracted=" > ".join(seen),
                           reason="" if ok else f"expected {' > '.join(check.answer)}")
    return Outcome(status="fail", reason="does not name every item")


def check_mapping(text: str, check: MappingCheck) -> Outcome:
    every_value = {v for vs in check.answer.values() for v in vs}
    for part in (final_segment(text), _strip_markup(text)):
        clauses = [c for c in re.split(r"[,;\n]|\.(?:\s|$)", part) if c.strip()]
        found: dict[str, str] = {}
        for key in check.answer:
            pat = _word_re(key)
            named = [c for c in clauses if pat.search(_fold(c))]
            if named:
                found[key] = named[-1].strip()
        if len(found) < len(check.answer):
            continue
        wrong = []
        for key, values in check.answer.items():
            said = {w for _, w in _mentions(found[key], sorted(every_value))}
            if not set(values) <= said or said - set(values):
                wrong.append(f"{key}: {', '.join(sorted(said)) or 'nothing'}")
        extracted = "; ".join(found.values())
        if wrong:
            return Outcome(status="fail", extracted=extracted, reason="wrong for " + "; ".join(wrong))
        return Outcome(status="pass", extracted=extracted)
    return Outcome(status="fail", reason="does not name every key")


# --------------------------------------------------------------------------- json

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)


def find_json(text: str) -> object | None:
    """The answer's JSON (module docstring); None when there is none."""
    blocks = [b for b in _FENCE.findall(text)]
    for block in reversed(blocks):
        try:
            return json.loads(block)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    best: tuple[int, object] | None = None
    for m in re.finditer(r"[\[{]", text):
        try:
            value, end = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(value, (dict, list)) and (best is None or end - m.start() > best[0]):
            best = (end - m.start(), value)
    return best[1] if best else None


def _same(got: object, want: object, tolerance: float) -> bool:
    if want is None or isinstance(want, bool) or isinstance(got, bool):
        return got is want or got == want and type(got) is type(want)
    if isinstance(want, (int, float)):
        if isinstance(got, str):
            try:
                got = float(got.replace(",", ""))
            except ValueError:
                return False
        return isinstance(got, (int, float)) and abs(got - want) <= tolerance
    if isinstance(got, str) and isinstance(want, str):
        return re.sub(r"\s+", "", _fold(got)) == re.sub(r"\s+", "", _fold(want))
    return got == want


def check_json(text: str, check: JsonCheck) -> Outcome:
    value = find_json(text)
    if value is None:
        return Outcome(status="fail", reason="no JSON found")
    shown = json.dumps(value, ensure_ascii=False)[:200]
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and check.count is not None and len(value) != check.count:
        return Outcome(status="fail", extracted=shown,
                       reason=f"{len(value)} entries, expected {check.count}")
    if not isinstance(value, list) and check.count is not None:
        return Outcome(status="fail", extracted=shown, reason="an object, expected a list")
    if not items and (check.required or check.match):
        return Outcome(status="fail", extracted=shown, reason="no entries")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return Outcome(status="fail", extracted=shown, reason=f"entry {i + 1} is not an object")
        missing = [k for k in check.required if k not in item]
        if missing:
            return Outcome(status="fail", extracted=shown,
                           reason=f"entry {i + 1} lacks {', '.join(missing)}")
    for want in check.match:
        if not any(isinstance(it, dict) and all(k in it and _same(it[k], v, check.tolerance)
                                                for k, v in want.items()) for it in items):
            return Outcome(status="fail", extracted=shown,
                           reason=f"no entry matches {json.dumps(want, ensure_ascii=False)}")
    return Outcome(status="pass", extracted=shown)
