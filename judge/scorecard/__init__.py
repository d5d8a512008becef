"""The scorecard: a run's judgments, divergence and flips joined into verdicts with paired statistics.

`data` reads the run folder, `build` computes every section, `divergence` pools KL rows, `flagged`
ranks the items to review, `behaviour` and `quality` decide the two axes of every verdict,
`selftest` scores the judge on planted degradations, `human` scores it against reviewers' labels,
`verdict` words the result, `gate` turns a scorecard into a CI check, and `schema` holds the records the report renderers draw. Other stages
call only what is named here.
"""

from judge.scorecard.build import build_report, build_scorecard, review_items
from judge.scorecard.data import load_run
from judge.scorecard.flagged import build_flagged
from judge.scorecard.gate import CRITERIA as GATE_CRITERIA
from judge.scorecard.gate import GateReport, evaluate_gate, write_gate
from judge.scorecard.human import HumanAgreement, HumanLabel, human_agreement, item_key
from judge.scorecard.schema import (SCORECARD_VERSION, Behaviour, FlaggedItem, Proportion, Quality,
                                    Scorecard, Section, SelfTest)
from judge.scorecard.verdict import fmt, fmt_ci, fmt_position

__all__ = [
    "GATE_CRITERIA", "SCORECARD_VERSION", "Behaviour", "FlaggedItem", "GateReport", "HumanAgreement",
    "HumanLabel", "Proportion", "Quality", "Scorecard", "Section", "SelfTest", "build_flagged", "build_report", "build_scorecard",
    "evaluate_gate", "fmt", "fmt_ci", "fmt_position", "human_agreement", "item_key", "load_run",
    "review_items", "write_gate",
]
