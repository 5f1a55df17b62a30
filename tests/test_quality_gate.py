"""Quality gates with real Great Expectations: the suites under include/quality/, each check, Data Docs,
write-audit-publish through stages.run_* (a failing topic is quarantined, the others publish), lineage."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from pipeline_hub.orchestration.lineage import asset_extra, dataset_id, dataset_key, publish_lineage
from pipeline_hub.prompts.registry import list_topics, load_topic
from pipeline_hub.quality import checks, gate, suites

from conftest import DS, REPO

TOPICS = list_topics()


def good_rows(n: int = 6) -> list[dict]:
    return [
        {
            "record_id": f"C-{i}",
            "model": "stub-model",
            "name": f"Company {i}",
            "headquarters": "Springfield",
            "sector": "Energy",
            "confidence": 0.9,
        }
        for i in range(n)
    ]


def failed_checks(result: dict) -> set[str]:
    return {e["check"] for e in result["expectations"] if not e["success"]}


@pytest.mark.parametrize("topic", TOPICS)
def test_suite_files_are_in_sync_with_metadata(topic):
    """include/quality/<topic>.json holds exactly the generated expectations (run `pipeline-hub quality export`)."""
    t = load_topic(topic)
    doc = suites.read_suite_file(suites.suite_path(topic))
    assert doc is not None, f"missing include/quality/{topic}.json"
    generated = [e for e in doc["expectations"] if e.get("meta", {}).get("generated")]
    assert generated == suites.suite_document(t)["expectations"]
    assert doc["name"] == f"{topic}.{t.version}" and doc["meta"]["prompt_version"] == t.version
    assert suites.stale_suites([topic]) == []
    suite, source = suites.load_suite(t)
    assert source.endswith(f"include/quality/{topic}.json")
    checks = {e.meta["check"] for e in suite.expectations}
    assert {"schema", "types", "record_id", "answer_validity", "residual_pii", "conservation"} <= checks


def test_industry_suite_checks_labels_and_confidence():
    checks = {e.meta["check"] for e in suites.load_suite(load_topic("industry_classification"))[0].expectations}
    assert {"labels", "confidence"} <= checks


def test_export_keeps_hand_written_expectations(tmp_path, monkeypatch):
    include = tmp_path / "include"
    shutil.copytree(REPO / "include" / "prompts", include / "prompts")
    shutil.copytree(REPO / "include" / "quality", include / "quality")
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    path = include / "quality" / "industry_classification.json"
    doc = json.loads(path.read_text())
    manual = {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "confidence", "min_value": 0.95},
        "severity": "warning",
        "meta": {"check": "confidence_drift"},
    }
    doc["expectations"] = doc["expectations"][:3] + [manual]  # generated part stale, one manual expectation
    path.write_text(json.dumps(doc))
    topic = load_topic("industry_classification")
    assert suites.export_suite(topic) == path
    again = json.loads(path.read_text())
    assert again["expectations"][-1] == manual
    assert again["expectations"][:-1] == suites.suite_document(topic)["expectations"]
    # A failing warning-level expectation is reported but does not block the gate.
    result = gate.validate_topic(topic, good_rows(), [], records_in=6)
    drift = next(e for e in result["expectations"] if e["check"] == "confidence_drift")
    assert drift["severity"] == "warning" and not drift["success"]
    assert result["success"] and checks.failed_expectations(result) == []


def test_suite_without_file_is_generated(tmp_path, monkeypatch):
    include = tmp_path / "include"
    shutil.copytree(REPO / "include" / "prompts", include / "prompts")
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    suite, source = suites.load_suite(load_topic("industry_classification"))
    assert source == "generated" and len(suite.expectations) > 5


def mutate(case: str, rows: list[dict], quarantine: list[dict]) -> int:
    """Break ``rows``/``quarantine`` the way ``case`` says; returns records_in."""
    records_in = len(rows) + len(quarantine)
    if case == "labels":
        rows[0]["sector"] = "Space Tourism"
    elif case == "confidence":
        rows[1]["confidence"] = 1.5
    elif case == "types":
        rows[2]["confidence"] = "0.9"
    elif case == "record_id":
        rows[3]["record_id"] = rows[0]["record_id"]
    elif case == "residual_pii":
        rows[4]["headquarters"] = "call +1 415 555 0100"
    elif case == "answer_validity":  # 6 valid, 3 invalid answers: 67 % < 80 %
        quarantine += [{"record_id": f"Q-{i}", "reason": "invalid_output"} for i in range(3)]
        records_in += 3
    elif case == "conservation":
        records_in += 1  # one record read but neither answered nor quarantined
    elif case == "schema":
        rows[0]["unexpected_field"] = "x"
    return records_in


@pytest.mark.parametrize(
    "case", ["labels", "confidence", "types", "record_id", "residual_pii", "answer_validity", "conservation", "schema"]
)
def test_each_check_fails_the_gate_on_bad_records(case):
    topic = load_topic("industry_classification")
    rows, quarantine = good_rows(), [{"record_id": "R-1", "reason": "malformed_record"}]
    records_in = mutate(case, rows, quarantine)
    result = gate.validate_topic(topic, rows, quarantine, records_in=records_in)
    assert not result["success"]
    assert case in failed_checks(result), result["expectations"]
    assert checks.failed_expectations(result)


def test_good_records_pass_and_non_llm_quarantine_does_not_count_against_validity():
    topic = load_topic("industry_classification")
    quarantine = [{"record_id": f"B-{i}", "reason": "budget_exceeded"} for i in range(20)]
    quarantine.append({"record_id": "Q-1", "reason": "invalid_output"})  # 6 of 7 answers valid: 86 %
    result = gate.validate_topic(topic, good_rows(), quarantine, records_in=27)
    assert result["success"], [e for e in result["expectations"] if not e["success"]]
    assert result["answer_valid_rate"] == round(6 / 7, 4) and result["residual_pii"] == {"email": 0, "phone": 0}
    assert result["evaluated"] == 27


def verdicts(result: dict) -> list[tuple]:
    return [(e["type"], e["column"], e["success"], e["unexpected_count"]) for e in result["expectations"]]


@pytest.mark.parametrize("case", ["good", "labels", "record_id", "conservation", "answer_validity"])
def test_batched_validation_gives_the_verdicts_of_one_batch(case):
    """A topic validated in batches of 4 records gets the same verdicts and counts as in one batch
    (row count summed against records_in, record_id unique across batches, `mostly` over the topic)."""
    topic = load_topic("industry_classification")
    rows, quarantine = good_rows(10), [{"record_id": "R-1", "reason": "malformed_record"}]
    records_in = 11
    if case == "labels":
        rows[7]["sector"] = "Banking"
    elif case == "record_id":
        rows[9]["record_id"] = rows[0]["record_id"]  # the duplicate lands in another batch than the first
    elif case == "conservation":
        records_in = 12
    elif case == "answer_validity":  # 10 valid, 3 invalid answers: 77 % < 80 %, each batch of 4 on its own passes
        quarantine += [{"record_id": f"Q-{i}", "reason": "invalid_output"} for i in range(3)]
        records_in = 14
    whole = gate.validate_topic(topic, rows, quarantine, records_in=records_in)
    batched = gate.validate_topic(topic, iter(rows), iter(quarantine), records_in=records_in, batch_records=4)
    assert batched["success"] is whole["success"] is (case == "good")
    assert verdicts(batched) == verdicts(whole)
    assert batched["evaluated"] == whole["evaluated"] == len(rows) + len(quarantine)
    assert batched["answer_valid_rate"] == whole["answer_valid_rate"]
    row_count = next(e for e in batched["expectations"] if e["type"] == "expect_table_row_count_to_equal")
    assert row_count["observed_value"] == len(rows) + len(quarantine)


def test_batched_validation_builds_one_data_docs_page_per_batch(tmp_path):
    from airflow.sdk import ObjectStoragePath

    topic = load_topic("industry_classification")
    target = ObjectStoragePath(f"file://{tmp_path}/docs")
    rows = good_rows(9)
    rows[6]["headquarters"] = "mail zz.unique@leak-example.org"  # in the last batch
    result = gate.validate_topic(topic, rows, [], records_in=9, batch_records=4, docs_target=target)
    assert not result["success"] and result["evaluated"] == 9 and result["residual_pii"]["email"] == 1
    assert "residual_pii" in failed_checks(result)
    pages = {p.parent.parent.name for p in (tmp_path / "docs" / "validations").rglob("*.html")}
    assert pages == {"run-batch0000", "run-batch0001", "run-batch0002"}, pages
    text = "\n".join(p.read_text() for p in (tmp_path / "docs").rglob("*.html"))
    for value in ("zz.unique@leak-example.org", "Company 1", "Springfield"):
        assert value not in text  # no batch's page holds record values
    with pytest.raises(ValueError, match="validate_batch_records"):
        gate.validate_topic(topic, good_rows(), [], records_in=6, batch_records=0)


def test_data_docs_are_built_without_record_values(tmp_path):
    from airflow.sdk import ObjectStoragePath

    topic = load_topic("industry_classification")
    rows = good_rows()
    rows[0]["headquarters"] = "mail zz.unique@leak-example.org"
    target = ObjectStoragePath(f"file://{tmp_path}/reports/industry_classification/ds={DS}")
    (tmp_path / "reports" / "industry_classification" / f"ds={DS}").mkdir(parents=True)
    (tmp_path / "reports" / "industry_classification" / f"ds={DS}" / "stale.html").write_text("old")
    result = gate.validate_topic(
        topic, rows, [], records_in=6, run_name="manual__2025-01-15T00:00:00+00:00", docs_target=target
    )
    assert not result["success"] and result["residual_pii"]["email"] == 1
    site = tmp_path / "reports" / "industry_classification" / f"ds={DS}"
    assert result["data_docs"] == f"file://{site}/index.html"
    files = [p for p in site.rglob("*") if p.is_file()]
    pages = [p for p in files if p.suffix == ".html"]
    assert any("validations" in p.parts for p in pages) and (site / "index.html").exists()
    assert not (site / "stale.html").exists() and not any("fonts" in p.parts for p in files)
    text = "\n".join(p.read_text() for p in pages)
    assert "expect_column_values_to_not_match_regex" in text or "not match" in text
    for value in ("zz.unique@leak-example.org", "Company 1", "Springfield"):
        assert value not in text


# --- write-audit-publish through stages.run_* ------------------------------------------------------


def run_stages(raw_root, out, staging, topics):
    """discover → hash → chunk → prompt → scrub → validate → publish, as the DAG's tasks would."""
    from pipeline_hub import stages
    from pipeline_hub.config import Settings

    settings = Settings.from_env(raw_root=str(raw_root), sanitized_root=str(out), staging_root=str(staging))
    found = stages.run_discover(settings, DS, topics, None)
    planned = stages.run_hash(settings, found, run_id="manual__wap", row_limit=None, llm_conn_id="llm_default")
    for item in stages.run_chunk(planned["plan_uri"]):
        stages.run_prompt(item)
    published, failed = {}, {}
    for topic in planned["pending"]:
        stages.run_scrub(planned["plan_uri"], topic)
        validated = stages.run_validate(planned["plan_uri"], topic)
        assert set(validated) == {"topic", "success", "failed", "data_docs"}
        try:
            published[topic] = stages.run_publish(planned["plan_uri"], topic)
        except stages.QualityGateFailed as exc:
            failed[topic] = exc
    return published, failed


