"""`judge compare`: questions -> answers -> checks -> divergence -> judgments -> scorecard, resumably.

Each stage skips what the run folder already holds, so rerunning the same command after a crash
or Ctrl-C continues where it stopped. With several compressed models (a sweep) the baseline's
answers and divergence cache are computed once. With ``control`` the baseline is answered a second
time under a change that should not matter (another engine, or another batch composition) and
scored like a compressed model: that is the noise floor every metric is shown against.
``judge = "none"`` skips the judge (and needs no endpoint or key): the scorecard then has the
behaviour axis alone. With ``gate`` criteria the gate is checked last (`judge.scorecard.gate`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from judge.config import EngineOptions, ModelEntry, RunConfig
from judge.errors import ConfigError
from judge.executors import Executor
from judge.schemas import ModelInfo, Question, QuestionSetInfo
from judge.store import Run, describe_validation_error, resolve_run_dir


@dataclass(frozen=True)
class Stage:
    name: str
    detail: str


@dataclass(frozen=True)
class Comparison:
    """What `compare` made: the run folder, and the gate's report when criteria were given."""

    run: Run
    gate: object | None = None  # a judge.scorecard.GateReport


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9_.-]+", "-", Path(text.rstrip("/")).name.lower()).strip("-._")
    return s[:48] or "model"


def compressed_roles(entries: list[ModelEntry]) -> list[str]:
    """``compressed`` for one model; ``compressed-<name>`` for each model of a sweep."""
    if len(entries) == 1:
        return ["compressed"]
    roles: list[str] = []
    for e in entries:
        role, n = f"compressed-{slug(e.spec)}", 2
        while role in roles:
            role, n = f"compressed-{slug(e.spec)}-{n}", n + 1
        roles.append(role)
    return roles


def reuse_roles(run: Run, models: list[ModelInfo], roles: list[str]) -> list[str]:
    """Keep the role a model already has in this run, so growing a sweep reuses its answers."""
    manifest = run.load_manifest()
    if manifest is None:
        return roles
    by_path = {m.path: r for r, m in manifest.models.items() if r.startswith("compressed")}
    out: list[str] = []
    for model, role in zip(models, roles):
        old = by_path.get(model.path)
        out.append(old if old is not None and old not in out else role)
    if len(set(out)) != len(out):  # a new default name collides with a reused one
        raise ConfigError("two compressed models map to the same role in this run; use another --run")
    return out


def default_run_name(cfg: RunConfig) -> str:
    name = f"{slug(cfg.baseline.spec)}__vs__{slug(cfg.compressed[0].spec)}"
    if len(cfg.compressed) > 1:
        name += f"__+{len(cfg.compressed) - 1}"
    return f"{name}__{slug(cfg.questions)}"


def load_config_file(path: Path) -> dict:
    """A TOML run config, or a run's manifest.json (its recorded config reproduces the run)."""
    if not path.is_file():
        raise ConfigError("config file not found", path=path)
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text(encoding="utf-8"))
            config = raw.get("config") if isinstance(raw, dict) else None
            raw = config.get("compare") if isinstance(config, dict) else None
            if not isinstance(raw, dict):
                raise ConfigError("this JSON has no config.compare section; give a run's "
                                  "manifest.json written by judge compare, or a .toml", path=path)
            return raw
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read the config file ({err.strerror})", path=path) from None
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's message carries the position: "... (at line 3, column 1)" or "(at end of document)"
        text = str(err)
        found = re.search(r"\(at line (\d+), column \d+\)", text)
        line = int(found.group(1)) if found else len(path.read_text(encoding="utf-8").splitlines())
        reason = re.sub(r" \(at .*\)$", "", text)
        raise ConfigError(f"invalid TOML: {reason}", path=path, line=line) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"invalid JSON: {err}", path=path) from None


def _entry(value: object) -> object:
    return {"spec": value} if isinstance(value, str) else value


def make_config(file_values: dict, overrides: dict, source: Path | None = None) -> RunConfig:
    """Merge a config file's values with flags (flags win; None means 'not given').

    The merged values are validated by `RunConfig` alone: a value of the wrong shape anywhere (a
    string where a table belongs, ``generation = 5``) is kept as the file gave it, so the model
    refuses it, and the message names the key (and ``source``, when the key came from it).
    """
    data = dict(file_values)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            given = {k: v for k, v in value.items() if v is not None}
            if not given:
                continue
            if data.get(key) is not None and not isinstance(data[key], dict):
                continue  # the file's value has the wrong shape: let the model say so
            merged = dict(data.get(key) or {})
            merged.update({k: v for k, v in value.items() if v is not None})
            data[key] = merged
        else:
            data[key] = value
    if "baseline" in data:
        data["baseline"] = _entry(data["baseline"])
    if "compressed" in data:
        comp = data["compressed"]
        data["compressed"] = [_entry(c) for c in (comp if isinstance(comp, list) else [comp])]
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0].get("loc", ())
        from_file = source is not None and bool(first) and first[0] in file_values
        where = f"check the key in {source}" if from_file else "check the flags"
        raise ConfigError(f"invalid run config: {describe_validation_error(err)} ({where})") from None


