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


def test_cascade_benchmark_calibrates_and_scores_both_plans_against_the_stub(stub_server, monkeypatch, tmp_path):
    """``benchmarks/cascade_patstat.py`` on a PATSTAT-shaped gold set made from the bundled examples plus every
    reference name (the real set is in ../shared, not in the checkout): calibration writes thresholds, and
    one score has oracle-only and the cascade on the same test records."""
    import csv
    import json
    import os

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("cascade_patstat", None)
    import cascade_patstat

    lines = (REPO / "include/prompts/company_matching/examples/examples.jsonl").read_text().splitlines()
    gold = [(ex["id"], ex["input"]["name"], ex["expected"]["match_id"] or "0") for ex in map(json.loads, lines)]
    with (REPO / "include/reference/companies_reference.csv").open() as fh:
        for k, row in enumerate(csv.DictReader(fh)):
            gold += [(f"9{k}{n}", name, row["ref_id"]) for n, name in enumerate((row["name"], row["name"].upper()))]
    shared = tmp_path / "patstat"
    shared.mkdir()
    with (shared / "patstat_input.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([("person_id", "Name"), *((pid, name) for pid, name, _ in gold)])
    with (shared / "patstat_reference.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([("person_id", "leuven_id"), *((pid, cluster) for pid, _, cluster in gold)])
    env = dict(os.environ)
    result = cascade_patstat.run(shared, 200, 30, stub_server.base_url, "stub-model", 8)
    assert dict(os.environ) == env, "the benchmark restores the environment"
    assert result["records"] == {"gold": len(gold), "calibration": 200, "test": 30}
    assert result["calibration"]["sample_size"] == 200 and result["calibration"]["reason"] is None
    only, cascade = result["oracle_only"], result["cascade"]
    assert only["oracle_records"] == only["records"] == cascade["records"] == 30
    assert cascade["oracle_records"] + cascade["proxy_records"] == 30 and cascade["proxy_records"] > 0
    assert set(result["checks"]) == {"oracle_share_at_most_0.30", "f1_within_0.02_of_oracle_only"}
    assert "| cascade |" in cascade_patstat.report(result)


def test_aiohttp_floor_client_gets_an_answer_for_every_record(fanout):
    """The minimal aiohttp client of the throughput comparison sends each record's body once and reads its answer."""
    records = fanout.make_records(30, prefix="Floor Company")
    row = fanout.run_aiohttp(records, latency_s=0.0, concurrency=8)
    assert row["error"] is None and row["conserved"]
    assert row["calls"] == row["published"] == 30
    assert row["http_status"] == {"200": 30}
