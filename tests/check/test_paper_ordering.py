"""The paper's ordering on the embedded models (bench/checked_flips.py): on judge-80 with 256-token
answers, KL orders int8 < int4 < drop4, and drop4 loses at least as many correct answers
(correct->incorrect) as int8 and int4. Only what a tiny model's noise cannot overturn is asserted:
the 135M baseline answers about 3% of the checkable turns correctly, so flip counts are 0-2 and
"strictly more flips" is not something the data can bear (measured: int8 1, int4 2, drop4 2); the
rest is printed. The run is too slow for CI: the test reads a finished run folder named by
``JUDGE_PAPER_RUN`` (made by ``python bench/checked_flips.py --make``) and skips otherwise."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench" / "checked_flips.py"


def test_paper_ordering() -> None:
    run = os.environ.get("JUDGE_PAPER_RUN")
    if not run or not Path(run).is_dir():
        pytest.skip("set JUDGE_PAPER_RUN to a run folder made by `python bench/checked_flips.py "
                    "--make` (4 models x 160 answers of 256 tokens: too slow for CI)")
    spec = importlib.util.spec_from_file_location("bench_checked_flips", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    figs = bench.figures(Path(run))
    for f in figs.values():
        print(f"{f.role}: {f.correct_to_incorrect} c->i, {f.incorrect_to_correct} i->c of {f.n} "
              f"({f.flip_percent:.1f}%, McNemar p {f.mcnemar_p:.3f}), accuracy "
              f"{f.baseline_accuracy:.3f} -> {f.compressed_accuracy:.3f}, mean KL {f.kl_mean}")
    int8, int4, drop4 = (figs[f"compressed-{v}"] for v in ("int8", "int4", "drop4"))
    assert all(f.n > 0 and f.kl_mean is not None for f in (int8, int4, drop4))
    assert int8.kl_mean < int4.kl_mean < drop4.kl_mean
    assert drop4.correct_to_incorrect >= max(int8.correct_to_incorrect, int4.correct_to_incorrect)
    assert drop4.compressed_accuracy <= min(int8.compressed_accuracy, int4.compressed_accuracy)
