"""The stage commands: `judge generate`, `check`, `diverge`, `grade`, `report`, `review` (parse, call, print)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from judge.cli.app import QuestionsOpt, ReferencesOpt, RunOpt, VerboseOpt, app, set_verbose


def engine_options_from_flags(engine: str, dtype: str, device: Optional[str], device_map: Optional[str],
                              tensor_parallel_size: int, max_model_len: Optional[int],
                              batch_size: int, enforce_eager: Optional[bool] = None):
    from pydantic import ValidationError

    from judge.config import EngineOptions
    from judge.errors import ConfigError
    from judge.store import describe_validation_error

    try:
        return EngineOptions(engine=engine, dtype=dtype, device=device, device_map=device_map,
                             tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                             batch_size=batch_size, enforce_eager=enforce_eager)
    except ValidationError as err:
        raise ConfigError(f"invalid engine option: {describe_validation_error(err)}") from None


@app.command()
def generate(
    model: Annotated[str, typer.Argument(help="Embedded model name, checkpoint folder, or hub id.")],
    questions: QuestionsOpt = "smoke",
    run: RunOpt = "default",
    role: Annotated[str, typer.Option(help="baseline, compressed, compressed-NAME or control.")] = "baseline",
    references: ReferencesOpt = None,
    engine: Annotated[str, typer.Option(help="auto (vLLM when a build for this device is installed, else transformers), vllm or hf.")] = "auto",
    sampling: Annotated[str, typer.Option(help="greedy, or mt-bench (per-category temperatures).")] = "greedy",
    max_new_tokens: Annotated[int, typer.Option(help="Token limit per turn.")] = 1024,
    seed: int = 0,
    system_prompt: Annotated[Optional[str], typer.Option(help="System prompt (default: none).")] = None,
    dtype: str = "auto",
    device: Optional[str] = None,
    device_map: Annotated[Optional[str], typer.Option(help="hf: 'auto' to spread over GPUs.")] = None,
    tensor_parallel_size: int = 1,
    max_model_len: Optional[int] = None,
    batch_size: Annotated[int, typer.Option(help="hf: prompts per batch.")] = 16,
    chunk_size: Annotated[int, typer.Option(help="Questions answered and written to disk together "
                                            "(a crash loses at most one chunk).")] = 64,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    verbose: VerboseOpt = False,
) -> None:
    """Answer a question set with one model: RUN/answers/<role>.jsonl (FastChat format)."""
    set_verbose(verbose)
    from pydantic import ValidationError

    from judge.config import GenerationConfig
    from judge.errors import ConfigError
    from judge.generate import generate as run_generate
    from judge.models import resolve_model
    from judge.questions import load_questions
    from judge.store import Run, describe_validation_error, resolve_run_dir

    try:
        gen = GenerationConfig(sampling=sampling, max_new_tokens=max_new_tokens, seed=seed,
                               system_prompt=system_prompt)
    except ValidationError as err:
        raise ConfigError(f"invalid generation option: {describe_validation_error(err)}") from None
    opts = engine_options_from_flags(engine, dtype, device, device_map, tensor_parallel_size,
                                     max_model_len, batch_size)
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be at least 1, got {chunk_size}")
    opts = opts.model_copy(update={"chunk_size": chunk_size})
    info, qs = load_questions(questions, references)
    target = Run(resolve_run_dir(run))
    resolved = resolve_model(model)
    result = run_generate(target, resolved, qs, info, role=role, gen=gen, engine_options=opts,
                          progress=progress)
    rate = f", {result.tokens / result.seconds:.1f} tok/s" if result.seconds else ""
    print(f"{result.path}: {result.generated} answered, {result.skipped} already there "
          f"({result.tokens} tokens in {result.seconds:.1f} s{rate})")


# ----------------------------------------------------------------------------- diverge


@app.command()
def diverge(
    run: Annotated[str, typer.Argument(help="Run folder (a name under outputs/ or a path) with baseline answers.")],
    role: Annotated[Optional[list[str]], typer.Option("--role", help="Compressed role(s) to score (default: every compressed role of the run).")] = None,
    top_k: Annotated[str, typer.Option("--top-k", help="Baseline cache: top-K log-probs per token, or 'full' for exact KL.")] = "64",
    tail_samples: Annotated[int, typer.Option("--tail-samples", help="Baseline cache: tokens drawn from the tail per position, for an unbiased KL estimate (0: report the top-K lower bound alone).")] = 16,
    reverse: Annotated[bool, typer.Option("--reverse", help="Also reverse KL(compressed ‖ baseline).")] = False,
    jsd: Annotated[bool, typer.Option("--jsd", help="Also the Jensen-Shannon divergence.")] = False,
    dtype: Annotated[str, typer.Option(help="auto (the checkpoint's), bfloat16, float16 or float32.")] = "auto",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 (default: cuda when available).")] = None,
    device_map: Annotated[Optional[str], typer.Option(help="'auto' to spread a large model over GPUs.")] = None,
    batch_tokens: Annotated[int, typer.Option(help="Padded tokens per forward pass.")] = 4096,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verbose: VerboseOpt = False,
) -> None:
    """Teacher-force the baseline's conversations through both models: per-token KL, top-1, Δp."""
    set_verbose(verbose)
    from pydantic import ValidationError

    from judge.diverge import DivergeOptions
    from judge.diverge import diverge as run_diverge
    from judge.diverge import summary_table
    from judge.errors import ConfigError, RunFolderError
    from judge.store import Run, describe_validation_error, resolve_run_dir

    if top_k != "full" and not top_k.isdigit():
        raise ConfigError(f"--top-k {top_k!r}: give a positive integer or 'full'")
    try:
        opts = DivergeOptions(top_k=None if top_k == "full" else int(top_k),
                              tail_samples=tail_samples, reverse=reverse, jsd=jsd, dtype=dtype,
                              device=device, device_map=device_map, batch_tokens=batch_tokens)
    except ValidationError as err:
        raise ConfigError(f"invalid divergence option: {describe_validation_error(err)}") from None
    target = Run(resolve_run_dir(run))
    if not target.root.is_dir():
        raise RunFolderError("run folder not found; give a name under outputs/ or a path",
                             path=target.root)
    from rich.console import Console

    console = Console()
    for res in run_diverge(target, role or None, opts, progress=progress):
        console.print(summary_table(res.summary))
        console.print(f"{res.jsonl_path}, {res.tokens_path.name}, {res.summary_path.name}: "
                      f"{res.cached_now} sequences cached, {res.scored_now} scored "
                      f"in {res.seconds:.1f} s\n")


