"""Fault injection of the stub LLM: :class:`FaultPlan`, the outcome names, and :func:`closed_port`."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class FaultPlan:
    """Which calls fail and how. ``sequence`` (e.g. ``["429", "500", "ok", "malformed", "wrong_schema",
    "timeout", "401"]``) fixes the outcome of the first calls; afterwards the rates apply (shares of
    calls in [0, 1], drawn from ``random.Random(seed)``: reproducible for a given call order).
    ``always_status`` (e.g. 401) answers every call with that HTTP status. ``retry_after_s`` is sent as
    ``Retry-After`` with 429s; ``timeout_sleep_s`` is how long a ``timeout`` call stalls before answering."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_malformed: float = 0.0
    rate_timeout: float = 0.0
    rate_wrong_schema: float = 0.0
    retry_after_s: float | None = None
    timeout_sleep_s: float = 30.0
    sequence: list[str] | None = None
    always_status: int | None = None
    seed: int = 0


OUTCOMES = ("ok", "429", "500", "malformed", "wrong_schema", "timeout")  # besides any HTTP status, e.g. "401"


def closed_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
