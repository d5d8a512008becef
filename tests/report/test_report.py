"""Renderers: terminal and Markdown text, escaping, and the HTML report in headless Chromium.

The browser tests start Debian's ``chromium`` (``apt-get install -y chromium``) headless on the
file, and are skipped with that reason when it is not installed. Console messages reach stderr
with ``--enable-logging=stderr``; the report's own script logs nothing, so any ``CONSOLE`` line
(an uncaught error, a CSP violation from injected markup) fails the test.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from synthetic_run import DIVERGENCE, MARKUP_PAYLOAD, SCRIPT_PAYLOAD, token_kl, write_synthetic_run

from judge.cli import main
from judge.report import write_reports
from judge.report.html import render_html
from judge.report.markdown import fenced, render_markdown
from judge.report.style import grade_label, kl_hex, kl_level, visible_text
from judge.report.terminal import print_review, print_scorecard
from judge.scorecard.build import build_report
from judge.scorecard.data import lookup_from_arrays
from judge.store import Run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")


class _ByteTokenizer:
    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):  # noqa: ANN001
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


@pytest.fixture()
def built(tmp_path: Path, monkeypatch):
    """The synthetic run with token arrays (the baseline answer's bytes) and a byte tokenizer."""
    run = write_synthetic_run(tmp_path / "run")
    keys = list(DIVERGENCE)
    texts = {k: f"baseline answer to question {k[0]}, turn {k[1]}: 6 x 4 = 24 & <more>."[:DIVERGENCE[k][0]]
             for k in keys}
    kls = [np.array(token_kl(k)) for k in keys]
    ids = [np.frombuffer(texts[k].encode().ljust(DIVERGENCE[k][0], b"."), dtype=np.uint8) for k in keys]
    arrays = type("A", (), {})()
    arrays.keys, arrays.turns = [k[0] for k in keys], np.array([k[1] for k in keys])
    arrays.offsets = np.cumsum([0] + [len(a) for a in kls])
    arrays.token_ids, arrays.kl = np.concatenate(ids), np.concatenate(kls)
    arrays.same_top1 = arrays.kl < 1.0
    monkeypatch.setattr("judge.scorecard.data.load_token_arrays",
                        lambda _run, role: lookup_from_arrays(arrays) if role == "compressed" else None)
    monkeypatch.setattr("judge.scorecard.flagged.load_baseline_tokenizer", lambda data: _ByteTokenizer())
    card, flagged = build_report(run, n_resamples=300, method="percentile", min_questions=2)
    return run, card, flagged


# --------------------------------------------------------------------------- style


def test_visible_text_neutralises_controls() -> None:
    assert visible_text("a\x1b[31mb\x07\tc\nd\x7f\x9b\u202e") == "a\u241b[31mb\u2407\tc\nd\u2421\ufffd\ufffd"


def test_kl_colour_scale() -> None:
    assert kl_level(0.0) == 0.0 and kl_hex(1e-4) is None
    assert kl_level(3.0) == 1.0 and kl_level(100.0) == 1.0
    # log scale between 1e-3 and 3 nats: sqrt(3e-3) is half way
    assert kl_level(np.sqrt(1e-3 * 3.0)) == pytest.approx(0.5)
    assert kl_hex(3.0) == "#d73027"


def test_grade_label() -> None:
    assert grade_label(7.0, "ok", True) == "grade 7, correct"
    assert grade_label(3.0, "ok", None) == "grade 3"
    assert grade_label(None, "api_error", None) == "judgment failed (api_error)"
    assert grade_label(None, None, None) == "not judged"


# --------------------------------------------------------------------------- terminal


def _console():
    from rich.console import Console

    return Console(record=True, width=140, force_terminal=True, color_system="truecolor",
                   file=io.StringIO())


def test_terminal_scorecard(built) -> None:
    _, card, _ = built
    con = _console()
    print_scorecard(card, con)
    text = con.export_text()
    assert "\x1b" not in text
    assert "behaviour unchanged · quality worse" in text  # the noise floor: control differs too
    assert "Quality: worse (grade delta −1.29)" in text
    assert "−1.29 [" in text and "Head-to-head (n=6): 1 W / 3 T / 2 L" in text
    assert "noise Δ" in text and "control" in text
    assert re.search(r"pairwise\s+│\s+compressed\s+│\s+missing\s+│\s+1", text)
    assert re.search(r"single\s+│\s+compressed\s+│\s+api_error\s+│\s+1", text)
    # the judge is named in the verdict panel's title (and the verdict text in the files)
    assert "Verdict (judge judge-model)" in text and "Judge: judge-model." not in text
    assert card.verdict.startswith("Judge: judge-model.\n")
    assert "McNemar p by question = 1.000" in text


def test_terminal_review_is_literal_and_coloured(built) -> None:
    _, _, flagged = built
    con = _console()
    print_review(flagged[:1], con)
    raw = con.file.getvalue()  # what reached the terminal, escape sequences included
    plain = con.export_text()
    # rich markup in judge text stays literal; the ANSI escape from the model is shown as ␛
    assert "[bold red]not markup[/]" in plain and visible_text(MARKUP_PAYLOAD) in plain
    assert "\u241b[31mnot red" in plain and "\x1b[31mnot red" not in raw
    assert "<script>document.title='PWNED'</script>" in plain
    # the first baseline token has KL 2.0 nats: a truecolor background (48;2;r;g;b)
    assert re.search(r"\x1b\[[0-9;]*48;2;", raw)


# --------------------------------------------------------------------------- markdown


def test_markdown_escapes_and_fences(built) -> None:
    _, card, flagged = built
    md = render_markdown(card, flagged)
    assert md.startswith("# judge scorecard: run")
    assert "| overall | 7 | 7.14 | 5.86 | −1.29 [" in md
    # every line holding the payload sits inside a fenced block
    inside = False
    for line in md.splitlines():
        if line.startswith("```"):
            inside = not inside
        if "<script>" in line:
            assert inside, line
    assert "\x1b" not in md and "\u241b[31m" in md
    assert fenced("a ``` b") == "````text\na ``` b\n````"


# --------------------------------------------------------------------------- html (static)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN201
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_and_escaped(built) -> None:
    _, card, flagged = built
    page = render_html(card, flagged)
    parser = _Tags()
    parser.feed(page)
    names = [t for t, _ in parser.tags]
    assert names.count("script") == 1 and "img" not in names and "link" not in names
    assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")]
    assert not [v for _, attrs in parser.tags for k, v in attrs.items()
                if k in ("src", "href") and v]
    assert escape(SCRIPT_PAYLOAD, quote=True) in page
    assert names.count("svg") >= 4 and names.count("article") == 3
    assert "Content-Security-Policy" in page
    # token colouring: one span per token, with its KL in the title
    assert 'class="tok miss" style="background:#db3d2d" title="KL 2.0000 nats, top-1 differs"' in page


# --------------------------------------------------------------------------- html in chromium


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'chromium-profile'}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


