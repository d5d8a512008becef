"""Conversation templating shared by generation and divergence."""

from __future__ import annotations

import pytest

from judge.generate.chat import Message, conversation, prompt_ids


class PlainTokenizer:
    """A tokenizer without a chat template: one id per character, BOS = 1, EOS = 2."""

    chat_template = None
    bos_token_id = 1
    eos_token_id = 2

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if i > 2)


def test_conversation_alternates_and_uses_own_answers():
    msgs = conversation(["q1", "q2"], ["a1"], system_prompt="be brief")
    assert msgs == [Message("system", "be brief"), Message("user", "q1"), Message("assistant", "a1"),
                    Message("user", "q2")]
    assert conversation(["q1", "q2"], []) == [Message("user", "q1")]
    with pytest.raises(ValueError):
        conversation(["q1"], ["a1"])


def test_plain_transcript_prepends_bos():
    ids = prompt_ids(PlainTokenizer(), conversation(["hi"], []))
    assert ids[0] == 1
    assert "".join(chr(i) for i in ids[1:]) == "User: hi\n\nAssistant:"


@pytest.mark.slow
def test_real_chat_template(base_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_model.path)
    ids = prompt_ids(tok, conversation(["What is 2+2?"], []))
    text = tok.decode(ids)
    assert "What is 2+2?" in text and text.rstrip().endswith("assistant")
    two = prompt_ids(tok, conversation(["What is 2+2?", "And 3+3?"], ["4"]))
    assert two[: len(ids)] == ids  # turn 2's prompt extends turn 1's
