"""The grade stage's account of one call: `GradeSummary` (what was written, what was already done,
requests, cache hits, tokens, time, and a judge fleet's per-endpoint requests) and
`check_endpoint_worked`, which turns a call whose every request failed at the API into one error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from judge.errors import JudgeEndpointError


@dataclass
class GradeSummary:
    judge_model: str
    single: Counter[str] = field(default_factory=Counter)  # status -> rows written by this call
    pairwise: Counter[str] = field(default_factory=Counter)
    skipped_single: int = 0
    skipped_pairwise: int = 0
    calls: int = 0  # HTTP requests made by this call
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    final_single: Counter[str] = field(default_factory=Counter)  # latest row per key, whole file
    final_pairwise: Counter[str] = field(default_factory=Counter)
    probes: Counter[str] = field(default_factory=Counter)  # self-test rows written, by status
    skipped_probes: int = 0
    endpoints: list[Any] = field(default_factory=list)  # a judge fleet's `EndpointStats`

    def _fleet_text(self) -> str:
        from judge.grade.fleet import describe_endpoints

        text = describe_endpoints(self.endpoints)
        return f" ({text})" if text else ""

    @property
    def written(self) -> int:
        return sum(self.single.values()) + sum(self.pairwise.values()) + sum(self.probes.values())

    @property
    def ok(self) -> int:
        return self.single["ok"] + self.pairwise["ok"]

    @staticmethod
    def _counts(c: Counter[str]) -> str:
        return ", ".join(f"{n} {s}" for s, n in sorted(c.items())) or "none"

    def __str__(self) -> str:
        counts = self._counts
        return (f"grade ({self.judge_model}): single {counts(self.single)} written, "
                f"{self.skipped_single} already done; pairwise {counts(self.pairwise)} written, "
                f"{self.skipped_pairwise} already done; {self.calls} requests, {self.cache_hits} cache "
                f"hits, {self.prompt_tokens}+{self.completion_tokens} tokens in {self.seconds:.1f} s"
                f"{self._fleet_text()}. "
                f"Now: single {counts(self.final_single)}; pairwise {counts(self.final_pairwise)}"
                f"{self._probe_text()}")

    def _probe_text(self) -> str:
        if not self.probes and not self.skipped_probes:
            return ""
        return (f"; self-test probes {self._counts(self.probes)} written, {self.skipped_probes} "
                "already done")

    def short(self) -> str:
        """The summary in one terminal line: what this call wrote, what was there, its cost."""
        probes = (f", self-test probes {self._counts(self.probes)}"
                  if self.probes or self.skipped_probes else "")
        done = self.skipped_single + self.skipped_pairwise + self.skipped_probes
        return (f"judgments: single {self._counts(self.single)}, pairwise "
                f"{self._counts(self.pairwise)}{probes}; {done} already done; {self.calls} requests "
                f"in {self.seconds:.0f} s{self._fleet_text()}")


def check_endpoint_worked(summary: GradeSummary, where: str) -> None:
    """Every request of this call failed at the API: say so as one line (exit 2)."""
    errors = summary.single["api_error"] + summary.pairwise["api_error"] + summary.probes["api_error"]
    if summary.written and errors == summary.written:
        raise JudgeEndpointError(
            f"the judge at {where} failed every request ({errors} judgments recorded as api_error; "
            f"first: {summary.first_error}); check the endpoint and rerun to retry them")