def test_failing_topic_is_quarantined_others_publish_counts_add_up(stub, raw_zone, tmp_path):
    """About half of the industry answers stay invalid (answer validity < 80 %): that topic is quarantined."""
    import hashlib

    def half_invalid(body):
        record = body["messages"][1]["content"]  # the user message: the record (repairs keep it)
        if "GICS" in body["messages"][0]["content"] and hashlib.sha256(record.encode()).digest()[0] % 2:
            return '{"sector": "Energy"'  # never valid JSON, repair included
        return None  # the stub answers from the schema

    stub.responder = half_invalid
    out = tmp_path / "out"
    published, failed = run_stages(raw_zone, out, tmp_path / "staging", ["industry_classification", "company_matching"])
    assert list(failed) == ["industry_classification"] and list(published) == ["company_matching"]
    exc = failed["industry_classification"]
    assert "expect_column_values_to_be_in_set(_answer)" in str(exc)
    assert exc.summary["status"] == "quarantined_quality" and exc.manifest["status"] == "quarantined_quality"

    q_dir = out / "quarantine" / "industry_classification" / f"ds={DS}"
    m = json.loads((q_dir / "_manifest.json").read_text())
    c = m["counts"]
    assert c["published"] == 0 and c["in"] == c["quarantined_total"] == sum(c["quarantined"].values()) > 0
    assert c["in"] == c["rows_read"] - c["duplicates_dropped"]
    assert set(c["quarantined"]) == {"invalid_output", "quality_failed"}
    assert m["quality"]["success"] is False and m["quality"]["answer_valid_rate"] < 0.8
    assert m["quality"]["data_docs"].endswith(f"reports/quality/industry_classification/ds={DS}/index.html")
    assert (out / "reports" / "quality" / "industry_classification" / f"ds={DS}" / "index.html").exists()
    q = pq.read_table(q_dir / "part-00000.parquet").to_pylist()
    held = [r for r in q if r["reason"] == "quality_failed"]
    assert held and all("expect_column_values_to_be_in_set(_answer)" in r["detail"] for r in held)
    assert not (out / "sanitized_data" / "industry_classification").exists()
    assert not (out / "_index" / "industry_classification").exists()

    # The other topic published, with lineage in every row and in the Parquet key-value metadata.
    ok = published["company_matching"]
    pm = json.loads((out / "sanitized_data" / "company_matching" / f"ds={DS}" / "_manifest.json").read_text())
    assert pm["counts"]["in"] == pm["counts"]["published"] + pm["counts"]["quarantined_total"] == ok["in"]
    assert pm["quality"]["success"] and pm["quality"]["evaluated"] == pm["counts"]["in"]
    table = pq.read_table(out / "sanitized_data" / "company_matching" / f"ds={DS}" / "part-00000.parquet")
    for col in checks.LINEAGE_COLUMNS:
        assert table.column(col).null_count == 0, col
    assert set(table.column("run_id").to_pylist()) == {"manual__wap"}
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items() if k.startswith(b"pipeline_hub.")}
    for key in ("batch_hash", "run_id", "model", "prompt_name", "prompt_version", "template_sha256", "inputs"):
        assert meta[f"pipeline_hub.{key}"] not in ("", "None"), key
    assert json.loads(meta["pipeline_hub.quality"])["success"] is True
    assert ok["dataset"] == f"file://{out}/sanitized_data/company_matching"

    # Asset event extra: identifiers and counts only.
    extra = asset_extra(ok)
    assert extra["published"] == ok["published"] and extra["batch_hash"] == pm["batch_hash"]
    assert set(extra) <= {*ok, "quarantined"} and "usage" not in extra

    # OpenLineage: raw objects in, published / quarantine datasets out.
    lin = publish_lineage(pm)
    assert [dataset_key(d.namespace, d.name) for d in lin.inputs] == [i["public_uri"] for i in pm["inputs"]]
    assert [dataset_id(i["public_uri"]) for i in pm["inputs"]] == [i["public_uri"] for i in pm["inputs"]]
    assert [d.name for d in lin.outputs] == [f"{out}/sanitized_data/company_matching"]
    assert lin.outputs[0].outputFacets["outputStatistics"].rowCount == pm["counts"]["published"]
    assert "schema" in lin.outputs[0].facets
    qlin = publish_lineage(m)
    assert [d.name for d in qlin.outputs] == [f"{out}/quarantine/industry_classification"]
    assert [d.name for d in qlin.inputs] == [i["public_uri"].removeprefix("file://") for i in m["inputs"]]


