"""Scorecard end to end on a hand-written run folder whose numbers are worked out by hand.

See tests/synthetic_run.py for the grades, verdicts, games and KL rows; each expected value below
is derived from that table in a comment.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from judge.errors import RunFolderError
from judge.schemas import SingleJudgment
from judge.scorecard.build import build_report, build_scorecard, review_items
from judge.scorecard.data import ItemTokens, load_run, lookup_from_arrays
from judge.scorecard.flagged import decode_spans
from judge.stats import paired_bootstrap_mean_delta
from judge.store import Run, append_jsonl, read_jsonl
from synthetic_run import DIVERGENCE, GRADES, token_kl, write_synthetic_run

N_RESAMPLES = 2000


@pytest.fixture()
def run(tmp_path: Path) -> Run:
    return write_synthetic_run(tmp_path / "run")


# The synthetic run has 4 questions, fewer than the scorecard's minimum for an interval; these tests
# work its intervals out by hand, so they ask for plain percentile intervals from 2 questions on.
# The default policy (expanded intervals from 8 questions on) is tested at the end of the file.
HAND = {"method": "percentile", "min_questions": 2}


@pytest.fixture()
def card(run: Run):
    return build_scorecard(run, seed=0, n_resamples=N_RESAMPLES, **HAND)


def _row(section, label: str):
    return next(r for r in section.grades if r.label == label)


# --------------------------------------------------------------------------- grades


def test_grade_rows_by_hand(card) -> None:
    sec = card.sections[0]
    assert sec.role == "compressed" and sec.n_questions == 4
    overall = _row(sec, "overall")
    # paired items: all but (4,2) (compressed api_error); deltas -2 0 0 -3 +1 -5 0 -> -9/7
    assert overall.n == 7 and overall.delta.n == 7 and overall.delta.n_clusters == 4
    assert overall.baseline_mean == pytest.approx(50 / 7)
    assert overall.compressed_mean == pytest.approx(41 / 7)
    assert overall.delta.estimate == pytest.approx(-9 / 7)
    assert overall.delta.low <= overall.delta.estimate <= overall.delta.high < 0
    # turn 1: -2 0 +1 0 -> -1/4 ; turn 2: 0 -3 -5 -> -8/3
    assert (_row(sec, "turn 1").n, _row(sec, "turn 1").delta.estimate) == (4, pytest.approx(-0.25))
    assert (_row(sec, "turn 2").n, _row(sec, "turn 2").delta.estimate) == (3, pytest.approx(-8 / 3))
    # math: q2 deltas (0, -3) and q3 (+1, -5); resampling the two questions gives -1.5 (q2 twice),
    # -1.75 (one each) or -2 (q3 twice), each extreme with probability 1/4: the 95% CI is [-2, -1.5]
    math_row = _row(sec, "math")
    assert math_row.n == 4 and math_row.delta.n_clusters == 2
    assert math_row.delta.estimate == pytest.approx(-1.75)
    assert (math_row.delta.low, math_row.delta.high) == (pytest.approx(-2.0), pytest.approx(-1.5))
    # writing has one question: an estimate without an interval, and a note saying why
    writing = _row(sec, "writing")
    assert writing.delta.estimate == pytest.approx(-1.0)
    assert math.isnan(writing.delta.low) and "fewer than 2" in writing.delta.note
    assert [r.label for r in sec.grades] == ["overall", "turn 1", "turn 2", "writing", "math", "coding"]


def test_grade_ci_is_the_cluster_bootstrap_over_questions(card) -> None:
    keys = [k for k in GRADES["baseline"] if k in GRADES["compressed"]]
    keys.sort(key=lambda k: (int(k[0]), k[1]))
    direct = paired_bootstrap_mean_delta([GRADES["baseline"][k] for k in keys],
                                         [GRADES["compressed"][k] for k in keys],
                                         groups=[k[0] for k in keys], n_resamples=N_RESAMPLES, seed=0)
    assert card.sections[0].grades[0].delta == direct


def test_seeded_and_reproducible(run: Run) -> None:
    a = build_scorecard(run, seed=7, n_resamples=500, **HAND)
    b = build_scorecard(run, seed=7, n_resamples=500, **HAND)
    c = build_scorecard(run, seed=8, n_resamples=500, **HAND)
    strip = {"created"}
    assert a.model_dump(exclude=strip) == b.model_dump(exclude=strip)
    assert a.sections[0].grades[0].delta != c.sections[0].grades[0].delta
    assert a.sections[0].grades[0].delta.estimate == c.sections[0].grades[0].delta.estimate


# --------------------------------------------------------------------------- head to head, flips


def test_head_to_head_by_hand(card) -> None:
    h = card.sections[0].head_to_head
    # ok games: (1,1) L strong, (1,2) T, (2,1) inconsistent -> T, (2,2) L, (3,1) W, (3,2) T
    assert (h.n, h.compressed_wins, h.ties, h.baseline_wins) == (6, 1, 3, 2)
    assert h.inconsistent == 1 and h.inconsistency_rate == pytest.approx(1 / 6)
    assert h.strong_losses == 1
    assert h.win_rate.estimate == pytest.approx((1 + 0.5 * 3) / 6)
    # per-question score sums (2 items each): q1 0.5, q2 0.5, q3 1.5; a resample's mean is the
    # sum of three drawn sums / 6, from 0.25 (only q1/q2, p = 8/27) to 0.75 (only q3, p = 1/27 >
    # 2.5%): so the 95% interval is exactly [0.25, 0.75]
    assert (h.win_rate.low, h.win_rate.high) == (pytest.approx(0.25), pytest.approx(0.75))
    assert h.win_rate.n_clusters == 3


def test_flips_by_hand(card) -> None:
    f = card.sections[0].flips
    # reference items (questions 2-4): baseline T T F F T T, compressed T F T F T x
    assert (f.n, f.n_dropped) == (5, 1)
    assert (f.correct_to_incorrect, f.incorrect_to_correct, f.both_correct, f.both_incorrect) == (1, 1, 2, 1)
    assert f.flip_percent == pytest.approx(40.0)
    # per question c->i minus i->c: q2 (T->T, T->F) = 1, q3 (F->T, F->F) = -1, q4 (T->T) = 0:
    # S = 0, so p = 1; the item-level test (b = c = 1) says the same
    assert f.n_clusters == 3 and f.mcnemar_p == 1.0
    assert f.mcnemar_items_p == pytest.approx(sps.binomtest(1, 2, 0.5).pvalue)  # = 1
    # accuracy 3/5 on both sides: delta 0; by question (2 items, 2 items, 1 item) the resampled
    # delta is (sum of drawn question deltas) / (drawn items) with question deltas -1, +1, 0
    assert f.accuracy_delta.estimate == pytest.approx(0.0) and f.accuracy_delta.n_clusters == 3


# --------------------------------------------------------------------------- divergence, correlation


def _pooled(keys):
    n = sum(DIVERGENCE[k][0] for k in keys)
    kl = sum(DIVERGENCE[k][0] * DIVERGENCE[k][1] for k in keys) / n
    top1 = sum(DIVERGENCE[k][0] * DIVERGENCE[k][3] for k in keys) / n
    rms = math.sqrt(sum(DIVERGENCE[k][0] * DIVERGENCE[k][4] ** 2 for k in keys) / n)
    return n, kl, top1, rms


def test_divergence_pooled_by_tokens(card) -> None:
    rows = {d.label: d for d in card.sections[0].divergence}
    assert list(rows) == ["overall", "turn 1", "turn 2", "writing", "math", "coding"]
    o = rows["overall"]
    # sum n*kl = 2 + 1 + 1 + 12 + 0.1 + 6 + 0.2 + 0.3 = 22.6 over 120 tokens
    assert (o.n_items, o.n_tokens) == (8, 120)
    assert o.kl_mean == pytest.approx(22.6 / 120)
    assert o.same_top1 == pytest.approx(103 / 120)
    assert o.kl_max == 2.0 and o.kl_median is None  # no per-token arrays in this run
    n, kl, top1, rms = _pooled([k for k in DIVERGENCE if k[1] == 1])
    t1 = rows["turn 1"]
    assert (t1.n_tokens, t1.kl_mean, t1.same_top1, t1.dp_rms) == (n, pytest.approx(kl),
                                                                pytest.approx(top1), pytest.approx(rms))
    assert rows["math"].n_items == 4
    hist = card.sections[0].kl_histogram
    assert hist.unit == "item" and sum(hist.counts) == 8
    assert len(hist.edges) == len(hist.counts) + 1


def test_spearman_matches_scipy(card) -> None:
    sec = card.sections[0]
    keys = [k for k in DIVERGENCE if k in GRADES["compressed"]]
    x = [DIVERGENCE[k][1] for k in keys]
    y = [GRADES["baseline"][k] - GRADES["compressed"][k] for k in keys]
    assert sec.kl_grade_spearman.n == 7
    assert sec.kl_grade_spearman.estimate == pytest.approx(sps.spearmanr(x, y).statistic)
    assert sorted((p.question_id, p.turn, p.grade_drop) for p in sec.points) == sorted(
        (k[0], k[1], float(d)) for k, d in zip(keys, y))


def _fake_arrays(keys):
    """A TokenArrays-like object holding token_kl() for each item, token id = position."""
    kls = [np.array(token_kl(k)) for k in keys]
    offsets = np.cumsum([0] + [len(a) for a in kls])
    return SimpleNamespace(keys=[k[0] for k in keys], turns=np.array([k[1] for k in keys]),
                           offsets=offsets, token_ids=np.arange(offsets[-1]),
                           kl=np.concatenate(kls), same_top1=np.concatenate(kls) < 0.5)


def test_token_quantiles_from_per_token_arrays(run: Run, monkeypatch) -> None:
    arrays = _fake_arrays(list(DIVERGENCE))
    monkeypatch.setattr("judge.scorecard.data.load_token_arrays",
                        lambda _run, role: lookup_from_arrays(arrays) if role == "compressed" else None)
    card = build_scorecard(run, n_resamples=200)
    o = card.sections[0].divergence[0]
    kl = arrays.kl
    assert o.kl_mean == pytest.approx(kl.mean())  # token_kl keeps each item's mean
    assert o.kl_median == pytest.approx(np.percentile(kl, 50))
    assert o.kl_p99 == pytest.approx(np.percentile(kl, 99))
    assert o.kl_se == pytest.approx(kl.std(ddof=1) / math.sqrt(len(kl)))
    assert card.sections[0].kl_histogram.unit == "token"
    assert sum(card.sections[0].kl_histogram.counts) == 120


def test_quantiles_of_the_bound_when_kl_is_estimated(run: Run, monkeypatch) -> None:
    arrays = _fake_arrays(list(DIVERGENCE))
    arrays.kl_bound = arrays.kl * np.linspace(0.2, 1.0, len(arrays.kl))  # below kl everywhere
    monkeypatch.setattr("judge.scorecard.data.load_token_arrays",
                        lambda _run, role: lookup_from_arrays(arrays) if role == "compressed" else None)
    card = build_scorecard(run, n_resamples=200)
    o = card.sections[0].divergence[0]
    assert o.quantiles_of == "kl lower bound"
    assert o.kl_mean == pytest.approx(arrays.kl.mean())  # the mean is the estimate's
    assert o.kl_median == pytest.approx(np.percentile(arrays.kl_bound, 50))
    assert o.kl_p99 == pytest.approx(np.percentile(arrays.kl_bound, 99))
    assert o.kl_max == pytest.approx(arrays.kl_bound.max()) and o.kl_max < arrays.kl.max()
    hist = card.sections[0].kl_histogram
    assert hist.of == "kl lower bound" and hist.unit == "token" and sum(hist.counts) == 120
    assert hist.edges[-1] >= arrays.kl_bound.max()


def test_real_token_arrays_file(run: Run) -> None:
    cache = pytest.importorskip("judge.diverge.cache", reason="divergence stage not installed")
    keys = list(DIVERGENCE)
    fake = _fake_arrays(keys)
    n = int(fake.offsets[-1])
    cache.TokenArrays(keys=fake.keys, turns=fake.turns.astype(np.int32), categories=["x"] * len(keys),
                      offsets=fake.offsets.astype(np.int64), token_ids=fake.token_ids.astype(np.int32),
                      kl=fake.kl.astype(np.float32), same_top1=fake.same_top1, dp=np.zeros(n, np.float32),
                      nll_base=np.zeros(n, np.float32), nll_comp=np.zeros(n, np.float32)
                      ).save(run.divergence_dir / "compressed.tokens.npz")
    lookup = load_run(run).token_lookup("compressed")
    assert lookup is not None
    item = lookup("2", 2)
    assert len(item.kl) == 30 and item.kl[0] == pytest.approx(2.0)
    assert lookup("9", 1) is None


# --------------------------------------------------------------------------- issues, failures


def test_issue_counts(card) -> None:
    sec = card.sections[0]
    assert sec.issues == {"baseline": {"factual_error": 1},
                          "compressed": {"reasoning_or_math_error": 2, "repetition_or_looping": 1,
                                         "incomplete_or_truncated": 1}}
    assert sec.pair_issues == {"baseline": {}, "compressed": {"incomplete_or_truncated": 2}}


def test_last_row_wins_and_failures_counted(card) -> None:
    # (4,1) compressed: an api_error row, then an ok row -> the ok grade counts, one superseded
    assert card.n_superseded == 1
    assert _row(card.sections[0], "coding").n == 1
    got = {(f.kind, f.role, f.status): f.count for f in card.failures}
    assert got == {("single", "compressed", "api_error"): 1,
                   ("pairwise", "compressed", "invalid_output"): 1,
                   ("pairwise", "compressed", "missing"): 1}
    assert "1 failed" not in card.verdict and "2 failed, 1 never made" in card.verdict


# --------------------------------------------------------------------------- noise floor, verdict


def test_noise_floor_and_verdict(card) -> None:
    ctrl = card.control
    assert ctrl is not None and ctrl.role == "control"
    # control differs from the baseline only at (4,2): 7 vs 8 -> -1/8
    assert ctrl.grades[0].delta.estimate == pytest.approx(-1 / 8)
    sec = card.sections[0]
    assert sec.grades[0].noise_delta == ctrl.grades[0].delta
    # compressed - control over the 7 items both graded: same deltas as against the baseline
    assert sec.vs_control.grade_delta.estimate == pytest.approx(-9 / 7)
    # pair scores: compressed 0 .5 .5 0 1 .5, control all .5 -> mean difference -1/12
    assert sec.vs_control.win_score_delta.estimate == pytest.approx(-1 / 12)
    assert sec.verdict.status == "worse"
    assert ctrl.verdict.status == "not distinguishable"
    assert "exceeds the noise floor" in sec.verdict.text
    assert "\u22121.29" in card.verdict  # the grade delta is stated with its number
    assert [s.role for s in card.summary] == ["compressed", "control"]


def test_several_candidates(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", control=False)
    extra = [r.model_copy(update={"role": "compressed-b", "model": "b-model"})
             for r in read_jsonl(run.single_path, SingleJudgment) if r.role == "compressed"]
    append_jsonl(run.single_path, extra)
    card = build_scorecard(run, n_resamples=100)
    assert [s.role for s in card.sections] == ["compressed", "compressed-b"]
    assert card.control is None and len(card.summary) == 2
    b = card.sections[1]
    assert b.grades[0].delta.estimate == pytest.approx(-9 / 7) and b.head_to_head is None


def test_rows_without_role_are_mapped_by_model_name(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", control=False)
    rows = read_jsonl(run.single_path, SingleJudgment)
    run.single_path.unlink()
    append_jsonl(run.single_path, [r.model_copy(update={"role": None}) for r in rows])
    card = build_scorecard(run, n_resamples=100)
    assert card.sections[0].grades[0].delta.estimate == pytest.approx(-9 / 7)


def test_empty_run_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="no answers and no judgments"):
        build_scorecard(Run(tmp_path / "empty"))
    with pytest.raises(RunFolderError, match="not found"):
        build_scorecard(Run(tmp_path / "absent"))


# --------------------------------------------------------------------------- flagged


def test_flagged_ranking(run: Run) -> None:
    card, flagged = build_report(run, n_resamples=100)
    got = [(f.rank, f.question_id, f.turn, f.reasons, f.severity) for f in flagged]
    # every answer's text differs from the baseline's; of 8, diverged_count(8) = 3 are flagged as
    # diverged: the most KL mass, (2,2) 30 x 0.4 = 12, (3,2) 20 x 0.3 = 6, (1,1) 10 x 0.2 = 2 --
    # the three regressions, so no item is flagged as diverged alone
    assert got == [
        # flip 3 + consistent loss 2 + drop 3
        (1, "2", 2, ["correctness_flip", "baseline_win", "grade_drop", "diverged"], 8.0),
        # drop 5; ties with (1,1) on severity and wins on KL (0.3 > 0.2)
        (2, "3", 2, ["grade_drop", "diverged"], 5.0),
        # consistent loss 2 + strong 1 + drop 2
        (3, "1", 1, ["baseline_win", "strong_loss", "grade_drop", "diverged"], 5.0),
    ]
    assert [(f.kl_mass, f.first_diff, f.first_diff_unit) for f in flagged] == [
        (pytest.approx(12.0), 1, "character"), (pytest.approx(6.0), 1, "character"),
        (pytest.approx(2.0), 1, "character")]
    top = flagged[0]
    assert (top.baseline_score, top.compressed_score, top.grade_drop) == (6.0, 3.0, 3.0)
    assert (top.baseline_correct, top.compressed_correct) == (True, False)
    assert top.question == "Question 2 turn 2 <b>bold?</b>"
    assert "<script>" in top.compressed_answer and top.kl_mean == pytest.approx(0.4)
    assert [g.label for g in top.games] == ["A>B", "B>A"] and top.pair_winner == "baseline"
    assert top.tokens is None  # no token arrays in this run
    assert card.sections[0].n_flagged == 3


def test_review_items_filters(run: Run) -> None:
    items = review_items(run, question="4")
    assert [(i.question_id, i.turn, i.reasons, i.rank) for i in items] == [("4", 1, [], 0), ("4", 2, [], 0)]
    assert items[0].pair_status == "invalid_output" and items[1].pair_status is None
    assert (items[1].compressed_status, items[1].compressed_score) == ("api_error", None)
    assert items[1].compressed_explanation == "api_error: boom"
    assert items[1].baseline_explanation == "baseline 4/2: graded 8."
    assert [i.rank for i in review_items(run, limit=2)] == [1, 2]


# --------------------------------------------------------------------------- token colouring


class ByteTokenizer:
    """Token id = one UTF-8 byte; id 256 is a special token that decodes to nothing."""

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):  # noqa: ANN001
        data = bytes(i for i in ids if i < 256)
        return data.decode("utf-8", errors="replace")


def test_decode_spans_merges_split_characters() -> None:
    text = "a\u00e9b"  # é is two bytes
    ids = list(text.encode("utf-8")) + [256]
    kl = np.array([0.1, 0.5, 0.2, 0.3, 9.0])
    top1 = np.array([True, True, False, True, True])
    spans = decode_spans(ByteTokenizer(), ItemTokens(token_ids=np.array(ids), kl=kl, same_top1=top1))
    assert [(s.text, s.kl, s.top1) for s in spans] == [("a", 0.1, True), ("\u00e9", 0.5, False),
                                                        ("b", 0.3, True)]


def test_flagged_tokens_coloured_with_a_tokenizer(run: Run, monkeypatch) -> None:
    arrays = _fake_arrays(list(DIVERGENCE))
    arrays.token_ids = np.array([ord("x")] * len(arrays.kl))
    monkeypatch.setattr("judge.scorecard.data.load_token_arrays",
                        lambda _run, role: lookup_from_arrays(arrays))
    monkeypatch.setattr("judge.scorecard.flagged.load_baseline_tokenizer", lambda data: ByteTokenizer())
    _, flagged = build_report(run, n_resamples=50)
    top = flagged[0]
    assert len(top.tokens) == 30 and top.tokens[0].kl == pytest.approx(2.0)
    assert "".join(s.text for s in top.tokens) == "x" * 30


def test_no_tokenizer_means_no_colouring(run: Run, monkeypatch) -> None:
    arrays = _fake_arrays(list(DIVERGENCE))
    monkeypatch.setattr("judge.scorecard.data.load_token_arrays",
                        lambda _run, role: lookup_from_arrays(arrays))
    _, flagged = build_report(run, n_resamples=50)  # manifest points at a missing model folder
    assert all(f.tokens is None for f in flagged)


def test_scorecard_json_round_trip(run: Run) -> None:
    from judge.report import load_scorecard, write_reports

    card, flagged = build_report(run, n_resamples=100)
    write_reports(run, card, flagged)
    assert load_scorecard(run).model_dump_json() == card.model_dump_json()  # NaN != NaN, so as JSON
    raw = json.loads((run.root / "scorecard.json").read_text())
    assert raw["format_version"] == 2
    assert len((run.root / "flagged.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("kind, expected", [
    ("exact", "exact, over the whole vocabulary"),
    ("top-k lower bound", "top-64 lower bound"),
    ("top-k + tail estimate", "top-64 log-probs + 16 tail samples per token: the lower bound "
                              "(0.2207) plus an unbiased estimate"),
])
def test_kl_method_names_how_kl_was_computed(run: Run, monkeypatch, kind, expected) -> None:
    import judge.diverge
    from judge.scorecard.divergence import kl_method

    tail = kind == "top-k + tail estimate"
    summary = SimpleNamespace(kl_kind=kind, top_k=None if kind == "exact" else 64,
                              cache=SimpleNamespace(tail_samples=16, format_version=3),
                              overall=SimpleNamespace(kl_bound_mean=0.22072,
                                                      quantiles_of="kl lower bound" if tail else "kl"))
    monkeypatch.setattr(judge.diverge, "load_summary", lambda r, role: summary)
    text = kl_method(load_run(run), "compressed")
    assert text.startswith(expected)
    assert text.endswith("quantiles, maximum and histogram are of the lower bound") == tail
    # a cache of format 2 drew its tail samples with shared offsets: said, with the way out
    summary.cache.format_version = 2
    old = kl_method(load_run(run), "compressed")
    assert ("noise is correlated across answers: delete it to redraw" in old) == tail


def test_kl_method_is_none_without_a_summary(run: Run) -> None:
    from judge.scorecard.divergence import kl_method

    assert kl_method(load_run(run), "compressed") is None  # the synthetic run has no summary.json


# --------------------------------------------------------------------------- default intervals


def test_default_policy_gives_no_interval_below_8_questions(run: Run) -> None:
    card = build_scorecard(run, n_resamples=200)
    sec = card.sections[0]
    note = " questions < 8: no interval (from so few questions a 95% bootstrap interval covers"
    # 4 questions graded, 3 with an ok game (question 4's failed), 3 reference-graded
    for ci, n in [(sec.grades[0].delta, 4), (sec.head_to_head.win_rate, 3),
                  (sec.vs_control.grade_delta, 4), (sec.flips.accuracy_delta, 3),
                  (sec.divergence[0].kl_mean_ci, 4), (sec.divergence[0].same_top1_ci, 4)]:
        assert math.isnan(ci.low) and math.isnan(ci.high) and ci.note.startswith(f"{n}{note}"), ci
    assert sec.grades[0].delta.estimate == pytest.approx(-9 / 7)  # the estimate stays
    assert sec.kl_grade_spearman.note.startswith(f"4{note}")
    assert "too few questions for an interval" in sec.verdict.text


def test_default_intervals_with_enough_questions(tmp_path: Path) -> None:
    """12 questions (the synthetic run three times): overall and turn rows get the expanded
    interval, each equal to judge.stats on the same items; categories below 8 questions get none."""
    from judge.stats import bootstrap_ratio_ci

    run = write_synthetic_run(tmp_path / "run", copies=3)
    card = build_scorecard(run, seed=3, n_resamples=1000)
    sec = card.sections[0]
    keys = sorted((k for k in GRADES["baseline"] if k in GRADES["compressed"]),
                  key=lambda k: (int(k[0]), k[1]))
    keys = [(str(int(q) + 4 * c), t) for c in range(3) for q, t in keys]
    keys.sort(key=lambda k: (int(k[0]), k[1]))
    orig = {k: (str((int(k[0]) - 1) % 4 + 1), k[1]) for k in keys}
    direct = paired_bootstrap_mean_delta(
        [GRADES["baseline"][orig[k]] for k in keys], [GRADES["compressed"][orig[k]] for k in keys],
        groups=[k[0] for k in keys], n_resamples=1000, seed=3, method="expanded")
    overall = sec.grades[0].delta
    assert overall == direct and overall.method == "expanded" and overall.n_clusters == 12
    assert overall.estimate == pytest.approx(-9 / 7) and overall.low < overall.high < 0
    rows = {r.label: r.delta for r in sec.grades}
    assert rows["turn 1"].n_clusters == 12 and not math.isnan(rows["turn 1"].low)
    # math has 6 questions, writing and coding 3: no interval, and the row says why
    assert math.isnan(rows["math"].low) and rows["math"].note.startswith("6 questions < 8")
    assert math.isnan(rows["writing"].low) and rows["writing"].note.startswith("3 questions < 8")
    # mean KL and same top-1: question-level bootstrap of the token-weighted means
    div = sec.divergence[0]
    # the rows in the scorecard's order: sorted by (question id as a string, turn)
    items = [(k, v) for (k, _), v in sorted(((str(int(q) + 4 * c), t), v) for c in range(3)
                                            for (q, t), v in DIVERGENCE.items())]
    n = np.array([v[0] for _, v in items], dtype=float)
    kl_ci = bootstrap_ratio_ci(n * np.array([v[1] for _, v in items]), n, [q for q, _ in items],
                               n_resamples=1000, seed=3, method="expanded", min_clusters=8)
    assert div.kl_mean_ci == kl_ci and div.kl_mean_ci.estimate == pytest.approx(22.6 / 120)
    assert div.same_top1_ci.estimate == pytest.approx(103 / 120)
    assert div.kl_mean_ci.low < div.kl_mean_ci.estimate < div.kl_mean_ci.high
    # flips by question: each copy's q2 gives +1, q3 -1 -> S = 0, p = 1
    assert sec.flips.n_clusters == 9 and sec.flips.mcnemar_p == 1.0


# --------------------------------------------------------------------------- one judge per scorecard


def test_several_judges_are_refused_without_judge_model(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", control=False)
    other = write_synthetic_run(tmp_path / "other", control=False, judge="judge-two")
    # a rerun with another judge whose grades are all 1: pooled, the means would move
    rows = [r.model_copy(update={"score": 1.0}) if r.status == "ok" else r
            for r in read_jsonl(other.single_path, SingleJudgment)]
    append_jsonl(run.single_path, rows)
    with pytest.raises(RunFolderError, match=r"2 judge models \(judge-model, judge-two\); pass "
                                             r"--judge-model NAME"):
        build_scorecard(run)
    with pytest.raises(RunFolderError, match="no judgments by judge model 'nobody'"):
        build_scorecard(run, judge_model="nobody")
    one = build_scorecard(run, judge_model="judge-model", n_resamples=100)
    overall = one.sections[0].grades[0]
    assert overall.n == 7 and overall.baseline_mean == pytest.approx(50 / 7)  # judge two left out
    assert overall.delta.estimate == pytest.approx(-9 / 7)
    assert one.sections[0].head_to_head.n == 6  # the pairwise rows are judge-model's
    assert one.provenance.judges == ["judge-model"] and one.provenance.judge_model == "judge-model"
    assert one.provenance.other_judges == ["judge-two"] and one.provenance.n_other_judge == 17
    assert one.verdict.startswith("Judge: judge-model. Left out: 17 judgments by judge-two")
    two = build_scorecard(run, judge_model="judge-two", n_resamples=100)
    assert two.sections[0].grades[0].baseline_mean == 1.0 and two.sections[0].head_to_head is None
    assert two.n_superseded == 1  # judge two's own retried (4,1); judge one's rows are not "superseded"


def test_single_judge_is_named(run: Run) -> None:
    card = build_scorecard(run, n_resamples=100)
    assert card.provenance.judge_model == "judge-model" and card.provenance.other_judges == []
    assert card.verdict.startswith("Judge: judge-model.\n")


def test_cli_report_judge_model(tmp_path: Path, capsys) -> None:
    from judge.cli import main

    run = write_synthetic_run(tmp_path / "run", control=False)
    append_jsonl(run.single_path, read_jsonl(
        write_synthetic_run(tmp_path / "other", control=False, judge="judge-two").single_path,
        SingleJudgment))
    with pytest.raises(SystemExit) as exc:
        main(["report", str(run.root), "--no-show"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--judge-model" in err and "judge-two" in err
    main(["report", str(run.root), "--no-show", "--judge-model", "judge-two", "--resamples", "50"])
    card = json.loads((run.root / "scorecard.json").read_text())
    assert card["provenance"]["judge_model"] == "judge-two"
    main(["review", str(run.root), "--judge-model", "judge-model", "--limit", "1"])
    assert "#1" in capsys.readouterr().out
