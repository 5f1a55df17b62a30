"""End to end: `airflow dags test prompt_pipeline` against a real SeaweedFS S3 and the local stub LLM.

Checks publication with lineage, conservation, the no-op rerun (zero LLM calls), two ``ds`` holding the
same bytes (both published, the second from the response cache), and that no record text or PII reaches
task logs, XCom or the sanitized zone.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import DS, REPO, airflow_subprocess_env, llm_conn

pytestmark = pytest.mark.slow
TOPICS = ("industry_classification", "use_case_extraction", "contact_extraction", "company_matching")

# Synthetic PII seeded into an extra raw object (values chosen to exist nowhere else in the sample).
SEEDED = {
    "name": "Quentin Zarkowsky",
    "email": "quentin.zarkowsky@zarkowsky-example.net",
    "phone": "+1 415 555 0199",
    "sentence": "Zarkowsky ledger reconciliation note 7731",
}
EMAIL_TEXT = (
    f"Hi team, {SEEDED['sentence']} attached.\n\nBest regards,\n{SEEDED['name']}\nVP Finance\nAcme Widgets\n"
    f"{SEEDED['email']}\n{SEEDED['phone']}\n"
)


def contact_echo(body: dict) -> dict | None:
    """Answer like a model that echoes the seeded person; None lets the stub generate from the schema."""
    if SEEDED["name"] in body["messages"][-1]["content"]:
        return {
            "contacts": [
                {
                    "name": SEEDED["name"],
                    "title": "VP Finance",
                    "organisation": "Acme Widgets",
                    "email": SEEDED["email"],
                    "phone": SEEDED["phone"],
                }
            ]
        }
    return None


BATCH_TOPIC = "use_case_extraction"  # runs in batch mode here: the common-ai LLMBatchOperator, deferred


@pytest.fixture(scope="module")
def include_batch(tmp_path_factory):
    """A copy of ``include/`` where ``BATCH_TOPIC`` uses the provider's Batch API."""
    include = tmp_path_factory.mktemp("include") / "include"
    shutil.copytree(REPO / "include", include)
    meta_path = include / "prompts" / BATCH_TOPIC / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta_path.write_text(yaml.safe_dump({**meta, "provider": {"mode": "batch"}}))
    return include


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, seaweed, stub_server, include_batch):
    home = tmp_path_factory.mktemp("airflow")
    env = airflow_subprocess_env(
        home,
        seaweed,
        stub_server,
        PIPELINE_HUB_INCLUDE_DIR=str(include_batch),
        # A second connection (same stub) with a pool of its own: the cluster policy's routing.
        AIRFLOW_CONN_LLM_ALT=llm_conn(stub_server.base_url),
        # OpenLineage: the file transport, one JSON file per event, into this module's temporary folder.
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(tmp_path_factory.mktemp("openlineage") / "event"), "append": False}
        ),
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    for pool in ("llm_default", "llm_alt"):
        subprocess.run(
            [sys.executable, "-m", "airflow", "pools", "set", pool, "2", f"Prompt tasks on {pool}"],
            env=env,
            check=True,
            capture_output=True,
        )
    subprocess.run([sys.executable, "-m", "pipeline_hub", "seed", "--ds", DS], env=env, check=True, capture_output=True)
    client = seaweed.client()
    client.put_object(
        Bucket="raw",
        Key=f"raw_data/emails/{DS}/seeded.jsonl",
        Body=(json.dumps({"id": "seeded-1", "text": EMAIL_TEXT}) + "\n").encode(),
    )
    return env, home, client


def dags_test(env, ds: str = DS, conf: dict | None = None) -> subprocess.CompletedProcess:
    extra = ["--conf", json.dumps(conf)] if conf else []
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", *extra, "prompt_pipeline", ds],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def s3_json(client, bucket, key):
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def all_logs(home, proc) -> str:
    files = [p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file()]
    return proc.stdout + proc.stderr + "\n".join(files)