def control_engine_options(cfg: RunConfig) -> EngineOptions:
    """What differs for the control re-run of the baseline."""
    from judge.generate import auto_engine

    base = cfg.engine_for(cfg.baseline)
    if cfg.control == "engine":
        used = base.engine if base.engine != "auto" else auto_engine()[0]
        return base.model_copy(update={"engine": "hf" if used == "vllm" else "vllm"})
    # "batch": same engine, one question per batch instead of all together
    return base.model_copy(update={"chunk_size": 1, "batch_size": 1})


def no_judge(spec: str) -> bool:
    """``--judge none``: behaviour only."""
    return spec.strip().lower() == "none"


def compare(cfg: RunConfig, *, progress: bool = True, say=print) -> Comparison:
    """Run every stage of a comparison; returns the run folder (and the gate's report)."""
    from judge.generate import check_data_parallel, check_generation_inputs, load_tokenizer
    from judge.grade import (check_timeout, endpoint_for, parse_judge_spec, reach_all,
                             require_local_judge_runtime)
    from judge.models import resolve_model
    from judge.questions import load_questions

    endpoint, spec = None, None
    if no_judge(cfg.judge.spec):
        if cfg.judge.base_url:
            raise ConfigError("--judge none takes no --judge-base-url")
    else:
        spec = parse_judge_spec(cfg.judge.spec, cfg.judge.base_url)
        check_timeout(cfg.judge.timeout_s)
        if spec.kind != "local":
            endpoint = endpoint_for(spec)  # a bad spec or a missing key fails now, not after hours
        else:
            require_local_judge_runtime()  # likewise a local judge where vLLM is missing
    run = Run(resolve_run_dir(cfg.run or default_run_name(cfg)))
    if run.root.exists() and not run.root.is_dir():
        raise ConfigError("the run folder is a file; give another --run", path=run.root)
    info, questions = load_questions(cfg.questions, cfg.references)
    baseline = resolve_model(cfg.baseline.spec)
    models = [resolve_model(e.spec) for e in cfg.compressed]
    if cfg.divergence.enabled:  # a format transformers cannot load here fails now, not after generation
        from judge.diverge import check_loadable

        base_opts = cfg.engine_for(cfg.baseline)
        for m in (baseline, *models):
            check_loadable(m, device_map=base_opts.device_map, dtype=base_opts.dtype)
    roles = reuse_roles(run, models, compressed_roles(cfg.compressed))
    candidates: list[tuple[str, ModelInfo, EngineOptions]] = [
        (role, m, cfg.engine_for(e)) for role, m, e in zip(roles, models, cfg.compressed)]
    jobs = [("baseline", baseline, cfg.engine_for(cfg.baseline))] + candidates
    if cfg.control:
        jobs.append(("control", baseline, control_engine_options(cfg)))
    # this run's question set, models and generation config, the device and the weights, or refused
    to_answer = [model for role, model, opts in jobs
                 if check_generation_inputs(run, role, model, info, cfg.generation, opts)]
    if endpoint is not None and spec is not None:  # every endpoint, before hours of generation
        reach_all(spec.base_urls or [None], endpoint.api_key, timeout_s=cfg.judge.timeout_s)
    for path in dict.fromkeys(m.path for m in to_answer):  # a model without a usable tokenizer
        load_tokenizer(next(m for m in to_answer if m.path == path))
    executor = open_executor(cfg)  # Ray not installed: refused before writing
    for _, _, opts in jobs:
        check_data_parallel(executor, opts)
    executor.open()  # a cluster joined now: a refusal is one line before any write
    try:
        return _stages(cfg, run, info, questions, jobs, candidates, executor, progress, say)
    finally:
        executor.close()


def open_executor(cfg: RunConfig) -> Executor:
    """The run's executor (Ray missing: one line); nothing reached yet (`Executor.open`)."""
    from judge.executors import RaySettings, make_executor

    e = cfg.executor
    executor = make_executor(e.kind, RaySettings(
        address=e.ray_address, max_retries=e.max_retries, task_timeout_s=e.task_timeout_s,
        start_timeout_s=e.start_timeout_s, cpus_per_worker=e.cpus_per_worker))
    return executor


