"""Judging one item: a single grade (`judge_single`) or a swapped pairwise game (`judge_pair`).

The items name what is judged: `SingleItem` (one role's answer to one turn) and `PairItem` (the
baseline against another answer at one turn). ``judge_pair`` plays the game twice, baseline in
position A (game 1, FastChat's g1) and then in position B (game 2), maps A/B back to roles
(``"compressed"`` stands for whichever non-baseline side won) and keeps a winner only when both
orders agree (else ``"tie"``, ``consistent=False``). A failed judgment is a row with its status and
raw text, ``score -1``: never a grade, never a tie. Used by the grade stage and the judge's
self-test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from judge.grade.client import JudgeClient, JudgeResult
from judge.grade.prompts import PAIR_SCHEMA, PromptSet, render_pair, render_single
from judge.schemas import Answer, PairGame, PairJudgment, PairVerdict, Question, SingleJudgment, Winner

_STRENGTH = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": 1, "B>>A": 2}
_FASTCHAT = {"baseline": "model_1", "compressed": "model_2", "tie": "tie"}


@dataclass(frozen=True)
class SingleItem:
    role: str
    question: Question
    answer: Answer
    turn: int


@dataclass(frozen=True)
class PairItem:
    role_2: str
    question: Question
    baseline: Answer
    other: Answer
    turn: int


def _side(role: str) -> Winner:
    return "baseline" if role == "baseline" else "compressed"


def _game(a_role: str, b_role: str, user_prompt: str, result: JudgeResult) -> PairGame:
    winner: Winner | None = None
    strength = None
    verdict = result.verdict if result.status == "ok" else None
    if isinstance(verdict, PairVerdict):
        label = verdict.verdict
        winner = "tie" if label == "A=B" else _side(a_role if label.startswith("A") else b_role)
        strength = _STRENGTH[label]
    return PairGame(a_role=a_role, b_role=b_role, user_prompt=user_prompt, judgment=result.raw,
                    status=result.status, error=result.error, verdict=verdict, winner=winner,
                    strength=strength, usage=result.usage, attempts=result.attempts)


async def judge_single(client: JudgeClient, prompts: PromptSet, item: SingleItem) -> SingleJudgment:
    prompt, schema = render_single(prompts, item.question, item.answer.turns, item.turn)
    result = await client.judge(prompt.messages, schema)
    verdict: Any = result.verdict if result.status == "ok" else None
    return SingleJudgment(
        question_id=item.answer.question_id, model=item.answer.model_id,
        judge=(client.model, prompt.name), user_prompt=prompt.user, judgment=result.raw,
        score=float(verdict.rating) if verdict is not None else -1.0, turn=item.turn,
        tstamp=time.time(), role=item.role, status=result.status, error=result.error,
        verdict=verdict, correct=getattr(verdict, "correct", None), prompt_sha256=prompt.sha256,
        usage=result.usage, attempts=result.attempts)


async def judge_pair(client: JudgeClient, prompts: PromptSet, item: PairItem) -> PairJudgment:
    base, other, turn = item.baseline.turns, item.other.turns, item.turn
    p1 = render_pair(prompts, item.question, base, other, turn)  # game 1: baseline is A
    p2 = render_pair(prompts, item.question, other, base, turn)  # game 2: baseline is B
    r1, r2 = await asyncio.gather(client.judge(p1.messages, PAIR_SCHEMA),
                                  client.judge(p2.messages, PAIR_SCHEMA))
    g1 = _game("baseline", item.role_2, p1.user, r1)
    g2 = _game(item.role_2, "baseline", p2.user, r2)
    failed = [g for g in (g1, g2) if g.status != "ok"]
    winner: Winner | None = None
    consistent = None
    if not failed:
        consistent = g1.winner == g2.winner
        winner = g1.winner if consistent else "tie"
    return PairJudgment(
        question_id=item.question.question_id, model_1=item.baseline.model_id,
        model_2=item.other.model_id,
        g1_winner=_FASTCHAT[g1.winner] if g1.winner else "error",  # type: ignore[arg-type]
        g2_winner=_FASTCHAT[g2.winner] if g2.winner else "error",  # type: ignore[arg-type]
        judge=(client.model, p1.name), g1_user_prompt=p1.user, g1_judgment=r1.raw,
        g2_user_prompt=p2.user, g2_judgment=r2.raw, turn=turn, tstamp=time.time(),
        role_1="baseline", role_2=item.role_2, games=[g1, g2],
        status=failed[0].status if failed else "ok", winner=winner, consistent=consistent,
        prompt_sha256=p1.sha256)
