"""LLMHook against the local stub over real HTTP: retries, fail-fast, repair and quarantine."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from pipeline_hub import reasons
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.providers import LLMHook, ProviderError
from pipeline_hub.providers.breaker import CircuitBreaker
from pipeline_hub.providers.cache import open_cache
from pipeline_hub.providers.errors import CallFailed, ProviderUnavailable, describe_failure
from pipeline_hub.stages.prompt import prompt_records

from conftest import llm_conn
from support.stub_llm import FaultPlan, closed_port

TOPIC = load_topic("industry_classification")
SCHEMA = TOPIC.prompt.output_schema


def records(n):
    return [
        {
            "record_id": str(i),
            "source_uri": "file:///x.csv",
            "position": i + 2,
            "fields": {"name": f"Company {i}", "headquarters": "Somewhere"},
        }
        for i in range(n)
    ]


def complete(hook):
    async def go():
        client = hook.get_async_client()
        try:
            return await hook.acomplete(client, [{"role": "user", "content": "hi"}], schema=SCHEMA, schema_name="t")
        finally:
            await client.close()

    return asyncio.run(go())


def test_429_and_500_are_retried_honouring_retry_after(stub):
    stub.fault_plan = FaultPlan(sequence=["429", "500", "ok"], retry_after_s=0.2)
    result = complete(LLMHook())
    assert result.attempts == 3 and stub.calls == 3
    assert stub.calls_by_status[429] == 1 and stub.calls_by_status[500] == 1
    assert result.latency_s >= 0.2  # waited at least Retry-After


def test_timeout_is_retried(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, timeout=0.5))
    stub.fault_plan = FaultPlan(sequence=["timeout", "ok"], timeout_sleep_s=1.5)
    assert complete(LLMHook()).attempts == 2


def test_exhausted_timeouts_say_timeout_and_name_the_connection(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub.base_url, timeout=0.3, max_retries=1))
    stub.fault_plan = FaultPlan(sequence=["timeout", "timeout"], timeout_sleep_s=1.0)
    with pytest.raises(CallFailed, match=r"LLM connection 'llm_default' model stub-model: timeout after 0.3s \(2"):
        complete(LLMHook())


def test_401_fails_fast_naming_the_connection(stub):
    stub.fault_plan = FaultPlan(always_status=401)
    with pytest.raises(ProviderError, match="LLM connection 'llm_default'.*401"):
        complete(LLMHook())
    assert stub.calls == 1


def test_403_fails_fast_and_400_is_not_retried(stub):
    stub.fault_plan = FaultPlan(always_status=403)
    with pytest.raises(ProviderError, match="403"):
        complete(LLMHook())
    stub.reset()
    stub.fault_plan = FaultPlan(sequence=["400"])
    with pytest.raises(CallFailed, match="'llm_default' model stub-model: HTTP 400") as info:
        complete(LLMHook())
    assert stub.calls == 1 and not info.value.retryable and not LLMHook.is_retryable(info.value)


def test_refused_connection_is_retried_then_reported_as_refused_not_timeout(monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(url, max_retries=2, retry_backoff_s=0.01))
    with pytest.raises(CallFailed, match=r"'llm_default' model stub-model: connection refused \(3 attempts\)"):
        complete(LLMHook())
    assert LLMHook.is_retryable(openai.APIConnectionError(request=None))


def test_failures_are_told_apart_from_the_cause_chain():
    def chained(outer, inner):
        try:
            try:
                raise inner
            except BaseException as exc:
                raise outer from exc
        except BaseException as exc:
            return exc

    refused = chained(openai.APITimeoutError(request=None), ConnectionRefusedError(111, "refused"))
    assert describe_failure(refused, 5) == "connection refused"  # aiohttp's mapping says ConnectTimeout
    assert describe_failure(openai.APITimeoutError(request=None), 5) == "timeout after 5s"
    reset = chained(openai.APIConnectionError(request=None), ConnectionResetError(104, "reset"))
    assert describe_failure(reset, 5) == "connection closed by the server"
    assert describe_failure(openai.APIConnectionError(request=None), 5) == "connection error (APIConnectionError)"


def test_retries_exhausted_raise_call_failed_naming_connection_and_status(stub):
    stub.fault_plan = FaultPlan(rate_500=1.0)
    with pytest.raises(CallFailed, match=r"LLM connection 'llm_default' model stub-model: HTTP 500 \(4 attempts\)"):
        complete(LLMHook())
    assert stub.calls == 4  # 1 + max_retries (3 in the test connection)
    stub.reset()
    stub.fault_plan = FaultPlan(rate_429=1.0, retry_after_s=0)
    with pytest.raises(CallFailed, match="HTTP 429") as info:
        complete(LLMHook())
    assert info.value.retryable and LLMHook.is_retryable(info.value)


def fast_conn(stub, **extra):
    return llm_conn(stub.base_url, max_retries=1, retry_backoff_s=0.001, **extra)


def test_a_record_failing_every_attempt_is_quarantined_not_cached_and_retried_next_run(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", fast_conn(stub))
    stub.fault_for = lambda body: "500" if "Company 1" in json.dumps(body["messages"]) else None
    cache = open_cache()
    results, stats = prompt_records(LLMHook(), TOPIC, records(4), cache=cache)
    assert [r["status"] for r in results] == ["ok", "quarantined", "ok", "ok"]
    bad = results[1]
    assert bad["reason"] == reasons.PROVIDER_ERROR
    detail = reasons.plain(bad["detail"])
    assert "connection llm_default model stub-model: HTTP 500 (2 attempts)" in detail
    assert "file:///x.csv record 3" in detail and "Company" not in detail
    assert stats.quarantined == {reasons.PROVIDER_ERROR: 1} and stats.provider_failures == {"HTTP 500": 1}
    assert bad["usage"]["attempts"] == 2 and not bad["usage"]["cache_hit"]
    stub.reset()  # the fault is gone: only the failed record is sent again
    results, stats = prompt_records(LLMHook(), TOPIC, records(4), cache=cache)
    assert [r["status"] for r in results] == ["ok"] * 4 and stub.calls == 1 and stats.cache_hits == 3


def test_an_in_flight_duplicate_gets_the_same_per_record_outcome(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", fast_conn(stub))
    stub.fault_plan = FaultPlan(rate_500=1.0)
    stub.latency_s = 0.05  # the duplicates wait on the first request
    same = [{**r, "fields": {"name": "Same Co", "headquarters": "X"}} for r in records(3)]
    try:
        results, stats = prompt_records(LLMHook(), TOPIC, same, cache=open_cache())
    finally:
        stub.latency_s = 0.0
    assert [r["reason"] for r in results] == [reasons.PROVIDER_ERROR] * 3
    assert stub.calls == 2  # sent once (first try + one retry), shared by the duplicates
    assert len({r["detail"] for r in results}) == 3  # each names its own record


def test_circuit_breaker_stops_the_chunk_when_the_provider_is_down(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", fast_conn(stub, breaker_consecutive=5))
    stub.fault_plan = FaultPlan(always_status=503)
    with pytest.raises(ProviderUnavailable) as info:
        prompt_records(LLMHook(), TOPIC, records(200), cache=open_cache())
    message = str(info.value)
    assert "LLM connection 'llm_default' (model stub-model) looks unavailable" in message and "\n" not in message
    assert "5 of the last 5 records" in message and "HTTP 503" in message
    assert isinstance(info.value, ProviderError)
    assert stub.calls < 200  # stopped sending long before the end of the chunk


def test_circuit_breaker_thresholds():
    fail = CallFailed("c", "m", "HTTP 500", attempts=2)
    breaker = CircuitBreaker(consecutive=3, window=4, ratio=0.5)
    for outcome in (fail, fail, None):  # 2 in a row, window not yet full: no trip
        breaker.record(outcome)
    with pytest.raises(ProviderUnavailable, match="3 of the last 4 records.*HTTP 500"):  # the ratio rule
        breaker.record(fail)
    with pytest.raises(ProviderUnavailable):  # stays tripped
        breaker.record(None)
    scattered = CircuitBreaker(consecutive=3, window=10, ratio=0.5)
    for i in range(100):  # one failure in five never trips
        scattered.record(fail if i % 5 == 0 else None)
    off = CircuitBreaker(consecutive=0, window=0)
    for _ in range(50):
        off.record(fail)


def test_one_malformed_answer_is_repaired_and_bad_record_does_not_fail_chunk(stub):
    topic = load_topic("industry_classification")
    stub.fault_plan = FaultPlan(sequence=["malformed", "ok"])
    results, stats = prompt_records(LLMHook(), topic, records(1))
    assert results[0]["status"] == "ok" and stats.calls == 2

    stub.reset()
    stub.responder = lambda body: "{}" if "Company 1" in body["messages"][1]["content"] else None
    results, stats = prompt_records(LLMHook(), topic, records(3))
    assert [r["status"] for r in results] == ["ok", "quarantined", "ok"]
    assert results[1]["reason"] == "invalid_output" and "required" in results[1]["detail"]
    assert stats.quarantined == {"invalid_output": 1}


def test_missing_model_is_a_clear_configuration_error(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps({"conn_type": "openai", "host": stub.base_url}))
    with pytest.raises(ProviderError, match="'llm_default'.*model"):
        _ = LLMHook().model


def azure_conn(stub, **extra) -> str:
    """An Azure OpenAI deployment-style connection: host = resource endpoint, model = deployment."""
    return json.dumps(
        {
            "conn_type": "openai",
            "host": f"http://{stub.host}:{stub.port}",
            "password": "azure-key",
            "extra": {"model": "gpt4o-mini-eu", "api_version": "2024-10-21", "max_retries": 2, **extra},
        }
    )


def test_azure_deployment_connection_calls_the_deployment_route(stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_AZURE", azure_conn(stub))
    hook = LLMHook("llm_azure")
    assert isinstance(hook.get_async_client(), openai.AsyncAzureOpenAI)
    stub.fault_plan = FaultPlan(sequence=["429", "ok"], retry_after_s=0)
    result = complete(hook)
    assert stub.azure_calls == [{"deployment": "gpt4o-mini-eu", "api_version": "2024-10-21"}] * 2
    assert result.attempts == 2 and result.model == "gpt4o-mini-eu"
    body = stub.requests[-1]
    assert body["response_format"]["type"] == "json_schema"  # Azure speaks OpenAI's Structured Outputs
    assert json.loads(result.content)["sector"]


def test_azure_without_endpoint_or_with_a_wrong_key_fails_clearly(stub, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LLM_AZURE", json.dumps({"conn_type": "openai", "extra": {"model": "d", "api_version": "x"}})
    )
    with pytest.raises(ProviderError, match="'llm_azure'.*endpoint"):
        LLMHook("llm_azure").get_async_client()
    monkeypatch.setenv("AIRFLOW_CONN_LLM_AZURE", azure_conn(stub))
    stub.fault_plan = FaultPlan(always_status=401)
    with pytest.raises(ProviderError, match="'llm_azure'.*401"):
        complete(LLMHook("llm_azure"))
