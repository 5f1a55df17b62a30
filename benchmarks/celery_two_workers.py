"""Scale-out check: ``prompt_pipeline`` on two local Celery workers gives the in-process run's output.

Run by hand (``make scale-check``; heavy: about 10 minutes on 2 cores, not part of ``make test``)::

    .venv/bin/python benchmarks/celery_two_workers.py [--chunk-size 4] [--workers 2] [--keep]

Everything runs on 127.0.0.1, on free ports, with all state in a temporary directory (kept with
``--keep``), and is stopped at the end:

- PostgreSQL (Debian's ``postgresql``: ``initdb``/``pg_ctl``; as the ``postgres`` user when run as root)
  as Airflow's metadata database and Celery's result backend;
- Redis (Debian's ``redis-server``, no persistence) as the Celery broker;
- SeaweedFS as S3 (:class:`pipeline_hub_dev.seaweedfs.SeaweedFS`) and the stub LLM
  (:class:`support.stub_llm.StubLLMServer`, deterministic schema-valid answers) in this
  process, so nothing leaves the machine;
- Airflow 3 with ``CeleryExecutor``: ``api-server`` (the execution API task processes report to),
  ``scheduler``, ``dag-processor`` and ``--workers`` × ``airflow celery worker`` (concurrency 2 each).
  The pools come from ``infra/airflow/pools.json`` (what docker-compose's airflow-init imports) and the
  response cache is the shared S3 backend (``PIPELINE_HUB_LLM_CACHE=s3://aws_default@raw/llm-cache``).

It seeds the bundled sample under ``raw_data/<source>/<ds>/``, triggers ``prompt_pipeline`` with
``airflow dags trigger`` (``airflow dags test`` would bypass the executor), waits for the run, then runs
``pipeline-hub run`` (in-process, its own empty cache) over the same raw objects and compares, per topic:
the published rows without the run-specific ``run_id`` (sorted by ``record_id``), the quarantined
``(record_id, reason)`` pairs, the manifest's counts and batch hash. It prints a JSON report (also written
to ``<workdir>/result.json``) with the task instances each worker received, and exits 1 when the outputs
differ or the DAG run fails.

Requires the ``scale`` extra (``apache-airflow-providers-celery``, ``psycopg2-binary``) and
``apt-get install postgresql redis-server``. Sources: Airflow's Celery executor documentation
(https://airflow.apache.org/docs/apache-airflow-providers-celery/stable/celery_executor.html) and its
official docker-compose.yaml, which runs the same set of components.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DS = "2025-01-15"
TOPICS = ("industry_classification", "use_case_extraction", "contact_extraction", "company_matching")
RUN_SPECIFIC = {"run_id"}  # columns that differ between any two runs by design
HOST = "127.0.0.1"


class ScaleCheckError(RuntimeError):
    """A component did not start, or the DAG run did not finish; the message names the log to read."""


# --------------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Processes this script started (each leads its own session); stopped in reverse order by pid."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], user: str | None = None) -> subprocess.Popen:
        """Start ``cmd`` with stdout+stderr to ``<logs>/<name>.log``; as ``user`` via runuser if given."""
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def check_alive(self) -> None:
        """Raise :class:`ScaleCheckError` naming the first started process that has exited."""
        for name, proc in self.started:
            if proc.poll() is not None:
                raise ScaleCheckError(f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM each process group (Celery warm shutdown), then SIGKILL what is left after ``timeout``."""
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for _, proc in reversed(self.started):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)


