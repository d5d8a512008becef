"""`DivergeOptions`: how the divergence stage runs (cache size, extra divergences, device, batching).

Its own module so that the stage (`judge.diverge.stage`) and the model passes
(`judge.diverge.passes`) both import it without importing each other.
"""

from __future__ import annotations

from pydantic import Field

from judge.config import EngineOptions
from judge.schemas import Record


class DivergeOptions(Record):
    top_k: int | None = Field(default=64, ge=1)  # None: full vocabulary (exact)
    tail_samples: int = Field(default=16, ge=0)  # draws from the tail per position (0: bound only)
    reverse: bool = False  # also reverse KL(compressed ‖ baseline)
    jsd: bool = False  # also Jensen-Shannon divergence
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = None
    batch_tokens: int = Field(default=4096, ge=1)  # padded tokens per forward pass
    chunk_questions: int = Field(default=16, ge=1)  # questions per cache shard
    # GPUs one model's pass asks for on a Ray cluster (the run's --tensor-parallel-size; with
    # --device-map auto transformers spreads the model over them)
    gpus_per_model: int = Field(default=1, ge=1)

    @property
    def n_tail_samples(self) -> int:
        """Tail samples the cache holds: none for a full cache (it has no tail)."""
        return 0 if self.top_k is None else self.tail_samples

    def engine_options(self) -> EngineOptions:
        return EngineOptions(engine="hf", dtype=self.dtype, device=self.device,
                             device_map=self.device_map)
