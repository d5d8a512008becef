"""Run configuration: engine options, sampling policy, judge settings, with their defaults.

These records are what flags and ``--config run.toml`` resolve to; the resolved values are written
into the run manifest, so a run can be reproduced from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from judge.schemas import Question, Record, SamplingSpec

EngineName = Literal["auto", "vllm", "hf"]
SamplingPolicy = Literal["greedy", "mt-bench"]

# MT-Bench's per-category temperatures (FastChat gen_model_answer): creative categories sample,
# knowledge categories sample a little, the rest is greedy.
MT_BENCH_TEMPERATURE: dict[str, float] = {
    "writing": 0.7, "roleplay": 0.7, "stem": 0.1, "humanities": 0.1,
    "reasoning": 0.0, "math": 0.0, "coding": 0.0, "extraction": 0.0,
}


class EngineOptions(Record):
    """Options passed through to the generation engine (GPU users set most of these)."""

    engine: EngineName = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # hf: "cpu", "cuda", "cuda:1"; default: cuda when available
    device: str | None = Field(default=None, pattern=r"^(cpu|cuda(:[0-9]{1,2})?|mps|xpu(:[0-9]{1,2})?)$")
    device_map: str | None = None  # hf: "auto" to spread a large model over several GPUs
    tensor_parallel_size: int = Field(default=1, ge=1)  # vllm
    # generation replicas of this model, each tensor_parallel_size GPUs (needs the Ray executor)
    data_parallel_size: int = Field(default=1, ge=1, le=1024)
    max_model_len: int | None = Field(default=None, ge=16)  # vllm
    gpu_memory_utilization: float = Field(default=0.85, gt=0.0, le=1.0)  # vllm
    enforce_eager: bool | None = None  # vllm; None = eager on CPU (fast start), compiled on GPU
    batch_size: int = Field(default=16, ge=1)  # hf: prompts per generate() call
    chunk_size: int = Field(default=64, ge=1)  # questions per batch written to disk together
    trust_remote_code: bool = False


class GenerationConfig(Record):
    """How answers are sampled."""

    sampling: SamplingPolicy = "greedy"
    max_new_tokens: int = Field(default=1024, ge=1)
    seed: int = 0
    system_prompt: str | None = None

    def spec_for(self, question: Question) -> SamplingSpec:
        temperature = 0.0
        if self.sampling == "mt-bench":
            temperature = MT_BENCH_TEMPERATURE.get(question.category, 0.7)
        return SamplingSpec(temperature=temperature, max_new_tokens=self.max_new_tokens, seed=self.seed)


# --------------------------------------------------------------------------- the whole run

JudgeMode = Literal["single", "pairwise", "both"]
ControlKind = Literal["engine", "batch"]


class ModelEntry(Record):
    """One model of a comparison: its spec, and engine options that override the run's."""

    spec: str = Field(min_length=1)
    engine: EngineOptions | None = None


class JudgeConfig(Record):
    spec: str = "local:smollm2-135m"  # OpenAI model name, a served model name, local:MODEL, or none
    # any OpenAI-compatible server; a list: a fleet of servers of the same judge model
    base_url: str | list[str] | None = None
    mode: JudgeMode = "both"
    probes: int = Field(default=24, ge=0, le=1000)  # the judge's self-test; 0 turns it off
    concurrency: int | None = Field(default=None, ge=1, le=256)  # None: 8; 16 for a local judge
    max_retries: int = Field(default=4, ge=0, le=20)
    timeout_s: float = Field(default=120.0, gt=0, allow_inf_nan=False)

    @field_validator("base_url", mode="before")
    @classmethod
    def _one_or_more_urls(cls, value: object) -> object:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(url, str) for url in value):
            return value
        raise ValueError("give a URL, or a non-empty list of URLs (a judge fleet)")


class DivergenceConfig(Record):
    enabled: bool = True
    top_k: PositiveInt | Literal["full"] = 64  # "full": the whole vocabulary (exact KL)
    tail_samples: int = Field(default=16, ge=0)  # tail draws per position (0: the bound alone)
    reverse: bool = False
    jsd: bool = False
    batch_tokens: int = Field(default=4096, ge=1)


class ReportConfig(Record):
    seed: int = 0
    n_resamples: int = Field(default=2000, ge=100)
    # the judge's quality verdict is shown when the lower 95% bound of its self-test sensitivity
    # reaches this (see judge.scorecard.selftest)
    min_sensitivity: float = Field(default=0.5, ge=0.0, le=1.0)


class GateConfig(Record):
    """Non-inferiority criteria for `judge gate` / `judge compare --gate` (None: not checked)."""

    max_grade_drop: float | None = Field(default=None, ge=0.0)
    min_recovery: float | None = Field(default=None, gt=0.0)
    min_win_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    max_kl: float | None = Field(default=None, ge=0.0)
    max_flip_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    min_judge_sensitivity: float | None = Field(default=None, ge=0.0, le=1.0)

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())


class ExecutorConfig(Record):
    """Where the model work runs: ``local`` (this process, one model at a time) or ``ray``."""

    kind: Literal["local", "ray"] = "local"
    # host:port of a running cluster's head, ``auto`` (the cluster this machine belongs to), or
    # ``ray://host:port`` (Ray Client); None starts a local Ray instance for this command
    ray_address: str | None = Field(default=None, min_length=1)
    max_retries: int = Field(default=2, ge=0, le=20)  # new workers for a model after one fails
    task_timeout_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False)  # silent this long: hung
    start_timeout_s: float = Field(default=900.0, gt=0, allow_inf_nan=False)  # placed and loaded
    cpus_per_worker: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # CPU-only clusters


class RunConfig(Record):
    """Everything `judge compare` needs; what `--config run.toml` holds and the manifest records."""

    baseline: ModelEntry
    compressed: list[ModelEntry] = Field(min_length=1)
    questions: str = "smoke"
    references: str | None = None
    run: str | None = None  # default: derived from the model names, so a rerun continues
    control: ControlKind | None = None  # also re-run the baseline (noise floor)
    generation: GenerationConfig = GenerationConfig()
    engine: EngineOptions = EngineOptions()
    judge: JudgeConfig = JudgeConfig()
    divergence: DivergenceConfig = DivergenceConfig()
    report: ReportConfig = ReportConfig()
    gate: GateConfig | None = None  # checked after the report; the exit code follows it
    executor: ExecutorConfig = ExecutorConfig()

    def engine_for(self, entry: ModelEntry) -> EngineOptions:
        return entry.engine or self.engine
