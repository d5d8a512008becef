"""`judge compare`: flags and a config file merged into a `RunConfig`, then every stage in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from judge.cli.app import VerboseOpt, app, set_verbose


DEMO_MAX_NEW_TOKENS = 128  # the embedded demo caps answers so it finishes in minutes on 2 CPU cores


def base_url_value(urls: list[str] | None) -> str | list[str] | None:
    """``--judge-base-url`` as the config holds it: one URL as a string (as runs recorded it before
    fleets), several as a list, none as None (the config file's value stands)."""
    if not urls:
        return None
    return urls[0] if len(urls) == 1 else list(urls)


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
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge: OpenAI model, served model name, local:MODEL, or 'none' (behaviour only: no judge, no key).")] = None,
    judge_base_url: Annotated[Optional[list[str]], typer.Option(help="Any OpenAI-compatible server; repeat it for a fleet of servers of the same judge (--concurrency is then per server).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="single, pairwise or both.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Judge requests in flight, per judge endpoint.")] = None,
    probes: Annotated[Optional[int], typer.Option("--probes", help="The judge's self-test: planted degradations of the baseline's answers (default 24; 0: off).")] = None,
    min_sensitivity: Annotated[Optional[float], typer.Option(help="Show the quality verdict only when the judge's self-test sensitivity has a lower 95% bound of at least this (default 0.5).")] = None,
    gate: Annotated[Optional[list[str]], typer.Option("--gate", help="A CI criterion NAME=VALUE (repeatable), e.g. max-grade-drop=0.3, min-recovery=0.95, min-win-rate=0.45, max-kl=0.05, max-flip-rate=0.05, min-judge-sensitivity=0.8; the exit code follows the gate (0 pass, 1 fail, 3 inconclusive).")] = None,
    control: Annotated[Optional[str], typer.Option(help="Noise floor: re-run the baseline with another 'engine' or 'batch' composition.")] = None,
    sampling: Annotated[Optional[str], typer.Option(help="greedy or mt-bench.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Token limit per turn (default 1024; 128 for the demo).")] = None,
    seed: Optional[int] = None,
    engine: Annotated[Optional[str], typer.Option(help="auto, vllm or hf.")] = None,
    dtype: Optional[str] = None,
    device: Optional[str] = None,
    device_map: Optional[str] = None,
    tensor_parallel_size: Optional[int] = None,
    data_parallel_size: Annotated[Optional[int], typer.Option(help="Generation replicas per model, each --tensor-parallel-size GPUs (needs --executor ray; on one multi-GPU node a local Ray instance).")] = None,
    max_model_len: Optional[int] = None,
    top_k: Annotated[Optional[str], typer.Option(help="Divergence cache top-K, or 'full' for exact KL.")] = None,
    executor: Annotated[Optional[str], typer.Option(help="Where the models run: 'local' (default; one after another) or 'ray' (each model a Ray actor, side by side; pip install 'judge[ray]').")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="With --executor ray: the cluster's head (host:port, 'auto' or ray://host:port); default: a local Ray instance.")] = None,
    ray_cpus_per_worker: Annotated[Optional[float], typer.Option(help="With --executor ray on a CPU-only cluster: CPUs per model worker (default 1).")] = None,
    no_diverge: Annotated[bool, typer.Option("--no-diverge", help="Skip the divergence stage.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verbose: VerboseOpt = False,
) -> None:
    """Compare BASELINE with one or more COMPRESSED models: answers, KL, judge, scorecard."""
    set_verbose(verbose)
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
    if gate:
        from judge.cli.gate import parse_gate_specs

        overrides["gate"] = parse_gate_specs(gate)
    overrides.update(
        questions=questions, references=references, run=run, control=control,
        judge={"spec": judge, "base_url": base_url_value(judge_base_url), "mode": mode, "concurrency": concurrency,
               "probes": probes},
        report={"min_sensitivity": min_sensitivity},
        generation={"sampling": sampling, "max_new_tokens": max_new_tokens, "seed": seed},
        engine={"engine": engine, "dtype": dtype, "device": device, "device_map": device_map,
                "tensor_parallel_size": tensor_parallel_size, "data_parallel_size": data_parallel_size, "max_model_len": max_model_len},
        divergence=divergence,
        executor={"kind": executor, "ray_address": ray_address,
                  "cpus_per_worker": ray_cpus_per_worker},
    )
    cfg = make_config(file_values, overrides, config)
    result = run_compare(cfg, progress=progress)
    if result.gate is not None and result.gate.exit_code:
        import sys

        sys.exit(result.gate.exit_code)