def task_pools(home, task_id: str) -> dict[str, set[str]]:
    """``{run_id: {pool, …}}`` of the task instances of ``task_id`` in every run."""
    con = sqlite3.connect(home / "airflow.db")
    try:
        pools: dict[str, set[str]] = {}
        for run_id, pool in con.execute("SELECT run_id, pool FROM task_instance WHERE task_id = ?", (task_id,)):
            pools.setdefault(run_id, set()).add(pool)
        return pools
    finally:
        con.close()


def ti_states(home, task_id: str) -> set[str]:
    con = sqlite3.connect(home / "airflow.db")
    try:
        return {state for (state,) in con.execute("SELECT state FROM task_instance WHERE task_id = ?", (task_id,))}
    finally:
        con.close()


def xcom_values(home) -> str:
    con = sqlite3.connect(home / "airflow.db")
    try:
        return "\n".join(str(v) for (v,) in con.execute("SELECT value FROM xcom"))
    finally:
        con.close()


def extra_links(home, task_id: str) -> dict[str, str]:
    """``{map_index: url}`` of the Prompt Hub extra link the worker stored for ``task_id`` (XCom ``_link_…``)."""
    con = sqlite3.connect(home / "airflow.db")
    try:
        rows = con.execute(
            "SELECT map_index, value FROM xcom WHERE task_id = ? AND key = '_link_PromptHubLink'", (task_id,)
        ).fetchall()
    finally:
        con.close()
    return {str(i): json.loads(v) for i, v in rows}


