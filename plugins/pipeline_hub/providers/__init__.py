"""Provider layer: one hook interface over LLM providers, chosen by the Airflow connection.

What lives here: the OpenAI-compatible chat hook (``hook``: OpenAI, Azure OpenAI, any OpenAI-compatible
server), Amazon Bedrock (``bedrock``), the response cache (``cache``), per-topic model routing
(``routing``) and token prices (``pricing``).

Imports: only the base modules (``config``, ``exceptions``, ``reasons``, ``storage``); nothing from
``prompts``, ``pii``, ``quality``, ``stages`` or above.

Names are imported lazily so that a DAG file importing an operator from here does not load the
``openai`` client at parse time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Completion", "LLMHook", "ProviderError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipeline_hub.providers import hook

        return getattr(hook, name)
    raise AttributeError(f"module 'pipeline_hub.providers' has no attribute {name!r}")
