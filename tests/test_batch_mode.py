"""Batch mode: a topic with ``provider.mode: batch`` goes through the common-ai ``LLMBatchOperator``
(our thin ``ChunkBatchOperator``) against the stub's OpenAI Batch API over real HTTP, and its results
fold into the same validation, scrub and publish stages."""

from __future__ import annotations

import asyncio
import json
import shutil
from types import SimpleNamespace

import pytest
import yaml
from airflow.providers.common.compat.sdk import TaskDeferred

from pipeline_hub import stages
from pipeline_hub.config import Settings
from pipeline_hub.orchestration.batch_operator import ChunkBatchOperator

from conftest import DS, REPO
from support.stub_llm import FaultPlan

TOPIC = "industry_classification"


@pytest.fixture
def batch_topic(tmp_path, monkeypatch):
    """A copy of ``include/`` where the topic runs in batch mode."""
    include = tmp_path / "include"
    shutil.copytree(REPO / "include", include)
    meta_path = include / "prompts" / TOPIC / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta_path.write_text(yaml.safe_dump({**meta, "provider": {"mode": "batch"}}))
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    return include


def plan_items(raw_zone, out, tmp_path, run_id="manual__batch", row_limit=6):
    settings = Settings.from_env(
        raw_root=str(raw_zone), sanitized_root=str(out), staging_root=str(tmp_path / "staging"), llm_conn_id=None
    )
    found = stages.run_discover(settings, DS, [TOPIC], None)
    planned = stages.run_hash(settings, found, run_id=run_id, row_limit=row_limit, llm_conn_id="llm_default")
    return planned, stages.run_chunk(planned["plan_uri"]) if planned["pending"] else []


def context(run_id="manual__batch"):
    ti = SimpleNamespace(
        dag_id="prompt_pipeline", task_id="prompt_batch", run_id=run_id, map_index=0, xcom_push=lambda **kw: None
    )
    return {"task_instance": ti, "ti": ti}


def publish(planned):
    for step in (stages.run_scrub, stages.run_validate, stages.run_publish):
        result = step(planned["plan_uri"], TOPIC)
    return result


