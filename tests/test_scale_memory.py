"""Peak memory of the streamed stages does not grow with the batch (issue 16, item 1): no timing.

``benchmarks/scale.py`` (run by hand) measures every stage up to 1M records; this runs its code at
20 000 and 200 000 records, each stage in a fresh subprocess (``ru_maxrss`` is then the stage's own
peak), and asserts that ten times the records cost at most 1.5 times the peak RSS per stage:
discover, hash, chunk, then scrub, validate (in GX batches of 10 000 records at both sizes) and publish.
The prompt stage's answers are written by the benchmark's ``answers`` stage (the stub's answers, no
calls), and the records repeat their texts (``repeat``): the analyzer analyzes each distinct text once,
so the stages' own memory is measured, not spaCy's time. It also checks the books at both sizes.
"""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

SMALL, LARGE = 20_000, 200_000
GROWTH = 1.5


@pytest.fixture
def scale(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("scale", None)
    import scale

    return scale


def test_peak_rss_per_stage_does_not_grow_with_the_batch(scale, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_HUB_VALIDATE_BATCH_RECORDS", "10000")
    stages = ("discover", "hash", "chunk", "answers", "scrub", "validate", "publish")
    small = scale.measure(SMALL, tmp_path / "small", stages, repeat=100)
    large = scale.measure(LARGE, tmp_path / "large", stages, repeat=100)
    for result, n in ((small, SMALL), (large, LARGE)):
        assert result["conserved"], (result["chunk_counts"], result["published"])
        staged = sum(c["staged"] for c in result["chunk_counts"].values())
        assert staged == n  # every good record staged once, the bad lines rejected or dropped
        assert sum(p["published"] for p in result["published"].values()) == n
    for stage in ("discover", "hash", "chunk", "scrub", "validate", "publish"):
        ratio = large["stages"][stage]["rss_mib"] / small["stages"][stage]["rss_mib"]
        assert ratio <= GROWTH, (stage, small["stages"][stage], large["stages"][stage])
