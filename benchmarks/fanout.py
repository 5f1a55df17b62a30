"""Fan-out benchmark: how close one prompt task's LLM caller gets to the throughput limit.

Run by hand, never as part of the test suite (``tests/test_benchmark_smoke.py`` only checks behaviour)::

    .venv/bin/python benchmarks/fanout.py                        # every scenario, defaults below (~3 min)
    .venv/bin/python benchmarks/fanout.py --scenario faults --records 500 --json

What runs: the stub OpenAI-compatible server (:class:`support.stub_llm.StubLLMServer`) in a
child process of its own (so its threads do not share our GIL), answering every chat request after a
fixed latency, optionally with a server-side requests-per-minute limit (429 beyond it) and injected
faults. N distinct records of the ``industry_classification`` topic go through
:func:`pipeline_hub.stages.prompt.prompt_records` — the code one ``prompt`` task of the DAG runs: asyncio,
at most ``max_concurrency`` requests in flight, the connection's ``requests_per_minute`` pacing, retries
with full jitter honouring ``Retry-After``, one repair request for an invalid answer, quarantine with a
reason — over an ``openai`` Airflow connection given as ``AIRFLOW_CONN_LLM_BENCH``.

What is measured, per scenario:

* achieved records/s = N / wall-clock seconds of ``prompt_records``;
* ideal records/s = min(concurrency / latency, RPM / 60): with every one of ``concurrency`` slots always
  busy with a request taking ``latency`` seconds, no client can do better, nor faster than the rate
  limit allows; their ratio (achieved / ideal);
* calls the stub received and the HTTP statuses it sent (429s included), published / quarantined
  records by reason and whether they add up to N;
* CPU milliseconds per record in the benchmark process (the client: one task's event loop on one
  core) and per call in the stub process, to tell a CPU-bound client from a slow server.

Scenarios (defaults; every number is a flag):

``throughput``
    2 000 records, 200 ms latency, concurrency 32, no rate limit: ideal 32 / 0.2 = 160 records/s.
    Uses a disk response cache in a temporary directory, as a deployment does (the default).
``aiohttp``
    the floor client, for comparison in the same run: the same records' request bodies (rendered by the
    topic's template, built before the clock starts) sent by a minimal ``aiohttp`` client — one
    ``ClientSession``, ``concurrency`` worker coroutines, ``json()`` of each answer and ``json.loads`` of
    its content, no retries, validation, cache or accounting — to a fresh stub with the same latency.
    What it reaches is what the event loop, the HTTP stack and the stub allow; ``vs aiohttp`` in the
    table is each row's ratio over this one's. ``--repeat K`` runs ``throughput`` and ``aiohttp``
    alternately K times (machine load drifts; the table then shows each run and the medians).
``rpm``
    600 records (about 60 s), same latency and concurrency, RPM limit 600 on the stub and in the
    connection: ideal 600 / 60 = 10 records/s; the stub's 429s show whether we provoked any.
``faults``
    2 000 records, 10 % of calls answered 429 and 10 % 500 (20 % failing), 5 % malformed (truncated)
    answers: every record must end published or quarantined with a reason.
``rerun``
    the ``throughput`` records again with the same cache against a fresh stub: expect zero calls.
``mapped``
    for comparison, M = 50 records as one mapped Airflow task per record — the pattern of ``@task.llm``
    with ``.expand`` — each task instance one synchronous call through ``LLMHook.get_conn()``, run by
    ``dag.test()`` on a throw-away SQLite metadata database. ``dag.test()`` runs task instances one
    after another, so its ideal is 1 / latency; the per-task overhead it reports is what each task
    instance costs beyond its call.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The project's package, and tests/ for the stub server (support.stub_llm).
for _path in (REPO / "plugins", REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

CONN_ID = "llm_bench"
TOPIC = "industry_classification"
SCENARIOS = ("throughput", "aiohttp", "rpm", "faults", "rerun", "mapped")
# Loggers that write one line per HTTP request at INFO: kept quiet so the table stays readable.
CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai")


# --- the stub, in a process of its own ------------------------------------------------------------------


# The child: a StubLLMServer started from a JSON config (argv[1]); prints its base URL, then answers each
# "stats" line on stdin with one JSON line; stops at "stop" or end of input.
STUB_SERVER = textwrap.dedent(
    """
    import json, sys, time
    from support.stub_llm import FaultPlan, StubLLMServer

    config = json.loads(sys.argv[1])
    plan = FaultPlan(seed=config["seed"], **config["faults"])
    server = StubLLMServer(
        port=config["port"], latency_s=config["latency_s"], rpm_limit=config["rpm_limit"], fault_plan=plan
    )
    # The span of the chat requests answered since the previous "stats": first arrival, last answer (s).
    # A request without messages (a client probing rate-limit headers) is counted apart, not in the span.
    span, probes = [], [0]
    chat = server.chat

    def timed_chat(body):
        started = time.monotonic()
        try:
            return chat(body)
        finally:
            if body.get("messages"):
                span.append((started, time.monotonic()))
            else:
                probes[0] += 1

    server.chat = timed_chat
    server.start()
    print(server.base_url, flush=True)
    for line in sys.stdin:
        if line.strip() != "stats":
            break
        with server._lock:
            stats = {"calls": server.calls, "by_status": {str(k): v for k, v in server.calls_by_status.items()}}
            done, span[:] = list(span), []
        window = max(e for _, e in done) - min(s for s, _ in done) if done else 0.0
        stats["probes"] = probes[0]
        print(json.dumps({**stats, "cpu_s": time.process_time(), "span_s": window}), flush=True)
    server.stop()
    """
)


class StubProcess:
    """The stub server in a child process: ``base_url``, ``stats()``; use as a context manager.

    A process of its own, so the server's threads do not compete with the client for one GIL.
    ``faults`` are :class:`~support.stub_llm.FaultPlan` fields (``rate_429``, ``rate_500``,
    ``rate_malformed``, ``rate_timeout``, ``retry_after_s``); ``rpm_limit`` answers 429 beyond that many
    requests in 60 s. ``port`` 0 picks a free one; pass a fixed port to get the same base URL again (it is
    part of the response-cache key).
    """

    def __init__(
        self, latency_s: float = 0.0, rpm_limit: int | None = None, seed: int = 0, port: int = 0, **faults: float
    ) -> None:
        self.config = {"port": port, "latency_s": latency_s, "rpm_limit": rpm_limit, "seed": seed, "faults": faults}
        self.base_url = ""

    def __enter__(self) -> StubProcess:
        paths = [str(REPO / "plugins"), str(REPO / "tests"), os.environ.get("PYTHONPATH")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        self._proc = subprocess.Popen(
            [sys.executable, "-c", STUB_SERVER, json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.__exit__()
            raise RuntimeError(f"the stub LLM process did not start (exit code {self._proc.returncode})")
        return self

    def stats(self) -> dict[str, Any]:
        """``{"calls", "by_status": {"200": n, ...}, "cpu_s", "span_s"}`` so far (chat requests, statuses sent, CPU;
        ``span_s``: from the first chat request's arrival to the last one's answer since the previous call;
        ``probes``: requests without messages so far, e.g. a client reading rate-limit headers)."""
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())

    def __exit__(self, *exc) -> None:
        try:
            self._proc.stdin.write("stop\n")
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait(5)
        self._proc.stdout.close()


# --- the fan-out -----------------------------------------------------------------------------------------


def connection_json(
    base_url: str, concurrency: int, rpm: int | None = None, max_retries: int = 6, timeout: float = 30
) -> str:
    """``AIRFLOW_CONN_*`` JSON of an ``openai`` connection to the stub with these limits."""
    extra: dict[str, Any] = {
        "model": "stub-model",
        "structured_output": "json_schema",
        "max_concurrency": concurrency,
        "max_retries": max_retries,
        "timeout": timeout,
    }
    if rpm:
        extra["requests_per_minute"] = rpm
    return json.dumps({"conn_type": "openai", "host": base_url, "password": "sk-bench-stub", "extra": extra})


def make_records(n: int, prefix: str = "Company") -> list[dict[str, Any]]:
    """``n`` distinct company records (distinct, so the in-batch dedup does not collapse them)."""
    return [
        {
            "record_id": str(i),
            "source_uri": "file:///bench/companies.csv",
            "position": i + 2,
            "fields": {"name": f"{prefix} {i}", "headquarters": f"City {i % 97}"},
        }
        for i in range(n)
    ]


def ideal_rate(concurrency: int, latency_s: float, rpm: int | None = None) -> float | None:
    """min(concurrency / latency, RPM / 60) in records/s; None when neither bounds it (no latency, no RPM)."""
    bounds = [concurrency / latency_s] if latency_s > 0 else []
    if rpm:
        bounds.append(rpm / 60)
    return min(bounds) if bounds else None


def outcome_counts(records: list[dict], results: list[dict]) -> dict[str, Any]:
    """Published / quarantined (by reason) counts of ``results`` and whether they account for every record.

    ``conserved`` holds when each input record has exactly one result, each result is ``ok`` or
    ``quarantined`` with a non-empty reason, and published + quarantined == records.
    """
    statuses = Counter(r.get("status") for r in results)
    reasons = Counter(r.get("reason") or "(no reason)" for r in results if r.get("status") == "quarantined")
    published, quarantined = statuses.get("ok", 0), statuses.get("quarantined", 0)
    conserved = (
        sorted(r["record_id"] for r in results) == sorted(r["record_id"] for r in records)
        and published + quarantined == len(records)
        and "(no reason)" not in reasons
    )
    return {
        "published": published,
        "quarantined": quarantined,
        "quarantined_by_reason": dict(sorted(reasons.items())),
        "conserved": conserved,
        "published_pct": round(100 * published / len(records), 2) if records else None,
    }


def quiet_logs() -> None:
    """Silence per-request INFO lines of the HTTP client (they would flood the output)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def rate_row(
    n: int, elapsed: float, ideal: float | None, before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """The rate and HTTP columns of a row: ``n`` records in ``elapsed`` s against ``ideal`` records/s, and
    the calls and statuses the stub counted between its ``before`` and ``after`` stats."""
    calls = after["calls"] - before["calls"]
    by_status = {k: v - before["by_status"].get(k, 0) for k, v in sorted(after["by_status"].items())}
    achieved = n / elapsed if elapsed > 0 else None
    return {
        "records": n,
        "seconds": round(elapsed, 2),
        "records_per_s": round(achieved, 1) if achieved else None,
        "ideal_per_s": round(ideal, 1) if ideal else None,
        "ratio": round(achieved / ideal, 3) if achieved and ideal else None,
        "calls": calls,
        "calls_per_record": round(calls / n, 3) if n else None,
        "http_status": {k: v for k, v in by_status.items() if v},
        "http_429": by_status.get("429", 0),
    }


def run_fanout(
    records: list[dict],
    *,
    latency_s: float,
    concurrency: int,
    rpm: int | None = None,
    stub_rpm: int | None = None,
    faults: dict[str, float] | None = None,
    cache_dir: str | None = None,
    max_retries: int = 6,
    seed: int = 0,
    port: int = 0,
) -> dict[str, Any]:
    """Send ``records`` through ``prompt_records`` against a fresh stub; return the measured row.

    ``rpm`` is the connection's ``requests_per_minute`` (client-side pacing), ``stub_rpm`` the stub's
    limit (429 beyond it); ``cache_dir`` a disk response cache (None: no cache). The cache key holds the
    connection's base URL, so a rerun meant to hit the cache needs the same ``port``. A chunk that
    raises (retries exhausted) is reported in ``error`` instead of counts.
    """
    from pipeline_hub.prompts.registry import load_topic
    from pipeline_hub.providers import LLMHook
    from pipeline_hub.providers.cache import open_cache
    from pipeline_hub.stages.prompt import prompt_records

    quiet_logs()
    topic = load_topic(TOPIC)
    cache = open_cache(f"disk:{cache_dir}" if cache_dir else "off")
    error, results, stats = None, [], None
    env_name = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    previous = os.environ.get(env_name)
    with StubProcess(latency_s, stub_rpm, seed, port, **(faults or {})) as stub:
        os.environ[env_name] = connection_json(stub.base_url, concurrency, rpm, max_retries)
        try:
            hook = LLMHook(CONN_ID)
            before = stub.stats()
            cpu, started = time.process_time(), time.perf_counter()
            try:
                results, stats = prompt_records(hook, topic, records, cache=cache)
            except Exception as exc:  # a chunk that gives up raises: report it, do not hide it
                error = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            after = stub.stats()
        finally:
            if previous is None:
                os.environ.pop(env_name, None)
            else:
                os.environ[env_name] = previous
    calls = after["calls"] - before["calls"]
    ideal = ideal_rate(concurrency, latency_s, min(filter(None, (rpm, stub_rpm)), default=None))
    row: dict[str, Any] = {
        **rate_row(len(records), elapsed, ideal, before, after),
        **outcome_counts(records, results),
        "cache_hits": stats.cache_hits if stats else None,
        "client_calls": stats.calls if stats else None,
        # Mean time inside the hook per paid request (stub latency + client queueing + backoff waits).
        "call_ms_mean": round(1000 * stats.latency_s / stats.calls, 1) if stats and stats.calls else None,
        "client_cpu_ms_per_record": round(1000 * cpu / len(records), 2) if records else None,
        "stub_cpu_ms_per_call": round(1000 * (after["cpu_s"] - before["cpu_s"]) / calls, 2) if calls else None,
        "error": error,
    }
    if error:
        row["conserved"] = False
    return row


# --- the floor: a minimal aiohttp client ----------------------------------------------------------------


def request_bodies(records: list[dict], model: str = "stub-model") -> list[dict[str, Any]]:
    """The chat-completions bodies ``prompt_records`` sends for ``records`` (first attempt, ``json_schema``)."""
    from pipeline_hub.prompts.registry import load_topic
    from pipeline_hub.providers.structured import response_format
    from pipeline_hub.stages.prompt_inputs import build_variables

    topic = load_topic(TOPIC)
    schema_format = response_format(topic.prompt.output_schema, topic.name, "json_schema")
    bodies = []
    for record in records:
        variables, _, _ = build_variables(topic, record)
        messages = topic.prompt.render(variables)
        bodies.append(
            {**topic.prompt.model_params, "model": model, "messages": messages, "response_format": schema_format}
        )
    return bodies


async def aiohttp_fanout(base_url: str, bodies: list[dict[str, Any]], concurrency: int) -> int:
    """POST every body to ``base_url``/chat/completions, ``concurrency`` at a time; return the JSON answers.

    ``concurrency`` workers share one ``aiohttp.ClientSession`` (its connector limited to as many
    connections) and take bodies one at a time. No retries: a failed request raises.
    """
    import aiohttp

    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": "Bearer sk-bench-stub"}
    pending = iter(bodies)
    answers = 0

    async def worker(http) -> None:
        nonlocal answers
        for body in pending:
            async with http.post(url, json=body, headers=headers) as response:
                response.raise_for_status()
                data = await response.json()
            json.loads(data["choices"][0]["message"]["content"])
            answers += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(bodies))):
                group.create_task(worker(http))
    return answers


