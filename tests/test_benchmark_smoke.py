"""The fan-out benchmark still runs and its books balance: behaviour only, never timing.

``benchmarks/fanout.py`` is run by hand; this runs its fault and rerun scenarios at a tiny N with no
latency, so a change to the prompt stage or the stub that breaks the benchmark shows up in ``make test``.
"""

from __future__ import annotations

import sys

import pytest

from conftest import REPO


@pytest.fixture
def fanout(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("fanout", None)
    import fanout

    return fanout


def test_fault_scenario_accounts_for_every_record(fanout):
    records = fanout.make_records(40, prefix="Smoke Company")
    faults = {"rate_429": 0.10, "rate_500": 0.10, "rate_malformed": 0.05}
    row = fanout.run_fanout(records, latency_s=0.0, concurrency=8, faults=faults, seed=1)
    assert row["error"] is None
    assert row["published"] + row["quarantined"] == 40
    assert sum(row["quarantined_by_reason"].values()) == row["quarantined"]
    assert "(no reason)" not in row["quarantined_by_reason"]
    assert row["conserved"]
    assert row["calls"] == row["client_calls"] >= 40  # the stub saw every attempt the client counted


def test_rerun_with_the_same_cache_makes_no_calls(fanout, tmp_path):
    records = fanout.make_records(20, prefix="Cached Company")
    same = {"latency_s": 0.0, "concurrency": 8, "cache_dir": str(tmp_path / "cache"), "port": fanout.free_port()}
    first = fanout.run_fanout(records, **same)
    again = fanout.run_fanout(records, **same)
    assert first["calls"] == 20 and first["published"] == 20
    assert again["calls"] == 0 and again["cache_hits"] == 20 and again["published"] == 20
