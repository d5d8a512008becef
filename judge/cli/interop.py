"""Interop commands: `judge import-fastchat`, `export-fastchat` and `flips` (lm-evaluation-harness)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from judge.cli.app import RunOpt, app


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
    from judge.interop import import_fastchat
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
        from judge.cli.stages import report

        report(str(run_dir.absolute()))  # a path, so it is not resolved under outputs/ again


@app.command("export-fastchat")
def export_fastchat_cmd(
    run: Annotated[str, typer.Argument(help="Run folder: a name under outputs/ or a path.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write FastChat's data/mt_bench layout into.")],
    merge: Annotated[bool, typer.Option("--merge", help="The folder already holds FastChat files: "
                     "keep every row and append this run's missing rows (a rerun adds nothing).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the files this export writes "
                     "(other files in the folder are left alone).")] = False,
) -> None:
    """Write a run's questions, answers and judgments in FastChat's layout. An existing FastChat
    folder is refused unless --merge or --force is given."""
    from judge.errors import ConfigError
    from judge.interop import export_fastchat
    from judge.store import Run, resolve_run_dir

    if merge and force:
        raise ConfigError("--merge and --force exclude each other: merge keeps existing rows, "
                          "force replaces the files")
    s = export_fastchat(Run(resolve_run_dir(run)), out_dir,
                        mode="merge" if merge else "force" if force else "new")
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
    from judge.interop import compare_samples, render_table

    report = compare_samples(baseline_samples, compressed_samples, tasks=task, metric=metric)
    if json_out is not None and str(json_out) == "-":
        print(report.model_dump_json(indent=2))
        return
    render_table(report)
    if json_out is not None:
        from judge.store import write_atomic

        write_atomic(json_out, report.model_dump_json(indent=2) + "\n")
        print(f"wrote {json_out}")
