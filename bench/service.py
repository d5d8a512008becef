"""Benchmark of `judge serve`: status latency under many clients, and the service's overhead on
the wall time of one comparison.

1. The same run config (embedded models, hf engine, short answers, the fake OpenAI-compatible
   judge of tests/fake_openai.py in its own process) runs once submitted to `judge serve` (a child
   process, one slot), timed from submit to the SSE ``end`` event, then once through `judge compare
   --config` (the second run has the warmer caches: the ratio is conservative). Printed: both wall times and their ratio (goal <= 1.05).
2. While a third copy of the comparison runs in the service, 50 clients poll its status (each
   every 0.5 s, with jitter) and 10 follow its SSE stream. Printed: status latency p50 / p99 over
   every poll (goal p99 <= 50 ms) and the events the followers received.

    flock /tmp/judge-heavy.lock python bench/service.py [--compressed smollm2-135m]
        [--questions smoke] [--max-new-tokens 8] [--pollers 50] [--followers 10]

It loads models: run it under the heavy lock on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-" + "0" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake_judge() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--latency-s", "0.05"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    return proc, f"http://127.0.0.1:{line[1]}/v1"


def config(args, judge_url: str, run: str) -> dict:
    return {"baseline": args.baseline, "compressed": args.compressed, "questions": args.questions,
            "run": run, "generation": {"max_new_tokens": args.max_new_tokens},
            "engine": {"engine": "hf"},
            "judge": {"spec": "fake-judge", "base_url": judge_url, "probes": 4}}


def toml(cfg: dict) -> str:
    def value(v):
        return json.dumps(v)
    lines = [f"{k} = {value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines += [f"[{k}]"] + [f"{kk} = {value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def submit_and_wait(url: str, cfg: dict) -> tuple[str, float]:
    import httpx

    h = {"Authorization": f"Bearer {TOKEN}", "X-Judge-Client": "bench"}
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=None)) as c:
        t0 = time.perf_counter()
        r = await c.post("/v1/comparisons", json={"config": cfg, "key_env": "BENCH_JUDGE_KEY"}, headers=h)
        r.raise_for_status()
        cid = r.json()["id"]
        async with c.stream("GET", f"/v1/comparisons/{cid}/events") as s:
            async for line in s.aiter_lines():
                if line.startswith("event: end"):
                    break
        took = time.perf_counter() - t0
        status = (await c.get(f"/v1/comparisons/{cid}")).json()["status"]
    if status != "completed":
        raise SystemExit(f"the comparison through the service ended {status}")
    return cid, took


async def load(url: str, cfg: dict, pollers: int, followers: int) -> dict:
    import httpx

    h = {"Authorization": f"Bearer {TOKEN}", "X-Judge-Client": "bench"}
    limits = httpx.Limits(max_connections=pollers + followers + 5)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=None), limits=limits) as c:
        r = await c.post("/v1/comparisons", json={"config": cfg, "key_env": "BENCH_JUDGE_KEY"}, headers=h)
        r.raise_for_status()
        cid = r.json()["id"]
        done = asyncio.Event()
        latencies: list[float] = []
        events = [0] * followers

        async def poll() -> None:
            await asyncio.sleep(random.random() * 0.5)
            while not done.is_set():
                t0 = time.perf_counter()
                resp = await c.get(f"/v1/comparisons/{cid}/status")
                latencies.append(time.perf_counter() - t0)
                if resp.json()["status"] in ("completed", "failed", "cancelled"):
                    done.set()
                await asyncio.sleep(0.4 + 0.2 * random.random())

        async def follow(i: int) -> None:
            async with c.stream("GET", f"/v1/comparisons/{cid}/events") as s:
                async for line in s.aiter_lines():
                    if line.startswith("event:"):
                        events[i] += 1
                    if line.startswith("event: end"):
                        break

        t0 = time.perf_counter()
        await asyncio.gather(*[poll() for _ in range(pollers)], *[follow(i) for i in range(followers)])
        took = time.perf_counter() - t0
    return {"latencies": latencies, "events": events, "seconds": took}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="smollm2-135m")
    ap.add_argument("--compressed", default="smollm2-135m")
    ap.add_argument("--questions", default="smoke")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--followers", type=int, default=10)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="judge-bench-service-"))
    outputs = work / "outputs"
    outputs.mkdir()
    (work / "token").write_text(TOKEN + "\n")
    judge, judge_url = start_fake_judge()
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_JUDGE_KEY="bench-key", JUDGE_API_KEY="bench-key",
               JUDGE_OUTPUTS=str(outputs))
    server = None
    try:
        # the service first, then judge compare: a cold start (page cache, imports) counts against
        # the service, not for it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "judge", "serve", "--port", str(port),
                                   "--outputs", str(outputs), "--token-file", str(work / "token")],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import httpx

        for _ in range(300):
            try:
                if httpx.get(url + "/v1/comparisons", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        _, served = asyncio.run(submit_and_wait(url, config(args, judge_url, "served")))
        cfg = config(args, judge_url, str(outputs / "direct"))
        (work / "run.toml").write_text(toml(cfg))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "judge", "compare", "--config", str(work / "run.toml"),
                        "--no-progress"], cwd=ROOT, env=env, check=True, capture_output=True)
        direct = time.perf_counter() - t0
        print(f"comparison wall time: judge compare {direct:.1f} s, through judge serve {served:.1f} s "
              f"(ratio {served / direct:.3f}; goal <= 1.05)")
        # 2. status latency while a comparison runs
        res = asyncio.run(load(url, config(args, judge_url, "loaded"), args.pollers, args.followers))
        lat = res["latencies"]
        print(f"status latency, {args.pollers} pollers + {args.followers} SSE followers during a "
              f"{res['seconds']:.1f} s comparison: {len(lat)} polls, p50 {1000 * pct(lat, 0.5):.1f} ms, "
              f"p99 {1000 * pct(lat, 0.99):.1f} ms, max {1000 * max(lat):.1f} ms (goal p99 <= 50 ms); "
              f"SSE events per follower {min(res['events'])}..{max(res['events'])}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        judge.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