# ----------------------------------------------------------------------------- check


@app.command()
def check(
    run: Annotated[str, typer.Argument(help="Run folder (a name under outputs/ or a path) with answers.")],
    role: Annotated[Optional[list[str]], typer.Option("--role", help="Role(s) to check (default: every role with answers).")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Grade answers by code where the question set has checks: RUN/checks/<role>.jsonl (no judge)."""
    set_verbose(verbose)
    from judge.check import check_run, network_isolation
    from judge.errors import RunFolderError
    from judge.store import Run, resolve_run_dir

    target = Run(resolve_run_dir(run))
    if not target.root.is_dir():
        raise RunFolderError("run folder not found; give a name under outputs/ or a path",
                             path=target.root)
    results = check_run(target, role or None)
    if not results:
        print("the run's question set has no checks: nothing to check")
        return
    for res in results:
        print(res.short())
    print(f"sandbox network isolation: {network_isolation()}")


# ----------------------------------------------------------------------------- grade


@app.command()
def grade(
    run: Annotated[str, typer.Argument(help="Run folder (a name under outputs/ or a path) with answers.")],
    judge: Annotated[str, typer.Option("--judge", help="local:MODEL (starts vLLM on 127.0.0.1), a model "
                     "name at --judge-base-url, or an OpenAI model name (needs OPENAI_API_KEY).")] = "local:smollm2-135m",
    judge_base_url: Annotated[Optional[list[str]], typer.Option("--judge-base-url", help="Any OpenAI-compatible "
                              "server, e.g. http://127.0.0.1:8000/v1 (key: JUDGE_API_KEY or OPENAI_API_KEY); "
                              "repeat it for a fleet of servers of the same judge (--concurrency is then per server).")] = None,
    mode: Annotated[str, typer.Option(help="single, pairwise or both.")] = "both",
    role: Annotated[Optional[list[str]], typer.Option("--role", help="Role(s) to grade against the baseline (default: every other role of the run).")] = None,
    questions: Annotated[Optional[str], typer.Option("--questions", "-q", help="Question set (default: the one in the run's manifest).")] = None,
    references: ReferencesOpt = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Judge requests in flight at once, per endpoint (default: 8; 16 for a local: judge).")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries per judgment (429/5xx/timeouts/invalid output).")] = 4,
    timeout_s: Annotated[Optional[float], typer.Option("--timeout-s", help="Seconds per judge request (default: 300; 1800 for a local: judge, whose queue is ours).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Token limit of each judge reply.")] = 1024,
    output_mode: Annotated[str, typer.Option(help="auto (json_schema, stepping down when refused), json_schema, json_object or text.")] = "auto",
    probes: Annotated[int, typer.Option("--probes", help="The judge's self-test: planted degradations of the baseline's answers, judged like the rest (0: off).")] = 24,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    verbose: VerboseOpt = False,
) -> None:
    """Judge the answers: RUN/judgments/single.jsonl (1-10 per answer and turn) and pairwise.jsonl
    (baseline vs each other role, every game played twice with positions swapped), and the judge's
    self-test: RUN/judgments/probes.jsonl."""
    set_verbose(verbose)
    from judge.errors import ConfigError, RunFolderError
    from judge.grade import grade_run, run_questions
    from judge.store import Run, resolve_run_dir

    if mode not in ("single", "pairwise", "both"):
        raise ConfigError(f"--mode {mode!r}: use single, pairwise or both")
    if output_mode not in ("auto", "json_schema", "json_object", "text"):
        raise ConfigError(f"--output-mode {output_mode!r}: use auto, json_schema, json_object or text")
    if ((concurrency is not None and concurrency < 1) or max_retries < 0
            or (timeout_s is not None and timeout_s <= 0) or max_tokens < 1 or probes < 0):
        raise ConfigError("--concurrency and --max-tokens must be at least 1, --max-retries and "
                          "--probes at least 0, --timeout-s above 0")
    if judge.strip().lower() == "none":
        raise ConfigError("--judge none grades nothing; `judge grade` needs a judge (use "
                          "`judge report` for a scorecard without one)")
    target = Run(resolve_run_dir(run))
    if not target.root.is_dir():
        raise RunFolderError("run folder not found; give a name under outputs/ or a path", path=target.root)
    qs = run_questions(target, questions, str(references) if references else None)
    summary = grade_run(target, judge, base_url=judge_base_url or None, mode=mode, roles=role or None,  # type: ignore[arg-type]
                        questions=qs, concurrency=concurrency, max_retries=max_retries,
                        timeout_s=timeout_s, max_tokens=max_tokens, output_mode=output_mode,
                        progress=progress, probes=probes)
    print(summary)
    failed = sum(n for s, n in (summary.final_single + summary.final_pairwise).items() if s != "ok")
    if failed:
        print(f"{failed} judgments failed (kept with their raw text in {target.judgments_dir}); "
              "rerun the same command to retry them")


# ----------------------------------------------------------------------------- report / review


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="Run folder: a name under outputs/ or a path.")],
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 2000,
    min_sensitivity: Annotated[float, typer.Option(help="Show the quality verdict only when the judge's self-test sensitivity has a lower 95% bound of at least this.")] = 0.5,
    show: Annotated[bool, typer.Option(help="Print the scorecard in the terminal.")] = True,
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="In a run graded by several judge models: build the scorecard from this one's judgments.")] = None,
) -> None:
    """Scorecard of a run: RUN/scorecard.json, scorecard.md, report.html and flagged.jsonl."""
    from judge.errors import ConfigError
    from judge.report import write_reports
    from judge.report import print_scorecard
    from judge.scorecard import build_report
    from judge.store import Run, resolve_run_dir

    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    if not 0.0 <= min_sensitivity <= 1.0:
        raise ConfigError(f"--min-sensitivity must be between 0 and 1, got {min_sensitivity}")
    target = Run(resolve_run_dir(run))
    card, flagged = build_report(target, seed=seed, n_resamples=resamples,
                                 min_sensitivity=min_sensitivity, judge_model=judge_model)
    paths = write_reports(target, card, flagged)
    if show:
        print_scorecard(card)
    print(f"wrote {paths['json']}, {paths['markdown'].name}, {paths['html'].name}, "
          f"{paths['flagged'].name} ({len(flagged)} flagged)")


@app.command()
def review(
    run: Annotated[str, typer.Argument(help="Run folder: a name under outputs/ or a path.")],
    question: Annotated[Optional[str], typer.Option(help="Show every turn of this question id, flagged or not.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many items (0: all).")] = 10,
    role: Annotated[Optional[str], typer.Option(help="Only this compressed role (compressed-NAME in a sweep).")] = None,
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="In a run graded by several judge models: this one's judgments.")] = None,
) -> None:
    """Flagged responses side by side (baseline | compressed), tokens coloured by KL."""
    from judge.errors import ConfigError
    from judge.report import print_review
    from judge.scorecard import review_items
    from judge.store import Run, resolve_run_dir

    if limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or more, got {limit}")
    items = review_items(Run(resolve_run_dir(run)), question=question, role=role,
                         limit=limit or None, judge_model=judge_model)
    print_review(items)
