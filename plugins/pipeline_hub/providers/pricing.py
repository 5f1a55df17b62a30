"""Token prices (``include/pricing.yaml``, USD per 1M tokens, with the date they were taken) → cost."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from pipeline_hub.config import include_dir


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """The parsed price table: ``{"taken", "currency", "per_million_tokens": {model: {input, output}}}``."""
    return yaml.safe_load((include_dir() / "pricing.yaml").read_text())


def price_of(model: str) -> dict[str, float] | None:
    """``{"input", "output"}`` USD per 1M tokens for ``model``, or None when the table lacks it."""
    return price_table()["per_million_tokens"].get(model)


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float | None:
    """Cost in USD of the given token counts, or None for a model without a price.

    ``batch`` applies the table's ``batch_discount`` (the Batch API's price, a fraction of list).
    """
    price = price_of(model)
    if price is None:
        return None
    cost = (prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1_000_000
    return cost * float(price_table().get("batch_discount", 1.0)) if batch else cost