def test_batch_topic_is_answered_by_one_batch_job_and_published(stub, batch_topic, raw_zone, tmp_path):
    out = tmp_path / "out"
    planned, items = plan_items(raw_zone, out, tmp_path)
    assert [i["mode"] for i in items] == ["batch"]
    # Line 2 fails at the provider (answered by the streaming path), line 3 is malformed (one repair).
    stub.fault_plan = FaultPlan(sequence=["ok", "500", "malformed"])
    op = ChunkBatchOperator(task_id="prompt_batch", item=items[0], deferrable=False, poll_interval=30)
    summary = op.execute(context())
    assert len(stub.batches.jobs) == 1
    job = next(iter(stub.batches.jobs.values()))
    assert job["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
    assert summary["batch"]["rows"] == {"success": 4, "invalid_output": 1, "error": 1}
    assert summary["ok"] == 6 and stub.calls == 6 + 2  # six batch lines, one stream call, one repair
    batch_request = json.loads(stub.batches.files[job["input_file_id"]]["content"].splitlines()[0])
    assert batch_request["body"]["response_format"]["type"] == "json_schema"
    assert batch_request["body"]["model"] == "stub-model"

    result = publish(planned)
    assert result["status"] == "published" and result["published"] == 6
    manifest = json.loads((out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json").read_text())
    assert manifest["routes"]["mode"] == "batch"
    # The malformed answer was repaired by a streaming call, so it counts on the primary route.
    assert manifest["usage"]["records_by_route"] == {"batch": 4, "primary": 2}

    # Never pay twice: the same chunk again (e.g. a cleared task) is answered from the cache.
    stub.reset()
    again = ChunkBatchOperator(task_id="prompt_batch", item=items[0], deferrable=False, poll_interval=30)
    summary = again.execute(context())
    assert stub.calls == 0 and not stub.batches.jobs
    assert summary["llm_calls"] == 0 and summary["ok"] == 6


def test_our_openai_connections_get_the_providers_openai_batch_adapter_through_its_entry_point():
    """No override of the operator's private ``_connection()``: the provider's dispatch finds our adapter
    (entry-point group ``airflow.providers.common.ai.batch_adapters``) for ``openai`` connections."""
    from airflow.providers.common.ai.batch import dispatch
    from airflow.providers.common.ai.batch.openai import OpenAIBatchAdapter

    from pipeline_hub.orchestration.batch_adapter import OpenAICompatibleBatchAdapter

    adapter = dispatch.get_adapter_class("openai", "pipeline_hub_openai:stub-model")
    assert adapter is OpenAICompatibleBatchAdapter and issubclass(adapter, OpenAIBatchAdapter)
    assert "_connection" not in ChunkBatchOperator.__dict__


def test_deferred_batch_resumes_on_a_fresh_operator(stub, batch_topic, raw_zone, tmp_path):
    out = tmp_path / "out"
    planned, items = plan_items(raw_zone, out, tmp_path, row_limit=3)
    op = ChunkBatchOperator(task_id="prompt_batch", item=items[0], poll_interval=30)
    assert op.deferrable
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert trigger.adapter == "pipeline_hub_openai"  # re-resolved by name in the triggerer: our entry point

    async def first_event():
        async for event in trigger.run():
            return event

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success"
    resumed = ChunkBatchOperator(task_id="prompt_batch", item=items[0], poll_interval=30)
    summary = getattr(resumed, deferred.value.method_name)(context(), event.payload)
    assert summary["ok"] == 3 and summary["batch"]["batch_id"] == event.payload["batch_id"]
    assert publish(planned)["published"] == 3


def test_batch_requests_follow_the_topics_input_pii_policy(stub, batch_topic, raw_zone, tmp_path, monkeypatch):
    """A remote provider's batch file gets the same redacted inputs as its streaming calls would."""
    from pipeline_hub.stages import prompt as prompting
    from pipeline_hub.stages import prompt_batch as batch_mode

    email, person = "greta.lindqvist@lindqvist-example.se", "Greta Lindqvist"
    csv_path = next((raw_zone / "companies" / DS).glob("*.csv"))
    with csv_path.open("a") as f:
        f.write(f'PII-1,Nordvik Analytics,"c/o {person}, {email}, Stockholm"\n')
    remote = lambda hook, routes: ["https://api.example.com/v1"]  # noqa: E731
    monkeypatch.setattr(batch_mode, "route_providers", remote)
    monkeypatch.setattr(prompting, "route_providers", remote)
    planned, items = plan_items(raw_zone, tmp_path / "out", tmp_path, row_limit=None)
    for item in items:
        ChunkBatchOperator(task_id="prompt_batch", item=item, deferrable=False, poll_interval=30).execute(context())
    sent = b"".join(f["content"] for f in stub.batches.files.values()) + json.dumps(stub.requests).encode()
    batch_lines = [json.loads(line) for f in stub.batches.files.values() for line in f["content"].splitlines()]
    assert any("Stockholm" in json.dumps(line) for line in batch_lines)  # the record was sent…
    assert email.encode() not in sent and person.encode() not in sent  # …without its personal data
    assert b"<EMAIL_ADDRESS>" in sent


MATCHING = "company_matching"
THRESHOLDS = {"upper": 0.9, "lower": 0.5, "sample_size": 70, "calibrated_at": "2026-12-04"}


def cascade_batch_topic(include, proxy="rapidfuzz"):
    """``include``'s company_matching v1 in batch mode with a calibrated cascade of ``proxy``."""
    meta_path = include / "prompts" / MATCHING / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["versions"]["v1"]["cascade"] = {
        "proxy": proxy, "target": {"precision": 0.95, "recall": 0.95}, "thresholds": THRESHOLDS,
    }  # fmt: skip
    meta_path.write_text(yaml.safe_dump({**meta, "provider": {"mode": "batch"}}, sort_keys=False))


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def batch_lines(stub) -> list[dict]:
    """The request lines of every batch job the stub received (its input files, not the result files)."""
    files = [stub.batches.files[job["input_file_id"]] for job in stub.batches.jobs.values()]
    return [json.loads(line) for f in files for line in f["content"].splitlines()]


def run_batch_matching(raw_zone, out, tmp_path):
    """Plan, batch every chunk of company_matching, publish; ``(summaries, publish summary, manifest, rows)``."""
    import pyarrow.parquet as pq

    settings = Settings.from_env(
        raw_root=str(raw_zone), sanitized_root=str(out), staging_root=str(tmp_path / "staging"), llm_conn_id=None
    )
    found = stages.run_discover(settings, DS, [MATCHING], None)
    planned = stages.run_hash(settings, found, run_id="manual__cascade", row_limit=None, llm_conn_id="llm_default")
    items = stages.run_chunk(planned["plan_uri"])
    assert items and {i["mode"] for i in items} == {"batch"}
    summaries = [
        ChunkBatchOperator(task_id="prompt_batch", item=i, deferrable=False, poll_interval=30).execute(context())
        for i in items
    ]
    for step in (stages.run_scrub, stages.run_validate, stages.run_publish):
        result = step(planned["plan_uri"], MATCHING)
    part = out / "sanitized_data" / MATCHING / f"ds={DS}"
    manifest = json.loads((part / "_manifest.json").read_text())
    return summaries, result, manifest, pq.read_table(part / "part-00000.parquet").to_pylist()


def test_batch_mode_submits_only_the_band_the_proxy_is_not_sure_of(stub, raw_zone, tmp_path, monkeypatch):
    """The rapidfuzz proxy answers its sure records before submission; only the band reaches the batch."""
    from pipeline_hub.stages.cascade import PROXY_MODEL

    from lifecycle_helpers import copy_registry

    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    cascade_batch_topic(include)
    summaries, result, manifest, rows = run_batch_matching(raw_zone, tmp_path / "out", tmp_path)
    proxy = [r for r in rows if r["route"] == "proxy"]
    oracle = [r for r in rows if r["route"] == "oracle"]
    assert proxy and oracle, "the sample has both sure and unsure names"
    assert all(r["model"] == PROXY_MODEL for r in proxy)
    submitted = {r["record_id"] for p in (tmp_path / "staging").rglob("requests.jsonl") for r in read_jsonl(p)}
    assert len(batch_lines(stub)) == len(submitted) == len(oracle) == sum(s["batch"]["answered"] for s in summaries)
    assert submitted == {r["record_id"] for r in oracle} and not submitted & {r["record_id"] for r in proxy}
    assert sum(s["batch"]["left_out"].get("proxy", 0) for s in summaries) == len(proxy)
    usage = manifest["usage"]
    assert usage["cascade"]["proxy"] == len(proxy) == usage["records_by_route"]["proxy"]
    assert usage["cascade"]["oracle"] == len(oracle) and usage["cascade"]["calls_saved"] == len(proxy)
    # The stub's batch answers miss the per-record candidate ids, so each is repaired by a streaming call.
    assert sum(n for k, n in usage["records_by_route"].items() if k != "proxy") == len(oracle)
    counts = manifest["counts"]
    assert counts["in"] == counts["published"] + counts["quarantined_total"] == len(rows)
    assert result["published"] == len(rows)


def test_batch_mode_sends_everything_to_the_batch_without_a_rapidfuzz_proxy(stub, raw_zone, tmp_path, monkeypatch):
    """``proxy: none`` (as a model proxy would, in batch mode): every record is submitted, all on the oracle."""
    from lifecycle_helpers import copy_registry

    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    cascade_batch_topic(include, proxy="none")
    _, _, manifest, rows = run_batch_matching(raw_zone, tmp_path / "out", tmp_path)
    submitted = len(batch_lines(stub))
    assert submitted == len(rows) == manifest["counts"]["in"] and {r["route"] for r in rows} == {"oracle"}
    assert manifest["usage"]["cascade"]["proxy"] == 0 and "proxy" not in manifest["usage"]["records_by_route"]
