"""Peer benchmark: Bespoke Curator and ``pipeline-hub run`` on the same records, stub and concurrency.

Run by hand, never as part of the test suite (Curator is not a dependency of the project)::

    make bench-curator                                   # creates the venv, then runs this (~2 min)
    .venv/bin/python benchmarks/curator.py --records 2000 --latency 0.2 --concurrency 32 [--json]

Curator (``bespokelabs-curator``, :data:`CURATOR_VERSION`) is installed into a venv of its own,
``.local/bench-venv`` (created on first use with ``python -m venv`` and pip; ``--venv`` picks another),
and runs there in a child process. Offline it needs the tiktoken files that litellm ships
(``litellm/litellm_core_utils/tokenizers``): ``TIKTOKEN_CACHE_DIR`` is pointed at them, so nothing is
downloaded.

Both tools answer the same N records of ``industry_classification`` against one stub
(:class:`fanout.StubProcess`, its own process, fixed latency), with at most ``concurrency`` requests in
flight, each from a fresh cache, then once more with that cache (the rerun):

* **Curator**: an ``LLM`` subclass whose ``prompt`` returns the very chat messages our template renders
  for the record and whose ``response_format`` is the topic's output schema as a Pydantic model (so its
  answers are parsed and validated); ``backend="openai"`` with ``base_url`` = the stub,
  ``max_concurrent_requests`` = concurrency and request/token limits high enough never to pace.
* **ours**: ``pipeline-hub run`` (``python -m pipeline_hub run``) on the records as a CSV raw zone, with
  the defaults a new user gets: discover, hash, chunk (500 records a chunk), prompt with retries, repair,
  response cache and quarantine, PII scrubbing (the scrub stage with the topic's PII policy), output
  validation and the quality gate, and publishing with the run manifest (lineage: input hashes, prompt
  version, models, counts). ``--chunk-size`` sets ``--chunk-size`` of the run.

Measured per tool: end-to-end seconds of the process (start to exit, imports included) and records/s =
N / those seconds; the calls the stub received for records (Curator's start-up request without
messages, which reads rate-limit headers, is counted apart as a probe); its call phase = from the first
record request's arrival at the stub to the last answer, and the call-phase ratio = calls / (call
phase × concurrency / latency), the share of the ideal rate at which the calls went out; rerun calls and rerun seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import fanout  # noqa: E402  (the stub process and the records of the fan-out benchmark)

CURATOR_VERSION = "0.1.31"
DEFAULT_VENV = REPO / ".local" / "bench-venv"
DS = "2025-01-15"

# The Curator child: argv = input JSONL, stub base URL, concurrency, output JSON path. Prints nothing we parse
# but the result file: {"records", "answers", "valid", "call_s"}.
CURATOR_RUNNER = textwrap.dedent(
    """
    import json, sys, time
    from typing import Literal

    from pydantic import BaseModel, Field
    from bespokelabs import curator

    rows_path, base_url, concurrency, out_path, sectors = sys.argv[1:6]
    SECTORS = tuple(json.loads(sectors))

    class Sector(BaseModel):
        sector: Literal[SECTORS]
        confidence: float = Field(ge=0, le=1)

    class Classify(curator.LLM):
        response_format = Sector

        def prompt(self, row):
            return json.loads(row["messages"])

        def parse(self, row, response):
            return {"record_id": row["record_id"], "sector": response.sector, "confidence": response.confidence}

    rows = [json.loads(line) for line in open(rows_path)]
    started = time.perf_counter()
    llm = Classify(
        model_name="gpt-4o-mini",
        backend="openai",
        generation_params={"temperature": 0.0, "max_tokens": 64},
        backend_params={
            "base_url": base_url,
            "api_key": "sk-bench-stub",
            "max_concurrent_requests": int(concurrency),
            "max_requests_per_minute": 10_000_000,
            "max_tokens_per_minute": 10_000_000_000,
            "max_retries": 3,
            "require_all_responses": False,
        },
    )
    result = llm(rows)
    elapsed = time.perf_counter() - started
    dataset = getattr(result, "dataset", result)
    answers = len(dataset)
    valid = sum(1 for r in dataset if r.get("sector") in SECTORS)
    json.dump({"records": len(rows), "answers": answers, "valid": valid, "call_s": elapsed}, open(out_path, "w"))
    """
)


def ensure_venv(venv: Path, python: str | None = None) -> Path:
    """``venv``'s python with ``bespokelabs-curator==CURATOR_VERSION`` (created and installed when missing).

    Raises ``RuntimeError`` when pip fails (the message holds the end of its output).
    """
    py = venv / "bin" / "python"
    marker = venv / f".curator-{CURATOR_VERSION}"
    if marker.exists():
        return py
    if not py.exists():
        subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"bespokelabs-curator=={CURATOR_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode:
        raise RuntimeError(f"pip install bespokelabs-curator failed:\n{pip.stdout[-2000:]}{pip.stderr[-2000:]}")
    marker.touch()
    return py


def tiktoken_dir(py: Path) -> str:
    """The folder of tokenizer files litellm ships inside the venv of ``py`` (for ``TIKTOKEN_CACHE_DIR``)."""
    code = "import importlib.util, os; s = importlib.util.find_spec('litellm'); print(os.path.dirname(s.origin))"
    root = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return str(Path(root) / "litellm_core_utils" / "tokenizers")


def sectors() -> list[str]:
    """The topic's sector enum (its output schema), for Curator's Pydantic model."""
    from pipeline_hub.prompts.registry import load_topic

    return load_topic(fanout.TOPIC).prompt.output_schema["properties"]["sector"]["enum"]


def call_phase(stats_after: dict[str, Any], calls: int, concurrency: int, latency_s: float) -> dict[str, Any]:
    """The stub's call span and the call-phase ratio: calls / (span × concurrency / latency)."""
    span = stats_after.get("span_s") or 0.0
    ideal = fanout.ideal_rate(concurrency, latency_s)
    return {
        "call_phase_s": round(span, 2),
        "call_phase_ratio": round(calls / span / ideal, 3) if span and ideal and calls else None,
    }