def run_aiohttp(records: list[dict], *, latency_s: float, concurrency: int, seed: int = 0, **_: Any) -> dict[str, Any]:
    """``records``' request bodies through :func:`aiohttp_fanout` against a fresh stub; the measured row."""
    bodies = request_bodies(records)
    error, answers = None, 0
    with StubProcess(latency_s, seed=seed) as stub:
        before = stub.stats()
        cpu, started = time.process_time(), time.perf_counter()
        try:
            answers = asyncio.run(aiohttp_fanout(stub.base_url, bodies, concurrency))
        except Exception as exc:  # report it, do not hide it
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        after = stub.stats()
    calls = after["calls"] - before["calls"]
    return {
        **rate_row(len(records), elapsed, ideal_rate(concurrency, latency_s), before, after),
        "published": answers,
        "quarantined": 0,
        "quarantined_by_reason": {},
        "conserved": answers == len(records) and error is None,
        "published_pct": round(100 * answers / len(records), 2) if records else None,
        "client_cpu_ms_per_record": round(1000 * cpu / len(records), 2) if records else None,
        "stub_cpu_ms_per_call": round(1000 * (after["cpu_s"] - before["cpu_s"]) / calls, 2) if calls else None,
        "error": error,
    }


# --- one mapped task per record --------------------------------------------------------------------------

