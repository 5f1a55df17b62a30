"""The circuit breaker of a prompt task: stop sending when most records sent end as provider errors.

Thresholds come from the connection extras ``breaker_consecutive``, ``breaker_window`` and
``breaker_ratio`` (see :mod:`pipeline_hub.providers.hook`).
"""

from __future__ import annotations

import collections

from pipeline_hub.providers.errors import CallFailed, ProviderUnavailable


class CircuitBreaker:
    """Counts the records of one prompt task that reached the provider, and trips when it looks down.

    ``record(failure)`` is called once per record sent (``failure`` None when it got an answer, else
    the :class:`CallFailed` it ended with); it raises :class:`ProviderUnavailable` when

    - the last ``consecutive`` records sent all ended as provider errors, or
    - at least ``ratio`` of the last ``window`` records sent did (checked once ``window`` were sent).

    Defaults (10, 20, 0.5) never trip on scattered failures (under 20 % failed attempts and 3 retries,
    a record fails with probability 0.2⁴ ≈ 0.2 %) and trip within a few seconds when every call fails.
    Records answered from the cache, or never sent (missing fields, budget), are not counted. 0 for
    ``consecutive`` or ``window`` disables that rule.
    """

    def __init__(self, consecutive: int = 10, window: int = 20, ratio: float = 0.5) -> None:
        self.consecutive, self.window, self.ratio = consecutive, window, ratio
        self.recent: collections.deque[bool] = collections.deque(maxlen=max(1, window))
        self.run = 0  # provider errors in a row
        self.tripped: ProviderUnavailable | None = None

    @classmethod
    def for_hook(cls, hook) -> CircuitBreaker:
        """A breaker with ``hook``'s thresholds (connection extras ``breaker_*``, see the module docstring)."""
        return cls(hook.breaker_consecutive, hook.breaker_window, hook.breaker_ratio)

    def record(self, failure: CallFailed | None) -> None:
        """Count one record sent; raise :class:`ProviderUnavailable` once tripped (also on later calls)."""
        if self.tripped is not None:
            raise self.tripped
        self.recent.append(failure is not None)
        self.run = self.run + 1 if failure is not None else 0
        if failure is None:
            return
        failed = sum(self.recent)
        by_run = self.consecutive > 0 and self.run >= self.consecutive
        by_ratio = self.window > 0 and len(self.recent) >= self.window and failed >= self.ratio * self.window
        if by_run or by_ratio:
            failed, sent = (failed, len(self.recent)) if by_ratio else (self.run, self.run)
            self.tripped = ProviderUnavailable(
                failure.conn_id,
                failure.model,
                failed=failed,
                sent=sent,
                last_failure=failure.failure,
                kind=failure.kind,
            )
            raise self.tripped
