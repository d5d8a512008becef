"""The generate stage's model work for an executor: a worker that answers question chunks, and the
`WorkSpec` that appends its answers to ``RUN/answers/<role>.jsonl``.

`GenerationWorker` runs wherever the executor puts it (this process, or a Ray actor): it loads the
tokenizer and the engine once and returns each chunk's `Answer` rows. The spec's callbacks run in
the driver, which alone writes: the role's generation config is recorded in the manifest once the
worker is up (a failed engine start changes nothing), then each chunk is appended whole.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judge.config import EngineOptions, GenerationConfig
from judge.executors import WorkSpec
from judge.errors import ModelSpecError
from judge.generate.chat import conversation, decode, prompt_ids
from judge.generate.engines import Engine
from judge.schemas import Answer, AnswerChoice, ModelInfo, Question, QuestionSetInfo
from judge.store import Run, append_jsonl, package_versions


@dataclass(frozen=True)
class GenerationWorker:
    """Picklable factory: called in the worker's process, it loads the model."""

    model: ModelInfo
    engine_options: EngineOptions
    gen: GenerationConfig
    role: str

    def __call__(self) -> _Loaded:
        from judge.generate.engines import make_engine

        tokenizer = load_tokenizer(self.model)
        return _Loaded(self, tokenizer, make_engine(self.model.path, self.engine_options,
                                                    seed=self.gen.seed))


class _Loaded:
    def __init__(self, factory: GenerationWorker, tokenizer: Any, engine: Any):
        self.f, self.tokenizer, self.engine = factory, tokenizer, engine

    def run(self, chunk: list[Question]) -> tuple[list[Answer], int]:
        return answer_chunk(self.engine, self.tokenizer, chunk, self.f.model, self.f.role, self.f.gen)

    def close(self) -> None:
        self.engine.close()


def generation_spec(run: Run, model: ModelInfo, todo: list[Question], info: QuestionSetInfo, *,
                    role: str, gen: GenerationConfig, engine_options: EngineOptions,
                    skipped: int) -> tuple[WorkSpec, dict[str, float]]:
    """The spec answering ``todo`` for ``role``, and a tally (``tokens``, ``seconds``) it fills."""
    path = run.answers_path(role)
    tally = {"tokens": 0.0, "seconds": 0.0, "t0": 0.0}

    def on_start() -> None:
        # the engine is up: record what produces this role's answers (kept as first recorded when
        # the role is continued; check_run_generation refused a different generation config)
        manifest = run.load_manifest()
        key = f"generate:{role}"
        recorded = manifest.config.get(key) if manifest else None
        config: dict[str, object] = {}
        if not (skipped and isinstance(recorded, dict)):
            config[key] = {"generation": gen.model_dump(), "engine": engine_options.model_dump()}
            if role == "baseline":  # the divergence stage reads the baseline's system prompt
                config["generation"] = gen.model_dump()
        run.update_manifest(questions=info, models={role: model}, versions=package_versions(),
                            seed=gen.seed, **({"config": config} if config else {}))
        run.mark_stage(f"generate:{role}", started=True)
        tally["t0"] = time.perf_counter()

    def on_result(_: int, result: tuple[list[Answer], int]) -> tuple[int, int]:
        answers, tokens = result
        append_jsonl(path, answers)
        tally["tokens"] += tokens
        return len(answers), tokens

    def on_done() -> None:
        run.mark_stage(f"generate:{role}", finished=True)
        tally["seconds"] = time.perf_counter() - tally["t0"]

    size = engine_options.chunk_size
    dp = engine_options.data_parallel_size
    if dp > 1:  # every replica gets a share of the questions, not only the first chunks
        size = max(1, min(size, -(-len(todo) // dp)))
    spec = WorkSpec(
        name=f"generate {role}", worker=GenerationWorker(model, engine_options, gen, role),
        items=[todo[i:i + size] for i in range(0, len(todo), size)], on_result=on_result,
        total=len(todo), on_start=on_start, on_done=on_done,
        gpus=engine_options.tensor_parallel_size, replicas=dp, log=(run.logs_dir, f"generate-{role}"))
    return spec, tally


def load_tokenizer(model: ModelInfo) -> Any:
    """The model's tokenizer, or one line saying why not (library output kept off the terminal)."""
    import tempfile

    from judge.logs import engine_output

    with tempfile.TemporaryDirectory(prefix="judge-tokenizer-") as scratch:
        with engine_output(Path(scratch), "tokenizer"):
            from transformers import AutoTokenizer

            try:
                return AutoTokenizer.from_pretrained(model.path)
            except Exception as err:  # noqa: BLE001 - tokenizers raises plain Exception too
                # no tokenizer files, or files transformers cannot read
                raise ModelSpecError(f"cannot load a tokenizer from {model.path}: "
                                     f"{' '.join(str(err).split())[:300]}") from None


def answer_chunk(engine: Engine, tokenizer: Any, chunk: list[Question], model: ModelInfo, role: str,
                  gen: GenerationConfig) -> tuple[list[Answer], int]:
    texts: list[list[str]] = [[] for _ in chunk]
    ids: list[list[list[int]]] = [[] for _ in chunk]
    prompt_counts: list[list[int]] = [[] for _ in chunk]
    finish: list[list[str]] = [[] for _ in chunk]
    specs = [gen.spec_for(q) for q in chunk]
    n_turns = max(len(q.turns) for q in chunk)
    for turn in range(n_turns):
        active = [i for i, q in enumerate(chunk) if turn < len(q.turns)]
        prompts = [prompt_ids(tokenizer, conversation(chunk[i].turns, texts[i], gen.system_prompt))
                   for i in active]
        outs = engine.generate(prompts, [specs[i] for i in active])
        for i, prompt, out in zip(active, prompts, outs):
            texts[i].append(decode(tokenizer, out.token_ids))
            ids[i].append(out.token_ids)
            prompt_counts[i].append(len(prompt))
            finish[i].append(out.finish_reason)
    now = time.time()
    answers = [
        Answer(
            question_id=q.question_id, answer_id=uuid.uuid4().hex[:22], model_id=model.name,
            choices=[AnswerChoice(index=0, turns=texts[i])], tstamp=now, role=role,
            category=q.category, token_ids=ids[i], prompt_token_counts=prompt_counts[i],
            finish_reasons=finish[i], sampling=specs[i], engine=engine.name,
            engine_version=engine.version,
        )
        for i, q in enumerate(chunk)
    ]
    return answers, sum(len(t) for row in ids for t in row)