def openlineage_dir(env) -> Path:
    return Path(json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"]).parent


def asset_events(home, run_id: str) -> dict[str, dict]:
    """``{asset uri: event extra}`` of the asset events the DAG run ``run_id`` emitted."""
    con = sqlite3.connect(home / "airflow.db")
    try:
        rows = con.execute(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE e.source_run_id = ?",
            (run_id,),
        ).fetchall()
    finally:
        con.close()
    return {uri: json.loads(extra) for uri, extra in rows}


def test_dag_run_publishes_then_rerun_is_a_noop(airflow_env, stub_server):
    env, home, client = airflow_env
    stub_server.reset()
    stub_server.responder = contact_echo
    first = dags_test(env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    calls_first = stub_server.calls
    assert calls_first > 0
    first_pools = task_pools(home, "prompt")
    assert set().union(*first_pools.values()) == {"llm_default"}  # the default connection's pool
    runs_before = set(first_pools)

    for topic in TOPICS:
        m = s3_json(client, "sanitized", f"sanitized_data/{topic}/ds={DS}/_manifest.json")
        c = m["counts"]
        assert m["status"] == "published" and c["in"] == c["published"] + c["quarantined_total"]
        assert m["inputs"] and all(i["public_uri"].startswith("s3://raw/raw_data/") for i in m["inputs"])
        assert m["run_id"].startswith("manual__") or m["run_id"]
        data = client.get_object(Bucket="sanitized", Key=f"sanitized_data/{topic}/ds={DS}/part-00000.parquet")
        table = pq.read_table(io.BytesIO(data["Body"].read()))
        assert table.num_rows == c["published"]
        assert set(table.column("batch_hash").to_pylist()) == {m["batch_hash"]}

    # The batch-mode topic went through one provider batch job per chunk, deferred and resumed by Airflow.
    batch_manifest = s3_json(client, "sanitized", f"sanitized_data/{BATCH_TOPIC}/ds={DS}/_manifest.json")
    assert batch_manifest["routes"]["mode"] == "batch" and stub_server.batches.jobs
    assert batch_manifest["usage"]["records_by_route"].get("batch", 0) > 0
    assert set().union(*task_pools(home, "prompt_batch").values()) == {"llm_default"}
    assert ti_states(home, "prompt_batch") == {"success"} and "deferr" in all_logs(home, first).lower()

    # Lineage. OpenLineage events (file transport) name every raw object read and every published dataset;
    # each topic's Asset got one event whose extra holds counts and the batch hash.
    from pipeline_hub.orchestration.lineage import event_datasets, read_events

    named = event_datasets(read_events(openlineage_dir(env)))
    raw_objects = {f"s3://raw/{o['Key']}" for o in client.list_objects_v2(Bucket="raw", Prefix="raw_data/")["Contents"]}
    assert raw_objects and raw_objects <= named["inputs"], raw_objects - named["inputs"]
    datasets = {f"s3://sanitized/sanitized_data/{t}" for t in TOPICS}
    assert datasets <= named["outputs"], datasets - named["outputs"]
    events = asset_events(home, m["run_id"])
    assert set(events) == datasets
    for topic in TOPICS:
        m = s3_json(client, "sanitized", f"sanitized_data/{topic}/ds={DS}/_manifest.json")
        extra = events[f"s3://sanitized/sanitized_data/{topic}"]
        assert extra["published"] == m["counts"]["published"] and extra["batch_hash"] == m["batch_hash"]
        assert extra["in"] == extra["published"] + extra["quarantined_total"]
        assert m["quality"]["success"] and m["quality"]["data_docs"].startswith(
            f"s3://sanitized/reports/quality/{topic}/ds={DS}/"
        )

    # The drift task ran after publish and stored one row per topic (no earlier partition: no_baseline).
    assert ti_states(home, "drift") == {"success"}
    for topic in TOPICS:
        body = client.get_object(Bucket="sanitized", Key=f"metrics/drift/ds={DS}/{topic}.parquet")["Body"].read()
        (drift_row,) = pq.read_table(io.BytesIO(body)).to_pylist()
        assert drift_row["topic"] == topic and drift_row["status"] == "no_baseline"

    # The echoed contact was pseudonymised: the published bytes hold none of the seeded values.
    contacts = client.get_object(
        Bucket="sanitized", Key=f"sanitized_data/contact_extraction/ds={DS}/part-00000.parquet"
    )
    rows = pq.read_table(io.BytesIO(contacts["Body"].read())).to_pylist()
    seeded_row = next(r for r in rows if r["record_id"] == "seeded-1")
    assert all(seeded_row["contacts"][0][k].startswith("psn_") for k in ("name", "email", "phone"))
    published_bytes = b"".join(
        client.get_object(Bucket="sanitized", Key=o["Key"])["Body"].read()
        for o in client.list_objects_v2(Bucket="sanitized")["Contents"]
    )
    for value in SEEDED.values():
        assert value.encode() not in published_bytes

    # Nothing of the record text or PII in task logs, XCom or lineage events.
    logs, xcom = all_logs(home, first), xcom_values(home)
    lineage = "\n".join(p.read_text() for p in openlineage_dir(env).iterdir())
    for value in SEEDED.values():
        assert value not in logs, f"seeded value leaked into logs: {value[:4]}…"
        assert value not in xcom, f"seeded value leaked into XCom: {value[:4]}…"
        assert value not in lineage, f"seeded value leaked into OpenLineage events: {value[:4]}…"
    assert "plan.json" in xcom  # XCom is really read: it carries URIs…
    # Each publish task instance carries the extra link to its topic's Prompt Hub page.
    links = sorted(extra_links(home, "publish").values())
    assert links and all("/pipeline-hub/topics/" in u for u in links), links
    assert {u.rsplit("/", 1)[1] for u in links} == set(TOPICS), links
    sample = csv.DictReader((REPO / "include" / "sample_data" / "companies" / "companies.csv").open())
    for row in sample:  # …and never record text
        assert row["headquarters"] not in xcom and row["headquarters"] not in logs

    # Rerun of the same bytes: nothing new, no LLM call, manifests untouched.
    before = s3_json(client, "sanitized", f"sanitized_data/industry_classification/ds={DS}/_manifest.json")
    stub_server.reset()
    second = dags_test(env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert stub_server.calls == 0
    after = s3_json(client, "sanitized", f"sanitized_data/industry_classification/ds={DS}/_manifest.json")
    assert after == before
    assert "already published" in all_logs(home, second)

    # The publication index lost (or a topic forced to re-run): the shared S3 response cache answers.
    # This run is triggered on the second connection: its prompt tasks take that connection's pool.
    cached = client.list_objects_v2(Bucket="raw", Prefix="llm-cache/")["KeyCount"]
    assert cached > 0 and not client.list_objects_v2(Bucket="sanitized", Prefix="llm-cache/")["KeyCount"]
    index = client.list_objects_v2(Bucket="sanitized", Prefix="_index/industry_classification/")["Contents"]
    for obj in index:
        client.delete_object(Bucket="sanitized", Key=obj["Key"])
    stub_server.reset()
    third = dags_test(env, conf={"llm_conn_id": "llm_alt"})
    assert third.returncode == 0, third.stdout[-4000:] + third.stderr[-4000:]
    assert stub_server.calls == 0
    again = s3_json(client, "sanitized", f"sanitized_data/industry_classification/ds={DS}/_manifest.json")
    assert again["run_id"] != before["run_id"] and again["usage"]["cache_hit_rate"] == 1.0
    assert [pools for run, pools in task_pools(home, "prompt").items() if run not in runs_before] == [{"llm_alt"}]


def test_topic_failing_its_quality_gate_is_quarantined_and_the_run_fails(airflow_env, stub_server):
    """Write-audit-publish in Airflow: every industry_classification answer is broken, so the topic fails
    its answer-validity expectation: quarantined whole, use_case_extraction publishes, the DAG run fails.
    (A kept field holding PII holds back only its record: tests/test_bad_input_scrub.py.)"""
    from pipeline_hub.quality.checks import failed_expectations

    from support.stub_llm import schema_of

    env, home, client = airflow_env
    ds = "2025-01-16"
    sample = REPO / "include" / "sample_data"
    extra_company = 'GATE-1,Gate Corp,"Austin, Texas"\n'
    companies = (sample / "companies" / "companies.csv").read_text()
    client.put_object(
        Bucket="raw", Key=f"raw_data/companies/{ds}/companies.csv", Body=(companies + extra_company).encode()
    )
    extra_case = {"id": "UC-E2E-16", "agency": "Test Agency", "summary": "A chatbot answers permit questions."}
    client.put_object(  # new bytes: the same bytes as DS would be republished here from the response cache
        Bucket="raw",
        Key=f"raw_data/ai_use_cases/{ds}/use_cases.jsonl",
        Body=(sample / "ai_use_cases" / "use_cases.jsonl").read_bytes() + (json.dumps(extra_case) + "\n").encode(),
    )
    stub_server.reset()
    stub_server.responder = lambda body: '{"sector": "Energy"' if "sector" in schema_of(body)["properties"] else None
    try:
        # A response cache of its own: the sample's answers cached by earlier tests would pass the gate.
        gate_env = {**env, "PIPELINE_HUB_LLM_CACHE": "s3://aws_default@raw/llm-cache-gate"}
        run = dags_test(gate_env, ds, {"topics": ["industry_classification", "use_case_extraction"]})
    finally:
        stub_server.responder = None
    assert run.returncode != 0, "the DAG run must fail when a topic fails its quality gate"
    assert "topic failed quality gate" in all_logs(home, run)

    failed = s3_json(client, "sanitized", f"quarantine/industry_classification/ds={ds}/_manifest.json")
    c = failed["counts"]
    assert failed["status"] == "quarantined_quality" and c["published"] == 0
    assert c["in"] == c["quarantined_total"] == c["quarantined"]["invalid_output"] > 0
    assert "expect_column_values_to_be_in_set(_answer)" in failed_expectations(failed["quality"])
    assert not client.list_objects_v2(Bucket="sanitized", Prefix=f"sanitized_data/industry_classification/ds={ds}/")[
        "KeyCount"
    ]
    docs = client.list_objects_v2(Bucket="sanitized", Prefix=f"reports/quality/industry_classification/ds={ds}/")
    pages = [o["Key"] for o in docs["Contents"] if o["Key"].endswith(".html")]
    assert f"reports/quality/industry_classification/ds={ds}/index.html" in pages
    html = b"".join(client.get_object(Bucket="sanitized", Key=k)["Body"].read() for k in pages)
    assert b"Gate Corp" not in html

    ok = s3_json(client, "sanitized", f"sanitized_data/use_case_extraction/ds={ds}/_manifest.json")
    assert (
        ok["status"] == "published"
        and ok["counts"]["in"] == ok["counts"]["published"] + ok["counts"]["quarantined_total"]
    )
    assert ok["run_id"] == failed["run_id"]
    # Drift records the topic that published and notes the quarantined one; it does not fail on it.
    drift_keys = {
        o["Key"] for o in client.list_objects_v2(Bucket="sanitized", Prefix=f"metrics/drift/ds={ds}/")["Contents"]
    }
    assert drift_keys == {f"metrics/drift/ds={ds}/use_case_extraction.parquet"}
    assert set(asset_events(home, ok["run_id"])) == {"s3://sanitized/sanitized_data/use_case_extraction"}

    # OpenLineage: the failed publish reports its raw input and the quarantine dataset.
    from pipeline_hub.orchestration.lineage import read_events

    fails = [
        e
        for e in read_events(openlineage_dir(env))
        if e["eventType"] == "FAIL" and e["job"]["name"] == "prompt_pipeline.publish"
    ]
    assert fails and {d["name"] for d in fails[-1]["outputs"]} == {"quarantine/industry_classification"}
    assert {d["name"] for d in fails[-1]["inputs"]} == {f"raw_data/companies/{ds}/companies.csv"}


def test_two_ds_with_the_same_bytes_both_publish_the_second_from_the_cache(airflow_env, stub_server):
    """The same raw bytes under two ``ds``: each partition is published; the second run pays no LLM call
    and its manifest, asset event and ``report`` name the partition whose run paid for the answers."""
    env, home, client = airflow_env
    days = ("2025-03-01", "2025-03-02")
    body = b'id,name,headquarters\nRR-1,Rerun Twin Holdings,"Boise, Idaho"\nRR-2,Second Twin Works,"Reno, Nevada"\n'
    for ds in days:
        client.put_object(Bucket="raw", Key=f"raw_data/companies/{ds}/companies.csv", Body=body)
    conf = {"topics": ["industry_classification"]}
    calls = []
    for ds in days:
        stub_server.reset()
        run = dags_test(env, ds, conf)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        calls.append(stub_server.calls)
    assert calls == [2, 0]
    first, second = (
        s3_json(client, "sanitized", f"sanitized_data/industry_classification/ds={ds}/_manifest.json") for ds in days
    )
    for m in (first, second):
        c = m["counts"]
        assert m["status"] == "published" and c["in"] == c["published"] + c["quarantined_total"] == 2
    assert first["batch_hash"] == second["batch_hash"] and first["run_id"] != second["run_id"]
    assert second["usage"]["llm_calls"] == 0 and second["usage"]["cache_hits"] == 2
    assert second["reuse"]["answers_first_paid_in"]["ds"] == days[0]
    assert second["inputs"][0]["public_uri"] == f"s3://raw/raw_data/companies/{days[1]}/companies.csv"
    extra = asset_events(home, second["run_id"])["s3://sanitized/sanitized_data/industry_classification"]
    assert extra["answers_first_paid_in"] == days[0] and extra["published"] == 2
    for ds, code in ((days[1], 0), ("2025-03-03", 1)):
        report = subprocess.run(
            [sys.executable, "-m", "pipeline_hub", "report", "--ds", ds], env=env, capture_output=True, text=True
        )
        assert report.returncode == code, report.stdout + report.stderr
    assert "nothing published for ds=2025-03-03 under s3://sanitized" in report.stderr
