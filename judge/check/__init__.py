"""The check stage: grade answers by code against machine-checkable references, no judge.

Owns final-answer extraction (`extract`), the sandbox that runs an answer's code (`sandbox`),
grading one turn with its check (`grade`) and the stage over a run folder (`stage`). Other stages
call only what is named here.
"""

from judge.check.extract import Outcome, final_segment, find_json, numbers
from judge.check.grade import check_turn, code_blocks
from judge.check.sandbox import Limits, network_isolation, run_python, run_sql
from judge.check.stage import CheckSummary, check_role, check_run, checks_path

__all__ = [
    "CheckSummary", "Limits", "Outcome", "check_role", "check_run", "check_turn", "checks_path",
    "code_blocks", "final_segment", "find_json", "network_isolation", "numbers", "run_python",
    "run_sql",
]
