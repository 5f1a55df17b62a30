"""Scale benchmark: peak memory, wall time and records/s of every stage from 10k to 1M records.

Run by hand, never as part of the test suite (``tests/test_scale_memory.py`` checks, at a reduced size,
that peak memory does not grow with the batch)::

    .venv/bin/python benchmarks/scale.py --records 10000 100000 1000000
    .venv/bin/python benchmarks/scale.py --records 20000 --json
    .venv/bin/python benchmarks/scale.py --records 1000000 --stages baseline discover hash chunk answers scrub

What runs, per N: N small records are written into a temporary raw zone, half for the source
``companies`` (topic ``industry_classification``: ``companies-1.csv``, ``companies-2.parquet``) and
half for ``ai_use_cases`` (topic ``use_case_extraction``: ``use_cases-1.jsonl``,
``use_cases-2.jsonl.gz``), with a few bad records in each text object (one unparseable line, one
exact duplicate) so the quarantine path runs too. Then the stages ``discover``, ``hash``, ``chunk``,
``prompt``, ``scrub``, ``validate`` and ``publish`` (:mod:`pipeline_hub.stages`, the functions the DAG's
tasks call) each run in a **fresh Python subprocess**, passing their output on through a JSON file as
XCom would, so each stage's peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) is
its own; processes a stage starts (the PII analyzer's workers on a large topic) are reported apart as
the largest child's peak (``RUSAGE_CHILDREN``). ``prompt`` runs every chunk in turn in one child (the
DAG maps one task per chunk; ``pipeline-hub run`` does it this way) against the stub LLM server
(``fanout.StubProcess``, 0 s latency, 32 in flight, response cache off); ``scrub``, ``validate`` and
``publish`` run each topic in turn. ``answers`` (``--stages``) can stand in for ``prompt``: the stub's
answers written without calls. A ``baseline`` child imports the same modules (:data:`PRELOAD`,
imported by every child before its clock starts) and runs nothing: the memory every task pays before
reading a record.

Measured per stage: peak RSS (MiB), wall seconds of the stage function (module imports excluded) and
records/s = N / wall. ``chunk``'s books must balance (``rows_read = staged + rejected + duplicates``)
and so must each topic's publication (``in = published + quarantined``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# A stage child comparing another tree (--plugins) has it on PYTHONPATH: the checkout's must not shadow it.
for _path in (REPO / "tests",) if os.environ.get("SCALE_PLUGINS") else (REPO / "plugins", REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

DS = "2025-01-15"
TOPICS = ["industry_classification", "use_case_extraction"]
STAGES = ("baseline", "discover", "hash", "chunk", "prompt", "scrub", "validate", "publish")
# ``answers`` may stand in for ``prompt`` (the stub's answers written without calls).
CHOICES = (*STAGES, "answers")
# Per topic after the chunk stage; ``prompt`` runs every chunk (each a mapped task in the DAG) in one child.
TOPIC_STAGES = ("scrub", "validate", "publish")
CONN_ID = "llm_default"
# Imported by every child before its stage's clock starts (the baseline child imports only these).
PRELOAD = (
    "pipeline_hub.stages.discover",
    "pipeline_hub.stages.hash",
    "pipeline_hub.stages.chunk",
    "pipeline_hub.providers.pricing",
    "pipeline_hub.providers.routing",
    "pyarrow.parquet",
)
# Extra lines per text object beyond the N good records: one unparseable line and one exact duplicate.
BAD_PER_TEXT_OBJECT = 2


def _company(i: int, repeat: int | None = None) -> dict[str, Any]:
    if repeat:  # no id (a content-hash id, not analyzed), kept texts from `repeat` variants, `seq` keeps it distinct
        return {"name": f"Company {i % repeat} Holdings", "headquarters": f"City {i % repeat}", "seq": i}
    return {"id": f"C{i:07d}", "name": f"Company {i} Holdings", "headquarters": f"City {i % 997}, Region {i % 53}"}


def _use_case(i: int, repeat: int | None = None) -> dict[str, Any]:
    if repeat:
        return {
            "agency": f"Agency {i % repeat}",
            "summary": f"Use case {i % repeat}: a model triages requests.",
            "seq": i,
        }
    return {
        "id": f"UC-{i:07d}",
        "agency": f"Agency {i % 211}",
        "summary": f"Use case {i}: a model triages incoming requests and routes them to team {i % 17}.",
    }


def make_raw_zone(root: Path, n: int, repeat: int | None = None) -> dict[str, Any]:
    """Write ``n`` good records (plus the bad lines, see the module docstring) under ``root/<source>/<DS>/``.

    ``repeat`` (for the memory test): records carry no ``id`` and their text fields take only ``repeat``
    distinct values (a ``seq`` field keeps each record distinct), so the analyzer, which analyzes each
    distinct text once, costs next to nothing and the stages' own memory is what is measured.
    Returns ``{"records": n, "lines": every record line written, "bytes": total object bytes}``.
    """
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    half = n // 2
    quarter_c, quarter_u = half // 2, (n - half) // 2
    companies = root / "companies" / DS
    uses = root / "ai_use_cases" / DS
    companies.mkdir(parents=True, exist_ok=True)
    uses.mkdir(parents=True, exist_ok=True)
    lines = 0
    # companies-1.csv: records 0 … quarter_c-1
    with (companies / "companies-1.csv").open("w", encoding="utf-8", newline="") as fh:
        first = _company(0, repeat)
        writer = csv.DictWriter(fh, fieldnames=list(first))
        writer.writeheader()
        for i in range(quarter_c):
            writer.writerow(_company(i, repeat))
        writer.writerow(first)  # exact duplicate of the first
        fh.write('bad,"unterminated\n')  # a quoted field never closed: unparseable (to the end of file)
    lines += quarter_c + BAD_PER_TEXT_OBJECT
    # companies-2.parquet: the rest of the companies, in row groups of 10 000
    ids = range(quarter_c, half)
    writer = None
    for start in range(0, len(ids), 10_000):
        part = [_company(i, repeat) for i in ids[start : start + 10_000]]
        table = pa.Table.from_pylist(part)
        writer = writer or pq.ParquetWriter(companies / "companies-2.parquet", table.schema)
        writer.write_table(table)
    if writer:
        writer.close()
    lines += len(ids)
    # use_cases-1.jsonl and use_cases-2.jsonl.gz
    with (uses / "use_cases-1.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(quarter_u):
            fh.write(json.dumps(_use_case(i, repeat)) + "\n")
        fh.write(json.dumps(_use_case(0, repeat)) + "\n{not json\n")
    lines += quarter_u + BAD_PER_TEXT_OBJECT
    with gzip.open(uses / "use_cases-2.jsonl.gz", "wt", encoding="utf-8", compresslevel=6) as fh:
        for i in range(quarter_u, n - half):
            fh.write(json.dumps(_use_case(i, repeat)) + "\n")
        fh.write(json.dumps(_use_case(quarter_u, repeat)) + "\n{not json\n")
    lines += (n - half - quarter_u) + BAD_PER_TEXT_OBJECT
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"records": n, "lines": lines, "bytes": size}


def synthetic_answers(plan_uri: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``answers`` stage (the memory test's stand-in for ``prompt``): per work item, the results the
    prompt stage would write with the stub's answers (:func:`support.stub_answers.instance_for` of the
    output schema, keyed by record id), without a call. Returns ``[{"topic", "chunk_index", "records"}]``."""
    from pipeline_hub import storage
    from pipeline_hub.stages.chunk import read_chunk
    from pipeline_hub.stages.plan import RunPlan, plan_topic

    from support.stub_answers import instance_for

    plan = RunPlan.load(plan_uri)
    out = []
    for item in items:
        _, topic = plan_topic(plan, item["topic"])
        usage = {"model": "stub-model", "cache_hit": False, "route": "primary", "attempts": 1, "latency_s": 0.0}
        results = [
            {
                **{k: r[k] for k in ("record_id", "source_uri", "position")},
                "status": "ok",
                "answer": instance_for(topic.prompt.output_schema, r["record_id"]),
                "usage": usage,
                "fields": {k: r["fields"].get(k) for k in topic.keep_fields},
            }
            for r in read_chunk(item["chunk_uri"])
        ]
        answers = storage.join(plan.staging, "answers", topic.name)
        storage.write_jsonl(answers / f"chunk-{item['chunk_index']:05d}.jsonl", results)
        out.append({"topic": topic.name, "chunk_index": item["chunk_index"], "records": len(results)})
    return out


