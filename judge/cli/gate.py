"""`judge gate RUN`: the scorecard as a CI check (exit 0 pass, 1 fail, 3 inconclusive, 2 bad input).

Also parses ``judge compare --gate NAME=VALUE``. The rules are in `judge.scorecard.gate`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from judge.cli.app import app


def gate_criteria(values: dict[str, float | None]) -> dict[str, float]:
    """Validated criteria (None: not asked); bad values are a ConfigError."""
    from pydantic import ValidationError

    from judge.config import GateConfig
    from judge.errors import ConfigError
    from judge.store import describe_validation_error

    try:
        cfg = GateConfig(**values)
    except ValidationError as err:
        raise ConfigError(f"invalid gate criterion: {describe_validation_error(err)}") from None
    return {k: v for k, v in cfg.model_dump().items() if v is not None}


def parse_gate_specs(specs: list[str]) -> dict[str, float]:
    """``["max-grade-drop=0.3", "max-kl=0.05"]`` -> ``{"max_grade_drop": 0.3, "max_kl": 0.05}``."""
    from judge.errors import ConfigError
    from judge.scorecard import GATE_CRITERIA

    out: dict[str, float | None] = {}
    for spec in specs:
        name, eq, value = spec.partition("=")
        key = name.strip().replace("-", "_")
        if not eq or key not in GATE_CRITERIA:
            known = ", ".join(k.replace("_", "-") for k in GATE_CRITERIA)
            raise ConfigError(f"--gate {spec!r}: give NAME=VALUE with NAME one of {known}")
        try:
            out[key] = float(value)
        except ValueError:
            raise ConfigError(f"--gate {spec!r}: {value!r} is not a number") from None
    return gate_criteria(out)


def print_gate(report: object, paths: dict[str, Path]) -> None:
    from judge.scorecard import GateReport

    assert isinstance(report, GateReport)
    for r in report.results:
        print(f"{r.outcome:<12} {r.role} {r.criterion.replace('_', '-')} {r.margin:g}: {r.message}")
    print(f"gate: {report.outcome.upper()} (exit code {report.exit_code}); wrote "
          f"{paths['json']}, {paths['junit'].name}, {paths['markdown'].name}")


def _report_settings(run: object) -> tuple[int, int, float]:
    """Bootstrap seed, resamples and self-test threshold the run was compared with (or defaults)."""
    from judge.config import ReportConfig
    from judge.store import Run

    assert isinstance(run, Run)
    manifest = run.load_manifest()
    raw = ((manifest.config.get("compare") or {}) if manifest else {})
    rep = raw.get("report") if isinstance(raw, dict) else None
    try:
        cfg = ReportConfig.model_validate(rep or {})
    except ValueError:
        cfg = ReportConfig()
    return cfg.seed, cfg.n_resamples, cfg.min_sensitivity


@app.command()
def gate(
    run: Annotated[str, typer.Argument(help="Run folder: a name under outputs/ or a path.")],
    max_grade_drop: Annotated[Optional[float], typer.Option(help="Fail when the grade drop (baseline - compressed) is above this, pass when its upper 95% bound is at most this.")] = None,
    min_recovery: Annotated[Optional[float], typer.Option(help="Compressed / baseline mean grade (e.g. 0.95), its lower bound against this.")] = None,
    min_win_rate: Annotated[Optional[float], typer.Option(help="The compressed model's win rate in swapped games (e.g. 0.45).")] = None,
    max_kl: Annotated[Optional[float], typer.Option(help="Mean KL(baseline‖compressed) in nats (e.g. 0.05).")] = None,
    max_flip_rate: Annotated[Optional[float], typer.Option(help="Share of items whose correctness flipped (e.g. 0.05).")] = None,
    min_judge_sensitivity: Annotated[Optional[float], typer.Option(help="The judge's self-test sensitivity (e.g. 0.8).")] = None,
    role: Annotated[Optional[list[str]], typer.Option("--role", help="Only these compressed roles (default: all).")] = None,
    junit: Annotated[Optional[Path], typer.Option(help="JUnit XML path (default RUN/gate.xml).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="gate.json path (default RUN/gate.json).")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Markdown summary path (default RUN/gate.md).")] = None,
) -> None:
    """Non-inferiority check of a run for CI: each criterion passes when its 95% interval is inside
    the margin, fails when it lies beyond it, and is inconclusive otherwise. Exit code 0 pass,
    1 fail, 3 inconclusive; writes gate.json, gate.xml (JUnit) and gate.md."""
    from judge.errors import ConfigError, RunFolderError
    from judge.scorecard import build_scorecard, evaluate_gate, write_gate
    from judge.store import Run, resolve_run_dir

    criteria = gate_criteria({"max_grade_drop": max_grade_drop, "min_recovery": min_recovery,
                              "min_win_rate": min_win_rate, "max_kl": max_kl,
                              "max_flip_rate": max_flip_rate,
                              "min_judge_sensitivity": min_judge_sensitivity})
    if not criteria:
        raise ConfigError("give at least one criterion, e.g. --max-grade-drop 0.3 --max-kl 0.05")
    target = Run(resolve_run_dir(run))
    if not target.root.is_dir():
        raise RunFolderError("run folder not found; give a name under outputs/ or a path",
                             path=target.root)
    seed, resamples, threshold = _report_settings(target)
    card = build_scorecard(target, seed=seed, n_resamples=resamples, min_sensitivity=threshold)
    present = [s.role for s in card.sections]
    unknown = sorted(set(role or []) - set(present))
    if unknown:
        raise ConfigError(f"--role {', '.join(unknown)}: not in this run (present: "
                          f"{', '.join(present) or 'none'})")
    report = evaluate_gate(card, criteria, roles=role or None)
    paths = write_gate(report, target.root, json_path=json_path, junit_path=junit,
                       markdown_path=markdown)
    print_gate(report, paths)
    sys.exit(report.exit_code)
