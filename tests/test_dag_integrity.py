"""DAG integrity (Astronomer-style): every DAG imports, has retries and tags, and parses light."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

HEAVY = ["presidio_analyzer", "great_expectations", "spacy", "openai", "pandas", "duckdb", "pyarrow.parquet"]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "prompt_pipeline" in dagbag.dags


def test_every_dag_has_tags_and_every_task_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_prompt_pipeline_shape(dagbag):
    dag = dagbag.dags["prompt_pipeline"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "discover": [],
        "hash": ["discover"],
        "chunk": ["hash"],
        "stream_items": ["chunk"],
        "batch_items": ["chunk"],
        "prompt": ["stream_items"],
        "prompt_batch": ["batch_items"],
        "scrub": ["hash", "prompt", "prompt_batch"],
        "validate": ["hash", "scrub"],
        "publish": ["hash", "validate"],
        "drift": ["hash", "publish"],
    }
    # drift records after publish without deciding the run's state (a failed publish still fails the run).
    assert dag.get_task("drift").is_teardown and not dag.get_task("drift").on_failure_fail_dagrun
    assert dag.get_task("prompt").pool == dag.get_task("prompt_batch").pool == "llm_default"
    from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator

    assert issubclass(dag.get_task("prompt_batch").operator_class, LLMBatchOperator)
    assert dag.catchup is False
    assert dag.schedule == "0 2 * * *"
    assert {"source", "topics", "row_limit", "llm_conn_id", "prompt_labels"} <= set(dag.params)
    assert dag.params["prompt_labels"] == {}  # default: every topic at prod


def test_prompt_pipeline_wires_the_alert_callbacks(dagbag):
    from pipeline_hub.orchestration import alerts

    dag = dagbag.dags["prompt_pipeline"]
    assert dag.on_failure_callback is alerts.run_failed
    assert dag.get_task("hash").on_failure_callback == [alerts.hash_failed]
    publish = dag.get_task("publish").partial_kwargs
    assert publish["on_failure_callback"] == [alerts.publish_failed]
    assert publish["on_success_callback"] == [alerts.publish_succeeded]


def test_prompt_evaluation_runs_on_the_pipelines_publications(dagbag):
    """No polling: the DAG is scheduled on the alias prompt_pipeline's publish task adds topic Assets to."""
    from airflow.sdk import AssetAlias

    from pipeline_hub.orchestration.lineage import PUBLISHED_ALIAS

    evaluation, pipeline = dagbag.dags["prompt_evaluation"], dagbag.dags["prompt_pipeline"]
    assert list(evaluation.timetable.asset_condition.objects) == [AssetAlias(PUBLISHED_ALIAS)]
    assert AssetAlias(PUBLISHED_ALIAS) in pipeline.get_task("publish").outlets


def test_dag_files_do_no_heavy_work_at_parse_time(tmp_path):
    """Parsing imports neither the LLM, PII, quality nor data libraries (they load inside tasks)."""
    code = (
        "import sys, json, runpy; runpy.run_path(sys.argv[1]);"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    for dag_file in (REPO / "dags").glob("*.py"):
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(REPO / "plugins")}
        out = subprocess.run(
            [sys.executable, "-c", code, str(dag_file)], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout.strip().splitlines()[-1]) == [], dag_file.name
