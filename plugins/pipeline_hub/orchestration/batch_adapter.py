"""``OpenAICompatibleBatchAdapter``: the common-ai provider's OpenAI Batch API adapter for our ``openai`` connections.

The provider's batch adapters (``airflow.providers.common.ai.batch``) accept only the connection types
they list in ``conn_types`` (the OpenAI adapter: ``pydanticai``). Our LLM connections are type
``openai`` with the same fields the adapter reads (host = base URL, password = key), so this subclass
only widens ``conn_types`` and serves its own ``model_id`` prefix, :data:`ADAPTER`
(``pipeline_hub_openai:<model>``). It is registered through the provider's entry-point group
``airflow.providers.common.ai.batch_adapters`` (``pyproject.toml``), so the operator, the trigger in the
triggerer and a retry all find it by that name, without a DAG file being imported.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.providers.common.ai.batch.openai import OpenAIBatchAdapter

ADAPTER = "pipeline_hub_openai"  # the model_id prefix; the entry point's name in pyproject.toml


class OpenAICompatibleBatchAdapter(OpenAIBatchAdapter):
    """OpenAI Batch API (``/v1/files``, ``/v1/batches``) for ``openai`` and ``pydanticai`` connections.

    Built by the provider's dispatch from a connection (``api_key`` = password, ``base_url`` = host);
    model ids are ``pipeline_hub_openai:<model>``. Everything else is the provider's ``OpenAIBatchAdapter``.
    """

    name: ClassVar[str] = ADAPTER
    conn_types: ClassVar[frozenset[str]] = frozenset({"openai", "pydanticai"})