def test_topic_asset_is_the_partition_root_without_connection_id():
    from pipeline_hub.orchestration.lineage import topic_asset

    asset = topic_asset("industry_classification", "s3://aws_default@sanitized")
    assert asset.uri == "s3://sanitized/sanitized_data/industry_classification"


def test_read_events_of_the_file_transport(tmp_path):
    from pipeline_hub.orchestration.lineage import describe_events, event_datasets, read_events

    def event(t, kind, inputs, outputs):
        return {
            "eventTime": t,
            "eventType": kind,
            "job": {"namespace": "default", "name": "prompt_pipeline.publish"},
            "inputs": [{"namespace": "s3://raw", "name": n} for n in inputs],
            "outputs": [{"namespace": "file", "name": n} for n in outputs],
        }

    (tmp_path / "event-1.json").write_text(json.dumps(event("2025-01-15T00:00:02Z", "COMPLETE", ["a.csv"], ["/o/t"])))
    (tmp_path / "more.jsonl").write_text(json.dumps(event("2025-01-15T00:00:01Z", "START", [], [])) + "\n")
    events = read_events(tmp_path)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert event_datasets(events) == {"inputs": {"s3://raw/a.csv"}, "outputs": {"file:///o/t"}}
    assert describe_events(events) == [
        "2025-01-15T00:00:02Z COMPLETE prompt_pipeline.publish: s3://raw/a.csv -> file:///o/t"
    ]
    assert read_events(tmp_path / "event") == events[1:]  # a file prefix, as in log_file_path
