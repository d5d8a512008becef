"""Read a run folder into what the scorecard needs: latest judgments per key, answers, divergence.

**Latest row wins.** Judgment files are append-only, and a rerun after a failure appends a newer
row for the same key, so for each key the LAST row in the file is the one that counts:
single judgments are keyed by ``(question_id, turn, role)``, pairwise judgments by
``(question_id, turn, role_2)``. Earlier rows for a key are counted as ``n_superseded``, never used.
Answers are keyed by ``(role, question_id)``, also last row wins.

**One judge per scorecard.** Grading keys its rows by judge model too, so a run graded twice with
different ``--judge`` holds both; pooling them would mix two judges' scales in every delta, win
rate and flip. `load_run` keeps the rows of one judge model: the only one in the run, or the one
asked for (``judge report --judge-model``); a run with several and none asked for is refused with
one line naming them. The rows of the others are counted in ``n_other_judge``, never used.

Rows without a ``role`` (imported FastChat files) get one from the manifest, by model name.
Per-token divergence arrays come through `load_token_arrays`, an adapter over
`judge.diverge.stage.load_divergence`; without it (or for imported runs) there are none and the
scorecard falls back to the per-(question, turn) rows of ``RUN/divergence/<role>.jsonl``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from judge.errors import JudgeError, RunFolderError
from judge.schemas import (
    ROLE_RE,
    Answer,
    CheckResult,
    PairJudgment,
    Question,
    RunManifest,
    SingleJudgment,
    TurnDivergence,
)
from judge.store import Run, read_jsonl

if TYPE_CHECKING:
    from judge.scorecard.schema import Provenance

log = logging.getLogger(__name__)

ItemKey = tuple[str, int]  # (question_id as a string, turn starting at 1)


@dataclass(frozen=True)
class ItemTokens:
    """Per-token arrays of one (question, turn): the baseline answer's tokens, shape (n,) each."""

    token_ids: NDArray[np.int64]
    kl: NDArray[np.float64]
    same_top1: NDArray[np.bool_] | None = None
    kl_bound: NDArray[np.float64] | None = None  # top-K lower bound, when kl holds an estimate


TokenLookup = Callable[[str, int], "ItemTokens | None"]


@dataclass
class RunData:
    run: Run
    manifest: RunManifest | None
    questions: dict[str, Question]
    answers: dict[str, dict[str, Answer]]  # role -> question id -> answer
    single: dict[tuple[str, int, str], SingleJudgment]  # (qid, turn, role) -> latest row
    pairwise: dict[tuple[str, int, str], PairJudgment]  # (qid, turn, role_2) -> latest row
    divergence: dict[str, dict[ItemKey, TurnDivergence]]  # role -> item -> row
    n_superseded: int = 0
    unassigned: int = 0  # judgment rows whose role could not be determined
    tokens: dict[str, TokenLookup | None] = field(default_factory=dict)
    judge_model: str | None = None  # the judge whose rows these are (None: no judgments)
    other_judges: list[str] = field(default_factory=list)  # judges whose rows were left out
    n_other_judge: int = 0  # judgment rows of other judges, left out
    checks: dict[str, dict[ItemKey, CheckResult]] = field(default_factory=dict)  # role -> item -> row

    def checked(self, role: str, key: ItemKey) -> bool | None:
        """The checker's correctness of ``role``'s answer to ``key`` (None: no check, or an error)."""
        row = self.checks.get(role, {}).get(key)
        return row.correct if row is not None else None

    @property
    def roles(self) -> list[str]:
        found = (set(self.answers) | {k[2] for k in self.single} | {k[2] for k in self.pairwise}
                 | set(self.divergence))
        return sorted(r for r in found if ROLE_RE.match(r))

    @property
    def compressed_roles(self) -> list[str]:
        return [r for r in self.roles if r.startswith("compressed")]

    def category(self, qid: str) -> str:
        q = self.questions.get(qid)
        if q is not None:
            return q.category
        for by_q in self.answers.values():
            a = by_q.get(qid)
            if a is not None and a.category:
                return a.category
        for rows in self.divergence.values():
            for (q_id, _), row in rows.items():
                if q_id == qid:
                    return row.category
        return "unknown"

    def token_lookup(self, role: str) -> TokenLookup | None:
        if role not in self.tokens:
            self.tokens[role] = load_token_arrays(self.run, role)
        return self.tokens[role]


def item_sort(key: ItemKey) -> tuple:
    """Order items by question id (numerically when numeric), then turn."""
    q, t = key
    return (0, int(q), "", t) if q.lstrip("-").isdigit() else (1, 0, q, t)


