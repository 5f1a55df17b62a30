"""Provider layer: one hook interface over LLM providers, chosen by the Airflow connection.

Modules: ``hook`` (``LLMHook``, OpenAI-compatible), ``bedrock`` (``BedrockLLMHook``), ``session`` (one
task's calls: concurrency, rate limits, cache, ``Completion``), ``errors`` (provider errors and failure
descriptions), ``breaker`` (the circuit breaker), ``structured`` (structured-output dialects),
``routing`` (per-topic routes and fallback), ``cache`` (the response cache) and ``pricing``.

Imports: only the base modules (``config``, ``exceptions``, ``reasons``, ``storage``); nothing from
``prompts``, ``pii``, ``quality``, ``stages`` or above.

Names are imported lazily so that a DAG file importing an operator from here does not load the
``openai`` client at parse time.
"""

from __future__ import annotations

from typing import Any

# Where each public name lives (imported on first use).
_HOME = {"Completion": "session", "LLMHook": "hook", "ProviderError": "errors"}
__all__ = list(_HOME)


def __getattr__(name: str) -> Any:
    """``Completion``, ``LLMHook`` or ``ProviderError``, imported from its module on first access."""
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"pipeline_hub.providers.{_HOME[name]}"), name)
    raise AttributeError(f"module 'pipeline_hub.providers' has no attribute {name!r}")
