"""Task-count benchmark: mapped task instances per topic of a real ``airflow dags test prompt_pipeline`` run.

Run by hand, never as part of the test suite (``tests/test_chunk_streaming.py`` and
``tests/test_fanout.py`` check the chunk sizing at a few records, in seconds)::

    .venv/bin/python benchmarks/task_count.py                      # 100 000 records, industry_classification
    .venv/bin/python benchmarks/task_count.py --records 2000 100000 --json
    .venv/bin/python benchmarks/task_count.py --plan-only          # only the 1 000 000-record chunk figures

What runs, per N: :func:`scale.make_raw_zone` writes N records for the source ``companies`` (and N for
``ai_use_cases``, which the run does not read) into a temporary local raw zone; a fresh ``AIRFLOW_HOME``
(SQLite metadata DB, ``airflow db migrate``, pool ``llm_default``) runs ``airflow dags test
prompt_pipeline <ds> --conf '{"topics": ["industry_classification"]}'`` (the DAG's ``topics`` param
restricts the run to one topic and so to its source) with raw, staging and sanitized roots on local disk,
OpenLineage off, the response cache off and ``llm_default`` pointing at the in-process stub LLM
(``tests/support/stub_llm.py``, 0 s latency). Afterwards the metadata DB (``AIRFLOW_HOME/airflow.db``,
tables ``dag_run``, ``task_instance`` and ``xcom``) gives the DAG run's state and, per mapped task, the
mapped task instances (``map_index >= 0``); the ``stream_items`` XCom (the list the ``prompt`` task is
expanded over, one item per topic × chunk) attributes each ``prompt`` map index to its topic, and the
chunk stage's ``_counts.json`` in staging gives the chunk size used.

The 1 000 000-record figures run no DAG and no LLM: the ``discover``, ``hash`` and ``chunk`` stage
functions (what the DAG's tasks call) on a 1M-record ``companies`` raw zone give the real chunk size and
chunk count, and :func:`pipeline_hub.stages.chunk.max_chunks_per_source` on a plan with every topic
pending gives the per-source cap against Airflow's ``[core] max_map_length``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "plugins", REPO / "tests", REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from scale import DS, make_raw_zone  # noqa: E402

TOPIC, SOURCE = "industry_classification", "companies"


def airflow_env(home: Path, work: Path, base_url: str) -> dict[str, str]:
    """Environment of the ``airflow`` subprocesses: SQLite metadata under ``home``, the project's DAGs and
    plugins, local raw/staging/sanitized roots under ``work``, ``llm_default`` = the stub at ``base_url``."""
    from conftest import llm_conn

    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "AIRFLOW_CONN_LLM_DEFAULT": llm_conn(base_url),
        "GX_ANALYTICS_ENABLED": "False",
        "PIPELINE_HUB_INCLUDE_DIR": os.environ.get("PIPELINE_HUB_INCLUDE_DIR", str(REPO / "include")),
        "PIPELINE_HUB_RAW_URI": str(work / "raw"),
        "PIPELINE_HUB_STAGING_URI": str(work / "staging"),
        "PIPELINE_HUB_SANITIZED_URI": str(work / "out"),
        "PIPELINE_HUB_STATE_DIR": str(work / "state"),
        "PIPELINE_HUB_LLM_CACHE": "off",
        "PIPELINE_HUB_PII_KEY": os.environ.get("PIPELINE_HUB_PII_KEY", "7a" * 32),
    }


def _airflow(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def read_metadata(db: Path) -> dict[str, Any]:
    """From the Airflow metadata DB ``db`` (SQLite) of one ``prompt_pipeline`` run: ``{"run_id", "state",
    "mapped": {task_id: {"instances", "states"}}, "prompt_by_topic": {topic: n}}``.

    ``mapped`` counts task instances with ``map_index >= 0`` (a mapped task expanded over an empty list
    has one instance, ``map_index = -1``, skipped: counted as 0). ``prompt_by_topic`` attributes each
    ``prompt`` map index to the topic of the ``stream_items`` XCom item at that index.
    """
    con = sqlite3.connect(db)
    try:
        ((run_id, state),) = con.execute("SELECT run_id, state FROM dag_run WHERE dag_id = 'prompt_pipeline'")
        mapped: dict[str, dict[str, Any]] = {}
        rows = con.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = 'prompt_pipeline' AND run_id = ?",
            (run_id,),
        ).fetchall()
        mapped_ids = {t for t, i, _ in rows if i >= 0} | {"prompt", "prompt_batch", "scrub", "validate", "publish"}
        for task_id in sorted(mapped_ids):
            states = Counter(s for t, i, s in rows if t == task_id and i >= 0)
            mapped[task_id] = {"instances": sum(states.values()), "states": dict(states)}
        (value,) = con.execute(
            "SELECT value FROM xcom WHERE run_id = ? AND task_id = 'stream_items' AND key = 'return_value'",
            (run_id,),
        ).fetchone()
    finally:
        con.close()
    items = json.loads(value) if isinstance(value, str | bytes) else value
    prompted = {i for t, i, _ in rows if t == "prompt" and i >= 0}
    by_topic = Counter(item["topic"] for index, item in enumerate(items) if index in prompted)
    return {"run_id": run_id, "state": state, "mapped": mapped, "prompt_by_topic": dict(by_topic)}


def run_dag(n: int, work: Path, stub_url: str) -> dict[str, Any]:
    """Make ``n`` records per source under ``work/raw``, run ``airflow dags test`` on ``TOPIC`` and read
    the metadata DB. Returns ``{"records", "wall_s", "returncode", "chunk_counts", **read_metadata}``;
    raises ``RuntimeError`` (with the output's tail) when an ``airflow`` set-up command fails."""
    make_raw_zone(work / "raw", 2 * n)  # n for companies, n for ai_use_cases (not read by this run)
    home = work / "airflow"
    home.mkdir()
    env = airflow_env(home, work, stub_url)
    for args in (("db", "migrate"), ("pools", "set", "llm_default", "4", "Prompt tasks on llm_default")):
        proc = _airflow(env, *args)
        if proc.returncode:
            raise RuntimeError(f"airflow {' '.join(args)}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    started = time.perf_counter()
    proc = _airflow(env, "dags", "test", "--conf", json.dumps({"topics": [TOPIC]}), "prompt_pipeline", DS, timeout=7200)
    wall = time.perf_counter() - started
    (work / "dags_test.log").write_text(proc.stdout + proc.stderr)
    out = {"records": n, "wall_s": round(wall, 1), "returncode": proc.returncode}
    out.update(read_metadata(home / "airflow.db"))
    out["chunk_counts"] = {
        p.parent.name: {k: v for k, v in json.loads(p.read_text()).items() if k in ("staged", "chunk_size")}
        for p in sorted((work / "staging").glob("*/chunks/*/_counts.json"))
    }
    return out


def plan_all_topics(max_chunks: int) -> dict[str, Any]:
    """``max_chunks_per_source`` for a plan with every registered topic pending (settings ``max_chunks``),
    against Airflow's ``[core] max_map_length``: ``{"max_map_length", "per_source", "prompt_map_length"}``
    where ``prompt_map_length`` is the most items ``prompt`` can be expanded over (Σ over topics of their
    source's cap; every topic reading one source gets that source's chunks)."""
    from airflow.configuration import conf

    from pipeline_hub.prompts.registry import list_topics, load_topic
    from pipeline_hub.stages.chunk import max_chunks_per_source
    from pipeline_hub.stages.plan import RunPlan

    topics = [
        {"topic": t, "source": load_topic(t).source, "prompt_version": "v", "template_sha256": "x"}
        for t in list_topics()
    ]
    plan = RunPlan.from_dict(
        {
            "run_id": "r",
            "ds": DS,
            "row_limit": None,
            "llm_conn_id": "llm_default",
            "model": "m",
            "provider": "p",
            "settings": {"max_chunks": max_chunks},
            "started_at": "",
            "sources": {},
            "topics": topics,
        }
    )
    caps = max_chunks_per_source(plan)
    return {
        "max_chunks": max_chunks,
        "max_map_length": conf.getint("core", "max_map_length", fallback=1024),
        "per_source": caps,
        "prompt_map_length": sum(caps[t["source"]] for t in topics),
    }


def chunk_only(n: int, work: Path) -> dict[str, Any]:
    """The ``discover``, ``hash`` and ``chunk`` stages (no DAG, no LLM) on ``n`` ``companies`` records for
    ``TOPIC``: ``{"records", "staged", "chunk_size", "chunks", "largest_chunk", "wall_s"}``."""
    from pipeline_hub import stages
    from pipeline_hub.config import Settings

    make_raw_zone(work / "raw", 2 * n)
    settings = Settings.from_env(
        raw_root=str(work / "raw"), sanitized_root=str(work / "out"), staging_root=str(work / "staging")
    )
    started = time.perf_counter()
    found = stages.run_discover(settings, DS, [TOPIC], None)
    planned = stages.run_hash(settings, found, run_id="taskcount", row_limit=None, llm_conn_id="llm_default")
    items = stages.run_chunk(planned["plan_uri"])
    wall = time.perf_counter() - started
    counts = json.loads((work / "staging" / "taskcount" / "chunks" / SOURCE / "_counts.json").read_text())
    return {
        "records": n,
        "staged": counts["staged"],
        "chunk_size": counts["chunk_size"],
        "chunks": len(items),
        "largest_chunk": max(i["chunk_records"] for i in items),
        "wall_s": round(wall, 1),
    }


def report(runs: list[dict[str, Any]], million: dict[str, Any] | None, plans: list[dict[str, Any]]) -> str:
    """Markdown: one row per DAG run and topic, then the 1M chunk figures and the per-source caps."""
    out = [
        "| records | topic | DAG run | prompt TIs | scrub / validate / publish TIs | prompt_batch TIs | chunk size"
        " | dags test s |",
        "|---:|---|---|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        m = r["mapped"]
        per_topic = "/".join(str(m[t]["instances"]) for t in ("scrub", "validate", "publish"))
        size = r["chunk_counts"].get(SOURCE, {}).get("chunk_size")
        for topic, n in sorted(r["prompt_by_topic"].items()) or [(TOPIC, 0)]:
            out.append(
                f"| {r['records']:,} | {topic} | {r['state']} | {n} | {per_topic} | "
                f"{m['prompt_batch']['instances']} | {size} | {r['wall_s']} |"
            )
    if million:
        out += [
            "",
            f"chunk stage alone at {million['records']:,} records ({SOURCE} / {TOPIC}): staged {million['staged']:,}, "
            f"chunk size {million['chunk_size']:,}, {million['chunks']} chunks (largest {million['largest_chunk']:,} "
            f"records), {million['wall_s']} s",
        ]
    for p in plans:
        out.append(
            f"every topic pending, max_chunks {p['max_chunks']}: per-source cap {p['per_source']}, "
            f"prompt expanded over at most {p['prompt_map_length']} items; max_map_length {p['max_map_length']}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--records N …`` (default 100000; DAG runs), ``--million N`` (chunk stage only, default
    1000000; 0 skips), ``--plan-only`` (no DAG run), ``--json``, ``--keep DIR``. Exit 1 when a DAG run did
    not succeed or a topic has more than ``max_chunks`` (100) prompt task instances."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000], help="records per source, per DAG run")
    parser.add_argument("--million", type=int, default=1_000_000, help="records for the chunk-stage-only figures")
    parser.add_argument("--plan-only", action="store_true", help="skip the DAG runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--keep", help="work under this directory (kept) instead of a temporary one")
    opts = parser.parse_args(argv)
    from conftest import llm_conn

    os.environ.setdefault("AIRFLOW_CONN_LLM_DEFAULT", llm_conn("http://127.0.0.1:9/v1"))  # hash pins the model
    os.environ["PIPELINE_HUB_LLM_CACHE"] = "off"
    base = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="taskcount-"))
    runs: list[dict[str, Any]] = []
    try:
        if not opts.plan_only:
            from support.stub_llm import StubLLMServer

            stub = StubLLMServer(latency_s=0.0).start()
            try:
                for n in opts.records:
                    work = base / f"dag-{n}"
                    work.mkdir(parents=True)
                    runs.append(run_dag(n, work, stub.base_url))
                    r = runs[-1]
                    print(f"N={n:,}: {r['state']} in {r['wall_s']} s, {stub.calls} stub calls", file=sys.stderr)
            finally:
                stub.stop()
        million = None
        if opts.million:
            work = base / f"chunk-{opts.million}"
            work.mkdir(parents=True)
            million = chunk_only(opts.million, work)
        plans = [plan_all_topics(m) for m in (100, 1000)]
    finally:
        if not opts.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(report(runs, million, plans))
    if opts.json:
        print(json.dumps({"runs": runs, "million": million, "plans": plans}, indent=2))
    bad = [r for r in runs if r["state"] != "success" or any(n > 100 for n in r["prompt_by_topic"].values())]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
