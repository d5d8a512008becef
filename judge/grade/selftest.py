"""The judge's self-test, part 2: judging the planted degradations -> ``RUN/judgments/probes.jsonl``.

For each probe (`judge.grade.probes`), with the run's judge, in the run's grading mode:
  * single (mode ``single``/``both``): the degraded answer is graded alone, and so is the intact
    one -- with exactly the prompt of its own grade in ``single.jsonl``, so that request is a cache
    hit once the baseline is graded;
  * pairwise (mode ``pairwise``/``both``): intact (role ``baseline``) against degraded (role
    ``probe``), played in both orders, as every other game.
One `ProbeJudgment` row per probe is appended as soon as it is finished. Resume: a probe is skipped
when its latest row (for this judge) is ``ok``, holds the same probe and mode, and was made with
the current templates; anything else is judged again (cached replies cost nothing). Requests go
through the grading stage's client, so they are counted in its totals. Scoring the self-test
(sensitivity and its intervals) is the scorecard's job (`judge.scorecard.selftest`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from judge.grade.client import JudgeClient
from judge.grade.probes import make_probes
from judge.grade.prompts import PromptSet, render_pair, render_single
from judge.grade.judging import PairItem, SingleItem, judge_pair, judge_single
from judge.schemas import Answer, AnswerChoice, Probe, ProbeJudgment, Question
from judge.store import Run, append_jsonl, read_jsonl

PROBE_ROLE = "probe"


@dataclass(frozen=True)
class ProbeItem:
    probe: Probe
    question: Question
    intact: Answer  # the baseline's answer
    degraded: Answer  # its turns up to the probe's, the last one degraded


@dataclass
class ProbePlan:
    items: list[ProbeItem] = field(default_factory=list)
    skipped: int = 0
    mode: str = "both"


def degraded_answer(probe: Probe, intact: Answer) -> Answer:
    """The baseline answer with turn ``probe.turn`` replaced (later turns dropped)."""
    turns = list(intact.turns[:probe.turn - 1]) + [probe.text]
    return Answer(question_id=intact.question_id, answer_id=f"{intact.answer_id}:{probe.probe_id}",
                  model_id=f"{intact.model_id}+probe", choices=[AnswerChoice(turns=turns)],
                  tstamp=intact.tstamp, role=PROBE_ROLE, category=intact.category)


def latest_probes(run: Run) -> dict[tuple[str, str], ProbeJudgment]:
    """(probe id, judge model) -> the row that counts: the last one in file order."""
    path = run.probes_path
    if not path.exists():
        return {}
    return {(r.probe.probe_id, r.judge): r for r in read_jsonl(path, ProbeJudgment)}


def _templates_current(row: ProbeJudgment, item: ProbeItem, prompts: PromptSet) -> bool:
    q, t = item.question, item.probe.turn
    want_single = row.mode in ("single", "both")
    want_pair = row.mode in ("pairwise", "both")
    if want_single:
        sha = render_single(prompts, q, item.degraded.turns, t)[0].sha256
        if row.single is None or row.intact is None or row.single.prompt_sha256 != sha:
            return False
    if want_pair:
        sha = render_pair(prompts, q, item.intact.turns, item.degraded.turns, t).sha256
        if row.pair is None or row.pair.prompt_sha256 != sha:
            return False
    return True


def plan_probes(run: Run, questions: list[Question], baseline: dict[str, Answer], judge_model: str,
                *, n: int, mode: str, prompts: PromptSet) -> ProbePlan:
    """The probes of this run (from its seed) that are not already judged ok by this judge."""
    manifest = run.load_manifest()
    probes = make_probes(questions, baseline, n, seed=manifest.seed if manifest else 0)
    by_id = {q.key: q for q in questions}
    done = latest_probes(run)
    plan = ProbePlan(mode=mode)
    for p in probes:
        intact = baseline[str(p.question_id)]
        item = ProbeItem(p, by_id[str(p.question_id)], intact, degraded_answer(p, intact))
        row = done.get((p.probe_id, judge_model))
        if (row is not None and row.status == "ok" and row.probe == p and row.mode == mode
                and _templates_current(row, item, prompts)):
            plan.skipped += 1
        else:
            plan.items.append(item)
    return plan


def probe_requests(plan: ProbePlan, prompts: PromptSet) -> list[tuple[list[dict[str, str]], object]]:
    """(messages, schema) of every request the plan would make (for the all-cached check)."""
    from judge.grade.prompts import PAIR_SCHEMA

    out: list[tuple[list[dict[str, str]], object]] = []
    for it in plan.items:
        q, t = it.question, it.probe.turn
        if plan.mode in ("single", "both"):
            for answer in (it.degraded, it.intact):
                prompt, schema = render_single(prompts, q, answer.turns, t)
                out.append((prompt.messages, schema))
        if plan.mode in ("pairwise", "both"):
            for a, b in ((it.intact.turns, it.degraded.turns), (it.degraded.turns, it.intact.turns)):
                out.append((render_pair(prompts, q, a, b, t).messages, PAIR_SCHEMA))
    return out


async def judge_probe(client: JudgeClient, prompts: PromptSet, item: ProbeItem, mode: str
                      ) -> ProbeJudgment:
    t = item.probe.turn
    single = intact = pair = None
    jobs = []
    if mode in ("single", "both"):
        jobs += [judge_single(client, prompts, SingleItem(PROBE_ROLE, item.question, item.degraded, t)),
                 judge_single(client, prompts, SingleItem("baseline", item.question, item.intact, t))]
    if mode in ("pairwise", "both"):
        jobs.append(judge_pair(client, prompts,
                               PairItem(PROBE_ROLE, item.question, item.intact, item.degraded, t)))
    results = await asyncio.gather(*jobs)
    if mode in ("single", "both"):
        single, intact = results[0], results[1]
    if mode in ("pairwise", "both"):
        pair = results[-1]
    parts = [x for x in (single, intact, pair) if x is not None]
    failed = [x.status for x in parts if x.status != "ok"]
    return ProbeJudgment(probe=item.probe, judge=client.model, mode=mode,  # type: ignore[arg-type]
                         tstamp=time.time(), status=failed[0] if failed else "ok",  # type: ignore[arg-type]
                         single=single, intact=intact, pair=pair)


async def judge_probes(run: Run, client: JudgeClient, plan: ProbePlan, prompts: PromptSet, *,
                       progress: bool = False) -> Counter[str]:
    """Judge every planned probe, appending each row when it is finished; status -> rows written."""
    from judge.progress import stage_progress

    written: Counter[str] = Counter()
    with stage_progress(f"judge self-test ({client.model})", total=len(plan.items),
                        enabled=progress and bool(plan.items)) as advance:

        async def one(item: ProbeItem) -> None:
            row = await judge_probe(client, prompts, item, plan.mode)
            append_jsonl(run.probes_path, [row])
            written[row.status] += 1
            advance(1)

        await asyncio.gather(*[one(i) for i in plan.items])
    return written