def correctness(row: SingleJudgment | None) -> bool | None:
    """The reference verdict (correct or not) of an ok judgment, else None."""
    if row is None or row.status != "ok":
        return None
    if row.correct is not None:
        return row.correct
    return getattr(row.verdict, "correct", None)


def _model_roles(manifest: RunManifest | None) -> dict[str, str]:
    if manifest is None:
        return {}
    return {info.name: role for role, info in manifest.models.items()}


def _load_questions(manifest: RunManifest | None) -> dict[str, Question]:
    """The run's questions (for their text and category), if the file is still where it was."""
    if manifest is None or manifest.questions is None:
        return {}
    from judge.questions import load_questions

    path = Path(manifest.questions.path)
    if not path.is_file():
        return {}
    try:
        _, qs = load_questions(path)
    except JudgeError as err:
        log.warning("questions not loaded for the report: %s", err)
        return {}
    return {q.key: q for q in qs}


def choose_judge(found: dict[str, int], wanted: str | None, where: Path) -> str | None:
    """The judge model whose rows make the scorecard; refuses (one line) an absent or ambiguous one.

    ``found``: judge model -> number of judgment rows in the run. ``wanted``: asked for, or None.
    """
    names = ", ".join(sorted(found)) or "none"
    if wanted is not None:
        if wanted not in found:
            raise RunFolderError(f"no judgments by judge model {wanted!r} in this run (judges: "
                                 f"{names}); pass one of them to --judge-model", path=where)
        return wanted
    if len(found) > 1:
        raise RunFolderError(f"the run holds judgments by {len(found)} judge models ({names}); "
                             "pass --judge-model NAME to build the scorecard for one of them",
                             path=where)
    return next(iter(found), None)


def load_run(run: Run, judge_model: str | None = None) -> RunData:
    """Read everything the scorecard joins, for one judge model (see the module docstring).

    A run with no judgments and no answers is an error, and so is a run graded by several judge
    models when ``judge_model`` does not pick one.
    """
    if not run.root.is_dir():
        raise RunFolderError("run folder not found; give a run name under outputs/ or a path",
                             path=run.root)
    manifest = run.load_manifest()
    by_model = _model_roles(manifest)
    answers: dict[str, dict[str, Answer]] = {}
    for role in run.answer_roles():
        answers[role] = {a.key: a for a in read_jsonl(run.answers_path(role), Answer)}

    single_rows = read_jsonl(run.single_path, SingleJudgment) if run.single_path.exists() else []
    pair_rows = read_jsonl(run.pairwise_path, PairJudgment) if run.pairwise_path.exists() else []
    found = Counter(r.judge[0] for r in [*single_rows, *pair_rows])
    if found or judge_model is not None:
        where = run.single_path if run.single_path.exists() else run.judgments_dir
        judge_model = choose_judge(dict(found), judge_model, where)
    n_other = sum(n for j, n in found.items() if j != judge_model)

    superseded = unassigned = 0
    single: dict[tuple[str, int, str], SingleJudgment] = {}
    if single_rows:
        for row in single_rows:
            if row.judge[0] != judge_model:
                continue
            role = row.role or by_model.get(row.model)
            if role is None:
                unassigned += 1
                continue
            key = (str(row.question_id), row.turn, role)
            superseded += key in single
            single[key] = row
    pairwise: dict[tuple[str, int, str], PairJudgment] = {}
    if pair_rows:
        for prow in pair_rows:
            if prow.judge[0] != judge_model:
                continue
            role2 = prow.role_2 or by_model.get(prow.model_2)
            if role2 is None:
                unassigned += 1
                continue
            pkey = (str(prow.question_id), prow.turn, role2)
            superseded += pkey in pairwise
            pairwise[pkey] = prow

    divergence: dict[str, dict[ItemKey, TurnDivergence]] = {}
    if run.divergence_dir.is_dir():
        for path in sorted(run.divergence_dir.glob("*.jsonl")):
            if not ROLE_RE.match(path.stem) or path.stem == "baseline":
                continue
            rows = read_jsonl(path, TurnDivergence)
            divergence[path.stem] = {(str(r.question_id), r.turn): r for r in rows}

    checks: dict[str, dict[ItemKey, CheckResult]] = {}
    if (run.root / "checks").is_dir():
        for path in sorted((run.root / "checks").glob("*.jsonl")):
            if ROLE_RE.match(path.stem):  # the last row of an item wins
                checks[path.stem] = {(str(r.question_id), r.turn): r
                                     for r in read_jsonl(path, CheckResult)}

    if not answers and not single and not pairwise:
        raise RunFolderError("run folder has no answers and no judgments; run `judge generate` "
                             "and `judge grade` first", path=run.root)
    return RunData(run=run, manifest=manifest, questions=_load_questions(manifest),
                   answers=answers, single=single, pairwise=pairwise, divergence=divergence,
                   n_superseded=superseded, unassigned=unassigned, judge_model=judge_model,
                   other_judges=sorted(j for j in found if j != judge_model), n_other_judge=n_other,
                   checks=checks)