Job = tuple[str, ModelInfo, EngineOptions]


def _stages(cfg: RunConfig, run: Run, info: QuestionSetInfo, questions: list[Question],
            jobs: list[Job], candidates: list[Job], executor: Executor, progress: bool,
            say: Callable[[str], object]) -> Comparison:
    """Every stage of an accepted comparison, in order (`compare` has checked the inputs)."""
    from judge.generate import generate_all

    # every input accepted (a role's answers continue only under the generation config that
    # made them, recorded per role by `generate`): record the comparison
    say(f"run folder: {run.root}")
    recorded = run.load_manifest()
    if recorded is None or recorded.config.get("compare") != cfg.model_dump(mode="json"):
        run.update_manifest(config={"compare": cfg.model_dump(mode="json")})

    # 1. answers ------------------------------------------------------------------------------
    for res in generate_all(run, jobs, questions, info, gen=cfg.generation, progress=progress,
                            executor=executor):
        took = f" ({res.tokens} tokens in {res.seconds:.0f} s)" if res.generated else ""
        say(f"answers/{res.role}: {res.generated} new, {res.skipped} already there{took}")

    # 1b. checks (answers graded by code where the set has checks; cheap, no model) ----------
    from judge.check import check_run

    for res in check_run(run, [r for r, _, _ in jobs]):
        say(res.short())

    # 2. divergence ---------------------------------------------------------------------------
    if cfg.divergence.enabled:
        from judge.diverge import DivergeOptions, diverge

        d = cfg.divergence
        base_opts = cfg.engine_for(cfg.baseline)
        opts = DivergeOptions(top_k=None if d.top_k == "full" else d.top_k,
                              tail_samples=d.tail_samples, reverse=d.reverse,
                              jsd=d.jsd, dtype=base_opts.dtype,
                              device=base_opts.device, device_map=base_opts.device_map,
                              batch_tokens=d.batch_tokens,
                              gpus_per_model=base_opts.tensor_parallel_size)
        for res in diverge(run, roles=[r for r, _, _ in candidates], options=opts, progress=progress,
                           executor=executor):
            o = res.summary.overall
            say(f"divergence/{res.role}: mean KL {o.kl_mean:.4f} nats, same top-1 {o.same_top1:.1%} "
                f"over {o.n_tokens} tokens")

    # 3. judge --------------------------------------------------------------------------------
    judge_model = None  # no judge: the scorecard takes no judge's grades
    if no_judge(cfg.judge.spec):
        say("judge: none (--judge none): no grades, no games; the scorecard has the behaviour axis")
    else:
        from judge.grade import grade_run

        grade_roles = [r for r, _, _ in candidates] + (["control"] if cfg.control else [])
        j = cfg.judge
        summary = grade_run(run, j.spec, base_url=j.base_url, mode=j.mode, roles=grade_roles,
                            questions=questions, concurrency=j.concurrency,
                            max_retries=j.max_retries, timeout_s=j.timeout_s, progress=progress,
                            probes=j.probes)
        say(summary.short())
        judge_model = summary.judge_model

    # 4. report -------------------------------------------------------------------------------
    from judge.report import print_scorecard, write_reports
    from judge.scorecard import build_report

    card, flagged = build_report(run, seed=cfg.report.seed, n_resamples=cfg.report.n_resamples,
                                 min_sensitivity=cfg.report.min_sensitivity,
                                 judge_model=judge_model)  # this comparison's judge
    write_reports(run, card, flagged)
    print_scorecard(card, categories=False)  # per-category rows: scorecard.md, report.html
    say(f"wrote scorecard.md, report.html and flagged.jsonl in {run.root} (engine logs: logs/)")
    say(f"review the flagged responses: judge review {run.root}")

    # 5. gate ---------------------------------------------------------------------------------
    report = None
    if cfg.gate is not None and not cfg.gate.is_empty():
        from judge.scorecard import evaluate_gate, write_gate

        criteria = {k: v for k, v in cfg.gate.model_dump().items() if v is not None}
        report = evaluate_gate(card, criteria)
        paths = write_gate(report, run.root)
        failing = [f"{r.role} {r.criterion.replace('_', '-')}" for r in report.results
                   if r.outcome != "pass"]
        say(f"gate: {report.outcome.upper()} (exit code {report.exit_code})"
            + (f"; not passed: {', '.join(failing)}" if failing else "")
            + f"; wrote {paths['json'].name}, {paths['junit'].name}, {paths['markdown'].name}")
    return Comparison(run, report)