@needs_chromium
def test_html_in_chromium(built, tmp_path: Path) -> None:
    run, card, flagged = built
    paths = write_reports(run, card, flagged)
    url = paths["html"].resolve().as_uri()
    dom = _chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_lines(dom.stderr) == []
    html = dom.stdout
    assert 'data-ready="1"' in html  # the page's own script ran to the end
    assert "<title>judge report: run</title>" in html  # the payload did not retitle the page
    assert "data-pwned" not in html.split("<body", 1)[1].split(">", 1)[0]
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in html  # shown as text
    assert html.count('<svg class="chart"') >= 6  # 4 for compressed, 2 for control
    assert html.count('<article class="flag"') == 3
    assert html.count('class="tok') >= 30

    filtered = _chromium(["--dump-dom", url + "#kind=strong_loss"], tmp_path)
    assert _console_lines(filtered.stderr) == []
    shown = re.findall(r'<article class="flag" id="flag-(\d+)"[^>]*?(hidden="")?>', filtered.stdout)
    assert [(rank, bool(h)) for rank, h in shown] == [("1", True), ("2", True), ("3", False)]
    assert '<b id="flag-count">1</b>' in filtered.stdout

    for name, size in (("report-laptop.png", "1280,2600"), ("report-phone.png", "390,2400")):
        shot = _chromium([f"--screenshot={tmp_path / name}", f"--window-size={size}",
                          "--hide-scrollbars", url], tmp_path)
        assert shot.returncode == 0 and _console_lines(shot.stderr) == []
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


# --------------------------------------------------------------------------- cli


def test_cli_report_and_review(tmp_path: Path, capsys) -> None:
    run = write_synthetic_run(tmp_path / "run")
    main(["report", str(run.root), "--resamples", "200"])
    out = capsys.readouterr().out
    assert "judge scorecard" in out and "3 flagged" in out
    for name in ("scorecard.json", "scorecard.md", "report.html", "flagged.jsonl"):
        assert (run.root / name).is_file()
    main(["review", str(run.root), "--limit", "1"])
    out = capsys.readouterr().out
    assert "#1" in out and "question 2 turn 2" in out and "#2" not in out
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "nothing-here")])
    assert exit_info.value.code == 2
    assert "run folder not found" in capsys.readouterr().err


