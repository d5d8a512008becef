"""The paper's ordering on the embedded models: checked flips and mean KL of int8, int4 and drop4
against the baseline, on judge-80 with 256-token answers, no judge.

Dutta et al. (2024) find that flips (answers whose correctness changes) grow with compression
damage while accuracy barely moves, and that KL divergence orders the variants the same way.
Here correctness comes from the checker (`judge check`), so the figure needs no judge.

    python bench/checked_flips.py --make [--run paper-judge80]   # generate, check, diverge (slow:
                                                                  # 4 models x 80 questions x 2 turns)
    python bench/checked_flips.py [--run paper-judge80]          # print the figures of a finished run

``--make`` runs each missing stage as its own ``judge`` command (resumable; wrap it in
``flock /tmp/judge-heavy.lock nice -n 19`` on a shared machine). Cost: on the shared 2-core
development machine, under ``nice -n 19``, the baseline's first 64 questions (both turns, 256
tokens) were not done after 15 minutes, so the four models take well over an hour there; a GPU
(``--engine auto`` picks vLLM there) takes minutes. The slow test
``tests/check/test_paper_ordering.py`` reads the run folder named by ``JUDGE_PAPER_RUN``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = {"compressed-int8": "smollm2-135m-int8", "compressed-int4": "smollm2-135m-int4",
            "compressed-drop4": "smollm2-135m-drop4"}
BASELINE = "smollm2-135m"


@dataclass(frozen=True)
class Figures:
    role: str
    n: int  # items checked on both sides (undecided dropped)
    correct_to_incorrect: int
    incorrect_to_correct: int
    flip_percent: float
    mcnemar_p: float
    baseline_accuracy: float
    compressed_accuracy: float
    kl_mean: float | None
    kl_low: float | None
    kl_high: float | None

    @property
    def flips(self) -> int:
        return self.correct_to_incorrect + self.incorrect_to_correct


def figures(run_dir: Path) -> dict[str, Figures]:
    """Checked flips and mean KL per compressed role of a finished run."""
    from judge.scorecard import build_scorecard
    from judge.store import Run

    card = build_scorecard(Run(run_dir), n_resamples=1000)
    out = {}
    for sec in card.sections:
        f = sec.checked_flips
        if f is None:
            continue
        kl = sec.behaviour.kl_mean
        out[sec.role] = Figures(
            role=sec.role, n=f.n, correct_to_incorrect=f.correct_to_incorrect,
            incorrect_to_correct=f.incorrect_to_correct, flip_percent=f.flip_percent,
            mcnemar_p=f.mcnemar_p, baseline_accuracy=f.baseline_accuracy,
            compressed_accuracy=f.compressed_accuracy,
            kl_mean=sec.divergence[0].kl_mean if sec.divergence else None,
            kl_low=kl.low if kl else None, kl_high=kl.high if kl else None)
    return out


def judge(*args: str) -> None:
    cmd = [sys.executable, "-m", "judge", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def make(run: str, questions: str, max_new_tokens: int, engine: str = "auto") -> None:
    for role, model in [("baseline", BASELINE), *VARIANTS.items()]:
        judge("generate", model, "-q", questions, "--run", run, "--role", role,
              "--max-new-tokens", str(max_new_tokens), "--engine", engine, "--chunk-size", "8",
              "--no-progress")  # small chunks: an interrupted run keeps most of its answers
    judge("check", run)
    for role in VARIANTS:
        judge("diverge", run, "--role", role, "--no-progress")


def main() -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=os.environ.get("JUDGE_PAPER_RUN", "paper-judge80"))
    ap.add_argument("--questions", default="judge-80")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--make", action="store_true", help="run the missing stages first (slow)")
    ap.add_argument("--engine", default="auto", help="generation engine for --make: auto, vllm or hf")
    args = ap.parse_args()
    if args.make:
        make(args.run, args.questions, args.max_new_tokens, args.engine)
    from judge.store import resolve_run_dir

    figs = figures(resolve_run_dir(args.run))
    if not figs:
        sys.exit(f"{args.run}: no checked flips; run with --make or `judge check` first")
    print(f"{'role':18s} {'n':>4s} {'c->i':>5s} {'i->c':>5s} {'% flips':>8s} {'McNemar p':>10s} "
          f"{'accuracy':>15s} {'mean KL [95% CI], nats':>28s}")
    for role in [r for r in VARIANTS if r in figs]:
        f = figs[role]
        kl = (f"{f.kl_mean:.4f} [{f.kl_low:.4f}, {f.kl_high:.4f}]" if f.kl_mean is not None
              and f.kl_low is not None else "n/a")
        print(f"{role:18s} {f.n:4d} {f.correct_to_incorrect:5d} {f.incorrect_to_correct:5d} "
              f"{f.flip_percent:8.1f} {f.mcnemar_p:10.3f} "
              f"{100 * f.baseline_accuracy:6.1f}%->{100 * f.compressed_accuracy:5.1f}% {kl:>28s}")


if __name__ == "__main__":
    main()
