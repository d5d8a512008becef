"""`judge flips` on lm-evaluation-harness ``--log_samples`` output.

Unit tests read the hand-made logs in tests/data/lmeval (lm-eval 0.4.13's format: log-likelihoods
written as strings, ``arguments`` as ``gen_args_i``; the compressed ``norm_mc`` file uses the older
layout, floats and argument lists, and one ``"(ll, False)"`` string form). Their log-likelihoods are
logs of simple probabilities, so every expected value below is worked out by hand.

The end-to-end test runs lm-eval itself on a task defined here over a local JSONL file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from judge.cli import main
from judge.errors import InputFileError
from judge.interop.lmeval import compare_samples, find_samples, option_kl

DATA = Path(__file__).resolve().parents[1] / "data" / "lmeval"
LN2 = math.log(2)


def test_tiny_mc_flips_and_kl_by_hand() -> None:
    rep = compare_samples(DATA / "base", DATA / "comp", tasks=["tiny_mc"])
    (r,) = rep.tasks
    # docs 0..4 in both logs, doc 5 only in the baseline's
    assert (r.n, r.n_only_baseline, r.n_only_compressed) == (5, 1, 0)
    # baseline right on 0, 1, 4; compressed right on 1, 2, 4
    assert (r.baseline_accuracy, r.compressed_accuracy, r.delta_accuracy) == (0.6, 0.6, 0.0)
    assert (r.correct_to_incorrect, r.incorrect_to_correct, r.flip_percent) == (1, 1, 40.0)
    assert r.mcnemar_p == 1.0  # min(1, 2 * P(X <= 1 | n=2, 1/2)) = min(1, 1.5)
    # chosen option changes on docs 0 (right->wrong), 2 (wrong->right), 3 (wrong->other wrong)
    assert (r.multiple_choice, r.changed_choice, r.all_flip_percent, r.wrong_to_other_wrong) == (True, 3, 60.0, 1)
    # docs 0, 2, 3: p_b and p_c are (1/2, 1/4, 1/4) permuted -> KL = 1/2 ln 2 - 1/4 ln 2 = ln2 / 4;
    # docs 1 and 4 (4: every log-likelihood shifted by -3) -> 0
    assert r.kl_mean == pytest.approx(3 * LN2 / 4 / 5, abs=1e-12)
    assert r.kl_max == pytest.approx(LN2 / 4, abs=1e-12)
    assert r.notes == [] and r.prompt_mismatches == 0


def test_acc_norm_divides_by_option_length() -> None:
    """norm_mc: options " a" and " bb" (1 and 2 characters); old log layout on the compressed side."""
    rep = compare_samples(DATA / "base", DATA / "comp", tasks=["norm_mc"], metric="acc_norm")
    (r,) = rep.tasks
    assert r.metric == "acc_norm"
    # doc 0 (gold 1): base scores (-2/1, -2/2) pick 1 (right); comp (-2/1, -6/2) pick 0 (wrong)
    assert (r.n, r.baseline_accuracy, r.compressed_accuracy, r.correct_to_incorrect) == (2, 1.0, 0.5, 1)
    # KL(softmax(-2, -1) || softmax(-2, -3)) = (e - 1) / (e + 1) = tanh(1/2); doc 1 identical -> 0
    assert r.kl_mean == pytest.approx(math.tanh(0.5) / 2, abs=1e-12)
    raw = compare_samples(DATA / "base", DATA / "comp", tasks=["norm_mc"], metric="acc").tasks[0]
    # acc on raw log-likelihoods: doc 0 base (-2, -2) picks 0 (first maximum), comp (-2, -6) picks 0
    assert (raw.baseline_accuracy, raw.compressed_accuracy, raw.changed_choice) == (0.5, 0.5, 0)
    # KL((1/2, 1/2) || softmax(-2, -6)) = -ln 2 + ln(1 + e^-4) + 2
    assert raw.kl_mean == pytest.approx((-LN2 + math.log1p(math.exp(-4)) + 2) / 2, abs=1e-12)


def test_folders_give_every_task_and_a_pooled_row() -> None:
    rep = compare_samples(DATA / "base", DATA / "comp")
    assert [t.task for t in rep.tasks] == ["norm_mc", "tiny_mc"]
    p = rep.pooled
    assert p is not None and rep.metric == "auto" and p.metric == "acc" and {t.metric for t in rep.tasks} == {"acc"}
    # 5 + 2 documents; right: base 3 + 1, comp 3 + 1; flips only in tiny_mc
    assert (p.n, p.baseline_accuracy, p.correct_to_incorrect, p.incorrect_to_correct) == (7, 4 / 7, 1, 1)
    assert (p.changed_choice, p.wrong_to_other_wrong, p.n_only_baseline) == (3, 1, 1)
    assert p.kl_mean == pytest.approx((3 * LN2 / 4 + (-LN2 + math.log1p(math.exp(-4)) + 2)) / 7, abs=1e-12)


def test_option_kl_is_the_textbook_formula() -> None:
    b, c = np.log([0.7, 0.2, 0.1]), np.log([0.1, 0.2, 0.7]) + 5.0  # a shift does not change softmax
    expected = 0.7 * math.log(7) + 0.2 * 0 + 0.1 * math.log(1 / 7)
    assert option_kl(b, c) == pytest.approx(expected, abs=1e-12)
    assert option_kl(b, b) == 0.0
    # an option with log-likelihood -inf under the baseline has p = 0 and adds nothing
    inf_b = np.array([math.log(0.5), math.log(0.5), -math.inf])
    assert option_kl(inf_b, np.log([0.25, 0.5, 0.25])) == pytest.approx(0.5 * LN2, abs=1e-12)


def _copy(src: Path, dst: Path, edit=None) -> Path:
    rows = [json.loads(x) for x in src.read_text().splitlines()]
    if edit:
        rows = edit(rows)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_bad_logs_are_refused_with_file_and_line(tmp_path: Path) -> None:
    base = next((DATA / "base").glob("samples_tiny_mc_*.jsonl"))
    comp = next((DATA / "comp").glob("samples_tiny_mc_*.jsonl"))

    def other_doc(rows):
        rows[2]["doc_hash"] = "0" * 64
        return rows

    bad = _copy(comp, tmp_path / "a" / comp.name, other_doc)
    with pytest.raises(InputFileError, match=r":3: doc_id 2 .*doc_hash differs"):
        compare_samples(base, bad)
    twice = _copy(comp, tmp_path / "b" / comp.name, lambda rows: rows + rows[:1])
    with pytest.raises(InputFileError, match=r":6: doc_id 0 repeated"):
        compare_samples(base, twice)

    def graded(rows):
        rows[0]["acc"] = 0.5
        return rows

    with pytest.raises(InputFileError, match=r":1: per-sample acc is 0.5"):
        compare_samples(base, _copy(comp, tmp_path / "c" / comp.name, graded))
    with pytest.raises(InputFileError, match="no per-sample 'bleu'"):
        compare_samples(base, comp, metric="bleu")
    with pytest.raises(InputFileError, match="no samples of task 'arc'"):
        compare_samples(DATA / "base", DATA / "comp", tasks=["arc"])
    shutil.copy(comp, tmp_path / "b" / comp.name.replace("2026-01-02", "2026-01-03"))
    with pytest.raises(InputFileError, match="2 sample files for task 'tiny_mc'"):
        find_samples(tmp_path / "b")


def test_prompt_differences_are_noted(tmp_path: Path) -> None:
    comp = next((DATA / "comp").glob("samples_tiny_mc_*.jsonl"))

    def reprompt(rows):
        rows[1]["prompt_hash"] = "f" * 64
        return rows

    rep = compare_samples(DATA / "base", _copy(comp, tmp_path / "comp" / comp.name, reprompt), tasks=["tiny_mc"])
    assert rep.tasks[0].prompt_mismatches == 1 and "prompted differently" in rep.tasks[0].notes[0]


def test_cli_prints_table_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "flips.json"
    main(["flips", str(DATA / "base"), str(DATA / "comp"), "--task", "tiny_mc", "--json", str(out)])
    text = capsys.readouterr().out
    assert "tiny_mc" in text and "40.00" in text and "60.00" in text  # flips %, all-flips %
    saved = json.loads(out.read_text())
    assert saved["tasks"][0]["correct_to_incorrect"] == 1 and saved["pooled"] is None
    with pytest.raises(SystemExit) as exc:
        main(["flips", str(tmp_path / "nothing"), str(DATA / "comp")])
    assert exc.value.code == 2


# --------------------------------------------------------------------------- end to end

# Twenty general-knowledge items written for this test: (question, options, index of the answer).
ITEMS: list[tuple[str, list[str], int]] = [
    ("What colour is a clear daytime sky?", ["blue", "green", "purple", "brown"], 0),
    ("How many legs does a spider have?", ["six", "eight", "ten", "four"], 1),
    ("What is two plus three?", ["four", "six", "five", "seven"], 2),
    ("Which animal barks?", ["cat", "cow", "fish", "dog"], 3),
    ("What do bees make?", ["honey", "milk", "silk", "wool"], 0),
    ("Which planet do people live on?", ["Mars", "Earth", "Venus", "Jupiter"], 1),
    ("What is frozen water called?", ["steam", "sand", "ice", "salt"], 2),
    ("How many days are in a week?", ["five", "six", "eight", "seven"], 3),
    ("What is the opposite of hot?", ["cold", "tall", "fast", "loud"], 0),
    ("Which season comes after winter?", ["autumn", "spring", "summer", "night"], 1),
    ("What do you use to write on paper?", ["spoon", "shoe", "pen", "cup"], 2),
    ("Which shape has three sides?", ["circle", "square", "line", "triangle"], 3),
    ("What gas do people breathe in to live?", ["oxygen", "helium", "neon", "argon"], 0),
    ("What is ten minus four?", ["five", "six", "seven", "eight"], 1),
    ("Which fruit is yellow and curved?", ["apple", "grape", "banana", "cherry"], 2),
    ("Where do fish live?", ["trees", "deserts", "clouds", "water"], 3),
    ("What is the largest ocean on Earth?", ["Pacific", "Arctic", "Indian", "Atlantic"], 0),
    ("How many hours are in a day?", ["twelve", "twenty-four", "sixty", "seven"], 1),
    ("What does a thermometer measure?", ["weight", "length", "temperature", "time"], 2),
    ("Which organ pumps blood?", ["lung", "liver", "brain", "heart"], 3),
]

TASK_YAML = """\
task: judge_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def _lm_eval(model_path: str, tasks_dir: Path, out: Path, tmp: Path) -> None:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp / "hf-datasets"), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={model_path},dtype=float32", "--tasks", "judge_tiny_mc",
           "--include_path", str(tasks_dir), "--log_samples", "--output_path", str(out),
           "--device", "cpu", "--batch_size", "16"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_end_to_end_lm_eval_runs_then_judge_flips(base_model, int4_model, tmp_path: Path, capsys) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is a test dependency: pip install -e '.[test]'")
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    data = tasks_dir / "items.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in ITEMS))
    (tasks_dir / "judge_tiny_mc.yaml").write_text(TASK_YAML.format(data=data))
    outs = {}
    for name, model in (("base", base_model), ("int4", int4_model)):
        outs[name] = tmp_path / f"out-{name}"
        _lm_eval(model.path, tasks_dir, outs[name], tmp_path)

    json_path = tmp_path / "flips.json"
    main(["flips", str(outs["base"]), str(outs["int4"]), "--json", str(json_path)])
    print(capsys.readouterr().out)  # the table, for the log (-s)
    rep = json.loads(json_path.read_text())
    (row,) = rep["tasks"]
    assert row["task"] == "judge_tiny_mc" and row["n"] == 20 and row["multiple_choice"]
    assert row["n_only_baseline"] == row["n_only_compressed"] == 0 and row["prompt_mismatches"] == 0
    # accuracies equal lm-eval's own aggregate in results_*.json
    for side, key in (("base", "baseline_accuracy"), ("int4", "compressed_accuracy")):
        (results,) = list(outs[side].rglob("results_*.json"))
        agg = json.loads(results.read_text())["results"]["judge_tiny_mc"]["acc,none"]
        assert row[key] == pytest.approx(agg, abs=1e-12)
    # bookkeeping that must hold on any run
    assert row["delta_accuracy"] * 20 == pytest.approx(row["incorrect_to_correct"] - row["correct_to_incorrect"])
    assert row["changed_choice"] >= row["correct_to_incorrect"] + row["incorrect_to_correct"]
    assert row["notes"] == []  # recomputed choices agree with lm-eval's logged acc on every doc
    # int4 weights change the option distribution, but not into another model
    assert 0.0 < row["kl_mean"] < 1.0