def wait_for(what: str, check, timeout: float, procs: Processes | None = None, every: float = 1.0) -> Any:
    """Call ``check()`` until it returns a truthy value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs:
            procs.check_alive()
        try:
            value = check()
        except Exception:  # noqa: BLE001 - not ready yet (connection refused, table missing, ...)
            value = None
        if value:
            return value
        time.sleep(every)
    raise ScaleCheckError(f"{what}: not ready after {timeout:.0f}s")


def free_port() -> int:
    from pipeline_hub_dev.process import find_free_port

    return find_free_port(HOST)


# --------------------------------------------------------------------------------------------------
# PostgreSQL and Redis from Debian's packages


def postgres_bindir() -> Path:
    """Directory of ``initdb``/``pg_ctl``: on PATH, else the newest ``/usr/lib/postgresql/<v>/bin``."""
    if found := shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise ScaleCheckError("initdb not found: apt-get install -y postgresql")
    return Path(candidates[-1]).parent


def start_postgres(work: Path, procs: Processes) -> tuple[str, int]:
    """initdb + postgres on a free loopback port (trust auth, user ``airflow``, database ``airflow``).

    Returns ``(sqlalchemy url, port)``. As root the server runs as the ``postgres`` system user.
    """
    import psycopg2

    bindir = postgres_bindir()
    data, sock = work / "postgres" / "data", work / "postgres" / "run"
    sock.mkdir(parents=True)
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        for path in (work / "postgres", sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    env = {**os.environ, "LC_ALL": "C"}
    init = ["runuser", "-u", user, "--"] if user else []
    subprocess.run(
        [*init, str(bindir / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--locale=C"],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    procs.start(
        "postgres",
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sock),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=off",
        ],
        env,
        user=user,
    )

    def ready() -> bool:
        psycopg2.connect(host=HOST, port=port, user="airflow", dbname="postgres").close()
        return True

    wait_for("postgres", ready, 60, procs)
    conn = psycopg2.connect(host=HOST, port=port, user="airflow", dbname="postgres")
    conn.autocommit = True
    conn.cursor().execute("CREATE DATABASE airflow")
    conn.close()
    return f"postgresql+psycopg2://airflow@{HOST}:{port}/airflow", port


def start_redis(work: Path, procs: Processes) -> int:
    """redis-server on a free loopback port, no persistence, data dir under ``work``."""
    binary = shutil.which("redis-server")
    if not binary:
        raise ScaleCheckError("redis-server not found: apt-get install -y redis-server")
    import redis

    port = free_port()
    (work / "redis").mkdir()
    procs.start(
        "redis",
        [
            binary,
            "--bind",
            HOST,
            "--port",
            str(port),
            "--dir",
            str(work / "redis"),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        dict(os.environ),
    )
    wait_for("redis", lambda: redis.Redis(host=HOST, port=port).ping(), 30, procs)
    return port


# --------------------------------------------------------------------------------------------------
# The two runs


def llm_conn(base_url: str) -> str:
    """``AIRFLOW_CONN_LLM_DEFAULT`` for the stub (llama.cpp dialect), as the tests configure it."""
    return json.dumps(
        {
            "conn_type": "openai",
            "host": base_url,
            "password": "sk-test",
            "extra": {"model": "stub-model", "structured_output": "json_object_schema", "max_concurrency": 4},
        }
    )


def base_env(work: Path, s3, stub_url: str, chunk_size: int) -> dict[str, str]:
    """Settings both runs share: the S3 and LLM connections, the raw root, the PII key, the chunk size."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH")])),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(s3.airflow_connection()),
        "AIRFLOW_CONN_LLM_DEFAULT": llm_conn(stub_url),
        "PIPELINE_HUB_RAW_URI": "s3://aws_default@raw/raw_data",
        "PIPELINE_HUB_STAGING_URI": "s3://aws_default@raw/staging",
        "PIPELINE_HUB_INCLUDE_DIR": str(REPO / "include"),
        "PIPELINE_HUB_PII_KEY": "5c" * 32,
        "PIPELINE_HUB_CHUNK_SIZE": str(chunk_size),
        "GX_ANALYTICS_ENABLED": "False",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        # The in-process run reads connections from the environment; keep any Airflow state it makes here.
        "AIRFLOW_HOME": str(work / "airflow-in-process"),
    }
    for name in ("PIPELINE_HUB_SANITIZED_URI", "PIPELINE_HUB_LLM_CACHE", "PIPELINE_HUB_LLM_POOL"):
        env.pop(name, None)
    return env


def celery_env(base: dict[str, str], work: Path, db_url: str, redis_port: int, api_port: int) -> dict[str, str]:
    """Airflow on Postgres + Redis with CeleryExecutor, for every component."""
    db_host_port = db_url.split("@", 1)[1].split("/", 1)[0]
    return {
        **base,
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{HOST}:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@{db_host_port}/airflow",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        # Only the run this script triggers: no scheduled (nightly) runs of the unpaused DAG.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "PIPELINE_HUB_SANITIZED_URI": "s3://aws_default@sanitized",
        # The shared cache backend, as with many workers in production.
        "PIPELINE_HUB_LLM_CACHE": "s3://aws_default@raw/llm-cache",
    }


