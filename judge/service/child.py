"""The child process of one job: `judge compare --config RUN/service/config.json --no-progress`.

Run as ``python -m judge.service.child CONFIG PARENT_PID``. It asks Linux to send it SIGTERM when
the server dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the server stops its jobs the way a
cancel does (finished items saved, engines shut down) instead of leaving them running unowned; the
restarted server then resumes them from their run folders. Everything else is `judge compare`.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:  # the server died before the request took effect
        sys.exit(130)


def main(argv: list[str]) -> None:
    config, parent = argv[0], int(argv[1])
    _die_with_parent(parent)
    from judge.cli import main as judge_main

    judge_main(["compare", "--config", config, "--no-progress"])


if __name__ == "__main__":
    main(sys.argv[1:])
