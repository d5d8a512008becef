"""Conversations to token ids, identically for every model and every stage.

Generation and divergence both call `prompt_ids`, so the tokens a model was prompted with during
generation are exactly the tokens teacher-forced later. The tokenizer's own chat template is used;
a base model without one (e.g. Gemma 3 270M base) gets a plain ``User:/Assistant:`` transcript with
the BOS token prepended, since such tokenizers do not add it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ChatRole = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: ChatRole
    content: str


def conversation(turns: list[str], answers: list[str], system_prompt: str | None = None) -> list[Message]:
    """Messages for answering turn ``len(answers) + 1``: system?, then user/assistant alternating."""
    if len(answers) >= len(turns):
        raise ValueError("every turn already has an answer")
    msgs: list[Message] = [Message("system", system_prompt)] if system_prompt else []
    for i, answer in enumerate(answers):
        msgs += [Message("user", turns[i]), Message("assistant", answer)]
    msgs.append(Message("user", turns[len(answers)]))
    return msgs


def _plain_transcript(messages: list[Message]) -> str:
    parts = []
    for m in messages:
        label = {"system": "System", "user": "User", "assistant": "Assistant"}[m.role]
        parts.append(f"{label}: {m.content}\n\n")
    return "".join(parts) + "Assistant:"


def prompt_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """Token ids of ``messages`` followed by the assistant generation prompt."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True, tokenize=True, return_dict=False,
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # some versions return a BatchEncoding
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    ids = tokenizer.encode(_plain_transcript(messages), add_special_tokens=False)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return [int(i) for i in ids]


def stop_token_ids(tokenizer: Any, model_dir: str | None = None) -> list[int]:
    """End-of-turn ids: the tokenizer's EOS plus any listed in the model's generation_config."""
    ids: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    if model_dir:
        import json
        from pathlib import Path

        gc = Path(model_dir) / "generation_config.json"
        if gc.is_file():
            eos = json.loads(gc.read_text()).get("eos_token_id")
            if isinstance(eos, int):
                ids.add(eos)
            elif isinstance(eos, list):
                ids.update(int(e) for e in eos)
    return sorted(ids)


def decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True).strip()
