"""Raw-zone retention: objects older than the retention period are listed (dry run) or deleted, with a
report; local files with set modification times, SeaweedFS S3 with real LastModified, and the DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pipeline_hub.cli import app
from pipeline_hub.governance import retention

from conftest import REPO

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)


def put(path, age_days: float, as_of: datetime = AS_OF, data: bytes = b"{}\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ts = (as_of - timedelta(days=age_days)).timestamp()
    os.utime(path, (ts, ts))
    return path


@pytest.fixture
def zones(tmp_path):
    raw, staging = tmp_path / "raw", tmp_path / "staging"
    old = [
        put(raw / "emails" / "2025-01-15" / "emails.jsonl", 120, data=b"x" * 10),
        put(raw / "companies" / "2025-02-01" / "companies.csv", 31, data=b"y" * 5),
        put(staging / "manual__1" / "chunks" / "emails" / "part-00000.jsonl", 45),
    ]
    new = [
        put(raw / "emails" / "2025-05-30" / "emails.jsonl", 2),
        put(raw / "companies" / "2025-01-15" / "backfill.csv", 29),  # old ds, uploaded recently: kept
        put(raw / "companies" / "2025-05-02" / "edge.csv", 30),  # exactly at the cutoff: kept
    ]
    return {"raw": str(raw), "staging": str(staging)}, old, new, tmp_path / "sanitized"


def read_report(summary: dict) -> dict:
    return json.loads(open(summary["report"].removeprefix("file://")).read())


def test_dry_run_lists_expired_objects_and_deletes_nothing(zones):
    roots, old, new, report_root = zones
    summary = retention.run_retention(roots=roots, report_root=str(report_root), days=30, as_of=AS_OF)
    assert summary["dry_run"] and summary["expired"] == 3 and summary["deleted"] == 0 and summary["bytes"] == 18
    assert all(p.exists() for p in old + new)
    report = read_report(summary)
    assert sorted(o["uri"] for o in report["expired"]) == sorted(f"file://{p}" for p in old)
    assert {o["zone"] for o in report["expired"]} == {"raw", "staging"}
    assert report["cutoff"] == (AS_OF - timedelta(days=30)).isoformat() and report["days"] == 30
    emails = next(o for o in report["expired"] if o["uri"].endswith("emails.jsonl"))
    assert emails["age_days"] == 120 and emails["size"] == 10
    assert summary["report"].startswith(f"file://{report_root}/_audit/retention/20250601T000000Z-")


def test_delete_removes_only_expired_objects(zones):
    roots, old, new, report_root = zones
    summary = retention.run_retention(roots=roots, report_root=str(report_root), days=30, as_of=AS_OF, delete=True)
    assert summary["deleted"] == 3 and not summary["dry_run"]
    assert not any(p.exists() for p in old) and all(p.exists() for p in new)
    again = retention.run_retention(roots=roots, report_root=str(report_root), days=30, as_of=AS_OF, delete=True)
    assert again["expired"] == again["deleted"] == 0
    assert len(list((report_root / "_audit" / "retention").iterdir())) == 2


def test_missing_root_is_empty(tmp_path):
    summary = retention.run_retention(
        roots={"raw": str(tmp_path / "absent")}, report_root=str(tmp_path), days=1, as_of=AS_OF
    )
    assert summary["expired"] == 0


def test_retention_days_from_env_default_and_errors(monkeypatch):
    monkeypatch.delenv(retention.ENV_DAYS, raising=False)
    assert retention.retention_days() == 90
    monkeypatch.setenv(retention.ENV_DAYS, "7")
    assert retention.retention_days() == 7 and retention.retention_days(3) == 3
    for bad in ("0", "ninety"):
        monkeypatch.setenv(retention.ENV_DAYS, bad)
        with pytest.raises(ValueError, match=retention.ENV_DAYS):
            retention.retention_days()


def test_cli_uses_configured_roots(zones, monkeypatch):
    roots, old, new, report_root = zones
    monkeypatch.setenv("PIPELINE_HUB_RAW_URI", roots["raw"])
    monkeypatch.setenv("PIPELINE_HUB_STAGING_URI", roots["staging"])
    monkeypatch.setenv("PIPELINE_HUB_SANITIZED_URI", str(report_root))
    monkeypatch.setenv(retention.ENV_DAYS, "3650")
    res = CliRunner().invoke(app, ["retention"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["days"] == 3650 and summary["expired"] == 0 and summary["dry_run"]


def test_s3_objects_expire_by_last_modified(tmp_path, monkeypatch):
    from pipeline_hub_dev.seaweedfs import SeaweedFS

    with SeaweedFS(tmp_path / "s3", buckets=("raw", "sanitized")) as s3:
        # A connection id of its own: Airflow caches one file system per connection id per process.
        monkeypatch.setenv("AIRFLOW_CONN_AWS_RETENTION", json.dumps(s3.airflow_connection()))
        client = s3.client()
        keys = ["raw_data/emails/2025-01-15/emails.jsonl", "raw_data/companies/2025-01-15/companies.csv"]
        for key in keys:
            client.put_object(Bucket="raw", Key=key, Body=b"record\n")
        client.put_object(Bucket="raw", Key="other/keep.txt", Body=b"not under the root")
        roots = {"raw": "s3://aws_retention@raw/raw_data"}
        now = datetime.now(UTC)
        kwargs = {"roots": roots, "report_root": "s3://aws_retention@sanitized", "days": 90}
        assert retention.run_retention(**kwargs, as_of=now)["expired"] == 0
        later = retention.run_retention(**kwargs, as_of=now + timedelta(days=91))
        assert later["expired"] == 2 and later["deleted"] == 0
        report_key = later["report"].removeprefix("s3://sanitized/")
        report = json.loads(client.get_object(Bucket="sanitized", Key=report_key)["Body"].read())
        assert sorted(o["uri"] for o in report["expired"]) == sorted(f"s3://raw/{k}" for k in keys)
        assert all(0 <= 91 - o["age_days"] < 1 for o in report["expired"])
        deleted = retention.run_retention(**kwargs, as_of=now + timedelta(days=91), delete=True)
        assert deleted["deleted"] == 2
        left = [o["Key"] for o in client.list_objects_v2(Bucket="raw").get("Contents", [])]
        assert left == ["other/keep.txt"]


def test_lifecycle_rule_matches_default_retention():
    rules = json.loads((REPO / "infra" / "s3" / "raw-lifecycle.json").read_text())["Rules"]
    by_prefix = {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules}
    assert by_prefix["raw_data/"] == by_prefix["staging/"] == retention.DEFAULT_DAYS


# --- the DAG ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / "retention.py"))


def test_retention_dag_is_daily_dry_run_by_default(dagbag):
    assert dagbag.import_errors == {}
    dag = dagbag.dags["retention"]
    assert dag.schedule == "@daily" and dag.catchup is False and dag.tags
    assert dag.params["delete"] is False and dag.params["retention_days"] is None
    assert [t.task_id for t in dag.tasks] == ["expire_raw"] and dag.tasks[0].retries >= 1


@pytest.mark.slow
def test_airflow_dags_test_retention_writes_a_report(tmp_path):
    """`airflow dags test retention` with the real scheduler-less runner: a dry run over a local raw zone."""
    raw = tmp_path / "raw"
    put(raw / "emails" / "2020-01-01" / "old.jsonl", 365 * 3, as_of=datetime.now(UTC))
    put(raw / "emails" / "2025-01-01" / "new.jsonl", 1, as_of=datetime.now(UTC))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PIPELINE_HUB_RAW_URI": str(raw),
        "PIPELINE_HUB_STAGING_URI": str(tmp_path / "staging"),
        "PIPELINE_HUB_SANITIZED_URI": str(tmp_path / "sanitized"),
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "retention"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [report] = (tmp_path / "sanitized" / "_audit" / "retention").iterdir()
    data = json.loads(report.read_text())
    assert [o["uri"].rsplit("/", 1)[-1] for o in data["expired"]] == ["old.jsonl"] and data["dry_run"]
    assert (raw / "emails" / "2020-01-01" / "old.jsonl").exists()
