"""The cascade's decision rule and its cheap proxies.

:func:`decide` turns a proxy score into ``"accept"`` (``score >= upper``: the proxy's answer is taken as
positive), ``"reject"`` (``score < lower``: answered negative) or ``"oracle"`` (the band in between, an
uncalibrated cascade, or no score at all).

The RapidFuzz proxy for company matching (:func:`rapidfuzz_score`) scores a query name against the
candidate names with ``fuzz.token_sort_ratio`` over ``utils.default_process``-normalised strings (lower
case, non-alphanumerics stripped), 0–100 scaled to [0, 1], and keeps the best candidate. Why not
``WRatio``, which the blocking step uses (:mod:`pipeline_hub.prompts.matching`): ``WRatio`` takes the
best partial ratio, so a name contained in a longer, different name ("Acme" in "Acme Holdings Bank")
scores 90 — right for finding candidates (recall), wrong for accepting a match without the LLM
(precision). ``token_sort_ratio`` compares the whole names, word order ignored. Source: RapidFuzz
documentation, ``rapidfuzz.fuzz`` (rapidfuzz.github.io/RapidFuzz). The ``none`` proxy gives no score,
so every record goes to the oracle; ``model:`` proxies are for the wiring slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from rapidfuzz import fuzz, process, utils

from pipeline_hub.cascade.spec import CascadeError, CascadeSpec

Decision = Literal["accept", "reject", "oracle"]


class HasThresholds(Protocol):
    """Anything with ``upper`` and ``lower`` (a :class:`~pipeline_hub.cascade.spec.Thresholds`, a calibration)."""

    upper: float
    lower: float


@dataclass(frozen=True)
class ProxyScore:
    """A proxy's verdict on one record: ``score`` in [0, 1] or None (no opinion: the oracle decides).

    For matching, ``candidate`` is the best candidate's name and ``index`` its position in the candidates.
    """

    score: float | None
    candidate: str | None = None
    index: int | None = None


def decide(score: float | None, thresholds: HasThresholds | None) -> Decision:
    """``"accept"`` if ``score >= upper``, ``"reject"`` if ``score < lower``, else ``"oracle"``.

    ``score`` in [0, 1]; None or NaN (no proxy opinion) and ``thresholds`` None (not calibrated) give
    ``"oracle"``. Acceptance is checked first, so with ``lower > upper`` (refused by the spec) a score
    in between would be accepted.
    """
    if thresholds is None or score is None or math.isnan(score):
        return "oracle"
    if score >= thresholds.upper:
        return "accept"
    if score < thresholds.lower:
        return "reject"
    return "oracle"


def rapidfuzz_score(query: str, candidates: Sequence[str]) -> ProxyScore:
    """The best candidate for ``query`` by ``fuzz.token_sort_ratio`` (normalised), its score / 100.

    No candidates give ``ProxyScore(None)``: nothing to accept, the oracle decides. Ties go to the first
    candidate (RapidFuzz ``process.extractOne``).
    """
    best = process.extractOne(query, candidates, scorer=fuzz.token_sort_ratio, processor=utils.default_process)
    if best is None:
        return ProxyScore(None)
    name, score, index = best
    return ProxyScore(round(float(score) / 100.0, 4), name, int(index))


def none_score(query: str, candidates: Sequence[str]) -> ProxyScore:
    """The ``none`` proxy: no score for any record, so :func:`decide` always answers ``"oracle"``."""
    return ProxyScore(None)


def matching_proxy(spec: CascadeSpec) -> Callable[[str, Sequence[str]], ProxyScore]:
    """The scoring function of a matching topic's proxy; raises :class:`CascadeError` for ``model:`` proxies.

    A model proxy needs a provider connection, which this package may not import (not wired yet).
    """
    proxy = spec.proxy
    if proxy.kind == "rapidfuzz":
        return rapidfuzz_score
    if proxy.kind == "none":
        return none_score
    raise CascadeError(
        f"{spec.topic}: cascade.proxy: model:{proxy.conn_id}/{proxy.model} is not supported yet (rapidfuzz or none)"
    )
