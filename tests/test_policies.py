"""The cluster policy routes LLM tasks to the pool of the run's connection (pipeline_hub.orchestration.policies).

The routing rule is tested here; ``test_e2e_airflow`` checks it inside a real ``airflow dags test`` run
(task instances created by the scheduler code with the policy loaded from the ``airflow.policy`` entry
point).
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from pipeline_hub.orchestration import policies

POOLS = {"llm_default", "openai_batch"}


def route(current: str, conf: dict | None) -> str:
    return policies.connection_pool(current, conf, POOLS.__contains__)


def test_run_on_another_connection_takes_that_connections_pool():
    assert route("llm_default", {"llm_conn_id": "openai_batch"}) == "openai_batch"


@pytest.mark.parametrize(
    "conf",
    [None, {}, {"llm_conn_id": "llm_default"}, {"llm_conn_id": ""}, {"llm_conn_id": 7}, {"other": "openai_batch"}],
)
def test_default_connection_or_no_choice_keeps_the_llm_pool(conf):
    assert route("llm_default", conf) == "llm_default"


def test_missing_pool_keeps_the_llm_pool_and_warns(caplog):
    with caplog.at_level("WARNING", logger="pipeline_hub.orchestration.policies"):
        assert route("llm_default", {"llm_conn_id": "azure_prod"}) == "llm_default"
    assert "azure_prod" in caplog.text and "airflow pools set" in caplog.text


def test_tasks_outside_the_llm_pool_are_never_moved():
    assert route("default_pool", {"llm_conn_id": "openai_batch"}) == "default_pool"


def test_llm_pool_follows_the_environment(monkeypatch):
    monkeypatch.setenv("PIPELINE_HUB_LLM_POOL", "llm_shared")
    assert route("llm_shared", {"llm_conn_id": "openai_batch"}) == "openai_batch"
    assert route("llm_default", {"llm_conn_id": "openai_batch"}) == "llm_default"


def test_policy_is_registered_as_an_airflow_policy_entry_point():
    targets = {ep.value for ep in entry_points(group="airflow.policy")}
    assert "pipeline_hub.orchestration.policies" in targets
