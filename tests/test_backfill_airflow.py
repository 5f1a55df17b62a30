"""A backfill of two ``ds`` through the real Airflow scheduler, whose raw objects hold the same bytes.

Airflow 3.3 with the LocalExecutor on SQLite (as ``airflow standalone`` runs it): ``api-server`` (the
execution API task processes report to) and ``scheduler`` are started as subprocesses for this
module and stopped at its end; ``airflow backfill create`` queues one run per ``ds``. Both partitions
must be published, the second with 0 LLM calls (its answers from the response cache), and
``report --ds`` must find both.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import airflow_subprocess_env

pytestmark = pytest.mark.slow
DAYS = ("2025-04-01", "2025-04-02")
TOPIC = "industry_classification"
CSV = b'id,name,headquarters\nBF-1,Backfill Twin Holdings,"Boise, Idaho"\nBF-2,Backfill Twin Works,"Reno, Nevada"\n'


def airflow(env, *args, timeout=600):
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"airflow {' '.join(args)}: {proc.stdout[-3000:]} {proc.stderr[-3000:]}"
    return proc.stdout


def wait_for(what, check, timeout, procs):
    """Poll ``check()`` until truthy (returned); fail naming ``what`` and any component that exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [name for name, p in procs if p.poll() is not None]
        assert not dead, f"{dead} exited; see their logs under AIRFLOW_HOME/components/"
        try:
            value = check()
        except Exception:  # noqa: BLE001 - not ready yet (connection refused, table missing)
            value = None
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"{what}: not done after {timeout}s")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory, seaweed, stub_server):
    from pipeline_hub_dev.process import find_free_port

    home = tmp_path_factory.mktemp("airflow-backfill")
    port = find_free_port("127.0.0.1")
    env = airflow_subprocess_env(
        home,
        seaweed,
        stub_server,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(32),
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",  # only the backfill's runs, no nightly run
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
        AIRFLOW__OPENLINEAGE__DISABLED="True",
    )
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "llm_default", "2", "Prompt tasks on llm_default")
    airflow(env, "dags", "reserialize")
    logs = home / "components"
    logs.mkdir()
    procs = []
    for name in ("api-server", "scheduler"):
        out = (logs / f"{name}.log").open("ab")
        cmd = [sys.executable, "-m", "airflow", name]
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((name, proc))
    try:
        url = f"http://127.0.0.1:{port}/api/v2/version"
        wait_for("api-server", lambda: urllib.request.urlopen(url, timeout=3).status == 200, 180, procs)
        yield env, home, seaweed.client(), procs
    finally:
        for _, p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for _, p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def backfill_runs(home) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(home / "airflow.db")
    try:
        return con.execute(
            "SELECT run_id, state, logical_date FROM dag_run WHERE dag_id = 'prompt_pipeline' AND run_type = 'backfill'"
            " ORDER BY logical_date"
        ).fetchall()
    finally:
        con.close()


def test_backfill_of_two_ds_with_the_same_bytes_publishes_both(scheduler, stub_server):
    env, home, client, procs = scheduler
    for ds in DAYS:
        client.put_object(Bucket="raw", Key=f"raw_data/companies/{ds}/companies.csv", Body=CSV)
    stub_server.reset()
    airflow(env, "dags", "unpause", "prompt_pipeline")
    airflow(
        env,
        *("backfill", "create", "--dag-id", "prompt_pipeline", "--max-active-runs", "1"),
        *("--from-date", f"{DAYS[0]}T00:00:00+00:00", "--to-date", f"{DAYS[1]}T23:00:00+00:00"),
        *("--dag-run-conf", json.dumps({"topics": [TOPIC]})),
    )
    runs = wait_for(
        "two backfill runs finished",
        lambda: (r := backfill_runs(home)) and len(r) == 2 and all(s in ("success", "failed") for _, s, _ in r) and r,
        1200,
        procs,
    )
    assert [state for _, state, _ in runs] == ["success", "success"], runs
    assert [logical[:10] for _, _, logical in runs] == list(DAYS)

    manifests = [
        json.loads(
            client.get_object(Bucket="sanitized", Key=f"sanitized_data/{TOPIC}/ds={ds}/_manifest.json")["Body"].read()
        )
        for ds in DAYS
    ]
    for m in manifests:
        c = m["counts"]
        assert m["status"] == "published" and c["published"] == c["in"] == 2
    first, second = manifests
    assert first["batch_hash"] == second["batch_hash"]
    assert first["usage"]["llm_calls"] == 2 and second["usage"]["llm_calls"] == 0
    assert second["usage"]["cache_hits"] == 2 and second["reuse"]["answers_first_paid_in"]["ds"] == DAYS[0]
    assert stub_server.calls == 2  # the LLM was paid once for the two partitions
    for ds in DAYS:
        report = subprocess.run(
            [sys.executable, "-m", "pipeline_hub", "report", "--ds", ds], env=env, capture_output=True, text=True
        )
        assert report.returncode == 0 and TOPIC in report.stdout, report.stdout + report.stderr
