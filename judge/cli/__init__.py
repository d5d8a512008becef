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
    """Console-script entry: run the app; every failure is one line and exit code 2 (130 for
    Ctrl-C or SIGTERM, 1 for a bug)."""
    import signal

    def _terminate(signum: int, frame: object) -> None:  # SIGTERM unwinds like Ctrl-C, so engines
        raise KeyboardInterrupt  # and local judge servers are shut down, not orphaned

    previous_int = signal.getsignal(signal.SIGINT)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _run(argv)
    finally:  # called as a function (tests, scripts): leave the caller's handlers as they were
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _run(argv: list[str] | None) -> None:
    """`main` without the signal set-up: the app, with every failure turned into one line.

    The click command is invoked here rather than through typer's ``main``, because that turns a
    Ctrl-C into a *returned* 130 and an ``EOFError`` from any library into a silent abort: here an
    interrupt is one line and exit 130, an ``Exit`` keeps its code, and every other failure is one
    line and exit 2 (exit 1 only for a bug).
    """
    from typer.exceptions import Abort as TyperAbort
    from typer.exceptions import Exit as TyperExit
    from typer.exceptions import TyperException  # typer >= 0.20 vendors click: its errors
    from typer.main import get_command

    from judge.cli.failures import describe, safe
    from judge.logs import set_verbose

    set_verbose(False)  # each call starts quiet; --verbose turns the engine logs on
    args = sys.argv[1:] if argv is None else list(argv)
    command = get_command(app)
    try:
        with command.make_context("judge", args) as ctx:
            command.invoke(ctx)
    except JudgeError as err:
        if _state["debug"]:
            raise
        print(f"judge: error: {safe(str(err))}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit:
        raise
    except TyperExit as err:
        if err.exit_code == 130:  # a command's own ctx.exit(130) is an interrupt too
            _interrupted()
        sys.exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - the one place a crash is turned into a line
        import click

        if isinstance(err, (click.exceptions.ClickException, TyperException)):
            # a usage error (unknown flag, bad value): one line like every other error, exit 2
            message = " ".join(err.format_message().split())
            if not message:  # `judge` alone: the help was shown
                sys.exit(2)
            ctx = getattr(err, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"judge: error: {safe(message)}{hint}", file=sys.stderr)
            sys.exit(2)
        if isinstance(err, (click.exceptions.Abort, TyperAbort)):
            cause = err.__cause__ or err.__context__
            if isinstance(cause, KeyboardInterrupt):
                _interrupted()
            line = describe(cause) if cause is not None else None
            print(f"judge: error: {safe(line or 'aborted')}", file=sys.stderr)
            sys.exit(2)
        if _state["debug"]:
            raise
        line = describe(err)
        if line is not None:  # the operating system, SQLite or a corrupt file: the user can fix it
            print(f"judge: error: {safe(line)}", file=sys.stderr)
            sys.exit(2)
        print(f"judge: internal error: {safe(f'{type(err).__name__}: {err}')} (rerun with --debug "
              "for the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)


def _interrupted() -> None:
    """Ctrl-C or SIGTERM: one line, exit 130 (a second signal while saying so changes nothing)."""
    import logging
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # the interrupt may have been raised inside an asyncio task (a judgment being saved): asyncio
    # would log that task's "exception never retrieved" with a traceback when it is collected
    logging.getLogger("asyncio").disabled = True
    print("judge: interrupted, rerun to continue (finished items are saved)", file=sys.stderr)
    sys.exit(130)
