"""Per-topic routing: model override, long inputs to a larger model, fallback after exhausted retries —
against stub servers over real HTTP."""

from __future__ import annotations

import shutil

import pytest
import yaml

from pipeline_hub import reasons
from pipeline_hub.prompts.registry import RegistryError, load_topic
from pipeline_hub.providers import LLMHook, ProviderError
from pipeline_hub.providers.routing import ProviderSpec, estimate_tokens, resolve_routes
from pipeline_hub.stages.plan import RunPlan, TopicPlan
from pipeline_hub.stages.prompt import prompt_records

from conftest import REPO, llm_conn
from support.stub_llm import FaultPlan, StubLLMServer

TOPIC = load_topic("industry_classification")


def records(n, long_every=0):
    out = []
    for i in range(n):
        fields = {"name": f"Company {i}", "headquarters": "Somewhere"}
        if long_every and i % long_every == 0:
            fields["description"] = "word " * 2000  # ~10 000 characters, ~2 500 estimated tokens
        out.append({"record_id": str(i), "source_uri": "file:///x.csv", "position": i + 2, "fields": fields})
    return out


@pytest.fixture
def second_stub(monkeypatch):
    with StubLLMServer(model="big-model") as server:
        monkeypatch.setenv("AIRFLOW_CONN_LLM_FALLBACK", llm_conn(server.base_url, model="fallback-model"))
        yield server


def routes(**kw):
    spec = ProviderSpec.parse(kw, "metadata.yaml")
    return resolve_routes(spec, "llm_default")


def test_fallback_answers_after_the_primary_exhausts_its_retries(stub, second_stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, max_retries=1))
    stub.fault_plan = FaultPlan(always_status=500)
    r = routes(fallback={"conn_id": "llm_fallback"})
    assert r["fallback"] == {"conn_id": "llm_fallback", "model": "fallback-model"}
    results, stats = prompt_records(LLMHook(), TOPIC, records(4), routes=r)
    assert [x["status"] for x in results] == ["ok"] * 4
    assert {x["usage"]["route"] for x in results} == {"fallback"}
    assert {x["usage"]["model"] for x in results} == {"fallback-model"}
    assert stub.calls == 4 * 2  # first try + one retry each, then the fallback
    assert second_stub.calls == 4 and stats.routes == {"fallback": 4}
    assert {b["model"] for b in second_stub.requests} == {"fallback-model"}


def test_no_fallback_on_a_refusal_that_cannot_succeed(stub, second_stub):
    stub.fault_plan = FaultPlan(always_status=401)
    with pytest.raises(ProviderError, match="llm_default"):
        prompt_records(LLMHook(), TOPIC, records(2), routes=routes(fallback={"conn_id": "llm_fallback"}))
    assert second_stub.calls == 0


def test_exhausted_retries_without_fallback_quarantine_the_record(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, max_retries=1))
    stub.fault_plan = FaultPlan(always_status=500)
    results, stats = prompt_records(LLMHook(), TOPIC, records(2))
    assert [r["reason"] for r in results] == [reasons.PROVIDER_ERROR] * 2  # the next run sends them again
    assert all("connection llm_default model stub-model: HTTP 500" in reasons.plain(r["detail"]) for r in results)


def test_a_fallback_that_fails_too_names_both_connections(stub, second_stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, max_retries=1, retry_backoff_s=0.001))
    monkeypatch.setenv(
        "AIRFLOW_CONN_LLM_FALLBACK",
        llm_conn(second_stub.base_url, model="fallback-model", max_retries=0),
    )
    stub.fault_plan = FaultPlan(always_status=500)
    second_stub.fault_plan = FaultPlan(rate_429=1.0, retry_after_s=0)
    results, _ = prompt_records(LLMHook(), TOPIC, records(1), routes=routes(fallback={"conn_id": "llm_fallback"}))
    detail = reasons.plain(results[0]["detail"])
    assert results[0]["reason"] == reasons.PROVIDER_ERROR
    assert "connection llm_fallback model fallback-model: HTTP 429; before it, connection 'llm_default'" in detail
    assert "model stub-model: HTTP 500 (3 attempts)" in detail


def test_long_inputs_go_to_the_larger_model(stub):
    r = routes(long_input={"threshold_tokens": 1000, "model": "big-model"})
    results, stats = prompt_records(LLMHook(), TOPIC, records(6, long_every=3), routes=r)
    by_id = {x["record_id"]: x["usage"] for x in results}
    assert {i for i, u in by_id.items() if u["route"] == "long_input"} == {"0", "3"}
    assert by_id["0"]["model"] == "big-model" and by_id["1"]["model"] == "stub-model"
    sent = sorted(b["model"] for b in stub.requests)
    assert sent == ["big-model"] * 2 + ["stub-model"] * 4
    assert stats.routes == {"long_input": 2, "primary": 4}


def test_topic_model_overrides_the_connection_and_misses_the_cache(stub):
    first, _ = prompt_records(LLMHook(), TOPIC, records(2))
    r = routes(model="other-model")
    assert r["primary"] == {"conn_id": "llm_default", "model": "other-model"}
    again, stats = prompt_records(LLMHook(model="other-model"), TOPIC, records(2), routes=r)
    assert stats.cache_hits == 0 and stub.calls == 4
    assert {x["usage"]["model"] for x in again} == {"other-model"}


def test_token_estimate_is_a_quarter_of_the_characters():
    assert estimate_tokens([{"role": "user", "content": "x" * 10}, {"role": "system", "content": "y" * 2}]) == 3


def test_routes_are_part_of_the_publication_identity_only_when_set():
    plan = RunPlan(
        run_id="r",
        ds="2025-01-15",
        row_limit=None,
        llm_conn_id="c",
        model="m",
        provider="p",
        settings={},
        started_at="",
    )
    plain = TopicPlan(
        "t",
        "s",
        "v1",
        "abc",
        batch_hash="h",
        routes={"mode": "stream", "primary": {"conn_id": "c", "model": "m"}, "long_input": None, "fallback": None},
    )
    assert plan.identity(plain) == {
        "ds": "2025-01-15",
        "batch_hash": "h",
        "inputs": [],
        "prompt_version": "v1",
        "template_sha256": "abc",
        "model": "m",
        "row_limit": None,
    }
    routed = TopicPlan(
        "t", "s", "v1", "abc", batch_hash="h", routes={**plain.routes, "fallback": {"conn_id": "f", "model": "fm"}}
    )
    assert plan.identity(routed)["routes"] == {"fallback": {"conn_id": "f", "model": "fm"}}


@pytest.mark.parametrize(
    "section, message",
    [
        ({"mode": "turbo"}, "provider.mode"),
        ({"long_input": {"model": "big"}}, "threshold_tokens"),
        ({"fallback": {}}, "provider.fallback needs"),
        ({"fallbacks": {"model": "x"}}, "unknown keys"),
    ],
)
def test_a_bad_provider_section_names_the_file(tmp_path, section, message):
    prompts = tmp_path / "prompts"
    shutil.copytree(REPO / "include" / "prompts", prompts)
    meta_path = prompts / "industry_classification" / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta_path.write_text(yaml.safe_dump({**meta, "provider": section}))
    with pytest.raises(RegistryError, match=message) as info:
        load_topic("industry_classification", prompts)
    assert "metadata.yaml" in str(info.value)
