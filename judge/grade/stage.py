"""The grade stage: single-answer grades and swapped pairwise games over a run folder.

* single: every answer of ``baseline`` and of each other role (``compressed``, ``compressed-NAME``,
  ``control``) is graded 1-10 per turn -> ``RUN/judgments/single.jsonl`` (`SingleJudgment`).
* pairwise: for each other role, every (question, turn) is played twice, baseline in position A
  (game 1, FastChat's g1) and then in position B (game 2, g2), and A/B is mapped back to roles ->
  ``RUN/judgments/pairwise.jsonl`` (`PairJudgment`). ``winner`` is the side both orders agree on,
  else ``"tie"`` with ``consistent=False``. ``winner``/``PairGame.winner`` say ``"compressed"`` for
  the non-baseline side whatever its role (``role_2`` names it).

Reference-guided prompts are used wherever the question has a reference for that turn.
A failed judgment is written with ``status`` ``api_error`` / ``invalid_output``, ``score -1`` and the
raw text: never a grade, never a tie.

Resume: rows are appended as each judgment finishes. On a rerun, a key -- (role, question_id, turn,
judge model) for single rows, (role_2, question_id, turn, judge model) for pairs -- is skipped when
its latest row is ``ok`` and was made with the current template (same ``prompt_sha256``); anything
else is judged again (cached responses cost nothing) and the new row supersedes the old one.
**Readers take the last row per key in file order**: `latest_single` / `latest_pairwise`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from judge.errors import ConfigError, RunFolderError
from judge.grade.client import JudgeClient
from judge.grade.judging import PairItem, SingleItem, judge_pair, judge_single
from judge.grade.summary import GradeSummary, check_endpoint_worked
from judge.grade.prompts import PAIR_SCHEMA, PromptSet, load_prompt_set, render_pair, render_single
from judge.questions import run_questions
from judge.schemas import Answer, PairJudgment, Question, SingleJudgment
from judge.store import Run, append_jsonl, read_jsonl

__all__ = ["GradeSummary", "PairItem", "Plan", "SingleItem", "grade_plan", "grade_run", "judge_pair",
           "judge_single", "latest_pairwise", "latest_single", "plan_grading", "run_questions"]

GradeMode = Literal["single", "pairwise", "both"]
Key = tuple[str, str, int, str]


# --------------------------------------------------------------------------- reading back


def single_key(row: SingleJudgment) -> Key:
    return (row.role or row.model, str(row.question_id), row.turn, row.judge[0])


def pair_key(row: PairJudgment) -> Key:
    return (row.role_2 or row.model_2, str(row.question_id), row.turn, row.judge[0])


def latest_single(rows: Iterable[SingleJudgment]) -> dict[Key, SingleJudgment]:
    """The row that counts for each key: the last one in file order."""
    return {single_key(r): r for r in rows}


def latest_pairwise(rows: Iterable[PairJudgment]) -> dict[Key, PairJudgment]:
    return {pair_key(r): r for r in rows}


def run_answers(run: Run) -> dict[str, dict[str, Answer]]:
    """role -> question key -> answer, for every ``answers/*.jsonl``."""
    out = {role: {a.key: a for a in read_jsonl(run.answers_path(role), Answer)}
           for role in run.answer_roles()}
    if "baseline" not in out:
        raise RunFolderError("no answers/baseline.jsonl; run `judge generate --role baseline` first",
                             path=run.root)
    return out


# --------------------------------------------------------------------------- planning


@dataclass
class Plan:
    single: list[SingleItem] = field(default_factory=list)
    pairs: list[PairItem] = field(default_factory=list)
    skipped_single: int = 0
    skipped_pairs: int = 0


def _turns(question: Question, *answers: Answer) -> int:
    return min([len(question.turns)] + [len(a.turns) for a in answers])


def plan_grading(run: Run, questions: list[Question], judge_model: str, *, mode: GradeMode,
                 roles: list[str] | None, prompts: PromptSet) -> Plan:
    """What is left to judge: every item whose latest row is not an ok one from this template."""
    answers = run_answers(run)
    others = [r for r in answers if r != "baseline"]
    if roles is not None:
        unknown = sorted(set(roles) - set(others))
        if unknown:
            raise ConfigError(f"--roles {', '.join(unknown)}: no such answers in {run.root}/answers "
                              f"(present: {', '.join(others) or 'none besides baseline'})")
        others = [r for r in others if r in roles]
    if mode != "single" and not others:
        raise RunFolderError("pairwise grading needs answers of a second role (compressed...) "
                             "beside baseline; generate them or use --mode single", path=run.root)
    by_id = {q.key: q for q in questions}
    for role, rows in answers.items():
        missing = sorted(set(rows) - set(by_id))
        if missing:
            raise RunFolderError(f"answers/{role}.jsonl answers question {missing[0]!r}, which is not "
                                 "in the question set; pass the right --questions", path=run.root)
    plan = Plan()
    if mode in ("single", "both"):
        done = _done(run.single_path, SingleJudgment, latest_single)
        for role in ["baseline", *others]:
            for key, answer in answers[role].items():
                q = by_id[key]
                for turn in range(1, _turns(q, answer) + 1):
                    prompt, _ = render_single(prompts, q, answer.turns, turn)
                    if done.get((role, key, turn, judge_model)) == prompt.sha256:
                        plan.skipped_single += 1
                    else:
                        plan.single.append(SingleItem(role, q, answer, turn))
    if mode in ("pairwise", "both"):
        done = _done(run.pairwise_path, PairJudgment, latest_pairwise)
        for role in others:
            for key, other in answers[role].items():
                base = answers["baseline"].get(key)
                if base is None:
                    continue
                q = by_id[key]
                for turn in range(1, _turns(q, base, other) + 1):
                    sha = render_pair(prompts, q, base.turns, other.turns, turn).sha256
                    if done.get((role, key, turn, judge_model)) == sha:
                        plan.skipped_pairs += 1
                    else:
                        plan.pairs.append(PairItem(role, q, base, other, turn))
    return plan


def _done(path: Any, model: Any, latest: Any) -> dict[Key, str | None]:
    """key -> prompt sha of its latest row, for the keys whose latest row is ok."""
    if not path.exists():
        return {}
    return {k: r.prompt_sha256 for k, r in latest(read_jsonl(path, model)).items() if r.status == "ok"}


async def grade_plan(run: Run, client: JudgeClient, plan: Plan, prompts: PromptSet, *,
                     progress: bool = False) -> GradeSummary:
    """Judge every planned item, appending each row as soon as it is finished."""
    from judge.progress import stage_progress

    summary = GradeSummary(client.model, skipped_single=plan.skipped_single,
                           skipped_pairwise=plan.skipped_pairs)
    t0 = time.perf_counter()
    total = len(plan.single) + len(plan.pairs)
    with stage_progress(f"grade ({client.model})", total=total, enabled=progress) as advance:

        async def one_single(item: SingleItem) -> None:
            row = await judge_single(client, prompts, item)
            append_jsonl(run.single_path, [row])
            summary.single[row.status] += 1
            summary.first_error = summary.first_error or row.error
            advance(1)

        async def one_pair(item: PairItem) -> None:
            row = await judge_pair(client, prompts, item)
            append_jsonl(run.pairwise_path, [row])
            summary.pairwise[row.status] += 1
            summary.first_error = summary.first_error or next(
                (g.error for g in row.games or [] if g.error), None)
            advance(1)

        await asyncio.gather(*[one_single(i) for i in plan.single], *[one_pair(i) for i in plan.pairs])
    summary.seconds = time.perf_counter() - t0
    stats = client.stats
    summary.calls, summary.cache_hits = stats.calls, stats.cache_hits
    summary.prompt_tokens, summary.completion_tokens = stats.prompt_tokens, stats.completion_tokens
    return summary


# --------------------------------------------------------------------------- the stage

LOCAL_MAX_TEXT_CHARS = 500  # caps a local judge's explanation (a small one repeats itself to the cap)
LOCAL_TIMEOUT_S = 1800.0
LOCAL_CONCURRENCY = 16  # our own server: more requests in flight batch better (1.18x over 8 here)
REMOTE_CONCURRENCY = 8
LOCAL_INVALID_RETRIES = 1  # a schema-enforced local judge at temperature 0 repeats an invalid reply
REMOTE_TIMEOUT_S = 300.0


def final_counts(run: Run, judge_model: str) -> tuple[Counter[str], Counter[str]]:
    """Status of the row that counts for every key of this judge, in both files."""
    single: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    if run.single_path.exists():
        single.update(r.status for k, r in latest_single(read_jsonl(run.single_path, SingleJudgment)).items()
                      if k[3] == judge_model)
    if run.pairwise_path.exists():
        pairs.update(r.status for k, r in latest_pairwise(read_jsonl(run.pairwise_path, PairJudgment)).items()
                     if k[3] == judge_model)
    return single, pairs


def _all_cached(plan: Plan, prompts: PromptSet, cache: Any, model: str, *, max_tokens: int,
                max_text_chars: int | None, extra: list[tuple[list[dict[str, str]], Any]] = ()
                ) -> bool:
    from judge.grade.client import judge_request_key

    def cached(messages: list[dict[str, str]], schema: Any) -> bool:
        key = judge_request_key(model, messages, schema, max_tokens=max_tokens,
                                max_text_chars=max_text_chars)
        return cache.get(key) is not None

    for s in plan.single:
        prompt, schema = render_single(prompts, s.question, s.answer.turns, s.turn)
        if not cached(prompt.messages, schema):
            return False
    for p in plan.pairs:
        for a, b in ((p.baseline.turns, p.other.turns), (p.other.turns, p.baseline.turns)):
            if not cached(render_pair(prompts, p.question, a, b, p.turn).messages, PAIR_SCHEMA):
                return False
    return all(cached(messages, schema) for messages, schema in extra)


def grade_run(run: Run, judge: str | None = None, *, base_url: str | Sequence[str] | None = None,
              mode: GradeMode = "both", roles: list[str] | None = None,
              questions: list[Question] | None = None, concurrency: int | None = None,
              max_retries: int = 4,
              timeout_s: float | None = None, max_tokens: int = 1024, output_mode: str = "auto",
              progress: bool = True, http_client: Any = None,
              max_text_chars: int | None = None, probes: int = 0) -> GradeSummary:
    """Grade a run folder with the judge ``judge`` (default ``local:smollm2-135m``).

    ``probes`` > 0 also runs the judge's self-test on that many planted degradations of the
    baseline's answers (`judge.grade.selftest`; the CLI and `judge compare` default to
    `judge.grade.probes.DEFAULT_PROBES`), after the grading, with the same client.

    A ``local:`` judge's server is started only when some request is not already in the run's
    judge cache, and stopped before this returns. ``max_text_chars`` caps the verdict's free text
    in the schema sent (default: `LOCAL_MAX_TEXT_CHARS` for a local judge, none otherwise);
    ``concurrency`` defaults to `LOCAL_CONCURRENCY` for a local judge, `REMOTE_CONCURRENCY` otherwise.
    Several ``base_url`` make a judge fleet (`judge.grade.fleet`): ``concurrency`` is then per
    endpoint, and every endpoint must answer before work starts.
    Raises `JudgeEndpointError` when every request of this call failed at the API (the failures
    are recorded first).
    """
    from judge.grade.cache import JudgeCache
    from judge.grade.fleet import open_client
    from judge.grade.preflight import check_timeout, reach_all
    from judge.grade.server import (DEFAULT_JUDGE, JudgeEndpoint, endpoint_for, open_judge,
                                    parse_judge_spec)

    spec = parse_judge_spec(judge or DEFAULT_JUDGE, base_url)
    check_timeout(timeout_s)
    if spec.kind != "local":
        endpoint_for(spec)  # a missing API key fails here, before the run folder is touched
    if spec.kind == "local":
        from judge.models import resolve_model

        model_name = resolve_model(spec.model).name
    else:
        model_name = spec.model
    prompts = load_prompt_set()
    qs = questions if questions is not None else run_questions(run)
    plan = plan_grading(run, qs, model_name, mode=mode, roles=roles, prompts=prompts)
    from judge.grade.selftest import ProbePlan, judge_probes, plan_probes, probe_requests

    probe_plan = (plan_probes(run, qs, run_answers(run)["baseline"], model_name, n=probes, mode=mode,
                              prompts=prompts) if probes > 0 else ProbePlan())
    summary = GradeSummary(model_name, skipped_single=plan.skipped_single,
                           skipped_pairwise=plan.skipped_pairs, skipped_probes=probe_plan.skipped)
    text_cap = max_text_chars or (LOCAL_MAX_TEXT_CHARS if spec.kind == "local" else None)
    if concurrency is None:
        concurrency = LOCAL_CONCURRENCY if spec.kind == "local" else REMOTE_CONCURRENCY
    if timeout_s is None:  # a local server's queue is ours: waiting in it is not a fault
        timeout_s = LOCAL_TIMEOUT_S if spec.kind == "local" else REMOTE_TIMEOUT_S
    if plan.single or plan.pairs or probe_plan.items:
        run.check_folders(run.judgments_dir, run.logs_dir)
    if (plan.single or plan.pairs or probe_plan.items) and spec.kind != "local" and http_client is None:
        # one cheap request before the cache, the logs or the manifest are touched: an endpoint
        # that cannot be reached, a rejected key or a web page is one line and changes nothing
        needed = True
        if run.judge_cache_path.is_file():
            with JudgeCache(run.judge_cache_path) as cache:
                needed = not _all_cached(plan, prompts, cache, model_name, max_tokens=max_tokens,
                                         max_text_chars=text_cap,
                                         extra=probe_requests(probe_plan, prompts))
        if needed:  # every endpoint of a fleet: one that does not answer is refused
            reach_all(spec.base_urls or [None], endpoint_for(spec).api_key, timeout_s=timeout_s)
    if plan.single or plan.pairs or probe_plan.items:

        def record_start() -> None:  # only once the endpoint answered: a failed start changes nothing
            run.update_manifest(config={"judge": {"spec": judge or DEFAULT_JUDGE, "model": model_name,
                                                  "base_url": spec.recorded_base_url(), "mode": mode,
                                                  "probes": probes, "max_tokens": max_tokens,
                                                  "output_mode": output_mode}})
            run.mark_stage("grade", started=True)

        from judge.logs import engine_output

        # library output (warnings, HTTP logs) goes to RUN/logs/grade.log; a local judge server
        # writes its own RUN/logs/judge-server.log
        with engine_output(run.logs_dir, "grade"), JudgeCache(run.judge_cache_path) as cache:

            async def go(endpoints: list[JudgeEndpoint], preflight: bool) -> GradeSummary:
                client = open_client(  # one endpoint: an OpenAIJudgeClient; several: a fleet
                    endpoints, cache=cache, concurrency=concurrency, max_retries=max_retries,
                    timeout_s=timeout_s, max_tokens=max_tokens, output_mode=output_mode,
                    max_text_chars=text_cap, http_client=http_client,
                    max_invalid_retries=LOCAL_INVALID_RETRIES if spec.kind == "local" else None)
                try:
                    if preflight:
                        await client.check()
                    record_start()
                    t0 = time.perf_counter()
                    done = await grade_plan(run, client, plan, prompts, progress=progress)
                    done.probes = await judge_probes(run, client, probe_plan, prompts,
                                                     progress=progress)
                    done.skipped_probes = probe_plan.skipped
                    done.seconds = time.perf_counter() - t0
                    stats = client.stats
                    done.calls, done.cache_hits = stats.calls, stats.cache_hits
                    done.prompt_tokens, done.completion_tokens = stats.prompt_tokens, stats.completion_tokens
                    done.endpoints = getattr(client, "endpoint_stats", list)()
                    return done
                finally:
                    await client.aclose()

            if _all_cached(plan, prompts, cache, model_name, max_tokens=max_tokens,
                           max_text_chars=text_cap, extra=probe_requests(probe_plan, prompts)):
                # nothing will be sent: do not start (or even need) the endpoint
                summary = asyncio.run(go([JudgeEndpoint(model_name, "http://127.0.0.1:9/v1", "EMPTY")],
                                         preflight=False))
            else:
                with open_judge(spec, logs_dir=run.logs_dir) as endpoints:
                    summary = asyncio.run(go(endpoints, preflight=True))
        run.mark_stage("grade", finished=True)
    summary.final_single, summary.final_pairwise = final_counts(run, model_name)
    check_endpoint_worked(summary, ", ".join(spec.base_urls) or (
        "the local judge" if spec.kind == "local" else "OpenAI"))
    return summary
