"""The model cascade wired into a run (pipeline_hub.stages.cascade): company matching on the bundled sample,
in-process, against the stub LLM over HTTP.

A copy of the registry gets ``versions.v1.cascade`` with calibrated thresholds; the proxy (RapidFuzz
``token_sort_ratio`` of the best candidate) answers the sure records without a call, the stub the rest.
Checked: fewer calls than records, every published row says who answered (``route``), the manifest counts
both routes and the calls saved, conservation holds, and the cascade is part of the run's identity.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline_hub.stages.cascade import PROXY_MODEL
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS

TOPIC = "company_matching"
THRESHOLDS = {"upper": 0.9, "lower": 0.5, "sample_size": 70, "calibrated_at": "2026-12-04"}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry copy (PIPELINE_HUB_INCLUDE_DIR) whose company_matching v1 has ``cascade`` set by the test."""
    from lifecycle_helpers import copy_registry

    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    meta_path = include / "prompts" / TOPIC / "metadata.yaml"

    def set_cascade(block: dict | None) -> None:
        meta = yaml.safe_load(meta_path.read_text())
        meta["versions"]["v1"].pop("cascade", None)
        if block is not None:
            meta["versions"]["v1"]["cascade"] = block
        meta_path.write_text(yaml.safe_dump(meta, sort_keys=False, default_flow_style=None))

    return set_cascade


def cascade(thresholds=THRESHOLDS) -> dict:
    return {"proxy": "rapidfuzz", "target": {"precision": 0.95, "recall": 0.95}, "thresholds": thresholds}


def publish(raw_zone, out):
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC])
    assert not result.failed
    part = out / "sanitized_data" / TOPIC / f"ds={DS}"
    manifest = json.loads((part / "_manifest.json").read_text())
    rows = pq.read_table(part / "part-00000.parquet").to_pylist() if (part / "part-00000.parquet").exists() else []
    return manifest, rows


def test_the_proxy_answers_the_sure_records_and_the_oracle_the_rest(registry, stub, raw_zone, tmp_path):
    registry(cascade())
    manifest, rows = publish(raw_zone, tmp_path / "out")
    by_route = {r: [x for x in rows if x["route"] == r] for r in ("proxy", "oracle")}
    assert by_route["proxy"] and by_route["oracle"], "the sample has both sure and unsure names"
    assert len(rows) == len(by_route["proxy"]) + len(by_route["oracle"])
    assert all(r["model"] == PROXY_MODEL for r in by_route["proxy"])
    assert all(r["model"] != PROXY_MODEL for r in by_route["oracle"])
    # A proxy acceptance is confident, a rejection says "no match".
    assert all((r["match_id"] is None) == (r["confidence"] > 0.5) or r["confidence"] >= 0.9 for r in by_route["proxy"])
    usage = manifest["usage"]
    assert usage["cascade"]["proxy"] == len(by_route["proxy"]) == usage["records_by_route"]["proxy"]
    assert usage["cascade"]["calls_saved"] == len(by_route["proxy"])
    assert stub.calls == usage["llm_calls"] and usage["llm_calls"] < manifest["counts"]["in"]
    assert usage["latency_p50_s"] > 0, "p50/p95 are over records that needed a call, not the proxy's"
    counts = manifest["counts"]
    assert counts["in"] == counts["published"] + counts["quarantined_total"]
    assert manifest["counts"]["published"] == len(rows)


def test_without_a_cascade_every_row_is_answered_by_the_oracle(registry, stub, raw_zone, tmp_path):
    registry(None)
    manifest, rows = publish(raw_zone, tmp_path / "out")
    assert rows and {r["route"] for r in rows} == {"oracle"}
    assert "cascade" not in manifest["usage"] and stub.calls == manifest["usage"]["llm_calls"] == len(rows)


def test_an_uncalibrated_cascade_sends_everything_to_the_oracle(registry, stub, raw_zone, tmp_path):
    registry(cascade(thresholds=None))
    manifest, rows = publish(raw_zone, tmp_path / "out")
    assert {r["route"] for r in rows} == {"oracle"} and manifest["usage"]["cascade"]["proxy"] == 0


