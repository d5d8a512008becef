"""The `judge` command line: parse flags, call the stage functions, print. Nothing else lives here.

Heavy modules are imported inside each command so that `judge --help` is instant. A `JudgeError`
becomes one line on stderr and exit code 2; `--debug` shows the traceback instead. The commands live
in one module per group (`models`, `stages`, `compare`, `gate`, `interop`, `service`), registered
on `judge.cli.app.app`.
"""

from __future__ import annotations

import sys

from judge.cli import compare as _compare  # noqa: F401 - registers its commands
from judge.cli import gate as _gate  # noqa: F401
from judge.cli import interop as _interop  # noqa: F401
from judge.cli import models as _models  # noqa: F401
from judge.cli import service as _service  # noqa: F401
from judge.cli import stages as _stages  # noqa: F401
from judge.cli.app import _state, app
from judge.errors import JudgeError

__all__ = ["app", "main"]

def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app, turning JudgeError into one line and exit code 2."""
    import signal

    def _terminate(signum: int, frame: object) -> None:  # SIGTERM unwinds like Ctrl-C, so engines
        raise KeyboardInterrupt  # and local judge servers are shut down, not orphaned

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _run(argv)
    finally:  # called as a function (tests, scripts): leave the caller's handler as it was
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> None:
    """`main` without the signal set-up: the app, with every failure turned into one line."""
    from judge.logs import set_verbose

    set_verbose(False)  # each call starts quiet; --verbose turns the engine logs on
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C (and so SIGTERM) into a returned 130, not an exception
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
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
        from typer.exceptions import Abort as TyperAbort
        from typer.exceptions import TyperException  # typer >= 0.20 vendors click: its errors

        if isinstance(err, (click.exceptions.ClickException, TyperException)):
            # a usage error (unknown flag, bad value): one line like every other error, exit 2
            ctx = getattr(err, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"judge: error: {' '.join(err.format_message().split())}{hint}", file=sys.stderr)
            sys.exit(2)
        if isinstance(err, (click.exceptions.Abort, TyperAbort)):
            sys.exit(130)
        if _state["debug"]:
            raise
        print(f"judge: internal error: {type(err).__name__}: {err} (rerun with --debug for the "
              "traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
