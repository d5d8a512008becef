"""Unit tests of the service's parts: progress folding (rate and ETA by hand), the index (queue
order, labels last-wins), the security rules, and judge–human agreement (hand-computed)."""

from __future__ import annotations

import pytest

from judge.errors import ConfigError
from judge.scorecard import FlaggedItem, human_agreement
from judge.service.db import Index
from judge.service.security import (check_bind, check_request, host_name, is_loopback,
                                    server_token, token_ok)
from judge.service.status import stage_rows

TOKEN = "x" * 20


def test_stage_rows_rate_and_eta_by_hand():
    lines = [
        {"t": 100.0, "stage": "generate baseline", "done": 0, "total": 4, "state": "start"},
        {"t": 104.0, "stage": "generate baseline", "done": 4, "total": 4, "state": "run"},
        {"t": 104.0, "stage": "generate baseline", "done": 4, "total": 4, "state": "end"},
        {"t": 110.0, "stage": "grade (j)", "done": 0, "total": 10, "state": "start"},
        {"t": 112.0, "stage": "grade (j)", "done": 2, "total": 10, "state": "run"},
        {"t": 114.0, "stage": "grade (j)", "done": 4, "total": 10, "state": "run"},
    ]
    gen, grade = stage_rows(lines)
    assert (gen.state, gen.done, gen.total, gen.rate_per_s, gen.eta_s) == ("finished", 4, 4, 1.0, None)
    # 4 items in 4 s: 1 item/s; 6 left: 6 s
    assert (grade.state, grade.done, grade.rate_per_s, grade.eta_s) == ("running", 4, 1.0, 6.0)
    # a resumed job restarts the stage with what is left; an end before the total is "stopped"
    more = lines + [{"t": 115.0, "stage": "grade (j)", "done": 4, "total": 10, "state": "end"},
                    {"t": 200.0, "stage": "grade (j)", "done": 0, "total": 6, "state": "start"},
                    {"t": 203.0, "stage": "grade (j)", "done": 3, "total": 6, "state": "run"}]
    assert stage_rows(lines + more[6:7])[1].state == "stopped"
    grade = stage_rows(more)[1]
    assert (grade.done, grade.total, grade.rate_per_s, grade.eta_s) == (3, 6, 1.0, 3.0)


def test_queue_order_claim_and_labels_last_wins(tmp_path):
    idx = Index(tmp_path)
    for cid in ("c1", "c2", "c3"):
        idx.add(cid, str(tmp_path / cid), "b", ["c"], {}, None)
    assert [r.id for r in idx.queued()] == ["c1", "c2", "c3"]
    assert idx.claim("c2") and not idx.claim("c2")
    assert [r.id for r in idx.queued()] == ["c1", "c3"] and idx.get("c2").status == "running"
    assert idx.add_if_free("c4", str(tmp_path / "c1"), "b", ["c"], {}, None) is None  # c1's folder
    idx.put_label("c1", "compressed/1/1", "ann", "acceptable", "", t=2.0)
    idx.put_label("c1", "compressed/1/1", "ann", "judge_wrong", "older", t=1.0)  # arrives late
    idx.put_label("c1", "compressed/1/1", "bob", "real_regression", "", t=3.0)
    got = {(x["reviewer"], x["label"]) for x in idx.labels("c1")}
    assert got == {("ann", "acceptable"), ("bob", "real_regression")}


def test_security_rules(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_bind("127.0.0.1", None)
    with pytest.raises(ConfigError, match="--token-file"):
        check_bind("0.0.0.0", None)
    assert host_name("127.0.0.1:8750") == "127.0.0.1" and host_name("[::1]:8750") == "[::1]"
    assert token_ok(f"Bearer {TOKEN}", TOKEN) and not token_ok(f"Bearer {TOKEN}x", TOKEN)
    assert not token_ok(None, TOKEN) and not token_ok(TOKEN, TOKEN)
    hosts = {"127.0.0.1", "localhost"}
    ok = {"host": "127.0.0.1:8750", "x-judge-client": "t", "authorization": f"Bearer {TOKEN}"}
    assert check_request("POST", ok, hosts, TOKEN) is None
    assert check_request("POST", {**ok, "host": "evil:80"}, hosts, TOKEN)[0] == 421
    assert check_request("POST", {**ok, "origin": "http://evil"}, hosts, TOKEN)[0] == 403
    assert check_request("POST", {**ok, "origin": "http://127.0.0.1:8750"}, hosts, TOKEN) is None
    assert check_request("GET", {"host": "localhost:1"}, hosts, TOKEN) is None
    assert check_request("DELETE", {"host": "localhost:1", "authorization": f"Bearer {TOKEN}"},
                         hosts, TOKEN)[0] == 403
    token = server_token(tmp_path, None)  # made once, kept private, read back the same
    assert server_token(tmp_path, None) == token and len(token) >= 32
    assert (tmp_path / "service-token").stat().st_mode & 0o077 == 0


def _item(role: str, q: str, turn: int, reasons: list[str]) -> FlaggedItem:
    return FlaggedItem(rank=1, role=role, question_id=q, turn=turn, category="c", reasons=reasons,
                       severity=0.0)


def test_human_agreement_by_hand():
    items = [_item("compressed", "1", 1, ["grade_drop"]),      # judge claims a regression
             _item("compressed", "2", 1, ["baseline_win", "diverged"]),  # claims
             _item("compressed", "3", 2, ["diverged"]),        # no claim
             _item("compressed", "4", 1, ["diverged"])]        # no claim
    labels = [("compressed/1/1", "judge_wrong", 1.0),
              ("compressed/1/1", "real_regression", 2.0),  # newest wins: agree
              ("compressed/2/1", "judge_wrong", 1.0),      # disagree
              ("compressed/3/2", "acceptable", 1.0),       # agree
              ("compressed/4/1", "real_regression", 1.0),  # disagree (the judge missed it)
              ("compressed/9/9", "acceptable", 1.0)]       # not flagged: left out
    h = human_agreement(items, labels)
    assert (h.n_labelled, h.n_agree, h.agreement) == (4, 2, 0.5)
    assert h.counts == {"real_regression": 2, "judge_wrong": 1, "acceptable": 1}
    assert (h.judge_claims, h.confirmed) == (2, 1)
    assert human_agreement(items, []).agreement is None

