"""LLMHook against the local stub over real HTTP: retries, fail-fast, repair and quarantine."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from pipeline_hub.prompting import prompt_records
from pipeline_hub.providers import LLMHook, ProviderError
from pipeline_hub.registry import load_topic
from pipeline_hub.testing.stub_llm import FaultPlan

from conftest import llm_conn

SCHEMA = load_topic("industry_classification").prompt.output_schema


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
    with pytest.raises(openai.BadRequestError):
        complete(LLMHook())
    assert stub.calls == 1


def test_connection_errors_are_retried(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(f"http://127.0.0.1:{port}/v1", max_retries=2))
    with pytest.raises(openai.APIConnectionError):
        complete(LLMHook())
    assert LLMHook.is_retryable(openai.APIConnectionError(request=None))


def test_retries_exhausted_raise_so_airflow_retries_the_task(stub):
    stub.fault_plan = FaultPlan(rate_500=1.0)
    with pytest.raises(openai.InternalServerError, match="internal error"):
        complete(LLMHook())
    assert stub.calls == 4  # 1 + max_retries (3 in the test connection)


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
