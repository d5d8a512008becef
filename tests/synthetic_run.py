"""A hand-written run folder with known numbers, for the scorecard and report tests.

Four two-turn questions (1 writing; 2, 3 math; 4 coding; 2-4 reference-graded). Grades per turn:

    question        1       2       3       4
    baseline       8 7     9 6     5 8     7 8
    compressed     6 7     9 3     6 3     7 x      x = api_error (and (4,1) was retried: last row ok)
    control        8 7     9 6     5 8     7 7

Correct (reference): baseline (2: T T, 3: F F, 4: T T); compressed (2: T F, 3: T F, 4: T x).
Pairwise (compressed): (1,1) baseline >> consistently (a strong loss), (1,2) tie, (2,1) inconsistent,
(2,2) baseline > consistently, (3,1) compressed > consistently, (3,2) tie, (4,1) invalid_output,
(4,2) never judged. Control: a consistent tie everywhere.
The compressed answer to (2,2) holds a ``<script>`` and an ``onerror`` payload; a judge explanation
holds rich markup and an ANSI escape.
"""

from __future__ import annotations

import json
from pathlib import Path

from judge.schemas import (
    Answer,
    AnswerChoice,
    KLSummary,
    ModelInfo,
    PairGame,
    PairJudgment,
    PairVerdict,
    QuestionSetInfo,
    RunManifest,
    SingleJudgment,
    SingleVerdict,
    SingleVerdictWithReference,
    TurnDivergence,
)
from judge.store import Run, append_jsonl

CATEGORIES = {"1": "writing", "2": "math", "3": "math", "4": "coding"}
GRADES = {
    "baseline": {("1", 1): 8, ("1", 2): 7, ("2", 1): 9, ("2", 2): 6, ("3", 1): 5, ("3", 2): 8,
                 ("4", 1): 7, ("4", 2): 8},
    "compressed": {("1", 1): 6, ("1", 2): 7, ("2", 1): 9, ("2", 2): 3, ("3", 1): 6, ("3", 2): 3,
                   ("4", 1): 7},
    "control": {("1", 1): 8, ("1", 2): 7, ("2", 1): 9, ("2", 2): 6, ("3", 1): 5, ("3", 2): 8,
                ("4", 1): 7, ("4", 2): 7},
}
CORRECT = {
    "baseline": {("2", 1): True, ("2", 2): True, ("3", 1): False, ("3", 2): False, ("4", 1): True,
                 ("4", 2): True},
    "compressed": {("2", 1): True, ("2", 2): False, ("3", 1): True, ("3", 2): False, ("4", 1): True},
}
CORRECT["control"] = dict(CORRECT["baseline"])
ISSUES = {
    "baseline": {("3", 1): ["factual_error"]},
    "compressed": {("1", 1): ["incomplete_or_truncated"], ("2", 2): ["reasoning_or_math_error"],
                   ("3", 2): ["repetition_or_looping", "reasoning_or_math_error"]},
    "control": {},
}
# (g1 label with baseline at A, g2 label with compressed at A)
PAIRS = {("1", 1): ("A>>B", "B>A"), ("1", 2): ("A=B", "A=B"), ("2", 1): ("A>B", "A>B"),
         ("2", 2): ("A>B", "B>A"), ("3", 1): ("B>A", "A>B"), ("3", 2): ("A=B", "A=B")}
