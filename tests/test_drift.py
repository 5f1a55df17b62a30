"""Drift (pipeline_hub.analytics.drift): PSI, chi-square, confidence, invalid-output rate and input length of a
topic's published partition against its trailing baseline; ``pipeline-hub drift`` exit codes; the DAG's task.

Partitions are written with the publish stage's own schema and writer (``published_schema``, ``write_table``)
plus a ``_manifest.json`` carrying the counts the publish stage records.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline_hub import cli, storage
from pipeline_hub.analytics.drift import (
    chi_square_p,
    compute_drift,
    drift_fields,
    drift_over_threshold,
    psi,
    record_drift,
)
from pipeline_hub.analytics.drift_store import drift_path, read_drift
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.stages.parquet import partition, published_schema, write_table

IC = "industry_classification"
DS = "2025-03-10"
BASE = {"Energy": 50, "Financials": 30, "Utilities": 20}


def day(offset: int) -> str:
    return (date.fromisoformat(DS) + timedelta(days=offset)).isoformat()


def publish(root, ds, sectors: dict[str, int], *, confidence=0.9, invalid=0, name="Acme Corp", status="published"):
    """A published (or gate-failed) industry_classification partition: ``sectors`` = rows per label."""
    topic = load_topic(IC)
    rows = [
        {
            "record_id": f"{ds}-{label}-{i}",
            "batch_hash": "b" * 64,
            "prompt_name": IC,
            "prompt_version": "v1",
            "template_sha256": "t" * 64,
            "model": "stub-model",
            "route": "oracle",
            "run_id": f"run-{ds}",
            "name": name,
            "headquarters": "Austin, Texas",
            "sector": label,
            "confidence": confidence,
        }
        for label, n in sectors.items()
        for i in range(n)
    ]
    zone = "sanitized_data" if status == "published" else "quarantine"
    target = partition(str(root), zone, IC, ds)
    if status == "published":
        write_table(
            target / "part-00000.parquet", rows, published_schema(topic.prompt.output_schema, topic.keep_fields), {}
        )
    counts = {"published": len(rows), "quarantined": {"invalid_output": invalid} if invalid else {}}
    manifest = {"topic": IC, "ds": ds, "status": status, "run_id": f"run-{ds}", "prompt": {"version": "v1"}}
    storage.write_json(target / "_manifest.json", {**manifest, "counts": counts})


def run_cli(*args: str):
    return CliRunner().invoke(cli.app, ["drift", *args])


def test_psi_matches_a_hand_computed_example():
    # shares e = (.5, .3, .2), a = (.3, .3, .4):
    # (.3-.5)·ln(.3/.5) + 0 + (.4-.2)·ln(.4/.2) = .2·0.5108256 + .2·0.6931472 = 0.2407946
    assert psi([50, 30, 20], [30, 30, 40]) == pytest.approx(0.2407946, abs=1e-7)
    assert psi([0.5, 0.3, 0.2], [0.3, 0.3, 0.4]) == pytest.approx(0.2407946, abs=1e-7)  # shares work as well
    assert psi([5, 5], [5, 5]) == 0.0
    # An empty bin is floored at 0.0001: e = (1, .0001), a = (.5, .5).
    assert psi([10, 0], [5, 5]) == pytest.approx(-0.5 * math.log(0.5) + 0.4999 * math.log(0.5 / 1e-4))
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])
    assert chi_square_p([50, 30, 20], [50, 30, 20]) == pytest.approx(1.0)
    assert chi_square_p([10, 0], [0, 0]) is None  # one label, one empty side: no test


def test_same_distribution_is_ok_and_exits_0(tmp_path):
    for offset in (-3, -2, -1):
        publish(tmp_path, day(offset), BASE)
    publish(tmp_path, DS, {k: 2 * v for k, v in BASE.items()})  # twice the rows, same shares

    result = compute_drift(str(tmp_path), IC, DS)
    assert result["status"] == "ok" and not drift_over_threshold(result)
    assert result["baseline_ds"] == [day(-3), day(-2), day(-1)] and result["baseline_rows"] == 300
    assert result["rows"] == 200 and result["label_field"] == "sector"
    assert result["label_psi"] == pytest.approx(0.0, abs=1e-9) and result["label_chi2_p"] == pytest.approx(1.0)
    assert result["confidence_shift"] == pytest.approx(0.0) and result["input_length_psi"] == pytest.approx(0.0)
    assert result["invalid_output_rate"] == 0.0 and result["psi_threshold"] == 0.2
    energy = next(x for x in result["labels"] if x["label"] == "Energy")
    assert energy == {"label": "Energy", "current": 100, "baseline": 150}
    assert len(result["labels"]) == 11  # every GICS sector of the schema's enum, zeros included

    out = run_cli("--topic", IC, "--ds", DS, "--output", str(tmp_path))
    assert out.exit_code == 0, out.output
    assert f"drift {IC} ds={DS}: ok" in out.output and "Energy" in out.output
    stored = read_drift(str(tmp_path), IC, DS)
    assert stored["status"] == "ok" and stored["ds"] == DS and stored["baseline_rows"] == 300
    # The DuckDB view `drift` of include/sql/views.sql reads the stored rows (ds from the Hive path).
    from pipeline_hub.analytics.query import run_query

    cols, rows = run_query(str(tmp_path), "SELECT topic, CAST(ds AS VARCHAR), status, label_psi FROM drift")
    assert rows == [(IC, DS, "ok", pytest.approx(0.0, abs=1e-9))]


def test_shifted_distribution_is_over_the_threshold_and_exits_1(tmp_path):
    for offset in (-2, -1):
        publish(tmp_path, day(offset), BASE, confidence=0.9)
    publish(tmp_path, DS, {"Energy": 30, "Financials": 30, "Utilities": 40}, confidence=0.6, invalid=10)

    result = compute_drift(str(tmp_path), IC, DS)
    # Baseline 100/60/40 has the shares of the hand-computed example, and so has the current 30/30/40.
    assert result["label_psi"] == pytest.approx(0.2407946, abs=1e-6)
    assert result["status"] == "drift" and "label" in result["drifted"] and drift_over_threshold(result)
    assert result["label_chi2_p"] < 0.01
    assert result["confidence_mean"] == pytest.approx(0.6) and result["confidence_shift"] == pytest.approx(-0.3)
    assert "confidence" in result["drifted"]  # every value moved out of the baseline's bins
    assert result["invalid_output_rate"] == pytest.approx(10 / 110)
    assert result["baseline_invalid_output_rate"] == 0.0
    assert result["invalid_output_rate_shift"] == pytest.approx(10 / 110)

    out = run_cli("--topic", IC, "--ds", DS, "--output", str(tmp_path))
    assert out.exit_code == 1, out.output
    assert "drift (label, confidence)" in out.output and "0.2408" in out.output
    # A higher threshold (option or setting) puts it back under.
    assert run_cli("--topic", IC, "--ds", DS, "--output", str(tmp_path), "--threshold", "100").exit_code == 0


def test_longer_inputs_alone_drift_the_input_length(tmp_path, monkeypatch):
    publish(tmp_path, day(-1), BASE, name="Acme")
    publish(tmp_path, DS, BASE, name="Acme Consolidated Holdings of the Greater Metropolitan Area")
    result = compute_drift(str(tmp_path), IC, DS)
    assert result["drifted"] == ["input_length"] and result["label_psi"] == pytest.approx(0.0, abs=1e-9)
    assert result["input_length_fields"] == ["name", "headquarters"]
    assert result["input_length_shift"] > 1 and result["input_length_ks_p"] < 0.01
    monkeypatch.setenv("PIPELINE_HUB_DRIFT_PSI_THRESHOLD", "1000")
    assert compute_drift(str(tmp_path), IC, DS)["status"] == "ok"


def test_no_baseline_is_a_status_not_an_error(tmp_path):
    publish(tmp_path, day(-8), BASE)  # outside the default 7-day window
    publish(tmp_path, DS, {"Energy": 100})
    result = compute_drift(str(tmp_path), IC, DS)
    assert result["status"] == "no_baseline" and result["baseline_ds"] == [] and result["label_psi"] is None
    assert any(n.startswith("no_baseline: no published partition") for n in result["notes"])
    out = run_cli("--topic", IC, "--ds", DS, "--output", str(tmp_path))
    assert out.exit_code == 0 and "no_baseline" in out.output
    # A wider window finds it (option, or PIPELINE_HUB_DRIFT_BASELINE_DAYS).
    wider = compute_drift(str(tmp_path), IC, DS, baseline_days=8)
    assert wider["baseline_ds"] == [day(-8)] and wider["status"] == "drift"
    # A partition that failed its quality gate is no baseline either.
    publish(tmp_path, day(-1), BASE, status="quarantined_quality")
    assert compute_drift(str(tmp_path), IC, DS)["status"] == "no_baseline"


def test_nothing_published_bad_ds_and_unknown_topic_are_one_line_errors(tmp_path, capsys):
    publish(tmp_path, day(-1), BASE, status="quarantined_quality")

    def main(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["drift", *args, "--output", str(tmp_path)])
        return exit_info.value.code, capsys.readouterr().err.strip()

    code, err = main("--topic", IC, "--ds", DS)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: nothing published for topic {IC} ds={DS} under file://")
    assert "run the pipeline for ds=" in err
    code, err = main("--topic", IC, "--ds", day(-1))
    assert code == 2 and "failed its quality gate" in err and len(err.splitlines()) == 1
    code, err = main("--topic", IC, "--ds", "2025-02-30")
    assert code == 2 and err == "error: --ds must be a date YYYY-MM-DD, got '2025-02-30'"
    code, err = main("--topic", "no_such_topic", "--ds", DS)
    assert code == 2 and "no such topic 'no_such_topic'" in err and len(err.splitlines()) == 1
    assert not drift_path(str(tmp_path), IC, DS).exists()


def test_topics_without_a_label_confidence_or_inputs_skip_that_part_with_a_reason():
    ic = drift_fields(load_topic(IC))
    assert (ic.label, ic.confidence, ic.lengths, ic.notes) == ("sector", "confidence", ("name", "headquarters"), ())
    uc = drift_fields(load_topic("use_case_extraction"))
    assert uc.label is None and uc.confidence is None and uc.lengths == ("agency", "summary")
    assert any(n.startswith("label: skipped: use_case_extraction has no categorical field") for n in uc.notes)
    ce = drift_fields(load_topic("contact_extraction"))
    assert ce.lengths == () and any(n.startswith("input length: skipped") for n in ce.notes)
    cm = drift_fields(load_topic("company_matching"))
    assert cm.label is None and cm.confidence == "confidence"


def test_the_dag_task_records_drift_and_never_raises(tmp_path, monkeypatch):
    from pipeline_hub.stages import plan as plan_module

    publish(tmp_path, day(-1), BASE)
    publish(tmp_path, DS, BASE)
    fake = SimpleNamespace(ds=DS, settings={"sanitized_root": str(tmp_path)})
    monkeypatch.setattr(plan_module.RunPlan, "load", classmethod(lambda cls, uri: fake))
    summaries = record_drift("plan.json", [IC, "use_case_extraction"])
    assert [s["status"] for s in summaries] == ["ok", "not_computed"]
    assert summaries[0]["uri"].endswith(f"metrics/drift/ds={DS}/{IC}.parquet")
    assert "nothing published for topic use_case_extraction" in summaries[1]["reason"]
    table = pq.read_table(drift_path(str(tmp_path), IC, DS).path)
    assert table.schema.metadata[b"pipeline_hub.ds"] == DS.encode() and table.num_rows == 1


def test_a_partition_without_rows_still_reports_its_invalid_output_rate(tmp_path):
    publish(tmp_path, day(-1), BASE)
    publish(tmp_path, DS, {}, invalid=5)  # every answer invalid: published, but no row
    result = compute_drift(str(tmp_path), IC, DS)
    assert result["status"] == "ok" and result["rows"] == 0 and result["label_psi"] is None
    assert result["invalid_output_rate"] == 1.0 and result["invalid_output_rate_shift"] == 1.0
    assert f"label, confidence, input length: skipped: no published rows in ds={DS}" in result["notes"]
