"""Rerun correctness (issue 12, item 7): never pay the LLM twice, but never skip a partition wrongly.

Each case runs the in-process pipeline against the stub LLM, counts the stub's calls and checks
what the partition holds (manifest, publication index, rows) and conservation.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from pipeline_hub.cli import app
from pipeline_hub.stages import pubindex
from pipeline_hub.stages.runner import run_pipeline

from bad_input_support import assert_conservation, published_rows, quarantine_rows
from conftest import DS, llm_conn

TOPIC = "industry_classification"  # reads source "companies" (22 records in the sample)
DS2 = "2025-02-01"


def run(raw, out, ds=DS, **kw):
    return run_pipeline(raw_root=str(raw), output_root=str(out), ds=ds, topics=[TOPIC], **kw)


def manifest(out, ds=DS, zone="sanitized_data"):
    return json.loads((out / zone / TOPIC / f"ds={ds}" / "_manifest.json").read_text())


def index_entry(out, ds=DS):
    path = out / "_index" / TOPIC / f"ds={ds}.json"
    return json.loads(path.read_text()) if path.exists() else None


def copy_partition(raw, ds_from, ds_to):
    shutil.copytree(raw / "companies" / ds_from, raw / "companies" / ds_to)


def test_same_bytes_under_a_new_ds_are_published_there_from_the_cache(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    first = run(raw_zone, out)
    assert stub.calls > 0 and [p["topic"] for p in first.published] == [TOPIC]
    copy_partition(raw_zone, DS, DS2)
    stub.reset()
    second = run(raw_zone, out, DS2)
    assert stub.calls == 0 and not second.skipped and [p["topic"] for p in second.published] == [TOPIC]
    a, b = manifest(out), manifest(out, DS2)
    assert a["batch_hash"] == b["batch_hash"] and b["status"] == "published"
    assert b["usage"]["llm_calls"] == 0 and b["usage"]["cache_hits"] == b["counts"]["in"] == 22
    assert b["reuse"]["answers_first_paid_in"]["ds"] == DS
    assert b["reuse"]["answers_first_paid_in"]["run_id"] == a["run_id"]
    assert [p["ds"] for p in b["reuse"]["batch_published_in"]] == [DS]
    assert a["reuse"]["answers_first_paid_in"]["ds"] == DS and a["reuse"]["batch_published_in"] == []
    assert second.published[0]["answers_first_paid_in"] == DS
    assert all(i["public_uri"].split("/")[-2] == DS2 for i in b["inputs"])
    assert len(published_rows(out, TOPIC, DS2)) == len(published_rows(out, TOPIC, DS)) == 22
    assert index_entry(out, DS2)["identity"]["ds"] == DS2
    assert_conservation(out)
    # Both partitions now hold their identity: rerunning either is a no-op.
    stub.reset()
    assert run(raw_zone, out, DS).skipped == {TOPIC: "skipped_published"}
    assert run(raw_zone, out, DS2).skipped == {TOPIC: "skipped_published"} and stub.calls == 0


def test_partition_reverted_to_an_earlier_batch_is_republished(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    csv = raw_zone / "companies" / DS / "companies.csv"
    original = csv.read_bytes()
    run(raw_zone, out)
    first = manifest(out)
    csv.write_bytes(original + b'ZZZ,Zeta Rerun Holdings,"Austin, Texas"\n')
    stub.reset()
    run(raw_zone, out)
    later = manifest(out)
    assert later["batch_hash"] != first["batch_hash"] and stub.calls == 1  # only the new record is paid
    assert later["counts"]["in"] == 23

    csv.write_bytes(original)  # back to the earlier batch's bytes
    stub.reset()
    result = run(raw_zone, out)
    assert result.skipped == {} and [p["topic"] for p in result.published] == [TOPIC]
    assert stub.calls == 0
    back = manifest(out)
    assert back["batch_hash"] == first["batch_hash"] and back["run_id"] not in (first["run_id"], later["run_id"])
    assert back["counts"]["in"] == 22 and len(published_rows(out, TOPIC, DS)) == 22
    assert back["reuse"]["answers_first_paid_in"]["run_id"] == first["run_id"]
    assert index_entry(out)["identity"]["batch_hash"] == first["batch_hash"]
    assert_conservation(out)


def test_renamed_object_is_republished_with_inputs_naming_the_current_object(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    part = raw_zone / "companies" / DS
    run(raw_zone, out)
    before = manifest(out)
    (part / "companies.csv").rename(part / "companies_renamed.csv")
    stub.reset()
    result = run(raw_zone, out)
    assert [p["topic"] for p in result.published] == [TOPIC] and stub.calls == 0
    after = manifest(out)
    assert after["batch_hash"] == before["batch_hash"]  # same bytes
    names = [i["public_uri"].rsplit("/", 1)[-1] for i in after["inputs"]]
    assert names == ["companies_renamed.csv"]
    assert "companies.csv" not in json.dumps(after["inputs"]) and "companies.csv" not in json.dumps(index_entry(out))
    rows = published_rows(out, TOPIC, DS)
    assert len(rows) == 22 and {r["run_id"] for r in rows} == {after["run_id"]}
    assert_conservation(out)


def test_unchanged_rerun_is_still_a_noop_with_zero_llm_calls(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    run(raw_zone, out)
    before = manifest(out)
    entry = index_entry(out)
    assert entry["identity"]["ds"] == DS and entry["identity"]["inputs"]
    stub.reset()
    again = run(raw_zone, out)
    assert again.published == [] and again.skipped == {TOPIC: "skipped_published"} and stub.calls == 0
    assert manifest(out) == before and index_entry(out) == entry
    assert_conservation(out)


def test_partition_deleted_behind_the_index_is_published_again(stub, raw_zone, tmp_path):
    """The index alone never skips: the partition's manifest must be there too."""
    out = tmp_path / "out"
    run(raw_zone, out)
    shutil.rmtree(out / "sanitized_data" / TOPIC / f"ds={DS}")
    stub.reset()
    result = run(raw_zone, out)
    assert [p["topic"] for p in result.published] == [TOPIC] and stub.calls == 0
    assert len(published_rows(out, TOPIC, DS)) == 22
    assert_conservation(out)


