"""The tail samples of the baseline cache are seeded per (question, turn).

`judge.diverge.passes.baseline_pass` runs here on a fake language model (a fixed logits table, no
weights) so that two answers with the same tokens get exactly the same baseline distributions; the
only thing that can make their tail estimates differ is the random draws. The estimator's errors
(estimate - exact KL, per position) of the two answers must then be uncorrelated; with one seed for
every call (the old behaviour, reproduced by patching the seed) they are identical.
"""

from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import judge.diverge.kl as kl
from judge.diverge.cache import CACHE_FORMAT_VERSION, BaselineCache, Sequence
from judge.diverge.kl import CacheRows, divergence_from_cache, tail_seed, token_divergence
from judge.diverge.options import DivergeOptions
from judge.diverge.passes import baseline_pass
from judge.schemas import ModelInfo

VOCAB, N_ANSWER, PROMPT = 2001, 400, 3


class TableLM(torch.nn.Module):
    """Logits of position p (counted back from the end of the sequence) = row p of a fixed table:
    two sequences of the same length get the same logits at every position."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table  # (L, V)

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False,
                logits_to_keep=None):  # noqa: ANN001 - the transformers call signature
        b, width = input_ids.shape
        keep = logits_to_keep or width
        return SimpleNamespace(logits=self.table[-keep:].expand(b, keep, VOCAB))


@pytest.fixture(scope="module")
def tables() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    base = torch.randn(N_ANSWER + 1, VOCAB, generator=g) * 2.5  # flat: a heavy tail beyond K
    comp = base + torch.randn(N_ANSWER + 1, VOCAB, generator=g) * 0.6
    return base, comp


def _sequences() -> list[Sequence]:
    ids = tuple(range(1, PROMPT + N_ANSWER + 1))
    return [Sequence("1", 1, "math", ids, PROMPT), Sequence("2", 1, "math", ids, PROMPT),
            Sequence("3", 2, "math", ids, PROMPT)]


def _cache(tmp_path, name: str, table: torch.Tensor, monkeypatch, chunk: int = 16) -> BaselineCache:
    monkeypatch.setattr("judge.generate.load_hf_model",
                        lambda path, opts: (TableLM(table), torch.device("cpu")))
    cache = BaselineCache(tmp_path / name)
    options = DivergeOptions(top_k=32, tail_samples=4, chunk_questions=chunk, dtype="float32")
    baseline_pass(cache, _sequences(), ModelInfo(spec="table", name="table", path="-"),
                  ("t" * 64, "v" * 64), options, progress=False)
    return cache


def _errors(cache: BaselineCache, tables) -> dict[tuple[str, int], np.ndarray]:
    """estimate - exact KL at each answer position, per sequence: (N_ANSWER,) each."""
    base, comp = tables
    out = {}
    for path in cache.shard_paths():
        shard = cache.read_shard(path)
        for i, s in enumerate(shard.seqs):
            lo, hi = int(shard.pos_offsets[i]), int(shard.pos_offsets[i + 1])
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a[lo:hi]))  # noqa: E731
            ids = t(shard.ids).to(torch.int64)
            rows = CacheRows(logp=t(shard.logp), ids=ids, log_tail=t(shard.log_tail),
                             logp_target=t(shard.logp_target), top1=ids[:, 0],
                             tail_ids=t(shard.tail_ids).to(torch.int64), tail_logp=t(shard.tail_logp))
            targets = torch.tensor(s.targets)
            est = divergence_from_cache(rows, comp[:N_ANSWER], targets)["kl"].double()
            exact = token_divergence(base[:N_ANSWER], comp[:N_ANSWER], targets)["kl"].double()
            assert (est >= divergence_from_cache(rows, comp[:N_ANSWER], targets)["kl_bound"]).all()
            out[(s.key, s.turn)] = (est - exact).numpy()
    return out


def test_errors_of_two_answers_are_uncorrelated(tmp_path, tables, monkeypatch) -> None:
    errors = _errors(_cache(tmp_path, "per-sequence", tables[0], monkeypatch), tables)
    e1, e2, e3 = errors[("1", 1)], errors[("2", 1)], errors[("3", 2)]
    assert e1.std() > 0.01 * abs(e1.mean()) + 1e-6  # the tail estimate is noisy at each token
    bound = 4 / math.sqrt(N_ANSWER)  # 4 SE of a correlation of independent series: 0.2
    for a, b in [(e1, e2), (e1, e3), (e2, e3)]:
        assert abs(np.corrcoef(a, b)[0, 1]) < bound
    # the old scheme (one seed for every call): the same draws for every answer, errors identical
    monkeypatch.setattr(kl, "tail_seed", lambda key, turn: kl.TAIL_SEED)
    shared = _errors(_cache(tmp_path, "shared", tables[0], monkeypatch), tables)
    assert np.corrcoef(shared[("1", 1)], shared[("2", 1)])[0, 1] > 0.999


def test_draws_depend_on_the_sequence_not_on_the_shard(tmp_path, tables, monkeypatch) -> None:
    one = _cache(tmp_path, "one-shard", tables[0], monkeypatch, chunk=16)
    per_q = _cache(tmp_path, "shard-per-question", tables[0], monkeypatch, chunk=1)
    assert len(one.shard_paths()) == 1 and len(per_q.shard_paths()) == 3
    a = [one.read_shard(p) for p in one.shard_paths()][0]
    for path in per_q.shard_paths():
        b = per_q.read_shard(path)
        i = [(s.key, s.turn) for s in a.seqs].index((b.seqs[0].key, b.seqs[0].turn))
        lo, hi = int(a.pos_offsets[i]), int(a.pos_offsets[i + 1])
        np.testing.assert_array_equal(a.tail_ids[lo:hi], b.tail_ids)
    assert one.header().format_version == CACHE_FORMAT_VERSION == 3


def test_tail_seed_is_a_hash_of_question_and_turn() -> None:
    digest = hashlib.sha256(b"7a11/q1/2").digest()
    assert tail_seed("q1", 2) == int.from_bytes(digest[:8], "little") >> 1
    seeds = {tail_seed(k, t) for k in ("1", "2", "q1") for t in (1, 2)}
    assert len(seeds) == 6 and all(0 <= s < 2 ** 63 for s in seeds)
