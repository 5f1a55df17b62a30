"""The prompt_evaluation task bodies in-process: change detection, canary in shadow, the written report."""

from __future__ import annotations

import io
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline_hub.config import Settings
from pipeline_hub.lifecycle.canary import run_canary
from pipeline_hub.lifecycle.evaluation import (
    RegistryInvalid,
    run_score,
    run_validate,
    score_items,
    should_evaluate,
    write_evaluation,
)
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO
from lifecycle_helpers import add_version, copy_registry

CONTACT = {
    "name": "Jane Roe",
    "title": "Senior Analyst",
    "organisation": "Example Corp",
    "email": "jane.roe@example.com",
    "phone": "+1 555 0100",
}
DISAGREE = ("Company: Kraft Heinz", "Company: Synopsys")  # companies dev (v2) classifies differently


def answer(body: dict) -> dict | None:
    """v1 and v2 answer alike, except v2 on the DISAGREE companies; every email yields one contact."""
    user = body["messages"][-1]["content"]
    if user.startswith("Company:"):
        differs = user.rstrip().endswith("Answer (v2):") and user.startswith(DISAGREE)
        return {"sector": "Utilities" if differs else "Energy", "confidence": 0.9}
    if user.startswith("Text:"):
        return {"contacts": [CONTACT]}
    return None


@pytest.fixture
def evaluated(tmp_path, monkeypatch):
    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(tmp_path / "artifacts"))
    return include / "prompts"


def test_validate_step_fails_on_a_broken_registry(evaluated):
    assert run_validate()["problems"] == 0
    meta = evaluated / "company_matching" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("\nprod: v1\n", "\nprod: v4\n"))
    with pytest.raises(RegistryInvalid, match=r"company_matching/metadata.yaml:\d+: pointer 'prod' names version 'v4'"):
        run_validate()


def test_scheduled_runs_go_on_only_when_the_registry_changed(evaluated, tmp_path):
    first = should_evaluate(manual=False, force=False)
    assert first["go"] and "changed" in first["reason"]
    write_evaluation("r1", [], [], conn_id="c", limit=None, sample_pct=10, seed=0, fingerprint=first["fingerprint"])
    assert should_evaluate(manual=False, force=False)["go"] is False
    assert should_evaluate(manual=True, force=False)["go"] and should_evaluate(manual=False, force=True)["go"]
    partial = evaluated / "_shared" / "preamble.j2"
    partial.write_text(partial.read_text() + "Be brief.\n")
    assert should_evaluate(manual=False, force=False)["go"]


def test_score_items_score_a_shared_version_once(evaluated):
    add_version(evaluated, "industry_classification", "v2")
    items = score_items(["industry_classification", "company_matching"])
    assert items == [
        {"topic": "industry_classification", "version": "v1", "pointers": ["prod"]},
        {"topic": "industry_classification", "version": "v2", "pointers": ["dev"]},
        {"topic": "company_matching", "version": "v1", "pointers": ["prod", "dev"]},
    ]


