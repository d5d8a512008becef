"""The review page in real Chromium (Playwright), served by a real uvicorn on 127.0.0.1, over the
synthetic run (a hostile compressed answer: a <script> and an <img onerror>): labels persist across
a reload, the hostile text stays inert text, j/k move between items, 1/2/3 label them.

Skipped with the reason where Playwright or Chromium is absent (`pip install playwright`; Debian's
`chromium` package, which .ci/run installs; `playwright install` is never needed).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time

import httpx
import pytest
from service_support import TOKEN, completed_comparison, free_port

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("JUDGE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import uvicorn

    from judge.service import create_app

    outputs = tmp_path_factory.mktemp("outputs")
    completed_comparison(outputs)
    port = free_port()
    app = create_app(outputs, token=TOKEN, run_jobs=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield url, outputs
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (install Debian's chromium, or set JUDGE_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_review_page_labels_persist_hostile_text_is_inert_keys_navigate(served, browser):
    from playwright.sync_api import expect

    url, outputs = served
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/c/synthetic01/review")
    page.wait_for_selector("#items li")
    items = page.locator("#items li")
    n = items.count()
    assert n >= 3
    # keyboard navigation
    current = re.compile(r"\bcurrent\b")
    expect(items.nth(0)).to_have_class(current)
    page.locator("body").press("j")
    expect(items.nth(1)).to_have_class(current)
    page.locator("body").press("j")
    expect(items.nth(2)).to_have_class(current)
    page.locator("body").press("k")
    expect(items.nth(1)).to_have_class(current)
    expect(items.nth(2)).not_to_have_class(current)
    # the hostile answer: shown as text, never run
    hostile = page.locator("#items li", has_text="q2 t2").first
    hostile.click()
    expect(page.locator("#detail")).to_contain_text("onerror")
    detail = page.locator("#detail").inner_text()
    assert "<img src=x onerror=" in detail and "<script>" in detail
    assert page.locator("#detail img").count() == 0 and page.locator("#detail script").count() == 0
    assert page.evaluate("document.body.getAttribute('data-pwned')") is None
    assert page.title() != "PWNED" and dialogs == []
    # label it with the keyboard: the token first, then "1" (real regression)
    page.fill("#token", TOKEN)
    page.locator("#token").press("Tab")
    page.fill("#reviewer", "ann")
    page.locator("#reviewer").press("Tab")
    page.locator("#detail").click()  # focus back on the page, not an input
    page.locator("body").press("1")
    expect(page.locator("#msg")).to_contain_text("saved")
    key = hostile.get_attribute("data-item")
    # persists across a reload (the token is kept in this browser's localStorage)
    page.reload()
    page.wait_for_selector("#items li")
    row = page.locator(f'#items li[data-item="{key}"]')
    expect(row.locator(".lab")).to_have_text("real regression")
    # item (2, 2) lost 3 grade points: the judge claims a regression and the reviewer agrees
    expect(page.locator("#agreement")).to_contain_text("agreement: 1 of 1 labelled items")
    labels = httpx.get(f"{url}/v1/comparisons/synthetic01/labels").json()["items"]
    assert [(x["item"], x["reviewer"], x["label"]) for x in labels] == [(key, "ann", "real_regression")]
    assert (outputs / "synthetic-run" / "labels.jsonl").read_text().count("\n") == 1
    assert errors == []
    page.close()
