"""Airflow cluster policy: the prompt tasks of a run take the pool of the LLM connection the run uses.

An Airflow pool bounds how many task instances run at once across all workers, and an LLM provider's
limits (concurrency, requests and tokens per minute) belong to an account, i.e. to a connection. So the
pool must follow the connection: a run triggered with ``llm_conn_id=openai_batch`` must not count
against, nor be bounded by, the slots meant for ``llm_default``.

A task's ``pool`` is fixed when the DAG is parsed, before any run exists, so it cannot come from the run's
parameters. Airflow's documented hook for this is the cluster policy ``task_instance_mutation_hook``,
which the scheduler calls as it creates each task instance (mapped ones included) with the run at hand.
This module provides it through the ``airflow.policy`` entry point in ``pyproject.toml`` (no
``airflow_local_settings.py`` to copy into each deployment):

* it touches only task instances placed in the LLM pool (``PIPELINE_HUB_LLM_POOL``, default
  ``llm_default``: the ``prompt`` and ``prompt_batch`` tasks of ``prompt_pipeline``);
* when the run's conf names ``llm_conn_id`` and a pool of exactly that name exists, the task instance
  moves to that pool; otherwise it stays in the LLM pool, and a warning names the missing pool.

So "one pool per provider connection" means: create a pool named like the connection
(``airflow pools set openai_batch 8 "Prompt tasks on openai_batch"``). ``llm_default`` is both the
default connection and the default pool. Scheduled runs carry an empty conf and use the default.

Sources: Airflow docs, "Cluster Policies" (``task_instance_mutation_hook``, pluggy entry point
``airflow.policy``) and "Pools".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from airflow.policies import hookimpl

from pipeline_hub.config import get_settings

log = logging.getLogger(__name__)
CONF_KEY = "llm_conn_id"


def llm_pool() -> str:
    """The pool the DAG puts its LLM tasks in (``PIPELINE_HUB_LLM_POOL``, default ``llm_default``)."""
    return get_settings().llm_pool


def connection_pool(current_pool: str, conf: dict[str, Any] | None, pool_exists: Callable[[str], bool]) -> str:
    """The pool a task instance in ``current_pool`` should use in a run with ``conf``.

    Returns the run's ``llm_conn_id`` when the task is in the LLM pool (:func:`llm_pool`) and
    ``pool_exists(llm_conn_id)``; otherwise ``current_pool`` unchanged. Never raises.
    """
    conn_id = (conf or {}).get(CONF_KEY)
    if current_pool != llm_pool() or not isinstance(conn_id, str) or not conn_id or conn_id == current_pool:
        return current_pool
    if pool_exists(conn_id):
        return conn_id
    log.warning(
        "LLM connection %r has no pool of the same name: its prompt tasks share pool %r "
        "(create one with `airflow pools set %s <slots> <description>`)",
        conn_id,
        current_pool,
        conn_id,
    )
    return current_pool


@hookimpl
def task_instance_mutation_hook(task_instance, dag_run) -> None:
    """Airflow cluster policy (see the module docstring): route LLM tasks to their connection's pool.

    Runs in the scheduler (and ``airflow dags test``) inside its transaction: the pool lookup uses the
    session the run is bound to and neither opens a session nor commits, as the hook's contract requires.
    """
    if dag_run is None or task_instance.pool != llm_pool():
        return
    from airflow.models.pool import Pool
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return

    def pool_exists(name: str) -> bool:
        return Pool.get_pool(name, session=session) is not None

    task_instance.pool = connection_pool(task_instance.pool, dag_run.conf, pool_exists)
