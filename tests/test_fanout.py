"""Never pay twice, and never overspend: response cache, in-batch dedup, checkpointed retries,
budget cap, proactive rate limits and the chunk cap — against the stub over real HTTP."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.providers import LLMHook, ProviderError
from pipeline_hub.providers.cache import cache_key, open_cache
from pipeline_hub.stages.budget import Budget
from pipeline_hub.stages.chunk import max_chunks_per_source
from pipeline_hub.stages.plan import RunPlan
from pipeline_hub.stages.prompt import prompt_records
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, llm_conn
from support.stub_llm import FaultPlan

TOPIC = load_topic("industry_classification")


def records(n, same=False):
    return [
        {
            "record_id": str(i),
            "source_uri": "file:///x.csv",
            "position": i + 2,
            "fields": {"name": "Same Co" if same else f"Company {i}", "headquarters": "Somewhere"},
        }
        for i in range(n)
    ]


def test_cache_key_changes_with_template_model_and_schema_only():
    base = {
        "provider": "http://x/v1",
        "model": "m",
        "params": {"temperature": 0},
        "schema": {"type": "object"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    same = cache_key(**json.loads(json.dumps(base)))
    assert cache_key(**base) == same
    for field, value in [
        ("model", "m2"),
        ("schema", {"type": "array"}),
        ("params", {"temperature": 1}),
        ("messages", [{"role": "user", "content": "hi!"}]),
        ("provider", "http://y/v1"),
    ]:
        assert cache_key(**{**base, field: value}) != same, field


def test_second_pass_is_served_from_cache_with_zero_calls(stub):
    cache = open_cache()
    first, stats1 = prompt_records(LLMHook(), TOPIC, records(5), cache=cache)
    assert stub.calls == 5 and stats1.cache_hits == 0
    stub.reset()
    again, stats2 = prompt_records(LLMHook(), TOPIC, records(5), cache=cache)
    assert stub.calls == 0 and stats2.cache_hits == 5
    assert [r["answer"] for r in again] == [r["answer"] for r in first]


def test_identical_inputs_in_a_batch_are_sent_once(stub):
    results, stats = prompt_records(LLMHook(), TOPIC, records(6, same=True), cache=open_cache())
    assert stub.calls == 1 and stats.cache_hits == 5
    assert all(r["status"] == "ok" for r in results)


def test_task_dying_half_way_does_not_pay_again_on_retry(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, max_concurrency=1))
    cache = open_cache()
    stub.fault_plan = FaultPlan(sequence=["ok", "ok", "ok", "401"])
    with pytest.raises(ProviderError):
        prompt_records(LLMHook(), TOPIC, records(6), cache=cache)
    stub.reset()
    results, stats = prompt_records(LLMHook(), TOPIC, records(6), cache=cache)
    assert stats.cache_hits == 3 and stub.calls == 3  # only the unfinished records are paid for
    assert all(r["status"] == "ok" for r in results)


def test_budget_cap_quarantines_the_rest_and_says_so(stub, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, max_concurrency=1))
    hook = LLMHook()
    # stub-model is free in include/pricing.yaml; price it for this test.
    monkeypatch.setattr("pipeline_hub.stages.budget.cost_usd", lambda model, p, c, **kw: 0.01)
    budget = Budget(cap_usd=0.03, allowance_usd=0.03, model=hook.model)
    results, stats = prompt_records(hook, TOPIC, records(6), cache=open_cache(), budget=budget)
    assert [r["status"] for r in results] == ["ok"] * 3 + ["quarantined"] * 3
    assert stats.quarantined == {"budget_exceeded": 3} and stub.calls == 3
    assert "budget of 0.03 USD" in results[-1]["detail"]


def test_budget_cap_requires_a_priced_model(stub, raw_zone, tmp_path, monkeypatch):
    conn = json.loads(llm_conn(stub.base_url))
    conn["extra"]["model"] = "some-unpriced-model"
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(conn))
    with pytest.raises(ValueError, match="no price in genai-prices or include/pricing.yaml"):
        run_pipeline(raw_root=str(raw_zone), output_root=str(tmp_path / "o"), ds=DS, budget_usd=1.0)


def test_requests_per_minute_limit_provokes_no_429(stub, monkeypatch):
    stub.rpm_limit = 120  # the server's own limit
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, requests_per_minute=120, max_concurrency=8))
    try:
        results, _ = prompt_records(LLMHook(), TOPIC, records(8), cache=open_cache())
    finally:
        stub.rpm_limit = None
    assert stub.calls_by_status.get(429, 0) == 0 and all(r["status"] == "ok" for r in results)


def test_manifest_and_metrics_carry_usage_and_cache_hit_rate(stub, raw_zone, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=["industry_classification"])
    m = json.loads((out / "sanitized_data" / "industry_classification" / f"ds={DS}" / "_manifest.json").read_text())
    u = m["usage"]
    assert u["llm_calls"] == m["counts"]["in"] and u["cache_hit_rate"] == 0.0
    assert u["latency_p50_s"] is not None and u["latency_p95_s"] >= u["latency_p50_s"]
    assert u["cost_usd"] == 0.0 and m["budget"] == {"cap_usd": None, "spent_usd": 0.0, "exceeded": False}
    metrics = pq.read_table(out / "metrics" / "llm_usage" / f"ds={DS}" / "industry_classification.parquet")
    assert metrics.to_pylist()[0]["llm_calls"] == u["llm_calls"]


def test_chunk_count_is_capped_so_mapped_tasks_stay_bounded():
    plan = RunPlan.from_dict(
        {
            "run_id": "r",
            "ds": DS,
            "row_limit": None,
            "llm_conn_id": "llm_default",
            "model": "m",
            "provider": "p",
            "settings": {"max_chunks": 100},
            "started_at": "",
            "sources": {},
            "topics": [
                {"topic": t, "source": "companies", "prompt_version": "v1", "template_sha256": "x"} for t in ("a", "b")
            ],
        }
    )
    assert max_chunks_per_source(plan) == {"companies": 100}
    plan.settings["max_chunks"] = 5000
    assert max_chunks_per_source(plan) == {"companies": 512}  # max_map_length 1024 / 2 topics
    # prompt is one task mapped over every topic's chunks: 4 topics on 2 sources share the 1024 between them.
    plan.topics += [dataclasses.replace(plan.topics[0], topic=t, source="ai_use_cases") for t in ("c", "d")]
    caps = max_chunks_per_source(plan)
    assert caps == {"companies": 256, "ai_use_cases": 256}
    assert sum(caps[tp.source] for tp in plan.pending) <= 1024


def test_heap_is_frozen_once_so_later_chunks_garbage_is_still_collected():
    """freeze_heap freezes once per process: cyclic garbage made after it (a chunk's) is collected, not
    frozen by the next chunk's call (an in-process run's RSS grew 4 KB a record before)."""
    import gc

    from pipeline_hub.stages.prompt import freeze_heap

    freeze_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0

    class Node:
        pass

    for _ in range(100):  # what a chunk leaves: reference cycles nothing points to
        a, b = Node(), Node()
        a.other, b.other = b, a
    del a, b
    freeze_heap()  # the next chunk
    assert gc.get_freeze_count() == frozen
    assert gc.collect() >= 200
