"""A prompt chunk's share of the run's USD budget cap (``budget_usd``), priced per model
(:func:`pipeline_hub.providers.pricing.cost_usd`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline_hub.providers.pricing import cost_usd
from pipeline_hub.providers.session import Completion


@dataclass
class Budget:
    """This chunk's share of a run's USD budget cap (``cap_usd`` None = unlimited).

    A run's cap is split over its chunks in proportion to their records, so chunks running in
    parallel on different workers need no shared ledger; calls already in flight when the share is
    reached may overshoot it by at most ``max_concurrency`` calls.
    """

    cap_usd: float | None = None
    allowance_usd: float = float("inf")
    model: str = ""
    spent_usd: float = 0.0

    def open(self) -> bool:
        """True while another paid call may be sent."""
        return self.cap_usd is None or self.spent_usd < self.allowance_usd

    def charge(self, completion: Completion) -> float:
        """Add the cost (USD) of ``completion``, priced at its own model (routes may differ)."""
        model = completion.model or self.model
        batch = completion.route == "batch"
        cost = cost_usd(model, completion.prompt_tokens, completion.completion_tokens, batch=batch) or 0.0
        self.spent_usd += cost
        return cost

    def pay(self, completion: Completion) -> float:
        """Charge ``completion`` once: :meth:`charge` it and note the cost on it (``completion.cost_usd``)
        unless that was done already; returns its cost (USD)."""
        if completion.cost_usd is None:
            completion.cost_usd = self.charge(completion)
        return completion.cost_usd
