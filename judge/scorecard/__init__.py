"""The scorecard: a run's judgments, divergence and flips joined into verdicts with paired statistics.

`data` reads the run folder, `build` computes every section, `divergence` pools KL rows, `flagged`
ranks the items to review, `verdict` words the result and `schema` holds the records the report
renderers draw. Other stages call only what is named here.
"""

from judge.scorecard.build import build_report, build_scorecard, review_items
from judge.scorecard.data import load_run
from judge.scorecard.flagged import build_flagged
from judge.scorecard.schema import SCORECARD_VERSION, FlaggedItem, Scorecard, Section
from judge.scorecard.verdict import fmt, fmt_ci

__all__ = [
    "SCORECARD_VERSION", "FlaggedItem", "Scorecard", "Section", "build_flagged", "build_report",
    "build_scorecard", "fmt", "fmt_ci", "load_run", "review_items",
]