def test_budget_exceeded_records_leave_no_index_entry_and_the_next_run_completes_them(
    stub, raw_zone, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, max_concurrency=1))
    monkeypatch.setattr("pipeline_hub.stages.budget.cost_usd", lambda model, p, c, **kw: 0.01)  # stub-model is free
    out = tmp_path / "out"
    partial = run(raw_zone, out, budget_usd=0.05)
    assert stub.calls == 5 and [p["topic"] for p in partial.published] == [TOPIC]
    m = manifest(out)
    assert m["counts"]["quarantined"] == {"budget_exceeded": 17} and m["counts"]["published"] == 5
    assert index_entry(out) is None  # published what it has, but not marked published
    batch = json.loads((out / "_index" / TOPIC / "batches" / m["batch_hash"] / f"ds={DS}.json").read_text())
    assert batch["complete"] is False and batch["llm_calls"] == 5
    assert_conservation(out)

    stub.reset()
    full = run(raw_zone, out)
    assert full.skipped == {} and stub.calls == 17  # only the records the budget left out
    m = manifest(out)
    assert m["counts"]["published"] == 22 and m["counts"]["quarantined_total"] == 0
    assert m["usage"]["cache_hits"] == 5 and m["usage"]["llm_calls"] == 17
    assert quarantine_rows(out, TOPIC, DS) == []  # the earlier run's budget_exceeded records are gone
    assert index_entry(out)["run_id"] == m["run_id"]
    assert_conservation(out)

    stub.reset()
    assert run(raw_zone, out).skipped == {TOPIC: "skipped_published"} and stub.calls == 0


def staged_run(raw, out, staging, run_id, edit_answers):
    """The pipeline's stages one by one (as run_pipeline calls them), ``edit_answers(rows)`` after prompt."""
    from pipeline_hub import stages, storage
    from pipeline_hub.config import Settings

    settings = Settings.from_env(raw_root=str(raw), sanitized_root=str(out), staging_root=str(staging))
    found = stages.run_discover(settings, DS, [TOPIC], None)
    planned = stages.run_hash(settings, found, run_id=run_id, row_limit=None, llm_conn_id="llm_default")
    for item in stages.run_chunk(planned["plan_uri"]):
        stages.run_prompt(item)
    answers = storage.join(str(staging), run_id, "answers", TOPIC, "chunk-00000.jsonl")
    storage.write_jsonl(answers, edit_answers(storage.read_jsonl(answers)))
    stages.run_scrub(planned["plan_uri"], TOPIC)
    stages.run_validate(planned["plan_uri"], TOPIC)
    return stages.run_publish(planned["plan_uri"], TOPIC)