def test_new_thresholds_are_a_new_publication_not_a_silent_change(registry, stub, raw_zone, tmp_path):
    """The cascade block is in the run's identity: the same bytes with other thresholds republish."""
    out = tmp_path / "out"
    registry(cascade())
    first, _ = publish(raw_zone, out)
    again = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC])
    assert TOPIC in again.skipped and not again.published, again
    registry(cascade({**THRESHOLDS, "upper": 1.01}))  # never accept
    second, rows = publish(raw_zone, out)
    assert second["run_id"] != first["run_id"]
    assert second["usage"]["cascade"]["proxy"] < first["usage"]["cascade"]["proxy"]
    assert all(r["match_id"] is None for r in rows if r["route"] == "proxy")


# -- pipeline-hub calibrate -------------------------------------------------------------------------


def labelled_sample(include, path):
    """The bundled noisy examples plus every reference name as its own query (gold: its id), as JSONL."""
    import csv

    lines = (include / "prompts" / TOPIC / "examples" / "examples.jsonl").read_text().splitlines()
    with (include / "reference" / "companies_reference.csv").open() as fh:
        for row in csv.DictReader(fh):
            ex = {"id": f"ref-{row['ref_id']}", "input": {"name": row["name"]}, "expected": {"match_id": row["ref_id"]}}
            lines.append(json.dumps(ex))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_calibrate_writes_the_thresholds_as_a_new_dev_version_and_leaves_prod(registry, tmp_path, capsys):
    from pipeline_hub.config import include_dir
    from pipeline_hub.lifecycle.validation import validate_registry
    from pipeline_hub.prompts.registry import load_topic

    from lifecycle_helpers import hub

    # 0.9/0.9: 164 records certify it (0.95 precision needs >= 162 accepted records all right, Bonferroni over
    # the 101-point grid of pipeline_hub.cascade.calibration).
    registry({**cascade(thresholds=None), "target": {"precision": 0.9, "recall": 0.9}, "sample": 500})
    meta_path = include_dir() / "prompts" / TOPIC / "metadata.yaml"
    meta_path.write_text(meta_path.read_text() + "# a comment that stays\n")
    sample = labelled_sample(include_dir(), tmp_path / "sample.jsonl")
    code, stdout, _ = hub(capsys, "calibrate", "--topic", TOPIC, "--sample", str(sample))
    assert code == 0, stdout
    result = json.loads(stdout)
    assert result["from"] == "v1" and result["version"] == "v2" and result["sample_size"] > 150
    assert 0 < result["lower"] <= result["upper"] <= 1.0 and result["reason"] is None, result
    assert result["recall_bound"] >= 0.9 and result["precision_bound"] >= 0.9
    text = meta_path.read_text()
    assert text.endswith("# a comment that stays\n") and validate_registry(include_dir() / "prompts", [TOPIC]) == []
    dev = load_topic(TOPIC, pointer="dev")
    assert dev.version == "v2" and dev.prompt.cascade.thresholds.upper == result["upper"]
    assert dev.prompt.cascade.thresholds.sample_size == result["sample_size"]
    assert dev.prompt.template_sha256 == load_topic(TOPIC, version="v1").prompt.template_sha256
    prod = load_topic(TOPIC)
    assert prod.version == "v1" and prod.prompt.cascade.thresholds is None  # runs publish as before
    assert prod.prompt.cascade_sha256 != dev.prompt.cascade_sha256


def test_calibrate_on_too_few_examples_certifies_nothing_and_says_why(registry, capsys):
    from lifecycle_helpers import hub

    registry(cascade(thresholds=None))
    code, stdout, _ = hub(capsys, "calibrate", "--topic", TOPIC)
    result = json.loads(stdout)
    assert code == 0 and result["sample_size"] <= 70
    assert result["lower"] == 0.0 and result["upper"] > 1.0 and "too few" in result["reason"]