def airflow(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run one ``airflow`` CLI command to completion; raise with its output on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode:
        raise ScaleCheckError(f"airflow {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def run_celery(
    work: Path, env: dict[str, str], procs: Processes, workers: int, db_port: int, timeout: float
) -> dict[str, Any]:
    """Start the Airflow components, trigger prompt_pipeline for DS, wait; return the run's summary."""
    import psycopg2

    airflow(env, "db", "migrate", timeout=600)
    airflow(env, "pools", "import", str(REPO / "infra" / "airflow" / "pools.json"))
    procs.start("api-server", [sys.executable, "-m", "airflow", "api-server", "--workers", "1"], env)
    procs.start("dag-processor", [sys.executable, "-m", "airflow", "dag-processor"], env)
    procs.start("scheduler", [sys.executable, "-m", "airflow", "scheduler"], env)
    for i in range(1, workers + 1):
        procs.start(
            f"worker{i}",
            [
                *(sys.executable, "-m", "airflow", "celery", "worker"),
                *("--celery-hostname", f"worker{i}@%h", "--concurrency", "2", "--skip-serve-logs"),
            ],
            env,
        )

    def query(sql: str, *params: Any) -> list[tuple]:
        conn = psycopg2.connect(host=HOST, port=db_port, user="airflow", dbname="airflow")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    wait_for(
        "prompt_pipeline parsed by the dag-processor",
        lambda: query("SELECT 1 FROM serialized_dag WHERE dag_id = 'prompt_pipeline'"),
        300,
        procs,
        every=3,
    )
    api = f"http://{HOST}:{env['AIRFLOW__API__PORT']}/api/v2/version"
    wait_for("api-server", lambda: __import__("urllib.request").request.urlopen(api, timeout=3).status == 200, 120)
    wait_for(
        f"{workers} Celery workers",
        lambda: all(
            "ready." in (work / "logs" / f"worker{i}.log").read_text(errors="replace") for i in range(1, workers + 1)
        ),
        180,
        procs,
    )
    airflow(env, "dags", "unpause", "prompt_pipeline")
    run_id = f"scale_check__{int(time.time())}"
    started = time.monotonic()
    airflow(env, "dags", "trigger", "prompt_pipeline", "--run-id", run_id, "--conf", json.dumps({"ds": DS}))
    state = wait_for(
        f"DAG run {run_id}",
        lambda: next(
            (s for (s,) in query("SELECT state FROM dag_run WHERE run_id = %s", run_id) if s in ("success", "failed")),
            None,
        ),
        timeout,
        procs,
        every=5,
    )
    elapsed = time.monotonic() - started
    tis = query(
        "SELECT task_id, map_index, state, pool, executor FROM task_instance WHERE run_id = %s"
        " ORDER BY task_id, map_index",
        run_id,
    )
    received = {
        f"worker{i}": len(
            re.findall(r"Task \S+\[[0-9a-f-]+\] received", (work / "logs" / f"worker{i}.log").read_text())
        )
        for i in range(1, workers + 1)
    }
    return {
        "run_id": run_id,
        "state": state,
        "seconds": round(elapsed, 1),
        "task_instances": len(tis),
        "task_states": dict(Counter(s for _, _, s, _, _ in tis)),
        "prompt_task_pools": sorted({p for t, _, _, p, _ in tis if t == "prompt"}),
        "tasks_received_per_worker": received,
    }


def run_in_process(env: dict[str, str], out: Path, chunk_size: int) -> dict[str, Any]:
    """``pipeline-hub run`` over the same raw objects into ``out`` (own disk cache); its JSON summary."""
    env = {**env, "PIPELINE_HUB_LLM_CACHE": f"disk:{out.parent / 'inprocess-cache'}"}
    started = time.monotonic()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pipeline_hub", "run", "--input", env["PIPELINE_HUB_RAW_URI"]),
            *("--output", str(out), "--ds", DS, "--chunk-size", str(chunk_size)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode:
        raise ScaleCheckError(f"pipeline-hub run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lines = proc.stdout.splitlines()  # the summary is the last top-level JSON object printed
    start = max(i for i, line in enumerate(lines) if line == "{")
    summary = json.loads("\n".join(lines[start:]))
    return {
        "run_id": summary["run_id"],
        "seconds": round(time.monotonic() - started, 1),
        "published": {p["topic"]: p["published"] for p in summary["published"]},
        "failed": summary["failed"],
    }


# --------------------------------------------------------------------------------------------------
# Comparison


def _rows(data: bytes | None, drop: set[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    if data is None:
        return []
    table = pq.read_table(io.BytesIO(data))
    table = table.drop_columns([c for c in table.column_names if c in drop])
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def topic_output(read, topic: str) -> dict[str, Any]:
    """Published rows (minus run-specific columns), quarantined (record_id, reason) and manifest facts.

    ``read(relative_key)`` returns the object's bytes or None; keys are relative to the sanitized root.
    """
    manifest_raw = read(f"sanitized_data/{topic}/ds={DS}/_manifest.json")
    manifest = json.loads(manifest_raw) if manifest_raw else {}
    quarantine = _rows(read(f"quarantine/{topic}/ds={DS}/part-00000.parquet"), set())
    return {
        "rows": _rows(read(f"sanitized_data/{topic}/ds={DS}/part-00000.parquet"), RUN_SPECIFIC),
        "quarantined": sorted((r.get("record_id"), r.get("reason")) for r in quarantine),
        "counts": manifest.get("counts"),
        "batch_hash": manifest.get("batch_hash"),
        "status": manifest.get("status"),
    }


def compare(celery_read, local_read) -> dict[str, Any]:
    """Per topic: equal or not, and the counts of both runs."""
    report: dict[str, Any] = {}
    for topic in TOPICS:
        a, b = topic_output(celery_read, topic), topic_output(local_read, topic)
        report[topic] = {
            "equal": a == b,
            "published": len(a["rows"]),
            "quarantined": len(a["quarantined"]),
            "counts_celery": a["counts"],
            "counts_in_process": b["counts"],
            "differs_in": sorted(k for k in a if a[k] != b[k]),
        }
    return report


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--chunk-size", type=int, default=4, help="records per chunk: more mapped prompt tasks")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds to wait for the DAG run")
    parser.add_argument("--workdir", type=Path, default=None, help="state directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    args = parser.parse_args(argv)

    sys.path[:0] = [str(REPO / "plugins"), str(REPO / "tests")]  # the package; tests/ for support.stub_llm
    from pipeline_hub_dev.seaweedfs import SeaweedFS

    from support.stub_llm import StubLLMServer

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="scale-check-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o711)  # the postgres user must reach its data directory below
    (work / "logs").mkdir(exist_ok=True)
    procs = Processes(work / "logs")
    stub = StubLLMServer()
    s3 = SeaweedFS(work / "s3", buckets=("raw", "sanitized"), log_path=work / "logs" / "seaweedfs.log")
    result: dict[str, Any] = {"workdir": str(work), "workers": args.workers, "chunk_size": args.chunk_size, "ds": DS}
    try:
        stub.start()
        s3.start()
        s3.wait_ready(60)
        db_url, db_port = start_postgres(work, procs)
        redis_port = start_redis(work, procs)
        base = base_env(work, s3, stub.base_url, args.chunk_size)
        subprocess.run(
            [sys.executable, "-m", "pipeline_hub", "seed", "--ds", DS], env=base, check=True, capture_output=True
        )

        env = celery_env(base, work, db_url, redis_port, free_port())
        stub.reset()
        result["celery"] = run_celery(work, env, procs, args.workers, db_port, args.timeout)
        result["celery"]["llm_calls"] = stub.calls
        procs.stop_all()

        stub.reset()
        result["in_process"] = run_in_process(base, work / "inprocess", args.chunk_size)
        result["in_process"]["llm_calls"] = stub.calls

        client = s3.client()

        def celery_read(key: str) -> bytes | None:
            try:
                return client.get_object(Bucket="sanitized", Key=key)["Body"].read()
            except client.exceptions.NoSuchKey:
                return None

        def local_read(key: str) -> bytes | None:
            path = work / "inprocess" / key
            return path.read_bytes() if path.exists() else None

        result["topics"] = compare(celery_read, local_read)
        result["equal"] = result["celery"]["state"] == "success" and all(t["equal"] for t in result["topics"].values())
    finally:
        procs.stop_all()
        s3.stop()
        stub.stop()
        (work / "result.json").write_text(json.dumps(result, indent=2, default=str))
        if not args.keep and result.get("equal"):
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result.get("equal") else 1


if __name__ == "__main__":
    sys.exit(main())
