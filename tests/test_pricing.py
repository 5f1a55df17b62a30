"""Token prices: hosted models from genai-prices' bundled data, local models from include/pricing.yaml."""

from __future__ import annotations

import socket

import genai_prices
import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot

from pipeline_hub.providers import pricing


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def genai_figure(model: str, prompt_tokens: int, completion_tokens: int, **kwargs) -> float:
    """genai-prices' own figure for the call."""
    usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
    return float(genai_prices.calc_price(usage, model, **kwargs).total_price)


def test_hosted_model_is_priced_by_genai_prices(no_network):
    expected = genai_figure("gpt-4o-mini", 1_000_000, 1_000_000, provider_id="openai")
    assert expected > 0
    assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(expected)
    assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000, provider="openai") == pytest.approx(expected)
    price = pricing.price_of("gpt-4o-mini")
    assert price["input"] + price["output"] == pytest.approx(expected)
    assert "gpt-4o-mini" not in pricing.price_table()["overrides_per_million_tokens"]


def test_provider_kinds_map_to_genai_prices_providers(no_network):
    assert pricing.cost_usd("gpt-4.1", 1000, 500, provider="azure") == pytest.approx(
        genai_figure("gpt-4.1", 1000, 500, provider_id="azure")
    )
    bedrock = "anthropic.claude-3-haiku-20240307-v1:0"
    expected = genai_figure(bedrock, 1000, 500, provider_id="aws")
    assert expected > 0
    assert pricing.cost_usd(bedrock, 1000, 500, provider="bedrock") == pytest.approx(expected)
    # Without a provider, a Bedrock model id is recognised by its shape (the callers pass a model only).
    assert pricing.cost_usd(bedrock, 1000, 500) == pytest.approx(expected)
    assert pricing.cost_usd("us.amazon.nova-lite-v1:0", 1000, 500) is not None
    # A model the named provider does not sell has no price there.
    assert pricing.cost_usd("gpt-4o-mini", 1000, 500, provider="bedrock") is None


def test_local_models_are_free_by_override(no_network):
    for model in ("gemma-3-270m", "stub-model"):
        assert pricing.cost_usd(model, 12_345, 678) == 0.0
        assert pricing.price_of(model) == {"input": 0.0, "output": 0.0}


def test_override_takes_precedence(no_network, monkeypatch):
    table = {**pricing.price_table(), "overrides_per_million_tokens": {"gpt-4o-mini": {"input": 1.0, "output": 2.0}}}
    monkeypatch.setattr(pricing, "price_table", lambda: table)
    assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert pricing.price_of("gpt-4o-mini") == {"input": 1.0, "output": 2.0}


def test_unknown_model_has_no_price(no_network):
    assert pricing.cost_usd("my-own-finetune", 100, 100) is None
    assert pricing.price_of("my-own-finetune") is None
    assert pricing.cost_usd("anthropic.no-such-model-v9:0", 100, 100) is None
    assert pricing.cost_usd("gpt-4o-mini", 100, 100, provider="no-such-provider") is None


def test_batch_discount_applies(no_network):
    discount = pricing.price_table()["batch_discount"]
    assert discount == 0.5
    listed = pricing.cost_usd("gpt-4o-mini", 200_000, 50_000)
    assert pricing.cost_usd("gpt-4o-mini", 200_000, 50_000, batch=True) == pytest.approx(listed * discount)
    assert pricing.cost_usd("stub-model", 200_000, 50_000, batch=True) == 0.0


def test_prices_never_come_from_an_auto_update(no_network):
    """We never start genai-prices' updater, and one started elsewhere cannot change our figures."""
    from genai_prices.update_prices import _shared_updater

    listed = pricing.cost_usd("gpt-4o-mini", 1_000_000, 0)
    assert _shared_updater.thread is None and _shared_updater.ref_count == 0  # no UpdatePrices running
    assert pricing._snapshot().from_auto_update is False
    # What an UpdatePrices fetch would install process-wide: here, a snapshot with no providers at all.
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        with pytest.raises(LookupError):
            genai_prices.calc_price(Usage(input_tokens=1), "gpt-4o-mini")
        assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 0) == listed
    finally:
        set_custom_snapshot(None)
