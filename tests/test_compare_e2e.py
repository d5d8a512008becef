"""`judge compare` end to end on the embedded models: every output file, a free rerun, a sweep that
reuses the baseline's files, and resume after SIGKILL during grading without re-requesting any
finished judgment.

Models, generation and divergence are real. The README's main command runs once as users run it:
no models named, so the embedded demo (smollm2-135m against its INT4 variant) with the real local
judge, vLLM's OpenAI server on 127.0.0.1, started and stopped by judge itself; only the question set
(two of the smoke set's kind instead of eight) and the answers are shortened, to save CI minutes. The other tests use the OpenAI-compatible server from
tests/fake_openai.py on 127.0.0.1, which counts every request, to prove resume and reuse exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from judge.schemas import Answer, CheckResult, PairJudgment, SingleJudgment
from judge.store import Run, read_jsonl

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [  # two of the smoke set's questions, short to answer
    {"question_id": 1, "category": "math", "turns": ["What is 12 times 3?", "Add 4 to that."],
     "reference": ["36", "40"],
     "check": [{"kind": "number", "value": "36"}, {"kind": "number", "value": "40"}]},
    {"question_id": 2, "category": "writing", "turns": ["Write one sentence about rain.",
                                                          "Now make it rhyme."]},
]


def judge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "judge", *args]


def run_judge(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, JUDGE_API_KEY="test-key")
    proc = subprocess.run(judge_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def keys(path: Path, model) -> list[tuple]:
    rows = read_jsonl(path, model)
    if model is SingleJudgment:
        return [(str(r.question_id), r.turn, r.role) for r in rows]
    return [(str(r.question_id), r.turn, r.role_2) for r in rows]


@pytest.fixture(scope="module")
def judge_server():
    from fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, base_model, int4_model, judge_server) -> tuple[Path, Path, str]:
    """base vs int4 with a control re-run, 16-token answers, hf engine."""
    d = tmp_path_factory.mktemp("compare")
    q = d / "q.jsonl"
    q.write_text("".join(json.dumps(x) + "\n" for x in QUESTIONS), encoding="utf-8")
    run = d / "run"
    proc = run_judge("compare", "smollm2-135m", "smollm2-135m-int4", "-q", str(q), "--run", str(run),
                     *JUDGE_ARGS(judge_server), "--max-new-tokens", "16", "--engine", "hf",
                     "--control", "batch", "--no-progress")
    return run, q, proc.stdout


def JUDGE_ARGS(server) -> list[str]:  # noqa: N802 - reads as a constant at the call sites
    return ["--judge", "fake-judge", "--judge-base-url", server.base_url]


def test_every_output_file(demo_run):
    run_dir, q, stdout = demo_run
    run = Run(run_dir)
    for role in ("baseline", "compressed", "control"):
        answers = read_jsonl(run.answers_path(role), Answer)
        assert sorted(a.key for a in answers) == ["1", "2"] and all(len(a.turns) == 2 for a in answers)
    assert (run_dir / "divergence" / "compressed.jsonl").is_file()
    # the check step ran after generation: both turns of question 1, for every role
    for role in ("baseline", "compressed", "control"):
        checks = read_jsonl(run_dir / "checks" / f"{role}.jsonl", CheckResult)
        assert sorted((str(c.question_id), c.turn, c.kind) for c in checks) == [
            ("1", 1, "number"), ("1", 2, "number")]
        assert f"checks/{role}: 2 checked" in stdout
    div = [json.loads(x) for x in (run_dir / "divergence" / "compressed.jsonl").read_text().splitlines()]
    assert {(d["question_id"], d["turn"]) for d in div} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert all(d["stats"]["kl_mean"] > 0 for d in div)  # int4 differs from the baseline
    # single: 2 questions x 2 turns x 3 roles; pairwise: 2 x 2 x (compressed, control)
    assert Counter(k[2] for k in keys(run.single_path, SingleJudgment)) == {
        "baseline": 4, "compressed": 4, "control": 4}
    assert Counter(k[2] for k in keys(run.pairwise_path, PairJudgment)) == {"compressed": 4, "control": 4}
    # the fake judge never fails: it grades every answer 7 (correct where there is a reference)
    # and says "A is better" whichever answer sits at A, so every swapped game is inconsistent
    for row in read_jsonl(run.single_path, SingleJudgment):
        assert (row.status, row.score, row.judge[0]) == ("ok", 7.0, "fake-judge")
        assert row.correct is (True if row.question_id == 1 else None)
    for prow in read_jsonl(run.pairwise_path, PairJudgment):
        assert (prow.status, prow.winner, prow.consistent) == ("ok", "tie", False)
    card = json.loads((run_dir / "scorecard.json").read_text())
    assert card["control"] is not None and [s["role"] for s in card["sections"]] == ["compressed"]
    assert card["failures"] == [] and card["provenance"]["judge_model"] == "fake-judge"
    for sec in (card["sections"][0], card["control"]):  # so the numbers are known by hand
        overall = sec["grades"][0]
        assert (overall["n"], overall["baseline_mean"], overall["compressed_mean"]) == (4, 7.0, 7.0)
        assert overall["delta"]["estimate"] == 0.0 and overall["delta"]["n_clusters"] == 2
        assert overall["delta"]["note"].startswith("2 questions < 8: no interval")
        h = sec["head_to_head"]
        assert (h["n"], h["compressed_wins"], h["ties"], h["baseline_wins"], h["inconsistent"]) == (
            4, 0, 4, 0, 4)
        assert h["win_rate"]["estimate"] == 0.5
        f = sec["flips"]  # question 1 has references: 2 items, both correct on both sides
        assert (f["n"], f["both_correct"], f["correct_to_incorrect"], f["incorrect_to_correct"],
                f["mcnemar_p"]) == (2, 2, 0, 0, 1.0)
    for name in ("scorecard.md", "report.html", "flagged.jsonl", "manifest.json", "judge_cache.sqlite"):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["compare"]["control"] == "batch"
    assert set(manifest["models"]) == {"baseline", "compressed", "control"}
    assert "Verdict" in stdout or "verdict" in stdout.lower()
    # the scorecard says how its KL was computed: the default cache, bound + tail estimate
    assert "KL: top-64 log-probs + 16 tail samples per token" in (run_dir / "scorecard.md").read_text()


def test_rerun_and_config_replay_do_nothing_again(demo_run, judge_server):
    run_dir, q, _ = demo_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")}
    n_requests = len(judge_server.requests)
    for args in (["compare", "smollm2-135m", "smollm2-135m-int4", "-q", str(q), "--run", str(run_dir),
                  *JUDGE_ARGS(judge_server), "--max-new-tokens", "16", "--engine", "hf",
                  "--control", "batch", "--no-progress"],
                 ["compare", "--config", str(run_dir / "manifest.json"), "--no-progress"]):
        out = run_judge(*args).stdout
        assert "answers/baseline: 0 new, 2 already there" in out
        assert "answers/compressed: 0 new" in out and "answers/control: 0 new" in out
        assert "checks/baseline: 0 checked (0 pass, 0 fail, 0 error), 2 already there" in out
        assert " 0 requests" in out  # every judgment is already in the run
    assert len(judge_server.requests) == n_requests
    after = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl") if p.name != "flagged.jsonl"}
    assert all(after[p] == before[p] for p in after)


def test_sweep_reuses_baseline_and_resumes_after_sigkill_in_grading(demo_run, tmp_path):
    from fake_openai import FakeOpenAIServer

    src, q, _ = demo_run
    run_dir = tmp_path / "sweep"
    shutil.copytree(src, run_dir)
    for p in [run_dir / "judgments", run_dir / "judge_cache.sqlite"]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    baseline_answers = (run_dir / "answers" / "baseline.jsonl").read_bytes()
    cache_files = {p: p.stat().st_mtime_ns for p in (run_dir / "divergence").rglob("*")
                   if p.is_file() and "baseline" in str(p.relative_to(run_dir))}
    assert cache_files, "the divergence stage keeps a baseline cache"
    args = ["compare", "smollm2-135m", "smollm2-135m-int4", "smollm2-135m-int8", "-q", str(q),
            "--run", str(run_dir), "--max-new-tokens", "16", "--engine", "hf", "--no-progress",
            "--judge", "fake-judge", "--concurrency", "2"]
    with FakeOpenAIServer(latency_s=0.4) as server:
        env = dict(os.environ, JUDGE_API_KEY="test-key")
        full = args + ["--judge-base-url", server.base_url]
        proc = subprocess.Popen(judge_cmd(*full), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        single = run_dir / "judgments" / "single.jsonl"
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if single.exists() and single.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "grading finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = set(keys(single, SingleJudgment))
        prompts_done = {r.user_prompt for r in read_jsonl(single, SingleJudgment)}
        n_requests_before = len(server.requests)
        proc = subprocess.run(judge_cmd(*full), cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        later = server.requests[n_requests_before:]
    run = Run(run_dir)
    # the baseline's answers and divergence cache were reused, not recomputed
    assert (run_dir / "answers" / "baseline.jsonl").read_bytes() == baseline_answers
    assert all(p.stat().st_mtime_ns == t for p, t in cache_files.items())
    roles = sorted(p.stem for p in (run_dir / "answers").glob("*.jsonl"))
    assert roles == ["baseline", "compressed", "compressed-smollm2-135m-int8", "control"]
    # no judgment duplicated, every key present once
    single_keys = keys(run.single_path, SingleJudgment)
    assert len(single_keys) == len(set(single_keys))
    assert Counter(k[2] for k in single_keys) == {"baseline": 4, "compressed": 4,
                                                  "compressed-smollm2-135m-int8": 4}
    pair_keys = keys(run.pairwise_path, PairJudgment)
    assert len(pair_keys) == len(set(pair_keys)) == 8
    assert done_before and done_before <= set(single_keys)
    # no finished judgment was requested again after the kill
    asked_again = [r for r in later
                   if any(m.get("content") in prompts_done for m in r.get("messages", []))]
    assert asked_again == []


def test_readme_demo_with_the_real_local_judge(base_model, int4_model, tmp_path):
    """`judge compare` with no models: vLLM generation, divergence, the local vLLM judge, report."""
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps(x) + "\n" for x in QUESTIONS), encoding="utf-8")
    run_dir = tmp_path / "demo"
    proc = run_judge("compare", "--run", str(run_dir), "-q", str(q), "--max-new-tokens", "32",
                     "--probes", "8", "--no-progress", timeout=1500)
    run = Run(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["compare"]["judge"]["spec"] == "local:smollm2-135m"
    assert manifest["models"]["baseline"]["spec"] == "smollm2-135m"
    assert manifest["models"]["compressed"]["spec"] == "smollm2-135m-int4"
    for role in ("baseline", "compressed"):
        answers = read_jsonl(run.answers_path(role), Answer)
        assert len(answers) == 2 and all(a.engine == "vllm" for a in answers)
    div = (run_dir / "divergence" / "compressed.jsonl").read_text().splitlines()
    assert len(div) == 4
    single = read_jsonl(run.single_path, SingleJudgment)
    pairs = read_jsonl(run.pairwise_path, PairJudgment)
    # 2 questions x 2 turns x 2 roles graded, 2 x 2 swapped games; each judgment once
    assert len(single) == len({(r.question_id, r.turn, r.role) for r in single}) == 8
    assert len(pairs) == len({(r.question_id, r.turn) for r in pairs}) == 4
    ok = [r for r in single if r.status == "ok"]
    assert ok and all(1 <= r.score <= 10 for r in ok)
    assert {r.judge[0] for r in single} == {"smollm2-135m"}
    assert "judge-server.log" in {p.name for p in (run_dir / "logs").iterdir()}
    for name in ("scorecard.json", "scorecard.md", "report.html", "flagged.jsonl"):
        assert (run_dir / name).is_file(), name
    assert "Verdict" in proc.stdout and "report.html" in proc.stdout
    # the issue-15 reading of the demo: INT4 changed the answers, and the 135M judge cannot show it
    card = json.loads((run_dir / "scorecard.json").read_text())
    sec = card["sections"][0]
    assert sec["behaviour"]["status"] == "changed" and sec["behaviour"]["rule"] == "exact identity"
    assert sec["quality"]["status"] == "unknown" and card["self_test"]["status"] == "failed"
    assert 0 < card["self_test"]["n_probes"] <= 8
    assert "Behaviour changed:" in proc.stdout and "Quality: unknown: the judge" in proc.stdout
    flagged = (run_dir / "flagged.jsonl").read_text().splitlines()
    assert len(flagged) >= 3 and any('"diverged"' in line for line in flagged)
