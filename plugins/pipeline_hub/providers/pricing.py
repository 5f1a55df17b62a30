"""Token counts → cost in USD: hosted models from genai-prices, local models from ``include/pricing.yaml``.

Hosted models (OpenAI, Azure OpenAI, Amazon Bedrock) are priced with `genai-prices
<https://github.com/pydantic/genai-prices>`_, pydantic's price data, at the version pinned in
``pyproject.toml``: list prices per 1M tokens, including dated price changes and prompt-length tiers.
``include/pricing.yaml`` holds what genai-prices does not: the Batch API discount (with its source)
and ``overrides_per_million_tokens`` for local or unknown models (``gemma-3-270m``, ``stub-model`` at 0),
which take precedence. A model in neither has no price: :func:`cost_usd` returns None, and a run with a
budget cap refuses to start on it (``tasks.hash``).

Which genai-prices provider is asked: the ``provider`` argument, one of :data:`PROVIDER_IDS` (our
connection kinds ``openai``, ``azure``, ``bedrock``), or, when it is None (the callers pass a model
name only), the model name decides: a Bedrock model or inference-profile id (``anthropic.claude-…``,
``us.amazon.nova-…``) → genai-prices ``aws``; any other name → the provider whose models genai-prices
matches by name (``gpt-*``, ``o3``… → ``openai``). An Azure deployment is priced by its name, so name
deployments after their model (Azure's global prices equal OpenAI's for most models) or add an override.

No network, ever: genai-prices downloads prices only through ``genai_prices.UpdatePrices`` (a background
thread fetching ``genai_prices.update_prices.DEFAULT_UPDATE_URL`` from GitHub, off unless someone starts
it, e.g. ``pydantic_ai.prices.update_in_background()``). This module never starts it, and prices from its
own ``DataSnapshot`` of the data bundled in the installed wheel (``genai_prices.data``), so an updater
started elsewhere in the process cannot change our figures: they change only when the pin does.

Sources: genai-prices README and ``genai_prices.calc_price`` / ``DataSnapshot`` (0.2.3); OpenAI Batch API
guide; Amazon Bedrock pricing (batch inference).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import yaml

from pipeline_hub.config import include_dir

#: Our connection kinds → genai-prices provider ids.
PROVIDER_IDS = {"openai": "openai", "azure": "azure", "bedrock": "aws"}

# A Bedrock model id: ``vendor.model…`` with an optional cross-region inference-profile prefix
# (``us.``, ``eu.``, ``apac.``, ``global.``…). The vendor is letters only, so ``gpt-4.1`` is not one.
_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,6}\.)?[a-z][a-z0-9]*\.[a-z]")


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """The parsed ``include/pricing.yaml``: ``{"currency", "batch_discount", "overrides_per_million_tokens":
    {model: {"input", "output"}}}`` (USD per 1M tokens)."""
    return yaml.safe_load((include_dir() / "pricing.yaml").read_text())


@lru_cache(maxsize=1)
def _snapshot():
    """genai-prices' bundled price data as a snapshot of our own (never an auto-updated one)."""
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def _provider_id(model: str, provider: str | None) -> str | None:
    if provider is not None:
        return PROVIDER_IDS.get(provider.lower(), provider)
    return "aws" if _BEDROCK_ID.match(model.lower()) else None


def _override(model: str) -> dict[str, float] | None:
    return (price_table().get("overrides_per_million_tokens") or {}).get(model)


def price_of(model: str, *, provider: str | None = None) -> dict[str, float] | None:
    """``{"input", "output"}`` USD per 1M tokens for ``model`` today, or None when neither the overrides
    nor genai-prices know it. For a model with prompt-length tiers these are the base (shortest) rates.

    ``provider``: a key of :data:`PROVIDER_IDS`, or None to infer it from the model name (module docstring).
    """
    if (price := _override(model)) is not None:
        return price
    try:
        _, info = _snapshot().find_provider_model(model, None, _provider_id(model, provider), None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.now(UTC))

    def per_million(value) -> float:
        return float(getattr(value, "base", value) or 0)

    return {"input": per_million(prices.input_mtok), "output": per_million(prices.output_mtok)}


def cost_usd(
    model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool = False, provider: str | None = None
) -> float | None:
    """Cost in USD of the given token counts at today's list price, or None for a model without a price.

    ``batch`` applies ``batch_discount`` of ``include/pricing.yaml`` (the Batch API's price, a fraction of
    list). ``provider``: a key of :data:`PROVIDER_IDS`, or None to infer it from the model name.
    """
    if (price := _override(model)) is not None:
        cost = (prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1_000_000
    else:
        from genai_prices import Usage

        usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
        try:
            calc = _snapshot().calc(usage, model, _provider_id(model, provider), None, None)
        except LookupError:
            return None
        cost = float(calc.total_price)
    return cost * float(price_table().get("batch_discount", 1.0)) if batch else cost