def _settings(work: Path):
    from pipeline_hub.config import Settings

    return Settings.from_env(
        raw_root=str(work / "raw"), sanitized_root=str(work / "out"), staging_root=str(work / "staging")
    )


def run_stage(stage: str, work: Path) -> dict[str, Any]:
    """Run one stage in this process on ``work`` (inputs and outputs as JSON files under it).

    Returns ``{"stage", "wall_s", "rss_mib", "out"}``: ``rss_mib`` is this process's peak RSS so far.
    """
    import importlib

    from pipeline_hub import stages

    started = time.perf_counter()
    for module in PRELOAD:  # imported before the clock starts: every child pays the same
        importlib.import_module(module)
    import_s = time.perf_counter() - started
    settings = _settings(work)
    started = time.perf_counter()
    if stage == "baseline":
        out: Any = None
    elif stage == "discover":
        out = stages.run_discover(settings, DS, TOPICS, None)
    elif stage == "hash":
        found = json.loads((work / "discover.json").read_text())
        out = stages.run_hash(settings, found, run_id="scale", row_limit=None, llm_conn_id=CONN_ID)
    elif stage == "chunk":
        planned = json.loads((work / "hash.json").read_text())
        out = stages.run_chunk(planned["plan_uri"])
    elif stage == "prompt":  # every chunk in turn, as the mapped tasks would (the stub answers at 0 latency)
        out = [stages.run_prompt(item) for item in json.loads((work / "chunk.json").read_text())]
    elif stage == "answers":  # the prompt stage's output without the calls (tests/test_scale_memory.py)
        planned = json.loads((work / "hash.json").read_text())
        out = synthetic_answers(planned["plan_uri"], json.loads((work / "chunk.json").read_text()))
    elif stage in TOPIC_STAGES:
        planned = json.loads((work / "hash.json").read_text())
        run = {"scrub": stages.run_scrub, "validate": stages.run_validate, "publish": stages.run_publish}[stage]
        out = [run(planned["plan_uri"], topic) for topic in planned["pending"]]
    else:
        raise ValueError(f"unknown stage {stage!r}")
    wall = time.perf_counter() - started
    (work / f"{stage}.json").write_text(json.dumps(out, default=str))
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Processes the stage started (the analyzer's workers for a large topic, git, ...): the largest one's peak.
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "stage": stage,
        "package": str(Path(sys.modules["pipeline_hub"].__file__).parent),
        "wall_s": round(wall, 3),
        "import_s": round(import_s, 2),
        "rss_mib": round(rss_kib / 1024, 1),
        "worker_rss_mib": round(child_kib / 1024, 1) if child_kib else None,
    }


