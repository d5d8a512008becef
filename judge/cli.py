"""The `judge` command line: parse flags, call the stage functions, print. Nothing else lives here.

Heavy modules are imported inside each command so that `judge --help` is instant. A `JudgeError`
becomes one line on stderr and exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from judge.errors import JudgeError

app = typer.Typer(
    name="judge",
    help="Does the compressed model still behave like the baseline? Judge verdicts, logit KL and "
    "flips on the same prompts, joined in one scorecard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and build the embedded default models.", invoke_without_command=True)
app.add_typer(models_app, name="models")

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


# ----------------------------------------------------------------------------- models
# (commands are added below by stage; keep each one thin)


@models_app.callback()
def models_list(ctx: typer.Context) -> None:
    """List the embedded default models: built or missing, size and folder."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from judge.models import cache_dir, list_models

    table = Table(title=f"embedded models (cache: {cache_dir()})", title_justify="left")
    for col in ("name", "status", "size"):
        table.add_column(col, no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("description", overflow="fold")
    for m in list_models():
        size = f"{m.size_bytes / 1e6:.0f} MB" if m.size_bytes is not None else "-"
        status = "[green]built[/green]" if m.built else "[yellow]missing[/yellow]"
        table.add_row(m.name, status, size, m.path, m.description)
    Console().print(table)


@models_app.command("build")
def models_build(
    name: Annotated[Optional[str], typer.Argument(help="Embedded model to build (all if omitted).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if already built.")] = False,
) -> None:
    """Build embedded models into the cache (offline, from the GGUF shipped in a PyPI package)."""
    from judge.models import EMBEDDED, build_model, is_built, model_dir

    for n in [name] if name is not None else list(EMBEDDED):
        if not force and n in EMBEDDED and is_built(model_dir(n)):
            print(f"{n}: already built at {model_dir(n)}")
            continue
        build_model(n, force=force)  # reports each finished build on stderr


# ----------------------------------------------------------------------------- generate

QuestionsOpt = Annotated[str, typer.Option("--questions", "-q",
                         help="Question set: a name in questions/, a FastChat question.jsonl, or a FastChat data folder.")]
ReferencesOpt = Annotated[Optional[Path], typer.Option("--references",
                          help="FastChat reference_answer/*.jsonl to merge into the questions.")]
RunOpt = Annotated[str, typer.Option("--run", "-r", help="Run folder: a name under outputs/ or a path.")]


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
    engine: Annotated[str, typer.Option(help="auto (vLLM when installed), vllm or hf.")] = "auto",
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
) -> None:
    """Answer a question set with one model: RUN/answers/<role>.jsonl (FastChat format)."""
    from pydantic import ValidationError

    from judge.config import GenerationConfig
    from judge.errors import ConfigError
    from judge.generation import generate as run_generate
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
) -> None:
    """Teacher-force the baseline's conversations through both models: per-token KL, top-1, Δp."""
    from pydantic import ValidationError

    from judge.divergence import DivergeOptions
    from judge.divergence import diverge as run_diverge
    from judge.divergence_summary import summary_table
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


# ----------------------------------------------------------------------------- grade


