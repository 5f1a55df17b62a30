"""The in-process pipeline (`pipeline-hub run`) on the bundled real sample against the local stub LLM."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline_hub.analytics.query import run_query
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO

TOPICS = ["company_matching", "contact_extraction", "industry_classification", "use_case_extraction"]


def manifest(out, topic, zone="sanitized_data"):
    return json.loads((out / zone / topic / f"ds={DS}" / "_manifest.json").read_text())


def test_run_publishes_every_topic_with_lineage_and_conservation(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS)
    assert not result.failed and sorted(p["topic"] for p in result.published) == TOPICS
    for topic in TOPICS:
        m = manifest(out, topic)
        c = m["counts"]
        assert c["in"] == c["published"] + c["quarantined_total"] > 0
        assert m["prompt"]["version"] == "v1" and len(m["prompt"]["template_sha256"]) == 64
        assert m["batch_hash"] and all(len(i["sha256"]) == 64 for i in m["inputs"])
        assert m["model"] == "stub-model" and m["quality"]["success"]
        table = pq.read_table(out / "sanitized_data" / topic / f"ds={DS}" / "part-00000.parquet")
        for col in ("record_id", "batch_hash", "prompt_version", "template_sha256", "model", "run_id"):
            assert col in table.column_names
        assert table.num_rows == c["published"]
        assert table.column("record_id").null_count == 0
        assert b"pipeline_hub.batch_hash" in table.schema.metadata
    cols, rows = run_query(str(out), "SELECT count(*) FROM industry_classification")
    assert rows[0][0] == manifest(out, "industry_classification")["counts"]["published"]


def test_rerun_of_unchanged_batch_is_a_noop_with_zero_llm_calls(stub, raw_zone, tmp_path):
    out = tmp_path / "out"
    run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=["industry_classification"])
    first = manifest(out, "industry_classification")
    stub.reset()
    again = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=["industry_classification"])
    assert again.published == [] and again.skipped == {"industry_classification": "skipped_published"}
    assert stub.calls == 0
    assert manifest(out, "industry_classification")["run_id"] == first["run_id"]


def test_malformed_records_are_quarantined_and_counts_add_up(stub, raw_zone, tmp_path):
    part = raw_zone / "ai_use_cases" / DS
    good = (part / "use_cases.jsonl").read_text().splitlines()
    extra = [
        good[0],
        "{not json",
        '"a string"',
        json.dumps({"id": "X-1", "agency": "A"}),
    ]  # dup, 2 bad, no summary
    (part / "more.jsonl").write_text("\n".join(extra) + "\n")
    out = tmp_path / "out"
    run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=["use_case_extraction"])
    c = manifest(out, "use_case_extraction")["counts"]
    assert c["rows_read"] == len(good) + 4 and c["duplicates_dropped"] == 1
    assert c["quarantined"] == {"unparseable": 2, "missing_field": 1}
    assert c["in"] == c["published"] + c["quarantined_total"] == len(good) + 3
    q = pq.read_table(out / "quarantine" / "use_case_extraction" / f"ds={DS}" / "part-00000.parquet").to_pylist()
    missing = next(r for r in q if r["reason"] == "missing_field")
    assert "more.jsonl" in missing["detail"] and "'summary'" in missing["detail"] and missing["position"] == 4


def test_invalid_answers_get_one_repair_then_quarantine(stub, raw_zone, tmp_path):
    stub.responder = lambda body: '{"sector": "Not a sector"'  # never valid JSON
    out = tmp_path / "out"
    result = run_pipeline(
        raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=["industry_classification"], row_limit=3
    )
    # No valid answer: the answer-validity expectation fails, so the topic's gate fails too.
    assert "expect_column_values_to_be_in_set(_answer)" in result.failed["industry_classification"]
    m = manifest(out, "industry_classification", zone="quarantine")
    assert m["counts"]["quarantined"] == {"invalid_output": 3} and m["counts"]["published"] == 0
    assert stub.calls == 6  # one answer + one repair per record


@pytest.mark.parametrize("dialect", ["json_schema", "json_object_schema"])
def test_structured_output_dialect_is_sent_as_configured(stub, raw_zone, tmp_path, monkeypatch, dialect):
    from conftest import llm_conn

    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, dialect))
    run_pipeline(
        raw_root=str(raw_zone),
        output_root=str(tmp_path / "o"),
        ds=DS,
        topics=["industry_classification"],
        row_limit=1,
    )
    fmt = stub.requests[0]["response_format"]
    if dialect == "json_schema":
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == [
            "sector",
            "confidence",
        ]
    else:
        assert fmt["type"] == "json_object" and fmt["schema"]["required"] == ["sector", "confidence"]


def test_topic_failing_quality_gate_is_quarantined_while_others_publish(stub, raw_zone, tmp_path):
    """Every industry_classification answer is broken: its answer-validity expectation fails the gate."""
    from support.stub_llm import schema_of

    stub.responder = lambda body: '{"sector": "Energy"' if "sector" in schema_of(body)["properties"] else None
    out = tmp_path / "out"
    result = run_pipeline(
        raw_root=str(raw_zone),
        output_root=str(out),
        ds=DS,
        topics=["industry_classification", "use_case_extraction"],
    )
    assert list(result.failed) == ["industry_classification"]
    assert "expect_column_values_to_be_in_set(_answer)" in result.failed["industry_classification"]
    assert [p["topic"] for p in result.published] == ["use_case_extraction"]
    assert not (out / "sanitized_data" / "industry_classification").exists()
    m = manifest(out, "industry_classification", zone="quarantine")
    assert m["status"] == "quarantined_quality" and m["counts"]["published"] == 0
    assert m["counts"]["in"] == m["counts"]["quarantined"]["invalid_output"] == 22
    q = pq.read_table(out / "quarantine" / "industry_classification" / f"ds={DS}" / "part-00000.parquet")
    assert set(q.column("reason").to_pylist()) == {"invalid_output"}
    # The failed topic is not in the publication index: the next run retries it.
    assert not (out / "_index" / "industry_classification").exists()


def test_pii_in_a_kept_field_holds_back_its_record_not_its_topic(stub, raw_zone, tmp_path):
    part = raw_zone / "companies" / DS
    with (part / "companies.csv").open("a") as fh:
        fh.write('LEAK,Leaky Corp,"write to ceo@leaky-example.com"\n')  # a keep_as_is field holding PII
    out = tmp_path / "out"
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=["industry_classification"])
    assert not result.failed
    c = manifest(out, "industry_classification")["counts"]
    assert c["quarantined"] == {"residual_pii": 1} and c["published"] == c["in"] - 1 == 22
    q = pq.read_table(out / "quarantine" / "industry_classification" / f"ds={DS}" / "part-00000.parquet")
    assert q.column("detail").to_pylist() == ["field 'headquarters' holds EMAIL_ADDRESS after scrubbing"]
    assert b"leaky-example.com" not in b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_new_prompt_version_reruns_only_its_topic(stub, raw_zone, tmp_path, monkeypatch):
    """Promoting a new template version re-runs that topic only; the others stay published, uncalled."""
    include = tmp_path / "include"
    shutil.copytree(REPO / "include", include)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    out = tmp_path / "out"
    run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS)
    before = {topic: manifest(out, topic) for topic in TOPICS}

    folder = include / "prompts" / "industry_classification"
    v1 = (folder / "prompts" / "industry_classification_v1.j2").read_text()
    marker = "Prefer the sector of the company's largest revenue source."
    (folder / "prompts" / "industry_classification_v2.j2").write_text(
        v1.replace('Give "confidence"', f'{marker}\nGive "confidence"')
    )
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta["versions"]["v2"] = {
        **meta["versions"]["v1"],
        "template": "prompts/industry_classification_v2.j2",
        "changelog": "Largest revenue source decides.",
    }
    meta["prod"] = "v2"
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))

    stub.reset()
    again = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS)
    assert [p["topic"] for p in again.published] == ["industry_classification"]
    assert again.skipped == {t: "skipped_published" for t in TOPICS if t != "industry_classification"}
    after = manifest(out, "industry_classification")
    assert after["prompt"]["version"] == "v2"
    assert after["prompt"]["template_sha256"] != before["industry_classification"]["prompt"]["template_sha256"]
    assert stub.calls == after["counts"]["in"] > 0  # every record asked again, nothing else
    assert all(marker in body["messages"][0]["content"] for body in stub.requests)
    for topic in TOPICS[:2] + TOPICS[3:]:
        assert manifest(out, topic)["run_id"] == before[topic]["run_id"]