MAPPED_DAG = textwrap.dedent(
    '''
    """One mapped task instance per record, one synchronous call each: the ``@task.llm`` + ``.expand`` pattern."""
    import os

    import pendulum
    from airflow.sdk import dag, task


    @dag(dag_id="bench_mapped", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
    def bench_mapped():
        @task
        def records() -> list[int]:
            return list(range(int(os.environ["BENCH_MAPPED_RECORDS"])))

        @task
        def classify(i: int) -> str:
            import json

            import jsonschema

            from pipeline_hub.stages.prompt_inputs import build_variables
            from pipeline_hub.providers import LLMHook
            from pipeline_hub.prompts.registry import load_topic

            topic = load_topic("industry_classification")
            hook = LLMHook(os.environ["BENCH_CONN_ID"])
            record = {"fields": {"name": f"Company {i}", "headquarters": f"City {i % 97}"}}
            variables, _, _ = build_variables(topic, record)
            schema = topic.prompt.output_schema
            response = hook.get_conn().chat.completions.create(
                model=hook.model,
                messages=topic.prompt.render(variables),
                extra_body={"response_format": hook.response_format(schema, topic.name)},
                **topic.prompt.model_params,
            )
            jsonschema.validate(json.loads(response.choices[0].message.content), schema)
            return "ok"

        classify.expand(i=records())


    DAG = bench_mapped()
    '''
)

