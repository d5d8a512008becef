"""The `judge` command line: parse flags, call the stage functions, print. Nothing else lives here.

Heavy modules are imported inside each command so that `judge --help` is instant. A `JudgeError`
becomes one line on stderr and exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from judge.errors import JudgeError

app = typer.Typer(
    name="judge",
    help="Does the compressed model still behave like the baseline? Judge verdicts, logit KL and "
    "flips on the same prompts, joined in one scorecard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and build the embedded default models.", invoke_without_command=True)
app.add_typer(models_app, name="models")

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


# ----------------------------------------------------------------------------- models
# (commands are added below by stage; keep each one thin)


# ----------------------------------------------------------------------------- generate

QuestionsOpt = Annotated[str, typer.Option("--questions", "-q",
                         help="Question set: a name in questions/, a FastChat question.jsonl, or a FastChat data folder.")]
ReferencesOpt = Annotated[Optional[Path], typer.Option("--references",
                          help="FastChat reference_answer/*.jsonl to merge into the questions.")]
RunOpt = Annotated[str, typer.Option("--run", "-r", help="Run folder: a name under outputs/ or a path.")]


def engine_options_from_flags(engine: str, dtype: str, device: Optional[str], device_map: Optional[str],
                              tensor_parallel_size: int, max_model_len: Optional[int],
                              batch_size: int, enforce_eager: Optional[bool] = None):
    from pydantic import ValidationError

    from judge.config import EngineOptions
    from judge.errors import ConfigError
    from judge.store import describe_validation_error

    try:
        return EngineOptions(engine=engine, dtype=dtype, device=device, device_map=device_map,
                             tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                             batch_size=batch_size, enforce_eager=enforce_eager)
    except ValidationError as err:
        raise ConfigError(f"invalid engine option: {describe_validation_error(err)}") from None


@app.command()
def generate(
    model: Annotated[str, typer.Argument(help="Embedded model name, checkpoint folder, or hub id.")],
    questions: QuestionsOpt = "smoke",
    run: RunOpt = "default",
    role: Annotated[str, typer.Option(help="baseline, compressed, compressed-NAME or control.")] = "baseline",
    references: ReferencesOpt = None,
    engine: Annotated[str, typer.Option(help="auto (vLLM when installed), vllm or hf.")] = "auto",
    sampling: Annotated[str, typer.Option(help="greedy, or mt-bench (per-category temperatures).")] = "greedy",
    max_new_tokens: Annotated[int, typer.Option(help="Token limit per turn.")] = 1024,
    seed: int = 0,
    system_prompt: Annotated[Optional[str], typer.Option(help="System prompt (default: none).")] = None,
    dtype: str = "auto",
    device: Optional[str] = None,
    device_map: Annotated[Optional[str], typer.Option(help="hf: 'auto' to spread over GPUs.")] = None,
    tensor_parallel_size: int = 1,
    max_model_len: Optional[int] = None,
    batch_size: Annotated[int, typer.Option(help="hf: prompts per batch.")] = 16,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Answer a question set with one model: RUN/answers/<role>.jsonl (FastChat format)."""
    from pydantic import ValidationError

    from judge.config import GenerationConfig
    from judge.errors import ConfigError
    from judge.generation import generate as run_generate
    from judge.models import resolve_model
    from judge.questions import load_questions
    from judge.store import Run, describe_validation_error, resolve_run_dir

    try:
        gen = GenerationConfig(sampling=sampling, max_new_tokens=max_new_tokens, seed=seed,
                               system_prompt=system_prompt)
    except ValidationError as err:
        raise ConfigError(f"invalid generation option: {describe_validation_error(err)}") from None
    opts = engine_options_from_flags(engine, dtype, device, device_map, tensor_parallel_size,
                                     max_model_len, batch_size)
    info, qs = load_questions(questions, references)
    target = Run(resolve_run_dir(run))
    resolved = resolve_model(model)
    result = run_generate(target, resolved, qs, info, role=role, gen=gen, engine_options=opts,
                          progress=progress)
    rate = f", {result.tokens / result.seconds:.1f} tok/s" if result.seconds else ""
    print(f"{result.path}: {result.generated} answered, {result.skipped} already there "
          f"({result.tokens} tokens in {result.seconds:.1f} s{rate})")



# ----------------------------------------------------------------------------- diverge


# ----------------------------------------------------------------------------- grade


# ----------------------------------------------------------------------------- report / review


# ----------------------------------------------------------------------------- compare


# ----------------------------------------------------------------------------- interop


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app, turning JudgeError into one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except JudgeError as err:
        if _state["debug"]:
            raise
        print(f"judge: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("judge: interrupted; finished items are saved, rerun the same command to continue",
              file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the one place a crash is turned into a line
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(2)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        if _state["debug"]:
            raise
        print(f"judge: internal error: {type(err).__name__}: {err} (rerun with --debug for the "
              "traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