@app.command()
def grade(
    run: Annotated[str, typer.Argument(help="Run folder (a name under outputs/ or a path) with answers.")],
    judge: Annotated[str, typer.Option("--judge", help="local:MODEL (starts vLLM on 127.0.0.1), a model "
                     "name at --judge-base-url, or an OpenAI model name (needs OPENAI_API_KEY).")] = "local:smollm2-135m",
    judge_base_url: Annotated[Optional[str], typer.Option("--judge-base-url", help="Any OpenAI-compatible "
                              "server, e.g. http://127.0.0.1:8000/v1 (key: JUDGE_API_KEY or OPENAI_API_KEY).")] = None,
    mode: Annotated[str, typer.Option(help="single, pairwise or both.")] = "both",
    role: Annotated[Optional[list[str]], typer.Option("--role", help="Role(s) to grade against the baseline (default: every other role of the run).")] = None,
    questions: Annotated[Optional[str], typer.Option("--questions", "-q", help="Question set (default: the one in the run's manifest).")] = None,
    references: ReferencesOpt = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Judge requests in flight at once (default: 8; 16 for a local: judge).")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries per judgment (429/5xx/timeouts/invalid output).")] = 4,
    timeout_s: Annotated[Optional[float], typer.Option("--timeout-s", help="Seconds per judge request (default: 300; 1800 for a local: judge, whose queue is ours).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Token limit of each judge reply.")] = 1024,
    output_mode: Annotated[str, typer.Option(help="auto (json_schema, stepping down when refused), json_schema, json_object or text.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Judge the answers: RUN/judgments/single.jsonl (1-10 per answer and turn) and pairwise.jsonl
    (baseline vs each other role, every game played twice with positions swapped)."""
    from judge.errors import ConfigError, RunFolderError
    from judge.grading import grade_run, run_questions
    from judge.store import Run, resolve_run_dir

    if mode not in ("single", "pairwise", "both"):
        raise ConfigError(f"--mode {mode!r}: use single, pairwise or both")
    if output_mode not in ("auto", "json_schema", "json_object", "text"):
        raise ConfigError(f"--output-mode {output_mode!r}: use auto, json_schema, json_object or text")
    if ((concurrency is not None and concurrency < 1) or max_retries < 0
            or (timeout_s is not None and timeout_s <= 0) or max_tokens < 1):
        raise ConfigError("--concurrency and --max-tokens must be at least 1, --max-retries at least 0, "
                          "--timeout-s above 0")
    target = Run(resolve_run_dir(run))
    if not target.root.is_dir():
        raise RunFolderError("run folder not found; give a name under outputs/ or a path", path=target.root)
    qs = run_questions(target, questions, str(references) if references else None)
    summary = grade_run(target, judge, base_url=judge_base_url, mode=mode, roles=role or None,  # type: ignore[arg-type]
                        questions=qs, concurrency=concurrency, max_retries=max_retries,
                        timeout_s=timeout_s, max_tokens=max_tokens, output_mode=output_mode,
                        progress=progress)
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
    show: Annotated[bool, typer.Option(help="Print the scorecard in the terminal.")] = True,
) -> None:
    """Scorecard of a run: RUN/scorecard.json, scorecard.md, report.html and flagged.jsonl."""
    from judge.errors import ConfigError
    from judge.report import write_reports
    from judge.report.terminal import print_scorecard
    from judge.scorecard import build_report
    from judge.store import Run, resolve_run_dir

    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    target = Run(resolve_run_dir(run))
    card, flagged = build_report(target, seed=seed, n_resamples=resamples)
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
) -> None:
    """Flagged responses side by side (baseline | compressed), tokens coloured by KL."""
    from judge.errors import ConfigError
    from judge.report.terminal import print_review
    from judge.scorecard import review_items
    from judge.store import Run, resolve_run_dir

    if limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or more, got {limit}")
    items = review_items(Run(resolve_run_dir(run)), question=question, role=role,
                         limit=limit or None)
    print_review(items)


# ----------------------------------------------------------------------------- compare

DEMO_MAX_NEW_TOKENS = 128  # the embedded demo caps answers so it finishes in minutes on 2 CPU cores


@app.command()
def compare(
    models: Annotated[Optional[list[str]], typer.Argument(
        help="BASELINE COMPRESSED [COMPRESSED...]: embedded names or checkpoint folders. "
        "None: the embedded demo (smollm2-135m vs smollm2-135m-int4).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c",
                      help="A run.toml, or a run's manifest.json to reproduce it.")] = None,
    questions: Annotated[Optional[str], typer.Option("--questions", "-q", help="Question set.")] = None,
    references: Annotated[Optional[str], typer.Option(help="FastChat reference answers file.")] = None,
    run: Annotated[Optional[str], typer.Option("--run", "-r", help="Run folder name or path.")] = None,
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge: OpenAI model, served model name, or local:MODEL.")] = None,
    judge_base_url: Annotated[Optional[str], typer.Option(help="Any OpenAI-compatible server.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="single, pairwise or both.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Judge requests in flight.")] = None,
    control: Annotated[Optional[str], typer.Option(help="Noise floor: re-run the baseline with another 'engine' or 'batch' composition.")] = None,
    sampling: Annotated[Optional[str], typer.Option(help="greedy or mt-bench.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Token limit per turn (default 1024; 128 for the demo).")] = None,
    seed: Optional[int] = None,
    engine: Annotated[Optional[str], typer.Option(help="auto, vllm or hf.")] = None,
    dtype: Optional[str] = None,
    device: Optional[str] = None,
    device_map: Optional[str] = None,
    tensor_parallel_size: Optional[int] = None,
    max_model_len: Optional[int] = None,
    top_k: Annotated[Optional[str], typer.Option(help="Divergence cache top-K, or 'full' for exact KL.")] = None,
    no_diverge: Annotated[bool, typer.Option("--no-diverge", help="Skip the divergence stage.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Compare BASELINE with one or more COMPRESSED models: answers, KL, judge, scorecard."""
    from judge.compare import compare as run_compare
    from judge.compare import load_config_file, make_config
    from judge.errors import ConfigError

    file_values = load_config_file(config) if config else {}
    models = list(models or [])
    if len(models) == 1:
        raise ConfigError("give a BASELINE and at least one COMPRESSED model (or none for the demo)")
    overrides: dict[str, object] = {}
    if models:
        overrides["baseline"], overrides["compressed"] = models[0], models[1:]
    elif "baseline" not in file_values:
        from judge.models import DEFAULT_BASELINE, DEFAULT_COMPRESSED

        overrides["baseline"], overrides["compressed"] = DEFAULT_BASELINE, [DEFAULT_COMPRESSED]
        if max_new_tokens is None and "generation" not in file_values:
            max_new_tokens = DEMO_MAX_NEW_TOKENS
    k: object = None
    if top_k is not None:
        if top_k == "full":
            k = "full"
        elif top_k.isdigit():
            k = int(top_k)
        else:
            raise ConfigError(f"--top-k {top_k!r}: give a positive integer or 'full'")
    divergence: dict[str, object] = {"top_k": k}
    if no_diverge:
        divergence["enabled"] = False
    overrides.update(
        questions=questions, references=references, run=run, control=control,
        judge={"spec": judge, "base_url": judge_base_url, "mode": mode, "concurrency": concurrency},
        generation={"sampling": sampling, "max_new_tokens": max_new_tokens, "seed": seed},
        engine={"engine": engine, "dtype": dtype, "device": device, "device_map": device_map,
                "tensor_parallel_size": tensor_parallel_size, "max_model_len": max_model_len},
        divergence=divergence,
    )
    cfg = make_config(file_values, overrides)
    run_compare(cfg, progress=progress)



# ----------------------------------------------------------------------------- interop


@app.command("import-fastchat")
def import_fastchat_cmd(
    data_dir: Annotated[Path, typer.Argument(help="FastChat data/mt_bench-style folder (model_answer/, model_judgment/).")],
    baseline: Annotated[str, typer.Option(help="Baseline model name (its model_answer file name).")],
    compressed: Annotated[str, typer.Option(help="Compressed model name (its model_answer file name).")],
    run: RunOpt,
    judge_file: Annotated[Optional[list[Path]], typer.Option(
        "--judge-file", help="A model_judgment file (single or pair; repeatable). "
        "Default: model_judgment/*_single.jsonl and *_pair.jsonl.")] = None,
    questions: Annotated[Optional[Path], typer.Option(
        help="FastChat question.jsonl or data folder (default: DATA_DIR/question.jsonl).")] = None,
    with_report: Annotated[bool, typer.Option("--report/--no-report",
                           help="Build the scorecard right after the import (as `judge report`).")] = True,
) -> None:
    """Build a run folder from FastChat MT-Bench answers and judgments, and its scorecard."""
    from judge.fastchat import import_fastchat
    from judge.store import Run, resolve_run_dir

    run_dir = resolve_run_dir(run)
    s = import_fastchat(data_dir, baseline, compressed, Run(run_dir),
                        judge_files=judge_file, questions=questions)
    print(f"{s.run}: judge {s.judge_model}, questions {s.questions}")
    for r in s.roles:
        mean = "-" if r.mean_score is None else f"{r.mean_score:.4f}"
        fc = "-" if r.fastchat_mean is None else f"{r.fastchat_mean:.4f}"
        print(f"  {r.role:<10} {r.model}: {r.answers} answers; single {r.single_rows} rows = "
              f"{r.single_ok} ok + {r.single_imported_error} errors + {r.single_duplicate} duplicates; "
              f"mean {mean} (FastChat show_result: {fc})")
    if s.pair_rows:
        print(f"  pairwise: {s.pair_rows} rows = {s.pair_ok} ok + {s.pair_imported_error} errors + "
              f"{s.pair_duplicate} duplicates ({s.pair_swapped} reoriented baseline-first)")
    if s.ignored_rows:
        print(f"  {s.ignored_rows} judgment rows about other models ignored")
    for note in s.notes:
        print(f"  note: {note}")
    if with_report:
        report(str(run_dir.absolute()))  # a path, so it is not resolved under outputs/ again


@app.command("export-fastchat")
def export_fastchat_cmd(
    run: Annotated[str, typer.Argument(help="Run folder: a name under outputs/ or a path.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write FastChat's data/mt_bench layout into.")],
) -> None:
    """Write a run's questions, answers and judgments in FastChat's layout."""
    from judge.fastchat_export import export_fastchat
    from judge.store import Run, resolve_run_dir

    s = export_fastchat(Run(resolve_run_dir(run)), out_dir)
    print(f"{s.dir}: {len(s.files)} files; {s.single_rows} single judgments ({s.single_failed} failed, "
          f"score -1), {s.pair_rows} pairwise ({s.pair_failed} failed, winner 'error')")
    for role, name in s.models.items():
        print(f"  {role} -> {name}")
    for note in s.notes:
        print(f"  note: {note}")


@app.command("flips")
def flips_cmd(
    baseline_samples: Annotated[Path, typer.Argument(help="Baseline lm-eval samples_*.jsonl, or its --output_path.")],
    compressed_samples: Annotated[Path, typer.Argument(help="Compressed model's samples file or folder.")],
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Only this task (repeatable).")] = None,
    metric: Annotated[str, typer.Option(help="Per-sample 0/1 metric: auto (acc, else exact_match), acc, acc_norm...")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the table as JSON here ('-' for stdout).")] = None,
) -> None:
    """Flips, accuracy, McNemar and option-level KL from two lm-evaluation-harness --log_samples runs."""
    from judge.lmeval import compare_samples, render_table

    report = compare_samples(baseline_samples, compressed_samples, tasks=task, metric=metric)
    if json_out is not None and str(json_out) == "-":
        print(report.model_dump_json(indent=2))
        return
    render_table(report)
    if json_out is not None:
        from judge.store import write_atomic

        write_atomic(json_out, report.model_dump_json(indent=2) + "\n")
        print(f"wrote {json_out}")


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app, turning JudgeError into one line and exit code 2."""
    import signal

    def _terminate(signum: int, frame: object) -> None:  # SIGTERM unwinds like Ctrl-C, so engines
        raise KeyboardInterrupt  # and local judge servers are shut down, not orphaned

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _run(argv)
    finally:  # called as a function (tests, scripts): leave the caller's handler as it was
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> None:
    """`main` without the signal set-up: the app, with every failure turned into one line."""
    try:
        app(args=argv, standalone_mode=False)
    except JudgeError as err:
        if _state["debug"]:
            raise
        print(f"judge: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("judge: interrupted; finished items are saved, rerun the same command to continue",
              file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the one place a crash is turned into a line
        import click
        from typer.exceptions import Abort as TyperAbort
        from typer.exceptions import TyperException  # typer >= 0.20 vendors click: its errors

        if isinstance(err, (click.exceptions.ClickException, TyperException)):
            # a usage error (unknown flag, bad value): one line like every other error, exit 2
            ctx = getattr(err, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"judge: error: {' '.join(err.format_message().split())}{hint}", file=sys.stderr)
            sys.exit(2)
        if isinstance(err, (click.exceptions.Abort, TyperAbort)):
            sys.exit(130)
        if _state["debug"]:
            raise
        print(f"judge: internal error: {type(err).__name__}: {err} (rerun with --debug for the "
              "traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