def test_provider_error_records_leave_no_index_entry_and_the_next_run_retries_them(stub, raw_zone, tmp_path):
    """The prompt stage's per-record ``provider_error`` (as it stages it) keeps the partition unmarked."""
    from pipeline_hub import reasons

    def fail_first(rows):
        rows[0] = {
            **{k: rows[0][k] for k in ("record_id", "source_uri", "position")},
            "status": "quarantined",
            "reason": reasons.PROVIDER_ERROR,
            "detail": reasons.detail("connection {conn}: HTTP {status} after retries", conn="llm_default", status=500),
        }
        return rows

    out = tmp_path / "out"
    summary = staged_run(raw_zone, out, tmp_path / "staging", "run_1", fail_first)
    assert summary["quarantined"] == {"provider_error": 1} and summary["published"] == 21
    assert index_entry(out) is None
    assert_conservation(out)
    stub.reset()
    again = run(raw_zone, out)
    assert again.skipped == {} and [p["topic"] for p in again.published] == [TOPIC]
    # Here the stage above had the answer cached; the real prompt stage caches no failed record (1 call).
    assert stub.calls <= 1
    m = manifest(out)
    assert m["counts"]["published"] == 22 and m["counts"]["quarantined_total"] == 0
    assert index_entry(out)["run_id"] == m["run_id"]
    assert_conservation(out)


@pytest.mark.parametrize("reason", ["provider_error", "budget_exceeded"])
def test_retryable_reasons_keep_the_partition_unmarked(tmp_path, reason):
    identity = {"ds": DS, "batch_hash": "b" * 64, "inputs": [], "prompt_version": "v1", "model": "m"}
    common = {"manifest_uri": "file:///m", "run_id": "r1", "published_at": "2025-01-15T00:00:00+00:00"}
    reuse = {"llm_calls": 3, "cache_hits": 0, "answers_first_paid_in": None}
    root = str(tmp_path)
    assert not pubindex.record(root, TOPIC, identity, reuse=reuse, quarantined={reason: 1, "unparseable": 2}, **common)
    assert not pubindex.partition_entry(root, TOPIC, DS).exists()
    assert pubindex.record(root, TOPIC, identity, reuse=reuse, quarantined={"unparseable": 2}, **common)
    assert pubindex.partition_entry(root, TOPIC, DS).exists()


def legacy_layout(out, ds=DS):
    """Rewrite ``out`` as the old code left it: per-batch index entry, manifest without ``reuse``."""
    m = manifest(out, ds)
    m.pop("reuse")
    (out / "sanitized_data" / TOPIC / f"ds={ds}" / "_manifest.json").write_text(json.dumps(m))
    entry = index_entry(out, ds)
    old = {k: entry["identity"][k] for k in ("batch_hash", "template_sha256", "model", "row_limit")}
    shutil.rmtree(out / "_index")
    (out / "_index" / TOPIC).mkdir(parents=True)
    (out / "_index" / TOPIC / f"{m['batch_hash']}.json").write_text(json.dumps({"identity": old, "manifest": "x"}))
    return m


def test_old_index_layout_is_still_read(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    run(raw_zone, out)
    legacy_layout(out)
    stub.reset()
    assert run(raw_zone, out).skipped == {TOPIC: "skipped_published"} and stub.calls == 0
    # The old per-batch entry never vouches for another partition holding the same bytes.
    copy_partition(raw_zone, DS, DS2)
    result = run(raw_zone, out, DS2)
    assert [p["topic"] for p in result.published] == [TOPIC] and stub.calls == 0
    assert_conservation(out)


def test_report_on_a_ds_with_nothing_published_exits_non_zero(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    run(raw_zone, out)
    runner = CliRunner()
    empty = runner.invoke(app, ["report", "--ds", DS2, "--root", str(out)])
    assert empty.exit_code == 1
    lines = empty.output.strip().splitlines()
    assert len(lines) == 1 and f"ds={DS2}" in lines[0] and str(out) in lines[0] and "nothing published" in lines[0]
    ok = runner.invoke(app, ["report", "--ds", DS, "--root", str(out)])
    assert ok.exit_code == 0, ok.output
    assert TOPIC in ok.output and "? = " + DS in ok.output
    bad = runner.invoke(app, ["report", "--ds", "2025-01-15' OR '1'='1", "--root", str(out)])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    assert_conservation(out)
