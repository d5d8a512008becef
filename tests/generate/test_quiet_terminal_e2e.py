"""`judge generate` on a real engine: the terminal shows judge's own lines, RUN/logs/ the engine's.

Runs the CLI as a user does (a subprocess whose stdout and stderr are pipes, 100 columns) on the
embedded SmolLM2 with a two-question set. Every terminal line must be one judge writes: the
stage's progress bar or its summary line. vLLM's INFO/WARNING lines, its engine-core and worker
processes, triton and torch warnings and loading bars must all be in the log instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reliability_support import cli_env, run_cli

from judge.schemas import Answer
from judge.store import Run, read_jsonl

JUDGE_LINE = re.compile(r"^(generate baseline\b.*\d+/\d+.*|\S+answers/baseline\.jsonl: \d+ answered, .*)$")
VLLM_LOG_LINE = re.compile(r"\b(INFO|WARNING|DEBUG)\b \d\d-\d\d \d\d:\d\d:\d\d")


def terminal_lines(proc) -> list[str]:
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]


@pytest.mark.slow
def test_generate_with_vllm_prints_no_engine_line(tmp_path: Path, two_questions: Path, base_model) -> None:
    run = tmp_path / "run"
    proc = run_cli(["generate", "smollm2-135m", "-q", str(two_questions), "--run", str(run),
                    "--engine", "vllm", "--max-new-tokens", "8", "--max-model-len", "1024"],
                   cli_env(COLUMNS="100"), timeout_s=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = terminal_lines(proc)
    foreign = [ln for ln in lines if not JUDGE_LINE.match(ln)]
    assert not foreign, "lines not written by judge:\n" + "\n".join(foreign[:20])
    assert len(lines) == 2  # the stage's bar and its summary line
    log = (run / "logs" / "generate-baseline.log").read_text()
    assert len(VLLM_LOG_LINE.findall(log)) >= 10  # vLLM's own log lines, engine core included
    assert "EngineCore" in log
    # and the answers are vLLM's (the generation stage's vLLM end-to-end check: one engine start
    # for both; tests/generate/test_generate_stage.py checks the same on the hf engine in-process)
    answers = read_jsonl(Run(run).answers_path("baseline"), Answer)
    assert sorted(str(a.question_id) for a in answers) == ["1", "2"]
    for a in answers:
        assert len(a.turns) == 2 and all(t.strip() for t in a.turns)
        assert a.engine == "vllm" and all(1 <= len(ids) <= 9 for ids in a.token_ids)
        assert set(a.finish_reasons) <= {"stop", "length"}


@pytest.mark.slow
def test_verbose_streams_the_engine_log(tmp_path: Path, two_questions: Path, base_model) -> None:
    run = tmp_path / "run"
    proc = run_cli(["generate", "smollm2-135m", "-q", str(two_questions), "--run", str(run),
                    "--engine", "hf", "--max-new-tokens", "4", "--verbose"],
                   cli_env(COLUMNS="100"), timeout_s=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run / "logs" / "generate-baseline.log").read_text()
    engine_lines = [ln.strip() for ln in log.splitlines()[2:] if ln.strip()]
    assert engine_lines  # transformers wrote something (its loading bar at least)
    assert all(ln[:40] in proc.stderr for ln in engine_lines)
