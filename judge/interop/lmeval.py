"""Flips and option-level KL from two lm-evaluation-harness ``--log_samples`` runs.

lm-eval writes one ``samples_<task>_<date>.jsonl`` per task (under ``OUTPUT/<model>/``), a line
per document with ``doc_id``, ``doc_hash``, ``prompt_hash``, ``target``, the per-sample metrics
(``acc``, ``acc_norm``, ``exact_match``...) and, for multiple-choice tasks, ``filtered_resps``: one
``[loglikelihood, is_greedy]`` pair per option (written as strings since lm-eval 0.4.3).

`compare_samples` joins the baseline's and the compressed model's documents on ``doc_id`` (per
task and filter), refuses documents whose ``doc_hash`` differs, and reports per task:

* each model's accuracy under the chosen metric (the logged per-sample 0/1 value), Δaccuracy
  = compressed − baseline, and the flips (correct→incorrect, incorrect→correct, % flips =
  (c→i + i→c) / n · 100) with the exact McNemar p-value, via `judge.stats.flips`;
* for multiple-choice tasks, **all-flips**: documents whose chosen option changed, wrong→other-
  wrong included, with the chosen option = argmax of the option scores; and the option-level
  **KL(baseline‖compressed)** = Σ_i p_b(i) (log p_b(i) − log p_c(i)), p = softmax of the option
  scores, averaged over documents (nats).

Option scores are what lm-eval's metric ranks: the log-likelihoods for ``acc``, and for
``acc_norm`` the log-likelihoods divided by each option's length in characters (lm-eval's
``completion_len``; the option text is the logged continuation without lm-eval's default ``" "``
target delimiter). When more than one task is compared, a pooled row covers all documents.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from judge.errors import InputFileError
from judge.schemas import Record
from judge.stats import flips
from judge.store import iter_jsonl_raw

SAMPLES_RE = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-:]+)\.jsonl$")
AUTO_METRICS: tuple[str, ...] = ("acc", "exact_match")


class TaskFlips(Record):
    """One row of the flips table (a task, or all tasks pooled)."""

    task: str
    metric: str
    n: int  # documents in both logs
    n_only_baseline: int
    n_only_compressed: int
    baseline_accuracy: float  # fraction
    compressed_accuracy: float
    delta_accuracy: float  # compressed - baseline, fraction
    correct_to_incorrect: int
    incorrect_to_correct: int
    flip_percent: float  # (c->i + i->c) / n * 100
    mcnemar_p: float
    multiple_choice: bool
    changed_choice: int | None = None  # all-flips: chosen option differs
    all_flip_percent: float | None = None  # changed_choice / n * 100
    wrong_to_other_wrong: int | None = None
    kl_mean: float | None = None  # option-level KL(baseline || compressed), nats, mean over docs
    kl_max: float | None = None
    prompt_mismatches: int = 0  # documents whose prompt hash differs between the two runs
    notes: list[str] = []


class FlipsReport(Record):
    baseline: str
    compressed: str
    metric: str  # as asked: "auto", "acc", "acc_norm", ...
    tasks: list[TaskFlips]
    pooled: TaskFlips | None = None


@dataclass(frozen=True)
class DocSample:
    """What `judge flips` needs of one logged document."""

    doc_id: int | str
    doc_hash: str | None
    prompt_hash: str | None
    metrics: dict[str, float]
    loglik: NDArray[np.float64] | None  # (k,) per option, multiple-choice only
    option_chars: NDArray[np.float64] | None  # (k,) option lengths in characters
    gold: int | None  # gold option index when it can be read from ``target``
    line: int


# --------------------------------------------------------------------------- finding files


def find_samples(path: Path) -> dict[str, Path]:
    """Task -> samples file, from one ``samples_*.jsonl`` file or an lm-eval output folder."""
    if path.is_file():
        m = SAMPLES_RE.match(path.name)
        return {m.group("task") if m else path.stem: path}
    if not path.is_dir():
        raise InputFileError("lm-eval samples not found; give a samples_*.jsonl file or the "
                             "--output_path folder of an lm-eval run with --log_samples", path=path)
    found: dict[str, list[Path]] = {}
    for p in sorted(path.rglob("samples_*.jsonl")):
        m = SAMPLES_RE.match(p.name)
        found.setdefault(m.group("task") if m else p.stem, []).append(p)
    if not found:
        raise InputFileError("no samples_*.jsonl under this folder; run lm-eval with --log_samples",
                             path=path)
    for task, files in found.items():
        if len(files) > 1:
            raise InputFileError(f"{len(files)} sample files for task {task!r} "
                                 f"({', '.join(f.name for f in files)}); give the file itself", path=path)
    return {task: files[0] for task, files in found.items()}


# --------------------------------------------------------------------------- parsing


def _pair(entry: object) -> tuple[float, object] | None:
    """``[ll, is_greedy]`` (numbers or strings) or ``"(ll, is_greedy)"`` -> (ll, is_greedy)."""
    if isinstance(entry, str) and entry.startswith("("):
        try:
            entry = ast.literal_eval(entry)
        except (ValueError, SyntaxError):
            return None
    if isinstance(entry, (list, tuple)) and len(entry) == 2:
        try:
            return float(entry[0]), entry[1]
        except (TypeError, ValueError):
            return None
    return None


def _continuations(arguments: object) -> list[str] | None:
    """The continuation (second argument) of each request, in either logged layout."""
    if isinstance(arguments, dict):  # lm-eval >= 0.4.3: {"gen_args_0": {"arg_0": ctx, "arg_1": cont}}
        items = [arguments[k] for k in sorted(arguments, key=lambda k: int(k.rsplit("_", 1)[-1]))]
        conts = [a.get("arg_1") if isinstance(a, dict) else None for a in items]
    elif isinstance(arguments, list):  # older: [[ctx, cont], ...]
        conts = [a[1] if isinstance(a, list) and len(a) > 1 else None for a in arguments]
    else:
        return None
    return conts if all(isinstance(c, str) for c in conts) else None


def _metric_value(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def parse_sample(obj: dict, line: int) -> DocSample:
    metrics = {k: v for k in (obj.get("metrics") or []) if (v := _metric_value(obj.get(k))) is not None}
    pairs = [_pair(e) for e in obj.get("filtered_resps") or []]
    loglik = chars = None
    gold = None
    if len(pairs) >= 2 and all(p is not None for p in pairs):
        lls = [p[0] for p in pairs if p is not None]
        conts = _continuations(obj.get("arguments"))
        if "acc_mutual_info" in metrics and len(lls) % 2 == 0:
            lls, conts = lls[: len(lls) // 2], (conts[: len(conts) // 2] if conts else None)
        loglik = np.array(lls, dtype=np.float64)  # (k,)
        if conts is not None and len(conts) == len(lls):
            strip = 1 if all(c.startswith(" ") for c in conts) else 0  # lm-eval's default delimiter
            chars = np.array([float(len(c) - strip) for c in conts], dtype=np.float64)  # (k,)
        target = str(obj.get("target", ""))
        if target.isdigit() and int(target) < len(lls):
            gold = int(target)
        elif conts is not None and (" " + target) in conts:
            gold = conts.index(" " + target)
    return DocSample(doc_id=obj["doc_id"], doc_hash=obj.get("doc_hash"), prompt_hash=obj.get("prompt_hash"),
                     metrics=metrics, loglik=loglik, option_chars=chars, gold=gold, line=line)


def read_samples(path: Path) -> dict[str, dict[int | str, DocSample]]:
    """Filter -> doc_id -> sample. A doc_id repeated within one filter is an error."""
    out: dict[str, dict[int | str, DocSample]] = {}
    try:
        rows = list(iter_jsonl_raw(path))
    except OSError as err:
        raise InputFileError(f"cannot read lm-eval samples ({err.strerror})", path=path) from None
    for line, obj in rows:
        if "doc_id" not in obj:
            raise InputFileError("not an lm-eval sample (no doc_id); give a samples_*.jsonl file",
                                 path=path, line=line)
        sample = parse_sample(obj, line)
        docs = out.setdefault(str(obj.get("filter", "none")), {})
        if sample.doc_id in docs:
            raise InputFileError(f"doc_id {sample.doc_id!r} repeated (first on line "
                                 f"{docs[sample.doc_id].line}); was the file appended twice?",
                                 path=path, line=line)
        docs[sample.doc_id] = sample
    if not out:
        raise InputFileError("samples file is empty", path=path)
    return out


# --------------------------------------------------------------------------- statistics


def log_softmax(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """log p over the options (k,), computed stably."""
    shifted = scores - scores.max()
    return shifted - np.log(np.exp(shifted).sum())


def option_kl(base_scores: NDArray[np.float64], comp_scores: NDArray[np.float64]) -> float:
    """KL(p_b || p_c) in nats with p = softmax(scores) over the options."""
    lp_b, lp_c = log_softmax(base_scores), log_softmax(comp_scores)  # (k,)
    p_b = np.exp(lp_b)
    with np.errstate(invalid="ignore"):  # an option the baseline gives p = 0 adds 0, not NaN
        terms = np.where(p_b > 0, p_b * (lp_b - lp_c), 0.0)  # (k,)
    return float(terms.sum())


def _scores(s: DocSample, metric: str) -> NDArray[np.float64] | None:
    if s.loglik is None:
        return None
    if metric == "acc_norm":
        return None if s.option_chars is None or (s.option_chars <= 0).any() else s.loglik / s.option_chars
    return s.loglik


def _pick_metric(task: str, metric: str, docs: list[DocSample], path: Path) -> str:
    available = sorted({k for d in docs for k in d.metrics})
    if metric == "auto":
        for m in AUTO_METRICS:
            if m in available:
                return m
        raise InputFileError(f"task {task!r} logs no acc or exact_match (it has "
                             f"{', '.join(available) or 'none'}); choose one with --metric", path=path)
    if metric not in available:
        raise InputFileError(f"task {task!r} has no per-sample {metric!r} (it has "
                             f"{', '.join(available) or 'none'}); choose one with --metric", path=path)
    return metric


def _correct(s: DocSample, metric: str, path: Path) -> bool:
    v = s.metrics[metric]
    if v not in (0.0, 1.0):
        raise InputFileError(f"per-sample {metric} is {v}, not 0 or 1; flips need a correct/incorrect "
                             "metric (choose one with --metric)", path=path, line=s.line)
    return v == 1.0


def task_flips(task: str, metric: str, base: dict, comp: dict, base_path: Path, comp_path: Path
               ) -> tuple[TaskFlips, list[tuple[bool, bool]], list[float]]:
    """The flips row of one task; also its (base, comp) correctness pairs and per-doc KLs."""
    common = [d for d in base if d in comp]
    for d in common:
        b, c = base[d], comp[d]
        if b.doc_hash and c.doc_hash and b.doc_hash != c.doc_hash:
            raise InputFileError(f"doc_id {d!r} of task {task!r} is another document in "
                                 f"{comp_path}:{c.line} (doc_hash differs); compare runs of the "
                                 "same task version and dataset", path=base_path, line=b.line)
    used = _pick_metric(task, metric, [base[d] for d in common] or list(base.values()), base_path)
    pairs = [(_correct(base[d], used, base_path), _correct(comp[d], used, comp_path)) for d in common]
    fc = flips([p[0] for p in pairs], [p[1] for p in pairs])
    notes: list[str] = []
    score_pairs = [(_scores(base[d], used), _scores(comp[d], used)) for d in common]
    mc = bool(common) and all(b is not None and c is not None and len(b) == len(c) for b, c in score_pairs)
    changed = wrong_wrong = None
    kls: list[float] = []
    if mc:
        picks = [(int(np.argmax(b)), int(np.argmax(c))) for b, c in score_pairs]  # type: ignore[arg-type]
        changed = sum(pb != pc for pb, pc in picks)
        wrong_wrong = sum(pb != pc and not cb and not cc for (pb, pc), (cb, cc) in zip(picks, pairs))
        kls = [option_kl(b, c) for b, c in score_pairs]  # type: ignore[arg-type]
        golds = [(base[d].gold, pb, cb) for d, (pb, _), (cb, _) in zip(common, picks, pairs)]
        odd = sum(g is not None and used in ("acc", "acc_norm") and (p == g) != ok for g, p, ok in golds)
        if odd:
            notes.append(f"{odd} documents where the recomputed baseline choice disagrees with the "
                         f"logged {used} (multiple gold answers, or a non-default target delimiter)")
    elif used in ("acc", "acc_norm") and common:
        notes.append("option log-likelihoods not found in filtered_resps: no all-flips or KL")
    prompt_diff = sum(1 for d in common if base[d].prompt_hash and comp[d].prompt_hash
                      and base[d].prompt_hash != comp[d].prompt_hash)
    if prompt_diff:
        notes.append(f"{prompt_diff} documents were prompted differently (prompt_hash differs)")
    n = fc.n
    row = TaskFlips(
        task=task, metric=used, n=n, n_only_baseline=len(base) - len(common),
        n_only_compressed=len(comp) - len(common), baseline_accuracy=fc.baseline_accuracy,
        compressed_accuracy=fc.compressed_accuracy,
        delta_accuracy=fc.compressed_accuracy - fc.baseline_accuracy,
        correct_to_incorrect=fc.correct_to_incorrect, incorrect_to_correct=fc.incorrect_to_correct,
        flip_percent=fc.flip_percent, mcnemar_p=fc.mcnemar_p, multiple_choice=mc,
        changed_choice=changed, all_flip_percent=(changed / n * 100) if mc and n else None,
        wrong_to_other_wrong=wrong_wrong, kl_mean=(sum(kls) / len(kls)) if kls else None,
        kl_max=max(kls) if kls else None, prompt_mismatches=prompt_diff, notes=notes)
    return row, pairs, kls


def _pooled(rows: list[TaskFlips], pairs: list[tuple[bool, bool]], kls: list[float], metric: str) -> TaskFlips:
    fc = flips([p[0] for p in pairs], [p[1] for p in pairs])
    mc = all(r.multiple_choice for r in rows)
    changed = sum(r.changed_choice or 0 for r in rows) if mc else None
    return TaskFlips(
        task="all tasks (pooled)", metric=metric, n=fc.n, n_only_baseline=sum(r.n_only_baseline for r in rows),
        n_only_compressed=sum(r.n_only_compressed for r in rows), baseline_accuracy=fc.baseline_accuracy,
        compressed_accuracy=fc.compressed_accuracy, delta_accuracy=fc.compressed_accuracy - fc.baseline_accuracy,
        correct_to_incorrect=fc.correct_to_incorrect, incorrect_to_correct=fc.incorrect_to_correct,
        flip_percent=fc.flip_percent, mcnemar_p=fc.mcnemar_p, multiple_choice=mc, changed_choice=changed,
        all_flip_percent=(changed / fc.n * 100) if changed is not None and fc.n else None,
        wrong_to_other_wrong=sum(r.wrong_to_other_wrong or 0 for r in rows) if mc else None,
        kl_mean=(sum(kls) / len(kls)) if mc and kls else None, kl_max=max(kls) if mc and kls else None,
        prompt_mismatches=sum(r.prompt_mismatches for r in rows))


def compare_samples(baseline: Path, compressed: Path, *, tasks: list[str] | None = None,
                    metric: str = "auto") -> FlipsReport:
    """Join two lm-eval sample logs and compute the flips table (see the module docstring)."""
    base_files, comp_files = find_samples(baseline), find_samples(compressed)
    if len(base_files) == 1 and len(comp_files) == 1 and baseline.is_file() and compressed.is_file():
        comp_files = {next(iter(base_files)): next(iter(comp_files.values()))}  # two files: one task
    names = sorted(set(base_files) & set(comp_files))
    if tasks:
        for t in tasks:
            for side, files, where in (("baseline", base_files, baseline), ("compressed", comp_files, compressed)):
                if t not in files:
                    raise InputFileError(f"no samples of task {t!r} for the {side} model (found "
                                         f"{', '.join(sorted(files))})", path=where)
        names = list(tasks)
    if not names:
        raise InputFileError(f"the two runs share no task (baseline: {', '.join(sorted(base_files))}; "
                             f"compressed: {', '.join(sorted(comp_files))})", path=compressed)
    rows: list[TaskFlips] = []
    all_pairs: list[tuple[bool, bool]] = []
    all_kls: list[float] = []
    for task in names:
        b_docs, c_docs = read_samples(base_files[task]), read_samples(comp_files[task])
        for filt in sorted(set(b_docs) & set(c_docs)):
            label = task if len(b_docs) == 1 else f"{task} [{filt}]"
            row, pairs, kls = task_flips(label, metric, b_docs[filt], c_docs[filt],
                                         base_files[task], comp_files[task])
            rows.append(row)
            all_pairs += pairs
            all_kls += kls
    used = {r.metric for r in rows}
    pooled = _pooled(rows, all_pairs, all_kls, used.pop() if len(used) == 1 else "mixed") \
        if len(rows) > 1 else None
    return FlipsReport(baseline=str(baseline), compressed=str(compressed), metric=metric, tasks=rows,
                       pooled=pooled)


def render_table(report: FlipsReport) -> None:
    """Print the flips table to the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    def pct(x: float | None, signed: bool = False) -> str:
        return "-" if x is None or math.isnan(x) else (f"{x:+.2f}" if signed else f"{x:.2f}")

    table = Table(title="Flips: baseline -> compressed", caption=f"baseline: {report.baseline}\n"
                  f"compressed: {report.compressed}")
    for col in ("task", "metric", "n", "acc base %", "acc comp %", "Δacc pp", "flips %", "c→i",
                "i→c", "all-flips %", "McNemar p", "KL nats"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for r in report.tasks + ([report.pooled] if report.pooled else []):
        table.add_row(r.task, r.metric, str(r.n), pct(r.baseline_accuracy * 100),
                      pct(r.compressed_accuracy * 100), pct(r.delta_accuracy * 100, signed=True),
                      pct(r.flip_percent), str(r.correct_to_incorrect), str(r.incorrect_to_correct),
                      pct(r.all_flip_percent), f"{r.mcnemar_p:.3g}",
                      "-" if r.kl_mean is None else f"{r.kl_mean:.4f}")
    console = Console()
    if not console.is_terminal:  # piped to a file: do not wrap the table at 80 columns
        console = Console(width=200)
    console.print(table)
    for r in report.tasks:
        for note in r.notes:
            console.print(f"[yellow]{r.task}[/]: {note}")
        if r.n_only_baseline or r.n_only_compressed:
            console.print(f"[yellow]{r.task}[/]: {r.n_only_baseline} documents only in the baseline "
                          f"log, {r.n_only_compressed} only in the compressed log (left out)")