def timed(cmd: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd``; its wall seconds (start to exit) and the completed process. Raises on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def run_curator(py: Path, records: list[dict], *, latency_s: float, concurrency: int, workdir: Path) -> dict[str, Any]:
    """Curator on ``records`` against a fresh stub, then again with its cache; the measured row."""
    rows = workdir / "curator-input.jsonl"
    with rows.open("w") as fh:
        for record, body in zip(records, fanout.request_bodies(records), strict=True):
            fh.write(json.dumps({"record_id": record["record_id"], "messages": json.dumps(body["messages"])}) + "\n")
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": tiktoken_dir(py),
        "CURATOR_CACHE_DIR": str(workdir / "curator-cache"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TELEMETRY_ENABLED": "False",
        "CURATOR_DISABLE_RICH_DISPLAY": "1",
    }
    env.pop("PYTHONPATH", None)
    out = workdir / "curator-result.json"
    row: dict[str, Any] = {"tool": f"bespokelabs-curator {CURATOR_VERSION}", "records": len(records)}
    with fanout.StubProcess(latency_s) as stub:
        cmd = [
            str(py),
            "-c",
            CURATOR_RUNNER,
            str(rows),
            stub.base_url,
            str(concurrency),
            str(out),
            json.dumps(sectors()),
        ]
        for phase in ("first", "rerun"):
            before = stub.stats()
            seconds, _ = timed(cmd, env)
            after = stub.stats()
            probes = after["probes"] - before["probes"]  # its rate-limit probe: a request without messages
            calls = after["calls"] - before["calls"] - probes
            result = json.loads(out.read_text())
            if phase == "first":
                row.update(
                    seconds=round(seconds, 2),
                    records_per_s=round(len(records) / seconds, 1),
                    calls=calls,
                    probe_calls=probes,
                    answers=result["answers"],
                    valid=result["valid"],
                    in_process_s=round(result["call_s"], 2),
                    **call_phase(after, calls, concurrency, latency_s),
                )
            else:
                row.update(
                    rerun_calls=calls,
                    rerun_probe_calls=probes,
                    rerun_seconds=round(seconds, 2),
                    rerun_answers=result["answers"],
                )
    return row


def run_ours(
    records: list[dict], *, latency_s: float, concurrency: int, workdir: Path, chunk_size: int | None = None
) -> dict[str, Any]:
    """``pipeline-hub run`` on ``records`` (a CSV raw zone) against a fresh stub, then once more; the row."""
    raw = workdir / "raw"
    (raw / "companies" / DS).mkdir(parents=True)
    with (raw / "companies" / DS / "companies.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "name", "headquarters"])
        for record in records:
            writer.writerow([f"C{record['record_id']}", record["fields"]["name"], record["fields"]["headquarters"]])
    paths = [str(REPO / "plugins"), os.environ.get("PYTHONPATH")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
        "PIPELINE_HUB_INCLUDE_DIR": str(REPO / "include"),
        "PIPELINE_HUB_STATE_DIR": str(workdir / "state"),
        "PIPELINE_HUB_LLM_CACHE": f"disk:{workdir / 'ours-cache'}",
        "PIPELINE_HUB_PII_KEY": "5c" * 32,
        "GX_ANALYTICS_ENABLED": "False",
    }
    row: dict[str, Any] = {"tool": "pipeline-hub run", "records": len(records)}
    with fanout.StubProcess(latency_s) as stub:
        env[f"AIRFLOW_CONN_{fanout.CONN_ID.upper()}"] = fanout.connection_json(stub.base_url, concurrency)
        for phase in ("first", "rerun"):
            out = workdir / f"out-{phase}"
            cmd = [sys.executable, "-m", "pipeline_hub", "run", "--input", str(raw), "--output", str(out)]
            cmd += ["--topics", fanout.TOPIC, "--ds", DS, "--conn-id", fanout.CONN_ID]
            if chunk_size:
                cmd += ["--chunk-size", str(chunk_size)]
            before = stub.stats()
            seconds, proc = timed(cmd, env)
            after = stub.stats()
            calls = after["calls"] - before["calls"]
            summary = json.loads(proc.stdout[proc.stdout.rindex('{\n  "run_id"') :])
            published = count_published(out)
            if phase == "first":
                row.update(
                    seconds=round(seconds, 2),
                    records_per_s=round(len(records) / seconds, 1),
                    calls=calls,
                    answers=published,
                    valid=published,
                    in_process_s=summary.get("duration_s"),
                    **call_phase(after, calls, concurrency, latency_s),
                )
            else:
                row.update(rerun_calls=calls, rerun_seconds=round(seconds, 2), rerun_answers=published)
            row.setdefault("outcomes", []).append(summary.get("outcome"))
    return row


def count_published(out: Path) -> int:
    """Records in the published Parquet files under ``out/sanitized_data`` (0 when none)."""
    import pyarrow.parquet as pq

    files = sorted((out / "sanitized_data").rglob("*.parquet")) if (out / "sanitized_data").exists() else []
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


COLUMNS = (
    ("tool", "tool"),
    ("records", "N"),
    ("seconds", "process s"),
    ("records_per_s", "rec/s end to end"),
    ("calls", "calls"),
    ("valid", "valid answers"),
    ("call_phase_s", "call phase s"),
    ("call_phase_ratio", "call-phase ratio"),
    ("rerun_calls", "rerun calls"),
    ("rerun_seconds", "rerun s"),
)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, plus ours / Curator end to end and in the call phase."""
    lines = ["| " + " | ".join(t for _, t in COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(str(r.get(k, "-")) for k, _ in COLUMNS) + " |" for r in rows]
    by = {r["tool"].split()[0]: r for r in rows}
    if "bespokelabs-curator" in by and "pipeline-hub" in by:
        peer, ours = by["bespokelabs-curator"], by["pipeline-hub"]
        lines.append("")
        lines.append(f"ours / Curator, end to end: {ours['records_per_s'] / peer['records_per_s']:.2f}x")
        if ours.get("call_phase_ratio") and peer.get("call_phase_ratio"):
            lines.append(f"ours / Curator, call phase: {ours['call_phase_ratio'] / peer['call_phase_ratio']:.2f}x")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description="Curator vs pipeline-hub run on the same records and stub.")
    p.add_argument("--records", type=int, default=2000, help="N (default 2000)")
    p.add_argument("--latency", type=float, default=0.2, help="stub latency per request in s (default 0.2)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight, both tools (default 32)")
    p.add_argument("--chunk-size", type=int, default=None, help="pipeline-hub run --chunk-size (default: its 500)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"Curator's venv (default {DEFAULT_VENV})")
    p.add_argument("--skip", action="append", choices=("curator", "ours"), default=[], help="leave a tool out")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run both tools and print the table (or JSON)."""
    args = parser().parse_args(argv)
    records = fanout.make_records(args.records)
    common = {"latency_s": args.latency, "concurrency": args.concurrency}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-curator-") as tmp:
        if "curator" not in args.skip:
            py = ensure_venv(args.venv)
            fanout.progress("curator: running")
            workdir = Path(tmp) / "curator"
            workdir.mkdir()
            rows.append(run_curator(py, records, workdir=workdir, **common))
            fanout.progress(json.dumps(rows[-1]))
        if "ours" not in args.skip:
            fanout.progress("pipeline-hub run: running")
            workdir = Path(tmp) / "ours"
            workdir.mkdir()
            rows.append(run_ours(records, workdir=workdir, chunk_size=args.chunk_size, **common))
            fanout.progress(json.dumps(rows[-1]))
    if args.json:
        print(json.dumps({"machine": fanout.machine(), "command": sys.argv, "rows": rows}, indent=2))
        return
    print(table(rows))
    print(f"\nmachine: {json.dumps(fanout.machine())}, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