# per item: (n_tokens, kl_mean, kl_max, same_top1, dp_rms, log_ppl_ratio)
DIVERGENCE = {
    ("1", 1): (10, 0.2, 1.0, 0.9, 0.1, 0.05), ("1", 2): (20, 0.05, 0.3, 1.0, 0.02, 0.01),
    ("2", 1): (10, 0.1, 0.5, 0.8, 0.05, 0.02), ("2", 2): (30, 0.4, 2.0, 0.7, 0.2, 0.1),
    ("3", 1): (10, 0.01, 0.05, 1.0, 0.01, 0.0), ("3", 2): (20, 0.3, 1.5, 0.75, 0.15, 0.08),
    ("4", 1): (10, 0.02, 0.1, 1.0, 0.01, 0.0), ("4", 2): (10, 0.03, 0.2, 1.0, 0.02, 0.01),
}
SCRIPT_PAYLOAD = ("<script>document.title='PWNED'</script>"
                  "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">")
MARKUP_PAYLOAD = "[bold red]not markup[/] \x1b[31mnot red\x1b[0m"


def _answer_text(role: str, q: str, turn: int) -> str:
    if role == "compressed" and (q, turn) == ("2", 2):
        return f"The answer is 7. {SCRIPT_PAYLOAD} Done."
    return f"{role} answer to question {q}, turn {turn}: 6 \u00d7 4 = 24 & more."


def _single(role: str, q: str, turn: int, score: int | None, status: str = "ok") -> SingleJudgment:
    correct = CORRECT[role].get((q, turn)) if status == "ok" else None
    issues = ISSUES[role].get((q, turn), [])
    explanation = f"{role} {q}/{turn}: graded {score}."
    if role == "compressed" and (q, turn) == ("2", 2):
        explanation += " " + MARKUP_PAYLOAD
    verdict = None
    if status == "ok":
        if CATEGORIES[q] in ("math", "coding"):
            verdict = SingleVerdictWithReference(explanation=explanation, issues=issues,
                                                 rating=score, correct=bool(correct))
        else:
            verdict = SingleVerdict(explanation=explanation, issues=issues, rating=score)
    return SingleJudgment(
        question_id=int(q), model=f"{role}-model", judge=("judge-model", "single-v1"),
        user_prompt="(prompt)", judgment="(raw)" if status == "ok" else "", turn=turn,
        score=score if status == "ok" else -1, tstamp=1.0, role=role, status=status,
        error=None if status == "ok" else "boom", verdict=verdict, correct=correct,
        prompt_sha256="abc123")


def _game(a_role: str, b_role: str, label: str, q: str, turn: int) -> PairGame:
    strength = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": 1, "B>>A": 2}[label]
    side = a_role if label.startswith("A>") else b_role if label.startswith("B>") else "tie"
    # as judge.grade.stage writes it: "compressed" stands for whichever non-baseline role won
    winner = side if side in ("baseline", "tie") else "compressed"
    comp_issues = ["incomplete_or_truncated"] if (q, turn) == ("1", 1) else []
    issues_a = comp_issues if a_role != "baseline" else []
    issues_b = comp_issues if b_role != "baseline" else []
    verdict = PairVerdict(explanation=f"game {a_role} vs {b_role} on {q}/{turn}: {label}",
                          issues_a=issues_a, issues_b=issues_b, verdict=label)
    return PairGame(a_role=a_role, b_role=b_role, user_prompt="(p)", judgment=label, status="ok",
                    verdict=verdict, winner=winner, strength=strength)


def _pair(role: str, q: str, turn: int, labels: tuple[str, str] | None,
          status: str = "ok") -> PairJudgment:
    games = None
    winner = consistent = None
    fc = {"baseline": "model_1", "compressed": "model_2", "tie": "tie"}
    g1w = g2w = "error"
    if status == "ok":
        assert labels is not None
        games = [_game("baseline", role, labels[0], q, turn), _game(role, "baseline", labels[1], q, turn)]
        consistent = games[0].winner == games[1].winner
        winner = games[0].winner if consistent else "tie"
        g1w, g2w = fc[games[0].winner], fc[games[1].winner]
    return PairJudgment(
        question_id=int(q), model_1="baseline-model", model_2=f"{role}-model", g1_winner=g1w,
        g2_winner=g2w, judge=("judge-model", "pair-v1"), g1_user_prompt="", g1_judgment="",
        g2_user_prompt="", g2_judgment="", turn=turn, tstamp=1.0, role_1="baseline", role_2=role,
        games=games, status=status, winner=winner, consistent=consistent, prompt_sha256="def456")


def _kl(n: int, kl: float, kl_max: float, top1: float, dp_rms: float, lpr: float) -> KLSummary:
    return KLSummary(n_tokens=n, kl_mean=kl, kl_se=0.01, kl_median=kl, kl_p90=kl, kl_p99=kl_max,
                     kl_p999=kl_max, kl_max=kl_max, same_top1=top1, same_top1_se=0.01,
                     dp_mean=0.0, dp_rms=dp_rms, log_ppl_ratio=lpr, log_ppl_ratio_se=0.01)


def token_kl(key: tuple[str, int]) -> list[float]:
    """Per-token KL of an item, consistent with DIVERGENCE: n values with the given mean and max.

    The first token carries the max; the rest share what is left of the sum equally.
    """
    n, mean, kl_max, *_ = DIVERGENCE[key]
    rest = (n * mean - kl_max) / (n - 1)
    return [kl_max] + [rest] * (n - 1)


def _copies(rows: list, copies: int) -> list:
    """``rows`` and, for copy c = 1..copies-1, the same rows with question id q + 4c."""
    out = list(rows)
    for c in range(1, copies):
        out += [r.model_copy(update={"question_id": int(r.question_id) + 4 * c}) for r in rows]
    return out


def write_synthetic_run(root: Path, *, control: bool = True, copies: int = 1,
                        judge: str = "judge-model") -> Run:
    """The run above. With ``copies`` > 1 its four questions are repeated under new ids (question q
    of copy c is q + 4c: same category, grades, games and KL), so every mean is unchanged while
    there are 4 * copies questions. ``judge``: the judge model named in every judgment."""
    run = Run(root)
    root.mkdir(parents=True, exist_ok=True)
    qfile = root / "questions.jsonl"
    lines = []
    for c in range(copies):
        for q, cat in CATEGORIES.items():
            qid = int(q) + 4 * c
            row: dict = {"question_id": qid, "category": cat,
                         "turns": [f"Question {qid} turn 1?", f"Question {qid} turn 2 <b>bold?</b>"]}
            if q != "1":
                row["reference"] = [f"ref {qid}.1", f"ref {qid}.2"]
            lines.append(json.dumps(row))
    qfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    roles = ["baseline", "compressed"] + (["control"] if control else [])
    models = {r: ModelInfo(spec=f"{r}-spec", name=f"{r}-model", path=str(root / f"no-{r}-model"))
              for r in roles}
    run.save_manifest(RunManifest(
        judge_version="0.1.0", run=root.name, created=1.0, updated=1.0, models=models, seed=0,
        questions=QuestionSetInfo(name="synthetic", path=str(qfile), sha256="0" * 64,
                                  n_questions=4 * copies,
                                  categories={"writing": copies, "math": 2 * copies,
                                              "coding": copies}),
        versions={"judge": "0.1.0"}))
    for role in roles:
        append_jsonl(run.answers_path(role), _copies([
            Answer(question_id=int(q), answer_id=f"{role}-{q}", model_id=f"{role}-model",
                   choices=[AnswerChoice(turns=[_answer_text(role, q, 1), _answer_text(role, q, 2)])],
                   tstamp=1.0, role=role, category=cat)
            for q, cat in CATEGORIES.items()], copies))
    singles = [_single("compressed", "4", 1, None, "api_error")]  # superseded by the retry below
    for role in roles:
        for (q, t), score in GRADES[role].items():
            singles.append(_single(role, q, t, score))
    singles.append(_single("compressed", "4", 2, None, "api_error"))
    singles = [r.model_copy(update={"judge": (judge, r.judge[1])}) for r in singles]
    append_jsonl(run.single_path, _copies(singles, copies))
    pairs = [_pair("compressed", q, t, labels) for (q, t), labels in PAIRS.items()]
    pairs.append(_pair("compressed", "4", 1, None, "invalid_output"))
    if control:
        pairs += [_pair("control", q, t, ("A=B", "A=B")) for (q, t) in GRADES["control"]]
    pairs = [r.model_copy(update={"judge": (judge, r.judge[1])}) for r in pairs]
    append_jsonl(run.pairwise_path, _copies(pairs, copies))
    append_jsonl(run.divergence_dir / "compressed.jsonl", _copies([
        TurnDivergence(question_id=int(q), category=CATEGORIES[q], turn=t, role="compressed",
                       stats=_kl(*v)) for (q, t), v in DIVERGENCE.items()], copies))
    return run
