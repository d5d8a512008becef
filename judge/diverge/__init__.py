"""The divergence stage: the baseline's conversations teacher-forced through every model.

`stage` orders the work, `passes` runs each model alone in memory, `cache` owns the files (the
baseline top-K cache, per-token arrays), `kl` the numeric core and `summary` llama.cpp's statistics.
Other stages call only what is named here.
"""

from judge.diverge.loadcheck import check_loadable
from judge.diverge.options import DivergeOptions
from judge.diverge.stage import DivergeResult, diverge, load_divergence, load_summary
from judge.diverge.summary import DivergenceSummary, describe_kl, summary_table

__all__ = [
    "DivergeOptions", "DivergeResult", "DivergenceSummary", "check_loadable", "describe_kl", "diverge",
    "load_divergence", "load_summary", "summary_table",
]