def test_calibrate_refuses_a_version_without_a_cascade_in_one_line(registry, capsys):
    from lifecycle_helpers import hub

    registry(None)
    code, _, stderr = hub(capsys, "calibrate", "--topic", TOPIC)
    assert code == 2 and "has no cascade block" in stderr and "metadata.yaml" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_calibrate_names_the_line_of_a_bad_sample_record_and_leaves_out_unusable_ones(registry, tmp_path, capsys):
    from lifecycle_helpers import hub

    registry(cascade(thresholds=None))
    good = {"id": "1", "input": {"name": "AGILENT TECHNOLOGIES"}, "expected": {"match_id": "402600"}}
    unusable = [{"id": "2", "input": {}, "expected": {"match_id": None}}, {**good, "id": "3", "expected": "402600"}]
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps(r) for r in [good, *unusable]) + "\n")
    code, stdout, _ = hub(capsys, "calibrate", "--topic", TOPIC, "--sample", str(sample))
    assert code == 0 and json.loads(stdout)["left_out"] == 2 and json.loads(stdout)["sample_size"] == 1
    sample.write_bytes(sample.read_bytes() + b"{not json\n")
    code, _, stderr = hub(capsys, "calibrate", "--topic", TOPIC, "--sample", str(sample))
    assert code == 2 and f"{sample}:4" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = hub(capsys, "calibrate", "--topic", TOPIC, "--sample", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read the labelled sample" in stderr


# -- pipeline-hub score: the cascade next to oracle-only -------------------------------------------


def test_score_puts_the_cascade_next_to_oracle_only_in_one_run(registry, stub, tmp_path, monkeypatch):
    """One ``score`` of a calibrated version runs oracle-only and the cascade on the same examples; the
    cascade's oracle records are the same requests, so the stub is called once per example, not more."""
    from pipeline_hub.lifecycle.reports import render_markdown
    from pipeline_hub.lifecycle.scoring import score_version

    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(tmp_path / "artifacts"))
    registry(cascade())
    score = score_version(TOPIC)
    comparison = score["cascade"]
    only, cascaded = comparison["oracle_only"], comparison["cascade"]
    n = score["examples_scored"]
    assert only["records"] == cascaded["records"] == n and only["proxy_records"] == 0 and only["oracle_share"] == 1.0
    assert 0 < cascaded["proxy_records"] < n and cascaded["oracle_records"] + cascaded["proxy_records"] == n
    assert cascaded["oracle_share"] == round(cascaded["oracle_records"] / n, 4)
    assert stub.calls == n, "the cascade's oracle records were answered from oracle-only's cache entries"
    assert cascaded["metrics"] == {k: score["metrics"][k] for k in ("accuracy", "precision", "recall", "f1")}
    assert comparison["delta"]["f1"] == round(cascaded["metrics"]["f1"] - only["metrics"]["f1"], 6)
    assert comparison["delta"]["oracle_share"] < 0 and cascaded["total_tokens"] < only["total_tokens"]
    assert cascaded["cost_usd"] == only["cost_usd"] == 0.0, "stub-model is free and proxy answers cost nothing"
    assert comparison["proxy"] == "rapidfuzz" and comparison["thresholds"]["upper"] == THRESHOLDS["upper"]
    md = render_markdown(score, plot_name=None)
    assert "## Cascade vs oracle-only" in md and "| oracle-only |" in md and "| cascade |" in md
    stored = json.loads((tmp_path / "artifacts" / "reports" / TOPIC / "v1" / "score.json").read_text())
    assert stored["cascade"] == json.loads(json.dumps(comparison))


def test_score_of_a_version_without_thresholds_has_no_comparison(registry, stub, tmp_path, monkeypatch):
    from pipeline_hub.lifecycle.scoring import score_version

    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(tmp_path / "artifacts"))
    registry(cascade(thresholds=None))
    score = score_version(TOPIC, write=False)
    assert "cascade" not in score and stub.calls == score["examples_scored"]