MAPPED_RUNNER = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    spec = importlib.util.spec_from_file_location("bench_mapped", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = time.perf_counter()
    run = module.DAG.test()
    print("BENCH_RESULT " + json.dumps({"seconds": time.perf_counter() - started, "state": str(run.state)}))
    """
)


def run_mapped(m: int, *, latency_s: float, seed: int = 0) -> dict[str, Any]:
    """``m`` records as ``m`` mapped task instances of a throw-away DAG under ``dag.test()``; the measured row.

    Airflow runs in a child process with ``AIRFLOW_HOME`` in a temporary directory (SQLite, migrated
    first); records/s counts the whole ``dag.test()``, the per-task overhead is the mapped task
    instances' span / m minus the call latency.
    """
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as home, StubProcess(latency_s, seed=seed) as stub:
        dags = Path(home) / "dags"
        dags.mkdir()
        (dags / "bench_mapped.py").write_text(MAPPED_DAG)
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            f"AIRFLOW_CONN_{CONN_ID.upper()}": connection_json(stub.base_url, 1),
            "BENCH_CONN_ID": CONN_ID,
            "BENCH_MAPPED_RECORDS": str(m),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH")])),
        }
        migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True)
        if migrate.returncode:
            output = migrate.stdout.decode()[-3000:] + migrate.stderr.decode()[-3000:]
            raise RuntimeError("airflow db migrate failed:\n" + output)
        before = stub.stats()
        run = subprocess.run(
            [sys.executable, "-c", MAPPED_RUNNER, str(dags / "bench_mapped.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=max(600, 10 * m),
        )
        after = stub.stats()
        marker = next((line for line in run.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
        if run.returncode or marker is None:
            raise RuntimeError("dag.test() failed:\n" + run.stdout[-3000:] + run.stderr[-3000:])
        result = json.loads(marker.removeprefix("BENCH_RESULT "))
        db = sqlite3.connect(Path(home) / "airflow.db")
        try:
            states = dict(
                db.execute("SELECT state, count(*) FROM task_instance WHERE task_id = 'classify' GROUP BY state")
            )
            first, last = db.execute(
                "SELECT min(start_date), max(end_date) FROM task_instance WHERE task_id = 'classify'"
            ).fetchone()
        finally:
            db.close()
    if not (first and last):
        raise RuntimeError(f"dag.test() ran no mapped task instance (DAG run {result['state']})")
    span = (datetime.datetime.fromisoformat(last) - datetime.datetime.fromisoformat(first)).total_seconds()
    calls = after["calls"] - before["calls"]
    ideal = ideal_rate(1, latency_s)
    achieved = m / result["seconds"]
    return {
        "records": m,
        "seconds": round(result["seconds"], 2),
        "records_per_s": round(achieved, 2),
        "ideal_per_s": round(ideal, 1) if ideal else None,
        "ratio": round(achieved / ideal, 3) if ideal else None,
        "calls": calls,
        "http_status": {k: v - before["by_status"].get(k, 0) for k, v in sorted(after["by_status"].items())},
        "http_429": after["by_status"].get("429", 0) - before["by_status"].get("429", 0),
        "published": states.get("success", 0),
        "quarantined": 0,
        "quarantined_by_reason": {},
        "conserved": states.get("success", 0) == m,
        "published_pct": round(100 * states.get("success", 0) / m, 2),
        "dag_state": result["state"],
        "task_states": states,
        "mapped_span_s": round(span, 2),
        "per_task_overhead_ms": round(1000 * (span / m - latency_s), 1),
        "error": None,
    }


# --- command line ----------------------------------------------------------------------------------------


def run_scenarios(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Run the chosen scenarios in order (``rerun`` first runs ``throughput`` if it was not chosen).

    With ``args.repeat`` K > 1, ``throughput`` and ``aiohttp`` (those chosen) run alternately K times, each
    ``throughput`` on a fresh cache; the rows are ``<name> #k`` plus ``<name> (median)``. Every row with a
    ratio gets ``vs_aiohttp``: its ratio over the (median) ``aiohttp`` ratio of this run.
    """
    chosen = [s for s in SCENARIOS if s in set(args.scenario or SCENARIOS)]
    faults = {"rate_429": args.rate_429, "rate_500": args.rate_500, "rate_malformed": args.rate_malformed}
    if args.retry_after is not None:
        faults["retry_after_s"] = args.retry_after
    common = {
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "max_retries": args.max_retries,
    }
    repeat = max(1, getattr(args, "repeat", 1))
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-llm-cache-") as caches:
        batch = make_records(args.records)
        cached: dict[str, Any] = {}

        def fresh_cache(k: int) -> dict[str, Any]:  # rerun: same URL, same cache as the last throughput run
            cached.update(cache_dir=str(Path(caches) / f"cache-{k}"), port=free_port(), seed=args.seed)
            return cached

        paired = [name for name in ("throughput", "aiohttp") if name in chosen]
        for k in range(1, repeat + 1):
            for name in paired:
                label = name if repeat == 1 else f"{name} #{k}"
                progress(f"{label}: running")
                if name == "throughput":
                    rows[label] = run_fanout(batch, **fresh_cache(k), **common)
                else:
                    rows[label] = run_aiohttp(batch, seed=args.seed, **common)
                progress(f"{label}: {json.dumps(rows[label])}")
        if repeat > 1:
            for name in paired:
                runs = [rows[f"{name} #{k}"] for k in range(1, repeat + 1)]
                rows[f"{name} (median)"] = median_row(runs)
        for name in chosen:
            if name in paired:
                continue
            progress(f"{name}: running")
            if name == "rpm":
                rpm_batch = make_records(args.rpm_records, prefix="Paced Company")
                rows[name] = run_fanout(rpm_batch, rpm=args.rpm, stub_rpm=args.rpm, seed=args.seed, **common)
            elif name == "faults":
                fault_batch = make_records(args.records, prefix="Faulty Company")
                rows[name] = run_fanout(fault_batch, faults=faults, seed=args.seed, **common)
            elif name == "rerun":
                if "throughput" not in chosen:
                    run_fanout(batch, **fresh_cache(0), **common)
                rows[name] = {**run_fanout(batch, **cached, **common), "ideal_per_s": None, "ratio": None}
            elif name == "mapped":
                rows[name] = run_mapped(args.mapped_records, latency_s=args.latency, seed=args.seed)
            progress(f"{name}: {json.dumps(rows[name])}")
    floor = rows.get("aiohttp (median)", rows.get("aiohttp", {})).get("ratio")
    for row in rows.values():
        if floor and row.get("ratio"):
            row["vs_aiohttp"] = round(row["ratio"] / floor, 3)
    return rows


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the medians of ``runs``' numeric timing fields (counts from the first run)."""
    import statistics

    row = dict(runs[0])
    for key in (
        "seconds",
        "records_per_s",
        "ratio",
        "client_cpu_ms_per_record",
        "stub_cpu_ms_per_call",
        "call_ms_mean",
    ):
        values = [r[key] for r in runs if r.get(key) is not None]
        row[key] = round(statistics.median(values), 3) if values else None
    row["conserved"] = all(r.get("conserved") for r in runs)
    row["ratios"] = [r.get("ratio") for r in runs]
    return row


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the table or the JSON)."""
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """Where the numbers were measured: CPUs, Python, OS, date."""
    return {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


COLUMNS = (
    ("records", "N"),
    ("seconds", "s"),
    ("records_per_s", "rec/s"),
    ("ideal_per_s", "ideal rec/s"),
    ("ratio", "ratio"),
    ("calls", "calls"),
    ("http_429", "429 sent"),
    ("published", "published"),
    ("quarantined_by_reason", "quarantined"),
    ("conserved", "adds up"),
    ("client_cpu_ms_per_record", "client CPU ms/rec"),
    ("vs_aiohttp", "vs aiohttp"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "0"
    return str(value)


def table(rows: dict[str, dict[str, Any]], markdown: bool = False) -> str:
    """The rows as a plain-text table, or as a Markdown table with ``markdown``."""
    header = ["scenario", *(title for _, title in COLUMNS)]
    body = [[name, *(_cell(row.get(key)) for key, _ in COLUMNS)] for name, row in rows.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *body])


def parser() -> argparse.ArgumentParser:
    """The command-line options (every scenario parameter is one)."""
    p = argparse.ArgumentParser(description="Fan-out benchmark of prompt_records against a local LLM stub.")
    p.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeat to pick several (default: all)")
    p.add_argument("--records", type=int, default=2000, help="N of throughput, faults and rerun (default 2000)")
    p.add_argument("--rpm-records", type=int, default=600, help="N of the rpm scenario (default 600, ~60 s)")
    p.add_argument("--mapped-records", type=int, default=50, help="M of the mapped-task comparison (default 50)")
    p.add_argument("--latency", type=float, default=0.2, help="stub latency per request in s (default 0.2)")
    p.add_argument("--concurrency", type=int, default=32, help="connection max_concurrency (default 32)")
    p.add_argument("--rpm", type=int, default=600, help="RPM limit of the rpm scenario, stub and client (600)")
    p.add_argument("--rate-429", type=float, default=0.10, help="faults: share of calls answered 429 (0.10)")
    p.add_argument("--rate-500", type=float, default=0.10, help="faults: share of calls answered 500 (0.10)")
    p.add_argument("--rate-malformed", type=float, default=0.05, help="faults: share of truncated answers (0.05)")
    p.add_argument("--retry-after", type=float, default=None, help="faults: Retry-After (s) on 429s (default none)")
    p.add_argument("--max-retries", type=int, default=6, help="connection max_retries (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stub's fault draws (default 0)")
    p.add_argument(
        "--repeat", type=int, default=1, help="run throughput and aiohttp alternately K times, report medians (1)"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (machine + every measured field)")
    out.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table (or JSON)."""
    args = parser().parse_args(argv)
    rows = run_scenarios(args)
    if args.json:
        print(json.dumps({"machine": machine(), "command": sys.argv, "scenarios": rows}, indent=2))
        return
    print(table(rows, markdown=args.markdown))
    for name, row in rows.items():
        if row.get("error"):
            print(f"\n{name}: the chunk raised instead of finishing: {row['error']}")
    print(f"\nmachine: {json.dumps(machine())}")


if __name__ == "__main__":
    main()
