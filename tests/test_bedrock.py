"""Amazon Bedrock through the amazon provider's runtime hook (Converse API), against the stub's Converse
endpoint over real HTTP: same interface, same fault handling, chosen by the connection type."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from pipeline_hub import reasons
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.providers import ProviderError
from pipeline_hub.providers.bedrock import BedrockLLMHook
from pipeline_hub.providers.errors import CallFailed
from pipeline_hub.providers.routing import get_hook
from pipeline_hub.stages.prompt import prompt_records
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS
from support.stub_llm import FaultPlan, closed_port

TOPIC = load_topic("industry_classification")
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture
def bedrock(stub, monkeypatch):
    """The stub, also configured as the ``aws`` connection ``bedrock_default``."""
    conn = {
        "conn_type": "aws",
        "login": "AKIDSTUBSTUBSTUB",
        "password": "stub-secret-key",
        "extra": {
            "region_name": "us-east-1",
            "endpoint_url": stub.base_url.removesuffix("/v1"),
            "model": MODEL,
            "max_retries": 3,
            "max_concurrency": 4,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_BEDROCK_DEFAULT", json.dumps(conn))
    return stub


def records(n):
    return [
        {
            "record_id": str(i),
            "source_uri": "file:///x.csv",
            "position": i + 2,
            "fields": {"name": f"Co {i}", "headquarters": "Seattle"},
        }
        for i in range(n)
    ]


def test_connection_type_picks_the_hook(bedrock):
    hook = get_hook("bedrock_default")
    assert isinstance(hook, BedrockLLMHook) and hook.model == MODEL
    assert type(get_hook("llm_default")).__name__ == "LLMHook"


def test_converse_with_forced_tool_answers_schema_valid_json(bedrock):
    results, stats = prompt_records(get_hook("bedrock_default"), TOPIC, records(3))
    assert [r["status"] for r in results] == ["ok"] * 3 and stats.calls == 3
    sent = bedrock.requests[0]
    assert sent["model"] == MODEL and sent["response_format"]["schema"]["required"] == ["sector", "confidence"]


def test_throttling_and_5xx_are_retried_and_malformed_answers_repaired(bedrock):
    bedrock.fault_plan = FaultPlan(sequence=["429", "500", "malformed"])
    results, stats = prompt_records(get_hook("bedrock_default"), TOPIC, records(1))
    assert results[0]["status"] == "ok"
    assert bedrock.calls == 4 == stats.calls  # two retries, the malformed answer, its repair
    assert bedrock.calls_by_status[429] == 1 and bedrock.calls_by_status[500] == 1


@pytest.mark.parametrize("status", [401, 403])
def test_refusals_fail_fast_naming_the_connection(bedrock, status):
    bedrock.fault_plan = FaultPlan(always_status=status)
    with pytest.raises(ProviderError, match="bedrock_default"):
        prompt_records(get_hook("bedrock_default"), TOPIC, records(1))
    assert bedrock.calls == 1


def test_a_bad_request_is_not_retried_and_quarantines_the_record(bedrock):
    bedrock.fault_plan = FaultPlan(sequence=["400"])
    results, _ = prompt_records(get_hook("bedrock_default"), TOPIC, records(2))
    assert bedrock.calls == 2 and [r["status"] for r in results].count("ok") == 1
    bad = next(r for r in results if r["status"] != "ok")
    assert bad["reason"] == reasons.PROVIDER_ERROR
    assert f"connection bedrock_default model {MODEL}: HTTP 400 ValidationException (1 attempts)" in reasons.plain(
        bad["detail"]
    )


def test_exhausted_5xx_and_throttling_name_the_connection_and_status(bedrock, monkeypatch):
    hook = get_hook("bedrock_default")
    hook.extras.update(max_retries=1, retry_backoff_s=0.001)
    bedrock.fault_plan = FaultPlan(rate_500=1.0)
    with pytest.raises(CallFailed, match=r"Bedrock connection 'bedrock_default'.*HTTP 500 InternalServerException"):
        complete(hook)
    bedrock.fault_plan = FaultPlan(rate_429=1.0, retry_after_s=0)
    with pytest.raises(CallFailed, match="HTTP 429 ThrottlingException") as info:
        complete(hook)
    assert info.value.retryable and hook.is_retryable(info.value)
    assert isinstance(info.value.__cause__, ClientError)


def test_refused_endpoint_is_reported_as_refused(bedrock, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_BEDROCK_DEFAULT"])
    conn["extra"].update(endpoint_url=f"http://127.0.0.1:{closed_port()}", max_retries=1, retry_backoff_s=0.001)
    monkeypatch.setenv("AIRFLOW_CONN_BEDROCK_DEFAULT", json.dumps(conn))
    hook = get_hook("bedrock_default")
    with pytest.raises(CallFailed, match=r"'bedrock_default' model .*: connection refused \(2 attempts\)"):
        complete(hook)


def test_read_timeout_is_reported_as_timeout(bedrock):
    hook = get_hook("bedrock_default")
    hook.extras.update(timeout=0.3, max_retries=0)
    bedrock.fault_plan = FaultPlan(sequence=["timeout"], timeout_sleep_s=1.0)
    with pytest.raises(CallFailed, match=r"'bedrock_default' model .*: timeout after 0.3s"):
        complete(hook)


def complete(hook):
    import asyncio

    async def go():
        client = hook.get_async_client()
        try:
            messages = [{"role": "user", "content": "hi"}]
            return await hook.acomplete(client, messages, schema=TOPIC.prompt.output_schema, schema_name="t")
        finally:
            await hook.aclose(client)

    return asyncio.run(go())


def test_pipeline_runs_on_a_bedrock_connection(bedrock, raw_zone, tmp_path):
    out = tmp_path / "out"
    result = run_pipeline(
        raw_root=str(raw_zone),
        output_root=str(out),
        ds=DS,
        topics=["industry_classification"],
        row_limit=5,
        llm_conn_id="bedrock_default",
    )
    assert not result.failed and result.published[0]["published"] == 5
    part = out / "sanitized_data" / "industry_classification" / f"ds={DS}" / "part-00000.parquet"
    assert set(pq.read_table(part).column("model").to_pylist()) == {MODEL}
