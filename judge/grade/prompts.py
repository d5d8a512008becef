"""Judge prompts: load the templates in ``prompts/``, fence untrusted text, render messages.

A template is a text file with a ``=== system ===`` section and a ``=== user ===`` section and named
placeholders ``{{name}}``. There are eight: ``single`` / ``pair``, each optionally ``-ref`` (a
reference answer is shown: math, reasoning, coding, or any question that has one) and
``-multi-turn`` (turn 2 and later: the whole dialogue is shown and only the last reply is judged).
Each rendered prompt carries its template's name and the sha256 of the template file, which every
judgment records.

Fencing: every piece of text that did not come from us (question turns, answers, references) is
wrapped as ``<<<BEGIN LABEL #id>>>`` ... ``<<<END LABEL #id>>>`` where ``id`` is derived from the
text itself (sha256), and re-derived until the closing line does not occur in the text. So a fence
cannot be closed from inside, and nothing in an answer can pose as the prompt's own structure.
Placeholders are filled in one pass, so text inside a value is never scanned for placeholders.

Rendering functions are pure: they take a loaded `PromptSet` and return a `RenderedPrompt`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from judge.errors import ConfigError, InputFileError
from judge.schemas import PairVerdict, Question, SingleVerdict, SingleVerdictWithReference

PromptKind = Literal["single", "pair"]

TEMPLATE_NAMES: tuple[str, ...] = tuple(
    f"{kind}{ref}{multi}" for kind in ("single", "pair") for ref in ("", "-ref")
    for multi in ("", "-multi-turn"))

# the placeholders each template must use, exactly
_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "single": frozenset({"question", "answer"}),
    "single-ref": frozenset({"question", "reference", "answer"}),
    "single-multi-turn": frozenset({"turn", "dialogue"}),
    "single-ref-multi-turn": frozenset({"turn", "dialogue", "reference"}),
    "pair": frozenset({"question", "answer_a", "answer_b"}),
    "pair-ref": frozenset({"question", "reference", "answer_a", "answer_b"}),
    "pair-multi-turn": frozenset({"turn", "dialogue_a", "dialogue_b"}),
    "pair-ref-multi-turn": frozenset({"turn", "dialogue_a", "dialogue_b", "reference"}),
}
_PLACEHOLDER_RE = re.compile(r"\{\{([a-z_]+)\}\}")
_SECTION_RE = re.compile(r"^=== (system|user) ===[ \t]*$", re.MULTILINE)


def prompts_dir() -> Path:
    """Where templates live: ``$JUDGE_PROMPTS_DIR`` or the project's ``prompts/`` folder."""
    env = os.environ.get("JUDGE_PROMPTS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "prompts"


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready to send: the template it came from and its two messages."""

    name: str
    sha256: str
    system: str
    user: str

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    user: str
    sha256: str  # of the template file's bytes

    def render(self, values: dict[str, str]) -> RenderedPrompt:
        """Fill every placeholder in one pass (values are never re-scanned)."""
        needed = _PLACEHOLDERS[self.name]
        if set(values) != needed:
            raise ValueError(f"template {self.name} takes {sorted(needed)}, got {sorted(values)}")

        def fill(text: str) -> str:
            return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], text)

        return RenderedPrompt(self.name, self.sha256, fill(self.system), fill(self.user))


def parse_template(name: str, text: str, path: Path | str = "<string>") -> PromptTemplate:
    """Split a template file into its sections and check its placeholders."""
    if name not in _PLACEHOLDERS:
        raise ConfigError(f"unknown prompt template {name!r}; known: {', '.join(TEMPLATE_NAMES)}")
    marks = list(_SECTION_RE.finditer(text))
    if [m.group(1) for m in marks] != ["system", "user"]:
        raise InputFileError("a prompt template needs a '=== system ===' line, then a "
                             "'=== user ===' line", path=path)
    system = text[marks[0].end():marks[1].start()].strip("\n")
    user = text[marks[1].end():].strip("\n")
    if text[:marks[0].start()].strip():
        raise InputFileError("text before the '=== system ===' line", path=path)
    used = set(_PLACEHOLDER_RE.findall(system)) | set(_PLACEHOLDER_RE.findall(user))
    needed = _PLACEHOLDERS[name]
    if used != needed:
        missing, unknown = sorted(needed - used), sorted(used - needed)
        raise InputFileError(f"template {name} must use exactly {sorted(needed)} "
                             f"(missing {missing}, unknown {unknown})", path=path)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return PromptTemplate(name=name, system=system, user=user, sha256=digest)


@dataclass(frozen=True)
class PromptSet:
    """The eight templates, loaded once."""

    templates: dict[str, PromptTemplate]

    def get(self, kind: PromptKind, *, reference: bool, turn: int) -> PromptTemplate:
        return self.templates[template_name(kind, reference=reference, multi_turn=turn > 1)]


def template_name(kind: PromptKind, *, reference: bool, multi_turn: bool) -> str:
    return f"{kind}{'-ref' if reference else ''}{'-multi-turn' if multi_turn else ''}"


def load_prompt_set(directory: Path | None = None) -> PromptSet:
    """Read and check all eight templates from ``directory`` (default `prompts_dir()`)."""
    d = directory or prompts_dir()
    templates = {}
    for name in TEMPLATE_NAMES:
        path = d / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"prompt template {path} not found; set JUDGE_PROMPTS_DIR to a folder "
                              f"holding {', '.join(n + '.txt' for n in TEMPLATE_NAMES)}") from None
        except UnicodeDecodeError as err:
            raise InputFileError(f"not valid UTF-8 ({err.reason})", path=path) from None
        templates[name] = parse_template(name, text, path)
    return PromptSet(templates)


# --------------------------------------------------------------------------- fencing


def fence(label: str, text: str) -> str:
    """Wrap ``text`` so that nothing inside it can close the fence or pose as the prompt."""
    if not re.fullmatch(r"[A-Z0-9 ]+", label):
        raise ValueError(f"fence label must be upper-case words: {label!r}")
    tag = hashlib.sha256(f"{label}\0{text}".encode("utf-8")).hexdigest()[:12]
    while f"<<<END {label} #{tag}>>>" in text:  # practically never; keeps the guarantee absolute
        tag = hashlib.sha256(f"{tag}\0{text}".encode("utf-8")).hexdigest()[:12]
    return f"<<<BEGIN {label} #{tag}>>>\n{text}\n<<<END {label} #{tag}>>>"


def dialogue(turns: list[str], answers: list[str], turn: int, assistant: str = "ASSISTANT") -> str:
    """Turns 1..``turn`` of a conversation, each user request and assistant reply fenced."""
    if turn > len(turns) or turn > len(answers):
        raise ValueError(f"turn {turn} is beyond the conversation ({len(turns)} turns, "
                         f"{len(answers)} answers)")
    blocks = []
    for i in range(turn):
        blocks.append(fence(f"USER TURN {i + 1}", turns[i]))
        blocks.append(fence(f"{assistant} TURN {i + 1}", answers[i]))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------- rendering


def reference_for(question: Question, turn: int) -> str | None:
    """The reference answer of ``turn`` (1-based), or None when the question has none for it."""
    if not question.reference or turn > len(question.reference):
        return None
    ref = question.reference[turn - 1]
    return ref if ref.strip() else None


def single_schema(reference: bool) -> type[BaseModel]:
    return SingleVerdictWithReference if reference else SingleVerdict


def render_single(prompts: PromptSet, question: Question, answers: list[str], turn: int
                  ) -> tuple[RenderedPrompt, type[BaseModel]]:
    """The prompt grading the answer to ``turn`` (1-based), and the verdict schema it asks for."""
    ref = reference_for(question, turn)
    template = prompts.get("single", reference=ref is not None, turn=turn)
    if turn == 1:
        values = {"question": fence("QUESTION", question.turns[0]), "answer": fence("ANSWER", answers[0])}
    else:
        values = {"turn": str(turn), "dialogue": dialogue(question.turns, answers, turn)}
    if ref is not None:
        label = "REFERENCE ANSWER" if turn == 1 else f"REFERENCE ANSWER TO TURN {turn}"
        values["reference"] = fence(label, ref)
    return template.render(values), single_schema(ref is not None)


def render_pair(prompts: PromptSet, question: Question, answers_a: list[str], answers_b: list[str],
                turn: int) -> RenderedPrompt:
    """The prompt comparing answer A with answer B at ``turn``; the schema is `PairVerdict`."""
    ref = reference_for(question, turn)
    template = prompts.get("pair", reference=ref is not None, turn=turn)
    if turn == 1:
        values = {"question": fence("QUESTION", question.turns[0]),
                  "answer_a": fence("ANSWER A", answers_a[0]),
                  "answer_b": fence("ANSWER B", answers_b[0])}
    else:
        values = {"turn": str(turn),
                  "dialogue_a": dialogue(question.turns, answers_a, turn, "ASSISTANT A"),
                  "dialogue_b": dialogue(question.turns, answers_b, turn, "ASSISTANT B")}
    if ref is not None:
        label = "REFERENCE ANSWER" if turn == 1 else f"REFERENCE ANSWER TO TURN {turn}"
        values["reference"] = fence(label, ref)
    return template.render(values)


PAIR_SCHEMA: type[BaseModel] = PairVerdict
