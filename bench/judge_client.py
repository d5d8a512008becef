"""Benchmark: judgments per second through the judge client, against the ideal for its concurrency.

A fake OpenAI-compatible server (tests/fake_openai.py, in its own process so it does not share this
process's CPU time) answers every chat request after a fixed artificial latency with a valid
structured verdict. `OpenAIJudgeClient` (real openai SDK, real HTTP on 127.0.0.1, no cache) sends
``waves * concurrency`` distinct single-grading requests at concurrency 1, 8 and 32 (after one
untimed wave that opens the connections). With a fixed
latency L the best possible rate is concurrency / L judgments per second; the script prints the
measured rate and its ratio to that ideal. Target: >= 0.90 at concurrency 32.

    python bench/judge_client.py [--latency-s 0.5] [--waves 8] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_server(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--latency-s", str(latency_s)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        proc.kill()
        raise SystemExit(f"fake server did not start: {line}")
    return proc, f"http://127.0.0.1:{line[1]}/v1"


async def measure(base_url: str, concurrency: int, n: int) -> tuple[float, int]:
    """Seconds to finish ``n`` judgments at ``concurrency``, and how many came back ok."""
    from judge.grade.client import OpenAIJudgeClient
    from judge.grade.prompts import load_prompt_set, render_single
    from judge.schemas import Question

    prompts = load_prompt_set()
    q = Question(question_id=1, category="writing", turns=["Describe rain in one line."])
    jobs = [render_single(prompts, q, [f"Rain, take {i}: grey threads on glass."], 1) for i in range(n)]
    client = OpenAIJudgeClient("fake-judge", base_url=base_url, concurrency=concurrency, max_retries=0)
    try:
        # one untimed wave opens the connection pool (a one-off cost a real run amortises)
        warm = [render_single(prompts, q, [f"warm-up {i}"], 1) for i in range(concurrency)]
        await asyncio.gather(*[client.judge(p.messages, s) for p, s in warm])
        t0 = time.perf_counter()
        results = await asyncio.gather(*[client.judge(p.messages, s) for p, s in jobs])
        seconds = time.perf_counter() - t0
    finally:
        await client.aclose()
    return seconds, sum(r.status == "ok" for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-s", type=float, default=0.5, help="the fake judge's fixed latency")
    ap.add_argument("--waves", type=int, default=8, help="requests per concurrency slot")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    proc, url = start_server(args.latency_s)
    try:
        print(f"fake judge at {url}, fixed latency {args.latency_s * 1000:.0f} ms, "
              f"{args.waves} requests per slot")
        print(f"{'concurrency':>11} {'judgments':>9} {'seconds':>8} {'judg/s':>8} {'ideal/s':>8} {'ratio':>6}")
        for c in args.concurrency:
            n = c * args.waves
            seconds, ok = asyncio.run(measure(url, c, n))
            if ok != n:
                raise SystemExit(f"only {ok} of {n} judgments came back ok")
            rate, ideal = n / seconds, c / args.latency_s
            print(f"{c:>11} {n:>9} {seconds:>8.2f} {rate:>8.1f} {ideal:>8.1f} {rate / ideal:>6.1%}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