# --------------------------------------------------------------------------- per-token arrays


def load_token_arrays(run: Run, role: str) -> TokenLookup | None:
    """Per-token arrays of a role via `judge.diverge.stage.load_divergence`; None when there are none.

    Missing arrays are not an error: the scorecard then pools the per-item rows and leaves the
    token quantiles and colouring out.
    """
    try:
        from judge.diverge import load_divergence
    except ImportError:
        return None
    tokens = run.divergence_dir / f"{role}.tokens.npz"
    try:
        _, arrays = load_divergence(run, role)
    except (JudgeError, OSError, ValueError, KeyError) as err:
        if tokens.is_file() and isinstance(err, JudgeError) and "corrupt" in err.message:
            raise  # a file that is there but broken is an error to fix, not "no arrays"
        log.info("per-token divergence of %s not loaded: %s", role, err)
        return None
    return lookup_from_arrays(arrays)


def lookup_from_arrays(arrays: object) -> TokenLookup:
    """Index a `judge.diverge.cache.TokenArrays` (keys, turns, offsets, token_ids, kl,
    same_top1, kl_bound: segment i covers positions offsets[i]:offsets[i+1]) by (question id,
    turn)."""
    offsets = np.asarray(getattr(arrays, "offsets"), dtype=np.int64)  # (S + 1,)
    turns = [int(t) for t in np.asarray(getattr(arrays, "turns"))]
    index = {(str(k), t): i for i, (k, t) in enumerate(zip(getattr(arrays, "keys"), turns))}
    ids = np.asarray(getattr(arrays, "token_ids"), dtype=np.int64)  # (N,)
    kl = np.asarray(getattr(arrays, "kl"), dtype=np.float64)  # (N,)
    top1_raw = getattr(arrays, "same_top1", None)
    top1 = None if top1_raw is None else np.asarray(top1_raw, dtype=bool)
    bound_raw = getattr(arrays, "kl_bound", None)
    bound = None if bound_raw is None else np.asarray(bound_raw, dtype=np.float64)  # (N,)

    def lookup(qid: str, turn: int) -> ItemTokens | None:
        i = index.get((qid, turn))
        if i is None:
            return None
        sl = slice(int(offsets[i]), int(offsets[i + 1]))
        return ItemTokens(token_ids=ids[sl], kl=kl[sl], same_top1=None if top1 is None else top1[sl],
                          kl_bound=None if bound is None else bound[sl])

    return lookup


# --------------------------------------------------------------------------- provenance


def provenance(data: RunData, seed: int, n_resamples: int, confidence: float) -> "Provenance":
    """Models and fingerprints, the judge model and its prompt hashes, question set, seeds, versions.

    ``judges`` holds the one judge model the scorecard was built from (the judgments kept by
    `load_run`); ``other_judges`` names those left out.
    """
    from judge import __version__
    from judge.scorecard.schema import ModelProvenance, Provenance

    m = data.manifest
    models = []
    for role, info in sorted((m.models if m else {}).items()):
        fp = info.fingerprint
        models.append(ModelProvenance(
            role=role, name=info.name, spec=info.spec, path=info.path,
            config_sha256=fp.config_sha256 if fp else None,
            tokenizer_sha256=fp.tokenizer_sha256 if fp else None,
            weight_bytes=sum(w.bytes for w in fp.weights) if fp else None))
    judges: set[str] = set()
    prompts: dict[str, set[str]] = {}
    for row in [*data.single.values(), *data.pairwise.values()]:
        judges.add(row.judge[0])
        hashes = prompts.setdefault(row.judge[1], set())
        if row.prompt_sha256:
            hashes.add(row.prompt_sha256)
    qinfo = m.questions if m else None
    return Provenance(
        run=data.run.root.name, judge_version=__version__,
        run_judge_version=m.judge_version if m else None, models=models, judges=sorted(judges),
        judge_model=data.judge_model, other_judges=data.other_judges,
        n_other_judge=data.n_other_judge,
        prompts={k: sorted(v) for k, v in sorted(prompts.items())},
        question_set=qinfo.name if qinfo else None,
        question_set_sha256=qinfo.sha256 if qinfo else None,
        n_questions=qinfo.n_questions if qinfo else None, run_seed=m.seed if m else None,
        bootstrap_seed=seed, n_resamples=n_resamples, confidence=confidence,
        versions=dict(m.versions) if m else {})
