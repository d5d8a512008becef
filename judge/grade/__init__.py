"""The grade stage: single grades and swapped pairwise games from an LLM judge.

`stage` plans and runs the judgments, `client` is the judge seam (any OpenAI-compatible endpoint),
`fleet` its second implementation (one judge at several endpoints), `summary` a call's account,
`cache` the SQLite response cache, `server` judge specs and the ``local:MODEL`` launcher, `prompts`
the templates and `verdicts` the parsing of a reply into a validated verdict. Other stages call only
what is named here.
"""

from judge.grade.preflight import check_timeout, reach, reach_all
from judge.grade.server import (JudgeEndpoint, JudgeSpec, endpoint_for, parse_judge_spec,
                                require_local_judge_runtime)
from judge.grade.stage import GradeSummary, grade_run, latest_pairwise, latest_single, run_questions

__all__ = [
    "GradeSummary", "JudgeEndpoint", "check_timeout", "reach", "reach_all", "JudgeSpec", "endpoint_for", "grade_run", "latest_pairwise",
    "latest_single", "parse_judge_spec", "require_local_judge_runtime", "run_questions",
]
