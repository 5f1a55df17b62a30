"""Provider layer: one hook interface over LLM providers, chosen by the Airflow connection."""

from pipeline_hub.providers.hook import Completion, LLMHook, ProviderError

__all__ = ["Completion", "LLMHook", "ProviderError"]
