"""Files of the divergence stage: the baseline cache's shards and header, the per-token arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from judge.diverge.cache import (BaselineCache, CacheHeader, Sequence, TokenArrays,
                                    payload_bytes_per_token, sequences_sha256)
from judge.errors import RunFolderError, TokenizerMismatchError
from judge.schemas import ModelFingerprint


def _seqs() -> list[Sequence]:
    return [Sequence("1", 1, "math", (5, 6, 7, 8, 9), 3), Sequence("1", 2, "math", (5, 6, 7, 8, 9, 4, 2), 6),
            Sequence("q2", 1, "writing", (1, 60000, 3), 1)]


def _rows(n: int, k: int, rng: np.random.Generator):
    logp = -np.sort(rng.random((n, k)).astype(np.float32) * 5, axis=1)
    ids = rng.integers(0, 65536, (n, k))
    return logp, ids, rng.random(n).astype(np.float32) - 9, -rng.random(n).astype(np.float32)


def _header(tok: str = "t" * 64, fp: ModelFingerprint | None = None) -> CacheHeader:
    return CacheHeader(top_k=4, vocab_size=65536, tokenizer_sha256=tok, vocab_sha256="v" * 64,
                       baseline_spec="base", baseline_fingerprint=fp, dtype="auto", created=0.0)


def test_sequence_identity():
    s = Sequence("1", 1, "math", (5, 6, 7), 2)
    assert s.n_answer == 1 and s.targets == (7,)
    assert s.sha256 != Sequence("1", 1, "math", (5, 6, 8), 2).sha256
    assert s.sha256 != Sequence("1", 1, "math", (5, 6, 7), 1).sha256  # same ids, other prompt
    a, b, c = _seqs()
    assert sequences_sha256([a, b]) != sequences_sha256([b, a])


def test_shard_round_trip_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    cache = BaselineCache(tmp_path / BaselineCache.folder_name(4))
    assert cache.root.name == "baseline.k4.cache"
    assert BaselineCache.folder_name(None) == "baseline.full.cache"
    assert BaselineCache.folder_name(64, 16) == "baseline.k64s16.cache"
    assert BaselineCache.folder_name(None, 16) == "baseline.full.cache"  # no tail to sample
    seqs = _seqs()
    assert cache.check_sequences(seqs) == seqs  # empty cache: everything to do
    cache.write_header(_header())
    n = sum(s.n_answer for s in seqs[:2])  # 2 + 1
    logp, ids, tail, target = _rows(n, 4, rng)
    path = cache.write_shard(seqs[:2], logp, ids, tail, target, vocab_size=65536)
    (cache.root / ".shard-00001.npz.999.tmp").write_bytes(b"torn")  # a crash mid-write
    assert [p.name for p in cache.shard_paths()] == ["shard-00000.npz"]
    assert cache.check_sequences(seqs) == seqs[2:]
    shard = cache.read_shard(path)
    assert shard.seqs == seqs[:2]
    assert shard.ids.dtype == np.uint16  # a vocabulary of 65536 fits in 16 bits
    np.testing.assert_array_equal(shard.ids.astype(np.int64), ids)
    np.testing.assert_array_equal(shard.logp, logp)
    np.testing.assert_array_equal(shard.log_tail, tail)
    np.testing.assert_array_equal(shard.logp_target, target)
    assert shard.pos_offsets.tolist() == [0, 2, 3]
    assert cache.next_shard_path().name == "shard-00001.npz"
    assert shard.tail_ids is None and shard.tail_logp is None  # written without tail samples
    tail_ids = rng.integers(0, 65536, (2, 3))  # question q2 has two answer tokens
    tail_logp = -rng.random((2, 3)).astype(np.float32) - 10
    logp, ids, tail, target = _rows(2, 4, rng)
    shard = cache.read_shard(cache.write_shard(seqs[2:], logp, ids, tail, target, vocab_size=65536,
                                               tail_ids=tail_ids, tail_logp=tail_logp))
    assert shard.tail_ids.dtype == np.uint16
    np.testing.assert_array_equal(shard.tail_ids.astype(np.int64), tail_ids)
    np.testing.assert_array_equal(shard.tail_logp, tail_logp)
    assert cache.check_sequences(seqs) == []
    # a changed baseline answer is refused, not silently mixed in
    changed = [Sequence("1", 2, "math", (5, 6, 7, 8, 9, 4, 3), 6)]
    with pytest.raises(RunFolderError, match="other tokens for question 1 turn 2"):
        cache.check_sequences(changed)


def test_wide_vocabulary_ids_are_int32(tmp_path):
    cache = BaselineCache(tmp_path / "c")
    seqs = [Sequence("1", 1, "x", (1, 2, 100_000), 2)]
    path = cache.write_shard(seqs, np.zeros((1, 2), np.float32), np.array([[100_000, 3]]),
                             np.zeros(1, np.float32), np.zeros(1, np.float32), vocab_size=128_256)
    shard = cache.read_shard(path)
    assert shard.ids.dtype == np.int32 and shard.ids[0, 0] == 100_000
    assert shard.seqs[0].ids[-1] == 100_000


def test_header_refuses_other_tokenizer_or_baseline(tmp_path):
    fp = ModelFingerprint(config_sha256="a", tokenizer_sha256="t", weights=[])
    cache = BaselineCache(tmp_path / "c")
    assert cache.check_header(tokenizer_sha256="t" * 64, vocab_sha256="v" * 64,
                              baseline_fingerprint=fp) is None
    cache.write_header(_header(fp=fp))
    assert cache.check_header(tokenizer_sha256="t" * 64, vocab_sha256="v" * 64,
                              baseline_fingerprint=fp).top_k == 4
    with pytest.raises(TokenizerMismatchError, match="another tokenizer"):
        cache.check_header(tokenizer_sha256="u" * 64, vocab_sha256="v" * 64, baseline_fingerprint=fp)
    with pytest.raises(TokenizerMismatchError, match="another tokenizer"):
        cache.check_header(tokenizer_sha256="t" * 64, vocab_sha256="w" * 64, baseline_fingerprint=fp)
    other = ModelFingerprint(config_sha256="b", tokenizer_sha256="t", weights=[])
    with pytest.raises(RunFolderError, match="another baseline model"):
        cache.check_header(tokenizer_sha256="t" * 64, vocab_sha256="v" * 64,
                           baseline_fingerprint=other)
    version1 = json.loads(cache.header_path.read_text())
    version1["format_version"] = 1  # written before tail samples existed: readable, S = 0
    del version1["tail_samples"]
    cache.header_path.write_text(json.dumps(version1))
    assert cache.header().tail_samples == 0
    version2 = dict(version1, format_version=2, tail_samples=16)  # tail draws with shared offsets
    cache.header_path.write_text(json.dumps(version2))
    assert cache.header().format_version == 2 and cache.header().tail_samples == 16  # still read
    cache.header_path.write_text('{"format_version": 99}')
    with pytest.raises(RunFolderError, match="format 99"):
        cache.header()


def test_payload_bytes_per_token():
    # K = 64: 64 float32 log-probs + 64 uint16 ids + tail + target = 64 * 6 + 8
    assert payload_bytes_per_token(64, 49152) == 392
    assert payload_bytes_per_token(64, 128_256) == 64 * 8 + 8  # int32 ids
    assert payload_bytes_per_token(None, 49152) == 4 * 49152 + 8
    assert 2 * 49152 / payload_bytes_per_token(64, 49152) > 250
    # + 16 tail samples, an id and a log-prob each: (64 + 16) * 6 + 8, still > 200x below llama.cpp
    assert payload_bytes_per_token(64, 49152, 16) == 488
    assert 2 * 49152 / payload_bytes_per_token(64, 49152, 16) > 200


def _arrays(reverse: bool) -> TokenArrays:
    n = 5
    return TokenArrays(keys=["1", "1", "b"], turns=np.array([1, 2, 1], np.int32),
                       categories=["math", "math", "stem"], offsets=np.array([0, 2, 2, 5]),
                       token_ids=np.arange(n, dtype=np.int32), kl=np.linspace(0, 1, n, dtype=np.float32),
                       same_top1=np.array([1, 0, 1, 1, 0], bool), dp=np.full(n, -0.5, np.float32),
                       nll_base=np.ones(n, np.float32), nll_comp=np.full(n, 2.0, np.float32),
                       reverse_kl=np.full(n, 0.25, np.float32) if reverse else None,
                       meta={"top_k": 64})


@pytest.mark.parametrize("reverse", [False, True])
def test_token_arrays_round_trip(tmp_path, reverse):
    arrays = _arrays(reverse)
    arrays.save(tmp_path / "r.tokens.npz")
    back = TokenArrays.load(tmp_path / "r.tokens.npz")
    assert back.keys == arrays.keys and back.categories == arrays.categories
    assert back.meta["top_k"] == 64
    for name in ("turns", "offsets", "token_ids", "kl", "same_top1", "dp", "nll_base", "nll_comp"):
        np.testing.assert_array_equal(getattr(back, name), getattr(arrays, name))
    assert (back.reverse_kl is None) == (not reverse) and back.jsd is None
    assert back.segment("b", 1) == slice(2, 5) and back.segment("1", 2) == slice(2, 2)
    with pytest.raises(KeyError):
        back.segment("b", 2)
    sub = back.select([2, 0])
    assert sub.keys == ["b", "1"] and sub.offsets.tolist() == [0, 3, 5]
    np.testing.assert_array_equal(sub.token_ids, [2, 3, 4, 0, 1])
    assert back.mask([0, 2]).sum() == 5


def test_missing_token_file(tmp_path):
    with pytest.raises(RunFolderError, match="judge diverge"):
        TokenArrays.load(tmp_path / "nope.npz")