def test_report_without_divergence_or_pairwise(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", control=False)
    run.pairwise_path.unlink()
    shutil.rmtree(run.divergence_dir)
    card, flagged = build_report(Run(run.root), n_resamples=100)
    sec = card.sections[0]
    assert sec.head_to_head is None and sec.divergence == [] and sec.kl_grade_spearman is None
    # without games only grade drops and flips flag: (2,2) flip + drop 3, (3,2) drop 5, (1,1) drop 2;
    # without KL the 3 diverged items are the earliest first differences (all at character 1), in
    # question order: (1,1) (already flagged), (1,2) and (2,1), after the regressions
    assert [(f.question_id, f.turn) for f in flagged] == [("2", 2), ("3", 2), ("1", 1), ("1", 2),
                                                          ("2", 1)]
    assert [f.reasons for f in flagged[3:]] == [["diverged"], ["diverged"]]
    assert [f.severity for f in flagged[3:]] == [0.0, 0.0]
    page = render_html(card, flagged)
    assert page.count('<svg class="chart"') == 1
    md = render_markdown(card, flagged)
    # what is there is rendered with its numbers, what is not is left out rather than invented
    assert "### Head-to-head" not in md and "### Divergence" not in md and "Spearman" not in md
    assert "| overall | 7 | 7.14 | 5.86 | −1.29 (4 q: no CI) |" in md  # 50/7, 41/7, −9/7
    assert "| math | 4 | 7.00 | 5.25 | −1.75 (2 q: no CI) |" in md
    assert "No CI below 8 questions: from so few questions a 95% bootstrap interval covers" in md
    # flips on questions 2-4: 1 c→i, 1 i→c of 5; by question S = 0, so p = 1
    assert "| 5 | 1 | 1 | 1 | 40.0 | 60.0% → 60.0%, Δ +0.000 (3 q: no CI) | 1.000 |" in md
    assert "McNemar p by question" in md
    top = md.index("### #1 question 2, turn 2")
    assert "grade 6, correct → grade 3, incorrect" in md[top:]


def test_low_kl_tokens_are_merged_in_html() -> None:
    from judge.report.html import _tokens
    from judge.scorecard.schema import FlaggedItem, TokenSpan

    spans = [TokenSpan(text="a", kl=1e-5), TokenSpan(text="<b", kl=1e-4), TokenSpan(text="c", kl=0.5),
             TokenSpan(text="d", kl=1e-5, top1=False), TokenSpan(text="e", kl=0.0)]
    item = FlaggedItem(rank=1, role="compressed", question_id="1", turn=1, category="x",
                       reasons=["grade_drop"], severity=2.0, tokens=spans)
    assert _tokens(item) == (
        '<span class="tok" title="KL &lt; 0.001 nats">a&lt;b</span>'
        f'<span class="tok" style="background:{kl_hex(0.5)}" title="KL 0.5000 nats">c</span>'
        '<span class="tok miss" title="KL 0.0000 nats, top-1 differs">d</span>'
        '<span class="tok" title="KL &lt; 0.001 nats">e</span>')


def test_compact_terminal_scorecard_leaves_category_rows_to_the_files(built) -> None:
    _, card, _ = built
    full, compact = _console(), _console()
    print_scorecard(card, full)
    print_scorecard(card, compact, categories=False)
    full_text, compact_text = full.export_text(), compact.export_text()
    categories = {row.label for sec in card.sections for row in sec.grades if row.scope == "category"}
    assert categories  # the synthetic run has categories
    for label in categories:
        assert re.search(rf"^\s*{label}\s+│", full_text, re.M)
        assert not re.search(rf"^\s*{label}\s+│", compact_text, re.M)
    assert "per category and per kind: scorecard.md, report.html" in compact_text
    # the compact form names only the compressed model's degradation kinds, most frequent first:
    # single 2 reasoning, 1 looping, 1 truncated; pairwise 2 truncated
    assert ("Degradation kinds named for compressed (single + pairwise): incomplete_or_truncated 3, "
            "reasoning_or_math_error 2, repetition_or_looping 1") in compact_text
    assert len(compact_text.splitlines()) < len(full_text.splitlines())
