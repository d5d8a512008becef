"""The judge's self-test, part 1: planted degradations of the baseline's own answers.

Each probe takes one baseline answer (one turn of one question) and makes it worse in a way whose
ground truth is known, so a judge that can see anything must prefer the intact answer:

  ``truncated``     the first 40% of the answer's characters, cut back to a word boundary
                    (answers of at least 12 words);
  ``shuffled``      its sentences in another order (answers of at least 3 sentences);
  ``repetition``    a repetition loop appended: its last sentence (at most 120 characters) 8 times;
  ``wrong_number``  its final number changed (+1 in the last integer digit place), only where that
                    number equals the final number of the question's reference answer, so the
                    intact answer is right and the probe is wrong;
  ``substituted``   the answer to the same turn of another question (another category if any);
  ``refusal``       replaced by a refusal.

`make_probes` picks ``n`` probes deterministically from the run's seed: kinds in turn (round
robin, so the budget is spread over every kind that has a candidate), each kind taking its next
candidate answer in a seeded order, preferring answers no other probe has used yet. Which issue
kinds of the closed vocabulary (`judge.schemas.ISSUE_KINDS`) count as naming a probe rightly is
``EXPECTED_ISSUES``. Nothing here calls the judge: `judge.grade.selftest` does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from judge.schemas import Answer, IssueKind, Probe, ProbeKind, Question

DEFAULT_PROBES = 24  # about 72 judge requests: 24 single grades + 48 games (the intact grades are cached)
TRUNCATE_FRACTION = 0.4
MIN_WORDS_TO_TRUNCATE = 12
MIN_SENTENCES_TO_SHUFFLE = 3
LOOP_REPEATS = 8
LOOP_MAX_CHARS = 120
REFUSAL = "I'm sorry, but I can't help with that request."

KIND_ORDER: tuple[ProbeKind, ...] = ("truncated", "shuffled", "repetition", "wrong_number",
                                     "substituted", "refusal")
EXPECTED_ISSUES: dict[str, tuple[IssueKind, ...]] = {
    "truncated": ("incomplete_or_truncated",),
    "shuffled": ("incoherent",),
    "repetition": ("repetition_or_looping",),
    "wrong_number": ("reasoning_or_math_error", "factual_error"),
    "substituted": ("instruction_not_followed",),
    "refusal": ("refusal_or_safety_change", "instruction_not_followed"),
}

_SENTENCE_RE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n+|$)")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

Item = tuple[Question, Answer, int]  # (question, baseline answer, turn starting at 1)


# --------------------------------------------------------------------------- degradations


def truncated(text: str) -> str | None:
    """The first 40% of the characters, cut back to the last whitespace; None when too short."""
    if len(text.split()) < MIN_WORDS_TO_TRUNCATE:
        return None
    cut = text[:int(len(text) * TRUNCATE_FRACTION)]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:space] if space > 0 else cut).rstrip()


def sentences(text: str) -> list[str]:
    """Sentences (and lines) of ``text``, each stripped; blank pieces dropped."""
    return [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip()]


def shuffled(text: str, rng: random.Random) -> str | None:
    """The sentences in another order (never the original one); None with fewer than 3."""
    parts = sentences(text)
    if len(parts) < MIN_SENTENCES_TO_SHUFFLE or len(set(parts)) < 2:
        return None
    order = list(range(len(parts)))
    while [parts[i] for i in order] == parts:
        rng.shuffle(order)
    return " ".join(parts[i] for i in order)


def repetition(text: str) -> str | None:
    """The answer with its last sentence appended ``LOOP_REPEATS`` times."""
    parts = sentences(text)
    if not parts:
        return None
    loop = parts[-1][:LOOP_MAX_CHARS].strip()
    return text.rstrip() + "".join(f" {loop}" for _ in range(LOOP_REPEATS))


def _number(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def wrong_number(text: str, reference: str | None) -> str | None:
    """The final number made wrong, when it equals the reference's final number; else None."""
    if not reference:
        return None
    mine, ref = _NUMBER_RE.findall(text), _NUMBER_RE.findall(reference)
    if not mine or not ref:
        return None
    value, target = _number(mine[-1]), _number(ref[-1])
    if value is None or target is None or value != target:
        return None
    token = mine[-1]
    whole, dot, frac = token.partition(".")
    new = f"{int(whole.replace(',', '')) + 1}{dot}{frac}"
    at = text.rfind(token)
    return text[:at] + new + text[at + len(token):]


# --------------------------------------------------------------------------- choosing probes


def _candidates(items: list[Item], kind: ProbeKind, rng: random.Random
                ) -> list[tuple[Item, Callable[[], str | None]]]:
    """(item, maker) pairs for ``kind``; a maker returns the degraded text or None."""
    out: list[tuple[Item, Callable[[], str | None]]] = []
    for item in items:
        q, a, t = item
        text = a.turns[t - 1]
        if kind == "truncated":
            out.append((item, lambda text=text: truncated(text)))
        elif kind == "shuffled":
            seed = rng.random()
            out.append((item, lambda text=text, seed=seed: shuffled(text, random.Random(seed))))
        elif kind == "repetition":
            out.append((item, lambda text=text: repetition(text)))
        elif kind == "wrong_number":
            ref = q.reference[t - 1] if q.reference and t <= len(q.reference) else None
            out.append((item, lambda text=text, ref=ref: wrong_number(text, ref)))
        elif kind == "substituted":
            others = [o for o in items if o[0].key != q.key and o[2] == t
                      and o[1].turns[t - 1].strip() != text.strip()]
            other_cat = [o for o in others if o[0].category != q.category]
            pool = other_cat or others
            if pool:
                pick = pool[rng.randrange(len(pool))]
                out.append((item, lambda pick=pick, t=t: pick[1].turns[t - 1]))
        else:
            out.append((item, lambda text=text: REFUSAL if text.strip() != REFUSAL else None))
    return out


def make_probes(questions: list[Question], baseline: dict[str, Answer], n: int, *,
                seed: int = 0) -> list[Probe]:
    """Up to ``n`` probes from the baseline's answers (fewer when too few answers qualify)."""
    if n <= 0:
        return []
    rng = random.Random(f"judge-probes-{seed}")
    items: list[Item] = []
    for q in questions:
        a = baseline.get(q.key)
        if a is None:
            continue
        for t in range(1, min(len(q.turns), len(a.turns)) + 1):
            if a.turns[t - 1].strip():
                items.append((q, a, t))
    pools: dict[ProbeKind, list[tuple[Item, Callable[[], str | None]]]] = {}
    for kind in KIND_ORDER:
        cands = _candidates(items, kind, rng)
        rng.shuffle(cands)
        pools[kind] = cands
    used: set[tuple[str, int]] = set()
    probes: list[Probe] = []
    while len(probes) < n and any(pools.values()):
        for kind in KIND_ORDER:
            if len(probes) >= n:
                break
            pool = pools[kind]
            while pool:
                # prefer an answer no probe has used yet; else the next one in the seeded order
                i = next((j for j, (it, _) in enumerate(pool) if (it[0].key, it[2]) not in used), 0)
                (q, a, t), make = pool.pop(i)
                text = make()
                if text is None or not text.strip() or text.strip() == a.turns[t - 1].strip():
                    continue
                used.add((q.key, t))
                probes.append(Probe(probe_id=f"{kind}:{q.key}:{t}", kind=kind,
                                    question_id=q.question_id, turn=t,
                                    expected_issues=list(EXPECTED_ISSUES[kind]), text=text))
                break
    return probes
