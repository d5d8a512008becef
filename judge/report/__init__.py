"""Renderers of a built `Scorecard` (terminal, Markdown, HTML) and the files they write.

No statistics here: everything shown is already in the scorecard or the flagged list built by
`judge.scorecard.build`. `write_reports` writes ``scorecard.json``, ``scorecard.md``, ``report.html``
and ``flagged.jsonl`` into the run folder (each atomically).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from judge.errors import RunFolderError
from judge.scorecard import SCORECARD_VERSION, FlaggedItem, Scorecard
from judge.store import Run, describe_validation_error, read_jsonl, write_atomic


def kl_colour(kl_nats: float) -> str | None:
    """The background colour of a token with this KL (None: below the colouring threshold), as in
    report.html; the service's review page uses the same scale."""
    from judge.report.style import kl_hex

    return kl_hex(kl_nats)


def report_paths(run: Run) -> dict[str, Path]:
    return {"json": run.root / "scorecard.json", "markdown": run.root / "scorecard.md",
            "html": run.root / "report.html", "flagged": run.root / "flagged.jsonl"}


def write_reports(run: Run, card: Scorecard, flagged: list[FlaggedItem] | None = None
                  ) -> dict[str, Path]:
    """Write the four report files; returns their paths by kind.

    ``flagged`` comes from `judge.scorecard.build.build_report`; when None it is built here (a second
    read of the run folder, with token colouring).
    """
    from judge.report.html import render_html
    from judge.report.markdown import render_markdown

    if flagged is None:
        from judge.scorecard import build_flagged, load_run

        flagged = build_flagged(load_run(run), tokens=True)
    paths = report_paths(run)
    write_atomic(paths["json"], card.model_dump_json(indent=1) + "\n")
    write_atomic(paths["markdown"], render_markdown(card, flagged))
    write_atomic(paths["html"], render_html(card, flagged))
    write_atomic(paths["flagged"], "".join(item.model_dump_json() + "\n" for item in flagged))
    return paths


def print_scorecard(card: Scorecard, console: object | None = None, *,
                    categories: bool = True) -> None:
    """The scorecard in the terminal (rich); see `judge.report.terminal`. ``categories=False``:
    overall and per-turn rows only."""
    from judge.report.terminal import print_scorecard as _print

    _print(card, console, categories=categories)  # type: ignore[arg-type]


def print_review(items: list[FlaggedItem], console: object | None = None) -> None:
    """Flagged items side by side in the terminal (rich); see `judge.report.terminal`."""
    from judge.report.terminal import print_review as _print

    _print(items, console)  # type: ignore[arg-type]


def load_scorecard(run: Run) -> Scorecard:
    path = report_paths(run)["json"]
    if not path.is_file():
        raise RunFolderError("no scorecard yet: run `judge report` first", path=path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"scorecard is not valid JSON ({err}); rerun `judge report`",
                             path=path) from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != SCORECARD_VERSION:
        raise RunFolderError(f"scorecard format {version!r} is not the supported {SCORECARD_VERSION};"
                             " rerun `judge report`", path=path)
    try:
        return Scorecard.model_validate(raw)
    except ValidationError as err:
        raise RunFolderError(f"invalid scorecard: {describe_validation_error(err)}; rerun "
                             "`judge report`", path=path) from None


def load_flagged(run: Run) -> list[FlaggedItem] | None:
    """The flagged list written by `judge report`, or None when there is none yet."""
    path = report_paths(run)["flagged"]
    return read_jsonl(path, FlaggedItem) if path.is_file() else None
