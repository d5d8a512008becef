"""The `judge` Typer application object and the options every command shares.

Command modules (`judge.cli.models`, `stages`, `compare`, `interop`) register on `app`;
`judge.cli` imports them all and runs the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also stream engine logs (kept in "
                                          "RUN/logs/) to the terminal.")] = False,
) -> None:
    _state["debug"] = debug
    set_verbose(verbose)


def set_verbose(verbose: bool) -> None:
    """``--verbose`` before or after the command name: engine logs also stream to the terminal."""
    if verbose:
        from judge.logs import set_verbose as _set

        _set(True)


# options several commands share
QuestionsOpt = Annotated[str, typer.Option("--questions", "-q",
                         help="Question set: a name in questions/, a FastChat question.jsonl, or a FastChat data folder.")]
ReferencesOpt = Annotated[Optional[Path], typer.Option("--references",
                          help="FastChat reference_answer/*.jsonl to merge into the questions.")]
RunOpt = Annotated[str, typer.Option("--run", "-r", help="Run folder: a name under outputs/ or a path.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also stream engine logs (kept in "
                       "RUN/logs/) to the terminal.")]
