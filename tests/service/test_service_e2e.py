"""`judge serve` end to end: a real uvicorn server on 127.0.0.1 (a child process started here),
real HTTP clients, real jobs on the embedded smollm2-135m (against itself, hf engine, 8-token
answers, two questions) graded by the fake OpenAI-compatible judge of tests/fake_openai.py, which
counts every request.

One module-scoped scenario, checked by the tests below in order:
two `judge submit` clients at once (an unauthenticated write refused), the server killed with
SIGKILL while the first job is grading, restarted, the first job resumed to completion with no
finished judgment asked again, the second (queued all along) run uninterrupted as the reference;
then a failing job keeps its error line and log, and a cancel stops a running child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from service_support import ROOT, TOKEN, Server

from judge.schemas import Answer, PairJudgment, SingleJudgment
from judge.store import read_jsonl

pytestmark = pytest.mark.slow

QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 12 times 3?", "Add 4 to that."],
     "reference": ["36", "40"]},
    {"question_id": 2, "category": "writing", "turns": ["Write one sentence about rain.",
                                                          "Now make it rhyme."]},
]
KEY_ENV = "SERVICE_TEST_JUDGE_KEY"


def config_toml(run: str, questions: Path, judge_url: str, baseline: str = "smollm2-135m") -> str:
    return (f'baseline = "{baseline}"\ncompressed = "smollm2-135m"\nquestions = "{questions}"\n'
            f'run = "{run}"\n[generation]\nmax_new_tokens = 8\n[engine]\nengine = "hf"\n'
            f'[judge]\nspec = "fake-judge"\nbase_url = "{judge_url}"\nprobes = 4\nconcurrency = 1\n')


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "judge", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(cond, timeout_s: float, what: str):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from fake_openai import FakeOpenAIServer

    d = tmp_path_factory.mktemp("serve")
    outputs, token_file, q = d / "outputs", d / "token", d / "q.jsonl"
    outputs.mkdir()
    token_file.write_text(TOKEN + "\n")
    q.write_text("".join(json.dumps(x) + "\n" for x in QUESTIONS))
    facts: dict = {}
    with FakeOpenAIServer(latency_s=0.25) as judge:
        env = {KEY_ENV: "test-key"}
        server = Server(outputs, token_file=token_file, env=env).start()
        cenv = dict(os.environ, PYTHONPATH=str(ROOT))
        try:
            # two clients submit at once; a third, without the token, is refused
            for name in ("a", "b"):
                (d / f"{name}.toml").write_text(config_toml(f"svc-{name}", q, judge.base_url))
            out: dict[str, subprocess.CompletedProcess] = {}
            threads = [threading.Thread(target=lambda n=n: out.__setitem__(n, cli(
                "submit", str(d / f"{n}.toml"), "--server", server.url, "--token-file",
                str(token_file), "--key-env", KEY_ENV, env=cenv))) for n in ("a", "b")]
            for t in threads:
                t.start()
            facts["unauth"] = httpx.post(server.url + "/v1/comparisons", json={"config": {}},
                                         headers={"X-Judge-Client": "x"}).status_code
            for t in threads:
                t.join()
            facts["submit"] = {n: (p.returncode, p.stdout.strip(), p.stderr) for n, p in out.items()}
            ids = {n: p.stdout.strip() for n, p in out.items()}
            rows = {n: httpx.get(f"{server.url}/v1/comparisons/{i}").json() for n, i in ids.items()}
            first = min(rows, key=lambda n: (rows[n]["status"] != "running",
                                             rows[n]["queue_position"] or 0))
            second = "b" if first == "a" else "a"
            facts.update(ids=ids, first=first, second=second)
            run1, run2 = outputs / f"svc-{first}", outputs / f"svc-{second}"
            single1 = run1 / "judgments" / "single.jsonl"

            def grading() -> dict | None:  # the status says grading runs, and judgments are saved
                st = httpx.get(f"{server.url}/v1/comparisons/{ids[first]}/status").json()
                g = next((s for s in st["stages"] if s["stage"] == "grade (fake-judge)"), None)
                return st if g and g["state"] == "running" and g["done"] >= 2 and lines(single1) >= 2 else None

            facts["status_running"] = wait_for(grading, 300, "the first job to grade")
            server.kill9()
            facts["n_before_kill"] = len(judge.requests)
            facts["prompts_done"] = {r.user_prompt for r in read_jsonl(single1, SingleJudgment)}
            server.start()
            facts["after_restart"] = {n: httpx.get(f"{server.url}/v1/comparisons/{i}").json()["status"]
                                      for n, i in ids.items()}
            w = cli("watch", ids[first], "--server", server.url, "--token-file", str(token_file),
                    env=cenv)
            facts["watch_first"] = (w.returncode, w.stdout)
            facts["n_first"] = len(judge.requests)
            facts["later_first"] = judge.requests[facts["n_before_kill"]:facts["n_first"]]
            w = cli("watch", ids[second], "--server", server.url, "--token-file", str(token_file),
                    env=cenv)
            facts["watch_second"] = (w.returncode, w.stdout)
            facts["n_second"] = len(judge.requests) - facts["n_first"]
            facts["asked"] = (judge.requests[:facts["n_first"]], judge.requests[facts["n_first"]:])
            facts["runs"] = (run1, run2)
            yield server, judge, facts, d
        finally:
            server.stop()


def test_two_clients_submit_at_once_and_unauthenticated_writes_are_refused(scenario):
    _, _, facts, _ = scenario
    assert facts["unauth"] == 401
    for name, (rc, out, err) in facts["submit"].items():
        assert rc == 0 and len(out) == 12, (name, err)
    assert facts["ids"]["a"] != facts["ids"]["b"]


def test_status_shows_per_stage_progress(scenario):
    _, _, facts, _ = scenario
    st = facts["status_running"]
    assert st["status"] == "running"
    stages = {s["stage"]: s for s in st["stages"]}
    assert stages["generate baseline"]["state"] == "finished"
    assert stages["generate baseline"]["done"] == stages["generate baseline"]["total"] == 2
    grading = stages["grade (fake-judge)"]
    assert grading["state"] == "running" and 0 < grading["done"] < grading["total"]


def test_kill9_restart_resumes_without_repeating_a_judgment(scenario):
    _, _, facts, _ = scenario
    # after the restart: the interrupted job is resumed, the queued one stays queued
    assert facts["after_restart"] == {facts["first"]: "running", facts["second"]: "queued"}
    assert facts["watch_first"][0] == 0 and "completed" in facts["watch_first"][1]
    assert facts["watch_second"][0] == 0 and "completed" in facts["watch_second"][1]
    assert facts["prompts_done"]  # judgments finished before the kill
    asked_again = [r for r in facts["later_first"]
                   if any(m.get("content") in facts["prompts_done"] for m in r.get("messages", []))]
    assert asked_again == []
    # both jobs asked the judge the same questions; the interrupted one asked at most one of them
    # twice (the request in flight when the server died, concurrency 1). It may ask fewer in all:
    # the model is compared with itself, so some requests are identical, and one answered before
    # the kill is served from the run's judge cache afterwards.
    first, second = ({json.dumps(r["messages"], sort_keys=True) for r in asked} for asked in facts["asked"])
    assert first == second and len(first) > 10
    assert facts["n_first"] <= facts["n_second"] + 1


def test_resumed_outputs_equal_the_uninterrupted_run(scenario):
    _, _, facts, _ = scenario
    run1, run2 = facts["runs"]
    for role in ("baseline", "compressed"):
        a1 = {a.key: [c.turns for c in a.choices] for a in read_jsonl(run1 / "answers" / f"{role}.jsonl", Answer)}
        a2 = {a.key: [c.turns for c in a.choices] for a in read_jsonl(run2 / "answers" / f"{role}.jsonl", Answer)}
        assert a1 == a2 and len(a1) == 2
    s1 = sorted((r.question_id, r.turn, r.role, r.score) for r in read_jsonl(run1 / "judgments" / "single.jsonl", SingleJudgment))
    s2 = sorted((r.question_id, r.turn, r.role, r.score) for r in read_jsonl(run2 / "judgments" / "single.jsonl", SingleJudgment))
    assert s1 == s2 and len(s1) == 8  # 2 questions x 2 turns x 2 roles, each once
    p1 = sorted((r.question_id, r.turn, r.winner) for r in read_jsonl(run1 / "judgments" / "pairwise.jsonl", PairJudgment))
    p2 = sorted((r.question_id, r.turn, r.winner) for r in read_jsonl(run2 / "judgments" / "pairwise.jsonl", PairJudgment))
    assert p1 == p2 and len(p1) == 4
    c1, c2 = (json.loads((r / "scorecard.json").read_text()) for r in (run1, run2))
    assert c1["sections"][0]["grades"] == c2["sections"][0]["grades"]
    assert c1["sections"][0]["behaviour"]["n_identical"] == 4  # the model against itself


def test_sse_resumes_after_last_event_id_and_etag(scenario):
    server, _, facts, _ = scenario
    cid = facts["ids"][facts["first"]]
    with httpx.stream("GET", f"{server.url}/v1/comparisons/{cid}/events",
                      headers={"Last-Event-ID": "3"}, timeout=30) as r:
        text = "".join(r.iter_text())
    ids = [int(x[4:]) for x in text.splitlines() if x.startswith("id: ")]
    assert ids[0] == 4 and "event: end" in text and '"status":"completed"' in text
    r = httpx.get(f"{server.url}/v1/comparisons/{cid}/scorecard")
    assert httpx.get(f"{server.url}/v1/comparisons/{cid}/scorecard",
                     headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_failed_job_keeps_its_error_and_cancel_stops_a_running_child(scenario):
    server, judge, facts, d = scenario
    h = server.headers()
    bad = httpx.post(f"{server.url}/v1/comparisons", headers=h, json={"config": {
        "baseline": "no-such-model-anywhere", "compressed": "smollm2-135m", "judge": {"spec": "none"},
        "questions": str(d / "q.jsonl")}}).json()
    cfg = {"baseline": "smollm2-135m", "compressed": "smollm2-135m", "questions": str(d / "q.jsonl"),
           "run": "svc-cancel", "judge": {"spec": "none"}, "engine": {"engine": "hf"},
           "generation": {"max_new_tokens": 8}}
    victim = httpx.post(f"{server.url}/v1/comparisons", headers=h, json={"config": cfg}).json()
    get = lambda cid: httpx.get(f"{server.url}/v1/comparisons/{cid}").json()  # noqa: E731
    failed = wait_for(lambda: (r := get(bad["id"]))["status"] == "failed" and r, 120, "the failure")
    assert failed["error"].startswith("judge: error:") and "no-such-model-anywhere" in failed["error"]
    assert failed["exit_code"] == 2
    log = httpx.get(f"{server.url}/v1/comparisons/{bad['id']}/log").text
    assert "no-such-model-anywhere" in log
    wait_for(lambda: get(victim["id"])["status"] == "running", 120, "the second job to start")
    progress = server.outputs / "svc-cancel" / "service" / "progress.jsonl"
    wait_for(lambda: progress.exists(), 120, "the job's first stage")
    httpx.post(f"{server.url}/v1/comparisons/{victim['id']}/cancel", headers=h)
    done = wait_for(lambda: (r := get(victim["id"]))["status"] == "cancelled" and r, 60, "the cancel")
    assert done["exit_code"] == 130  # judge compare's own exit on SIGTERM: finished items saved
    assert "interrupted" in (server.outputs / "svc-cancel" / "logs" / "service-job.log").read_text()