def stage_env(plugins: Path | None = None) -> dict[str, str]:
    """Environment of a stage child: an ``llm_default`` connection (the hash stage pins its model; no
    call is made), ``plugins`` (default: the checkout's, e.g. an older tree to compare) first on the path."""
    from conftest import llm_conn

    path = [str(plugins or REPO / "plugins"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "SCALE_PLUGINS": str(plugins or ""),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": llm_conn("http://127.0.0.1:9/v1"),
        "GX_ANALYTICS_ENABLED": "False",
        "PIPELINE_HUB_INCLUDE_DIR": os.environ.get("PIPELINE_HUB_INCLUDE_DIR", str(REPO / "include")),
        "PIPELINE_HUB_LLM_CACHE": "off",
    }


def measure(
    n: int, work: Path, stages: tuple[str, ...] = STAGES, plugins: Path | None = None, repeat: int | None = None
) -> dict[str, Any]:
    """Make ``n`` records under ``work`` (``repeat``: see :func:`make_raw_zone`) and run each of ``stages`` in
    a fresh subprocess; ``prompt`` calls a stub LLM server (0 latency, 32 in flight) started here.

    Returns ``{"records", "lines", "bytes", "gen_s", "stages": {stage: {"rss_mib", "worker_rss_mib",
    "wall_s", "records_per_s"}}, "chunk_counts": {source: counts}, "published": {topic: {"in",
    "published", "quarantined_total"}}, "stub_calls", "conserved"}`` (the last four when those stages ran).
    Raises ``RuntimeError`` when a child fails (its stderr tail in the message).
    """
    started = time.perf_counter()
    made = make_raw_zone(work / "raw", n, repeat)
    made["gen_s"] = round(time.perf_counter() - started, 2)
    env = stage_env(plugins)
    made["stages"] = {}
    stub = None
    if "prompt" in stages:
        from fanout import StubProcess, connection_json

        stub = StubProcess(latency_s=0.0).__enter__()
        env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_json(stub.base_url, concurrency=32)
    try:
        _run_children(n, work, stages, env, made)
    finally:
        if stub is not None:
            made["stub_calls"] = stub.stats()["calls"]
            stub.__exit__()
    if "chunk" in stages:
        made["chunk_counts"] = {}
        conserved = True
        staging = work / "staging" / "scale" / "chunks"
        for counts_file in sorted(staging.glob("*/_counts.json")):
            c = json.loads(counts_file.read_text())
            made["chunk_counts"][counts_file.parent.name] = {k: c[k] for k in ("rows_read", "staged", "rejected")}
            made["chunk_counts"][counts_file.parent.name]["duplicates_dropped"] = c["duplicates_dropped"]
            conserved &= c["rows_read"] == c["staged"] + sum(c["rejected"].values()) + c["duplicates_dropped"]
        made["conserved"] = conserved
    if "publish" in stages:
        published = json.loads((work / "publish.json").read_text())
        made["published"] = {p["topic"]: {k: p[k] for k in ("in", "published", "quarantined_total")} for p in published}
        made["conserved"] = made.get("conserved", True) and all(
            p["in"] == p["published"] + p["quarantined_total"] for p in published
        )
    return made


def _run_children(n: int, work: Path, stages: tuple[str, ...], env: dict[str, str], made: dict[str, Any]) -> None:
    """Each of ``stages`` in a fresh child process, in order; rows into ``made["stages"]``."""
    for stage in stages:
        proc = subprocess.run(
            [sys.executable, "-P", __file__, "_stage", stage, str(work)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            raise RuntimeError(f"stage {stage} failed ({proc.returncode}): {proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["records_per_s"] = round(n / row["wall_s"]) if row["wall_s"] and stage != "baseline" else None
        made["stages"][stage] = row


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per (N, stage)."""
    out = [
        "| records | stage | peak RSS MiB | largest child MiB | wall s | records/s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for stage, row in r["stages"].items():
            rate = f"{row['records_per_s']:,}" if row["records_per_s"] else "-"
            worker = f"{row['worker_rss_mib']:.0f}" if row.get("worker_rss_mib") else "-"
            out.append(
                f"| {r['records']:,} | {stage} | {row['rss_mib']:.0f} | {worker} | {row['wall_s']:.2f} | {rate} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--records N …`` (default 10000 100000), ``--json``, ``--keep DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_stage"]:
        print(json.dumps(run_stage(args[1], Path(args[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--keep", help="work under this directory (kept) instead of a temporary one")
    parser.add_argument("--plugins", type=Path, help="the stage children import pipeline_hub from here (to compare)")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=CHOICES, help="stages to run, in order")
    opts = parser.parse_args(args)
    results = []
    for n in opts.records:
        if opts.keep:
            work = Path(opts.keep) / f"n{n}"
            work.mkdir(parents=True, exist_ok=False)
            results.append(measure(n, work, tuple(opts.stages), plugins=opts.plugins))
        else:
            with tempfile.TemporaryDirectory(prefix=f"scale-{n}-") as tmp:
                results.append(measure(n, Path(tmp), tuple(opts.stages), plugins=opts.plugins))
        r = results[-1]
        print(
            f"N={n:,}: {r['bytes'] / 2**20:.1f} MiB raw, generated in {r['gen_s']} s, conserved={r['conserved']}",
            file=sys.stderr,
        )
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(table(results))
    if opts.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
