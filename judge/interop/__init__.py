"""Other tools' files: FastChat MT-Bench import and export, lm-evaluation-harness sample logs.

Other stages and the CLI call only what is named here.
"""

from judge.interop.fastchat_export import ExportSummary, export_fastchat
from judge.interop.fastchat_import import ImportSummary, import_fastchat
from judge.interop.lmeval import FlipsReport, compare_samples, render_table

__all__ = [
    "ExportSummary", "FlipsReport", "ImportSummary", "compare_samples", "export_fastchat",
    "import_fastchat", "render_table",
]
