"""`judge serve` (the judging service) and its command-line clients `judge submit`, `judge status`
and `judge watch`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from judge.cli.app import app

ServerOpt = Annotated[Optional[str], typer.Option("--server", help="The service's URL (default "
                      "$JUDGE_SERVER, else http://127.0.0.1:8750).")]
TokenFileOpt = Annotated[Optional[Path], typer.Option("--token-file", help="File holding the "
                         "service's token (default $JUDGE_SERVICE_TOKEN, else outputs/service-token).")]


def _client(server: str | None, token_file: Path | None):
    from judge.service import DEFAULT_URL, ServiceClient, client_token

    return ServiceClient(server or os.environ.get("JUDGE_SERVER") or DEFAULT_URL,
                         client_token(token_file))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs --token-file.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8750,
    outputs: Annotated[Optional[Path], typer.Option(help="Outputs folder: run folders and the index (default $JUDGE_OUTPUTS or outputs/).")] = None,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="The token writes need (default: made once in OUTPUTS/service-token).")] = None,
    slots: Annotated[int, typer.Option(min=1, max=64, help="Comparisons run at a time (default 1: one accelerator).")] = 1,
    executor: Annotated[str, typer.Option(help="Where jobs run their models: 'local' (this machine, one model at a time) or 'ray' (a Ray cluster; pip install 'judge[ray]').")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="With --executor ray: the cluster's head (host:port, 'auto' or ray://host:port); default: a local Ray instance the server starts for its jobs.")] = None,
) -> None:
    """Serve the judging service: REST API under /v1, web UI, job queue."""
    from judge.errors import ConfigError
    from judge.service import serve as run_serve
    from judge.store import default_outputs_dir

    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor {executor!r}: give 'local' or 'ray'")
    run_serve(host=host, port=port, outputs=outputs or default_outputs_dir(), token_file=token_file,
              slots=slots, executor=executor, ray_address=ray_address)


@app.command()
def submit(
    config: Annotated[Path, typer.Argument(help="A run.toml (or a run's manifest.json), as for judge compare --config.")],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    key_env: Annotated[Optional[str], typer.Option("--key-env", help="Name of the server's environment variable holding the judge's key (the key itself is never sent).")] = None,
) -> None:
    """Submit a comparison to the service; prints its id."""
    from judge.compare import load_config_file

    values = load_config_file(config)
    for key in ("questions", "references"):  # a file here: the server reads it by its full path
        value = values.get(key)
        if isinstance(value, str) and ("/" in value or value.endswith(".jsonl")) and Path(value).exists():
            values[key] = str(Path(value).resolve())
    client = _client(server, token_file)
    print(client.submit(values, key_env)["id"])


def _stage_line(s: dict) -> str:
    rate = f", {s['rate_per_s']:.2f}/s" if s.get("rate_per_s") else ""
    eta = f", eta {s['eta_s']:.0f} s" if s.get("eta_s") is not None else ""
    return f"  {s['stage']}: {s['done']}/{s['total']} {s['state']}{rate}{eta}"


@app.command()
def status(
    comparison: Annotated[str, typer.Argument(help="The comparison's id.")],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
) -> None:
    """A comparison's status and per-stage progress."""
    st = _client(server, token_file).status(comparison)
    head = f"{st['id']}: {st['status']}"
    if st.get("queue_position"):
        head += f" (position {st['queue_position']} in the queue)"
    if st.get("exit_code") is not None:
        head += f", exit code {st['exit_code']}"
    print(head)
    for s in st["stages"]:
        print(_stage_line(s))
    if st.get("error"):
        print(f"  error: {st['error']}")


def exit_code_of(end: dict) -> int:
    """What `judge watch` exits with: the job's own exit code (0, or the gate's 1 / 3, or 2 for bad
    input), 1 for a failure without one, 130 when cancelled."""
    if end["status"] == "cancelled":
        return 130
    if end.get("exit_code") is not None:
        return int(end["exit_code"])
    return 0 if end["status"] == "completed" else 1


@app.command()
def watch(
    comparison: Annotated[str, typer.Argument(help="The comparison's id.")],
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
) -> None:
    """Follow a comparison live (progress bars); the exit code follows the job's result."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    client = _client(server, token_file)
    console = Console(stderr=True)
    tasks: dict[str, int] = {}
    end: dict = {"status": "failed"}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as prog:
        for event, data in client.events(comparison):
            if event == "progress":
                stage = data["stage"]
                if data.get("state") == "start" or stage not in tasks:
                    if stage in tasks:
                        prog.remove_task(tasks[stage])
                    tasks[stage] = prog.add_task(stage, total=max(1, data["total"]))
                prog.update(tasks[stage], completed=data["done"])
            elif event == "status" and data.get("queue_position"):
                prog.console.print(f"queued, position {data['queue_position']}")
            elif event == "end":
                end = data
    line = f"{comparison}: {end['status']}"
    if end.get("error"):
        line += f": {end['error']}"
    print(line)
    sys.exit(exit_code_of(end))
