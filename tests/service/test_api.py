"""The service's API and pages through FastAPI's TestClient (no job runs): security rules, 422
lines, paging, ETags, results of a completed comparison, labels and their agreement, escaping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_support import HOSTILE, TOKEN, completed_comparison

from judge.service import create_app

W = {"Authorization": f"Bearer {TOKEN}", "X-Judge-Client": "test"}
CONFIG = {"baseline": "smollm2-135m", "compressed": "smollm2-135m-int4", "questions": "smoke",
          "judge": {"spec": "none"}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    completed_comparison(outputs)
    app = create_app(outputs, token=TOKEN, run_jobs=False, extra_hosts={"testserver"})
    with TestClient(app) as client:
        yield client, outputs


def test_writes_need_token_and_client_header(env):
    client, _ = env
    body = {"config": CONFIG}
    assert client.post("/v1/comparisons", json=body).status_code == 403  # no X-Judge-Client
    r = client.post("/v1/comparisons", json=body, headers={"X-Judge-Client": "x"})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    r = client.post("/v1/comparisons", json=body,
                    headers={"X-Judge-Client": "x", "Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert r.status_code == 401
    assert client.get("/v1/comparisons").status_code == 200  # reads need no token


def test_host_and_origin_checked(env):
    client, _ = env
    assert client.get("/v1/comparisons", headers={"Host": "evil.example:8750"}).status_code == 421
    r = client.post("/v1/comparisons/synthetic01/cancel",
                    headers={**W, "Origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.get("/", headers={"Origin": "http://testserver"}).status_code == 200


@pytest.mark.parametrize("config, key_env, field", [
    ({**CONFIG, "generation": {"max_new_tokens": 0}}, None, "config.generation.max_new_tokens"),
    ({"compressed": "x"}, None, "config.baseline"),
    ({**CONFIG, "run": "../escape"}, None, "config.run"),
    ({**CONFIG, "run": "/tmp/elsewhere"}, None, "config.run"),
    ({**CONFIG, "judge": {"spec": "gpt-4o", "api_key": "sk-secret"}}, None, "config.judge.api_key"),
    ({**CONFIG, "judge": {"spec": "gpt-4o"}}, "NOT_SET_ANYWHERE_XYZ", "key_env"),
    ({**CONFIG, "judge": {"spec": "gpt-4o"}}, "bad name", "key_env"),
    ({**CONFIG, "colour": "red"}, None, "config.colour"),
])
def test_bad_specs_get_one_line_naming_the_field(env, config, key_env, field):
    client, outputs = env
    r = client.post("/v1/comparisons", json={"config": config, "key_env": key_env}, headers=W)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail.startswith(field), detail
    assert "sk-secret" not in detail
    assert not (outputs.parent / "escape").exists()


def test_body_that_is_not_a_spec_gets_one_line(env):
    client, _ = env
    r = client.post("/v1/comparisons", json={"nothing": 1}, headers=W)
    assert r.status_code == 422 and r.json()["detail"].startswith("config: ")


def test_create_list_page_cancel(env):
    client, outputs = env
    ids = []
    for i in range(3):
        r = client.post("/v1/comparisons", json={"config": {**CONFIG, "run": f"paged-{i}"}}, headers=W)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        assert r.json()["status"] == "queued" and r.json()["queue_position"] == i + 1
        assert (outputs / f"paged-{i}").parent == outputs
    r = client.post("/v1/comparisons", json={"config": {**CONFIG, "run": "paged-0"}}, headers=W)
    assert r.status_code == 409  # the folder belongs to a queued comparison
    seen, cursor = [], None
    while True:
        page = client.get("/v1/comparisons", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen[:3] == ids[::-1] and seen[3] == "synthetic01" and len(seen) == 4
    r = client.post(f"/v1/comparisons/{ids[0]}/cancel", headers=W)
    assert r.json()["status"] == "cancelled"
    assert client.get(f"/v1/comparisons/{ids[1]}").json()["queue_position"] == 1
    for cid in ids[1:]:
        client.post(f"/v1/comparisons/{cid}/cancel", headers=W)
    assert client.get("/v1/comparisons", params={"cursor": "garbage"}).status_code == 422


def test_etag_gives_304(env):
    client, _ = env
    r = client.get("/v1/comparisons/synthetic01/scorecard")
    assert r.status_code == 200 and r.headers["etag"]
    r2 = client.get("/v1/comparisons/synthetic01/scorecard", headers={"If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304 and r2.content == b""


def test_results_of_a_completed_comparison(env):
    client, _ = env
    card = client.get("/v1/comparisons/synthetic01/scorecard").json()
    overall = card["sections"][0]["grades"][0]
    # the synthetic run's paired items: baseline 8 7 9 6 5 8 7 vs compressed 6 7 9 3 6 3 7
    assert overall["n"] == 7 and overall["baseline_mean"] == pytest.approx(50 / 7)
    assert overall["compressed_mean"] == pytest.approx(41 / 7)
    flagged = client.get("/v1/comparisons/synthetic01/flagged").json()
    assert flagged["total"] == len(flagged["items"]) > 0
    assert all("tokens" not in i for i in flagged["items"])
    by_turn = client.get("/v1/comparisons/synthetic01/flagged", params={"turn": 2}).json()
    assert by_turn["items"] and all(i["turn"] == 2 for i in by_turn["items"])
    key = flagged["items"][0]["item"]
    item = client.get(f"/v1/comparisons/synthetic01/items/{key}").json()
    assert [t["kl"] for t in item["tokens"]] == [0.0005, 0.5, 2.0]
    assert item["tokens"][0]["bg"] is None and item["tokens"][2]["bg"].startswith("#")
    assert client.get("/v1/comparisons/synthetic01/items/compressed/99/1").status_code == 404
    assert client.get("/v1/comparisons/synthetic01/gate").status_code == 404  # no gate asked
    st = client.get("/v1/comparisons/synthetic01/status").json()
    assert st["status"] == "completed" and st["stages"] == []
    board = client.get("/v1/leaderboard").json()["baselines"]
    cand = board[0]["candidates"][0]
    assert cand["comparison"] == "synthetic01" and cand["grade_delta"]["estimate"] == pytest.approx(-9 / 7)


def test_labels_append_last_wins_and_agreement(env):
    client, outputs = env
    items = client.get("/v1/comparisons/synthetic01/flagged").json()["items"]
    claim = next(i["item"] for i in items if set(i["reasons"]) - {"diverged"})
    r = client.post("/v1/comparisons/synthetic01/labels", headers=W,
                    json={"item": claim, "label": "judge_wrong", "reviewer": "ann"})
    assert r.status_code == 201
    client.post("/v1/comparisons/synthetic01/labels", headers=W,
                json={"item": claim, "label": "real_regression", "comment": HOSTILE, "reviewer": "ann"})
    bad = client.post("/v1/comparisons/synthetic01/labels", headers=W,
                      json={"item": "compressed/99/1", "label": "acceptable"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("item:")
    assert client.post("/v1/comparisons/synthetic01/labels", headers=W,
                       json={"item": claim, "label": "meh"}).json()["detail"].startswith("label:")
    labels = client.get("/v1/comparisons/synthetic01/labels").json()["items"]
    assert [(x["item"], x["reviewer"], x["label"]) for x in labels] == [(claim, "ann", "real_regression")]
    lines = (outputs / "synthetic-run" / "labels.jsonl").read_text().splitlines()
    assert [json.loads(x)["label"] for x in lines] == ["judge_wrong", "real_regression"]  # append-only
    export = client.get("/v1/comparisons/synthetic01/labels.jsonl").text.splitlines()
    assert export == lines
    human = client.get("/v1/comparisons/synthetic01/scorecard").json()["human_agreement"]
    assert (human["n_labelled"], human["n_agree"], human["judge_claims"]) == (1, 1, 1)


def test_pages_escape_and_set_csp(env):
    client, _ = env
    for path in ("/", "/c/synthetic01", "/c/synthetic01/review"):
        r = client.get(path)
        assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script>document" not in r.text and "http://" not in r.text.replace("http://testserver", "")
    report = client.get("/c/synthetic01/report")
    assert "sandbox" in report.headers["content-security-policy"]
    assert HOSTILE not in report.text  # report.html escapes it
    assert client.get("/static/review.js").status_code == 200
    assert client.get("/static/../db.py").status_code == 404
    assert client.get("/docs").status_code == 200


def test_openapi_lists_the_v1_routes(env):
    client, _ = env
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/comparisons", "/v1/comparisons/{cid}/status", "/v1/comparisons/{cid}/events",
              "/v1/comparisons/{cid}/labels", "/v1/leaderboard"):
        assert p in paths


def test_run_folder_stays_under_outputs(env):
    client, outputs = env
    r = client.post("/v1/comparisons", json={"config": CONFIG}, headers=W)
    cid = r.json()["id"]
    row_run = Path(client.get(f"/v1/comparisons/{cid}").json()["run"])
    assert str(row_run) == row_run.name and row_run.name.endswith(cid)
    client.post(f"/v1/comparisons/{cid}/cancel", headers=W)
