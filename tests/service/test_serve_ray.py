"""`judge serve --executor ray`: the server starts one local Ray instance for its jobs, and every
job's `judge compare` joins it (two slots, two comparisons at once, both to completion).

Real uvicorn server, real Ray, real jobs on the embedded smollm2-135m (hf engine, 8-token answers,
no judge: the executor is what is under test here; grading is the same on either executor).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_support import ROOT, TOKEN, Server

pytest.importorskip("ray", reason="Ray is not installed (pip install 'judge[ray]')")
pytestmark = pytest.mark.slow


def test_serve_with_ray_runs_every_job_on_the_servers_ray_instance(tmp_path: Path) -> None:
    outputs, token_file, q = tmp_path / "outputs", tmp_path / "token", tmp_path / "q.jsonl"
    outputs.mkdir()
    token_file.write_text(TOKEN + "\n")
    q.write_text(json.dumps({"question_id": 1, "category": "math",
                             "turns": ["What is 12 times 3?"]}) + "\n")
    server = Server(outputs, token_file=token_file, slots=2, extra=["--executor", "ray"]).start(
        timeout_s=120)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        ids = []
        for name in ("a", "b"):
            cfg = tmp_path / f"{name}.toml"
            cfg.write_text(f'baseline = "smollm2-135m"\ncompressed = "smollm2-135m"\n'
                           f'questions = "{q}"\nrun = "ray-{name}"\n[generation]\n'
                           'max_new_tokens = 8\n[engine]\nengine = "hf"\n[judge]\nspec = "none"\n')
            p = subprocess.run([sys.executable, "-m", "judge", "submit", str(cfg), "--server",
                                server.url, "--token-file", str(token_file)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            ids.append(p.stdout.strip())
        for cid in ids:
            w = subprocess.run([sys.executable, "-m", "judge", "watch", cid, "--server", server.url,
                                "--token-file", str(token_file)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
            assert w.returncode == 0, w.stdout[-2000:] + w.stderr[-2000:]
        rows = [httpx.get(f"{server.url}/v1/comparisons/{cid}").json() for cid in ids]
        assert [r["status"] for r in rows] == ["completed", "completed"]
        addresses = set()
        for name in ("a", "b"):
            run = outputs / f"ray-{name}"
            config = json.loads((run / "service" / "config.json").read_text())["config"]["compare"]
            assert config["executor"]["kind"] == "ray"
            addresses.add(config["executor"]["ray_address"])
            assert (run / "answers" / "compressed.jsonl").read_text().count("\n") == 1
            assert (run / "scorecard.json").is_file()
            manifest = json.loads((run / "manifest.json").read_text())
            assert manifest["config"]["compare"]["executor"]["kind"] == "ray"
        assert len(addresses) == 1 and None not in addresses  # one instance, the server's
    finally:
        server.stop()
    log = server.log.read_text()
    assert "jobs on Ray at" in log