def test_canary_compares_dev_in_shadow_with_published_answers(stub, evaluated, raw_zone, tmp_path):
    stub.responder = answer
    out = tmp_path / "sanitized"
    topics = ["industry_classification", "contact_extraction"]
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=topics)
    assert not result.failed
    published_files = sorted(str(p) for p in out.rglob("*"))
    settings = Settings(raw_root=str(raw_zone), sanitized_root=str(out), staging_root=str(tmp_path / "st"))

    # dev is the published version: nothing to compare, no call.
    stub.reset()
    stub.responder = answer
    assert run_canary("industry_classification", settings=settings)["status"] == "skipped_dev_is_published"
    assert run_canary("company_matching", settings=settings)["status"] == "skipped_no_publication"
    assert stub.calls == 0

    add_version(evaluated, "industry_classification", "v2")
    add_version(evaluated, "contact_extraction", "v2")
    full = run_canary("industry_classification", settings=settings, sample_pct=100, seed=7)
    n = full["published_records"]
    assert full["status"] == "ok" and full["dev_version"] == "v2" and full["prod_version"] == "v1"
    assert full["sampled"] == n == stub.calls and full["ds"] == DS
    assert full["agreed"] == n - len(DISAGREE) and full["agreement_rate"] == round((n - 2) / n, 4)
    assert full["dev_cost_per_record_usd"] == full["prod_cost_per_record_usd"] == 0.0  # stub-model is free
    assert full["cost_diff_pct"] is None and full["dev_tokens_per_record"] > 0

    half = run_canary("industry_classification", settings=settings, sample_pct=50, seed=7)
    again = run_canary("industry_classification", settings=settings, sample_pct=50, seed=7)
    assert half["sampled"] == again["sampled"] == -(-n // 2) and half["agreed"] == again["agreed"]
    assert again["llm_calls"] == 0 and again["cache_hits"] == again["sampled"]  # same seed, same sample

    # Contacts are compared after the same scrubbing as production: pseudonyms equal pseudonyms.
    contacts = run_canary("contact_extraction", settings=settings, sample_pct=100)
    assert contacts["status"] == "ok" and contacts["agreement_rate"] == 1.0 and contacts["item_f1"] == 1.0

    # Shadow answers are never published: the sanitized zone is byte-for-byte what the run left.
    assert sorted(str(p) for p in out.rglob("*")) == published_files


def test_report_writes_parquet_markdown_and_html(stub, evaluated, tmp_path):
    score = run_score(
        {"topic": "industry_classification", "version": "v1", "pointers": ["prod", "dev"]},
        conn_id="llm_default",
        limit=4,
    )
    assert score["examples_scored"] == 4 and not score["full"] and score["report"].endswith("score_limit4.md")
    canary = {"topic": "industry_classification", "dev_version": "v1", "status": "skipped_no_publication"}
    other = {"topic": "contact_extraction", "dev_version": "v2", "status": "ok", "agreement_rate": 0.5}
    uris = write_evaluation(
        "manual__2026-11-23T10:00:00+00:00",
        [score],
        [canary, other],
        conn_id="llm_default",
        limit=4,
        sample_pct=10,
        seed=0,
    )
    root = tmp_path / "artifacts" / "evaluations"
    table = pq.read_table(
        io.BytesIO(
            (root / "scores" / "run=manual__2026-11-23T10_00_00_00_00").joinpath("part-00000.parquet").read_bytes()
        )
    )
    assert table.num_rows == 1 and table.column("gate_metric").to_pylist() == ["macro_f1"]
    rows = duckdb.sql(
        f"SELECT topic, status, agreement_rate, run FROM read_parquet('{root}/canary/*/*.parquet', "
        "hive_partitioning = true) ORDER BY topic"
    ).fetchall()
    run = "manual__2026-11-23T10_00_00_00_00"
    assert rows == [
        ("contact_extraction", "ok", 0.5, run),  # columns of every row, whichever row comes first
        ("industry_classification", "skipped_no_publication", None, run),
    ]
    md = (root / "reports" / "manual__2026-11-23T10_00_00_00_00" / "report.md").read_text()
    assert "## Scores" in md and "| industry_classification | v1 | prod,dev |" in md and "## Canary" in md
    html = (root / "reports" / "manual__2026-11-23T10_00_00_00_00" / "report.html").read_text()
    assert "<table>" in html and set(uris) == {"scores", "canary", "md", "html"}
    assert json.dumps(uris)  # small, JSON-serialisable (XCom)


def test_dag_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "prompt_evaluation.py"))
    assert bag.import_errors == {}
    dag = bag.dags["prompt_evaluation"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "validate": [],
        "changed": ["validate"],
        "score_items": ["changed"],
        "score": ["score_items"],
        "canary_topics": ["changed"],
        "canary": ["canary_topics", "score"],
        "report": ["canary", "changed", "score"],
    }
    assert dag.get_task("score").pool == dag.get_task("canary").pool == "llm_default"
    assert {"topics", "llm_conn_id", "limit", "canary_pct", "canary_seed", "force"} <= set(dag.params)
    assert dag.catchup is False and dag.tags
