"""End to end: `airflow dags test prompt_evaluation` against a real SeaweedFS S3 and the local stub LLM.

A batch is published first (`pipeline-hub run`), with a dev version (v2) of one topic in the registry;
the DAG validates, scores dev and prod of every topic (3 examples each), runs the canary on the
published batch, and writes Parquet and the report to the artifacts root on S3. Nothing new is published.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import DS, REPO, airflow_subprocess_env
from lifecycle_helpers import add_version, copy_registry

pytestmark = pytest.mark.slow
CANARY_TOPIC = "industry_classification"


def answer(body: dict) -> dict | None:
    """Industry answers depend on the company only, so v1 (published) and v2 (dev) agree."""
    user = body["messages"][-1]["content"]
    if user.startswith("Company:"):
        return {"sector": "Energy", "confidence": 0.9}
    return None


def keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read(client, key: str) -> bytes:
    return client.get_object(Bucket="sanitized", Key=key)["Body"].read()


def test_dags_test_prompt_evaluation_scores_canaries_and_reports(tmp_path, seaweed, stub_server):
    include = copy_registry(tmp_path)
    add_version(include / "prompts", CANARY_TOPIC, "v2")
    home = tmp_path / "airflow"
    env = airflow_subprocess_env(
        home,
        seaweed,
        stub_server,
        PIPELINE_HUB_INCLUDE_DIR=str(include),
        PIPELINE_HUB_ARTIFACTS_URI="s3://aws_default@sanitized/_artifacts",
    )
    stub_server.reset()
    stub_server.responder = answer

    def run(*args, timeout=600):
        proc = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        return proc

    run("airflow", "db", "migrate")
    run("airflow", "pools", "set", "llm_default", "2", "LLM tasks")
    run("pipeline_hub", "seed", "--ds", DS, "--sample-dir", str(REPO / "include" / "sample_data"))
    run(
        "pipeline_hub",
        "run",
        "--input",
        "s3://aws_default@raw/raw_data",
        "--output",
        "s3://aws_default@sanitized",
        "--ds",
        DS,
        "--topics",
        CANARY_TOPIC,
        "--row-limit",
        "6",
    )
    client = seaweed.client()
    published = {k: read(client, k) for k in keys(client, "sanitized", "sanitized_data/")}
    assert f"sanitized_data/{CANARY_TOPIC}/ds={DS}/part-00000.parquet" in published

    conf = {"limit": 3, "canary_pct": 50, "canary_seed": 1}
    proc = run("airflow", "dags", "test", "prompt_evaluation", DS, "--conf", json.dumps(conf))
    logs = proc.stdout + proc.stderr + "".join(p.read_text(errors="replace") for p in home.rglob("*.log"))
    assert "triggered on demand" in logs
    sample = csv.DictReader((REPO / "include" / "sample_data" / "companies" / "companies.csv").open())
    assert not [row["id"] for row in sample if row["headquarters"] in logs]  # no record text in task logs

    artifacts = keys(client, "sanitized", "_artifacts/")
    scores_key = next(k for k in artifacts if k.startswith("_artifacts/evaluations/scores/run="))
    scores = pq.read_table(io.BytesIO(read(client, scores_key))).to_pylist()
    by_version = {(s["topic"], s["version"]): s for s in scores}
    assert sorted(by_version) == sorted(
        [
            (t, "v1")
            for t in ("company_matching", "contact_extraction", "industry_classification", "use_case_extraction")
        ]
        + [(CANARY_TOPIC, "v2")]
    )
    assert (
        by_version[(CANARY_TOPIC, "v2")]["pointers"] == "dev" and by_version[(CANARY_TOPIC, "v1")]["pointers"] == "prod"
    )
    assert all(s["examples_scored"] == 3 and not s["full"] for s in scores)
    for topic, version in by_version:
        assert f"_artifacts/reports/{topic}/{version}/score_limit3.png" in artifacts

    canary_key = next(k for k in artifacts if k.startswith("_artifacts/evaluations/canary/run="))
    canaries = {c["topic"]: c for c in pq.read_table(io.BytesIO(read(client, canary_key))).to_pylist()}
    c = canaries[CANARY_TOPIC]
    assert c["status"] == "ok", c
    assert c["sampled"] == 3 and c["agreement_rate"] == 1.0
    assert (c["dev_version"], c["prod_version"], c["ds"]) == ("v2", "v1", DS)
    assert {canaries[t]["status"] for t in canaries if t != CANARY_TOPIC} == {"skipped_no_publication"}

    report = next(k for k in artifacts if k.endswith("/report.md"))
    text = read(client, report).decode()
    assert "# Prompt evaluation" in text and f"| {CANARY_TOPIC} | v2 | v1 | {DS} | ok | 3 | 1 |" in text
    assert any(k.endswith("/report.html") for k in artifacts)
    assert "_artifacts/evaluations/_fingerprint.json" in artifacts

    # Shadow answers are never published: the sanitized zone holds exactly what the run published.
    assert {k: read(client, k) for k in keys(client, "sanitized", "sanitized_data/")} == published
