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
so every record goes to the oracle.

A ``model:<conn_id>/<model>`` proxy is a cheaper LLM asked the same prompt as the oracle (the call is
made by :mod:`pipeline_hub.stages.prompt_record`); its score is the confidence its own answer states
(:func:`confidence_score`), and :func:`model_decision` accepts the answer when that reaches ``upper``,
else hands the record to the oracle: a model proxy never rejects.
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


def model_decision(score: float | None, thresholds: HasThresholds | None) -> Decision:
    """A model proxy's rule: ``"accept"`` when ``score >= upper``, else ``"oracle"`` (``lower`` is not used).

    A model proxy's answer is a full answer, not a yes/no, so there is nothing to "reject"; ``score`` None
    (no usable confidence) and ``thresholds`` None (not calibrated) give ``"oracle"``.
    """
    return "accept" if decide(score, thresholds) == "accept" else "oracle"


def confidence_score(answer: object, field: str) -> float | None:
    """``answer[field]`` as a model proxy's score in [0, 1], or None when it is missing or not such a number.

    ``answer`` is the proxy's parsed JSON answer; ``field`` the topic's confidence field
    (``quality.confidence_field``, default ``confidence``). Booleans are not numbers here.
    """
    value = answer.get(field) if isinstance(answer, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


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

    A model proxy is no scorer of candidates: the prompt stage asks it the record's prompt on its own route
    (:mod:`pipeline_hub.stages.cascade`), which this package may not import.
    """
    proxy = spec.proxy
    if proxy.kind == "rapidfuzz":
        return rapidfuzz_score
    if proxy.kind == "none":
        return none_score
    raise CascadeError(
        f"{spec.topic}: cascade.proxy: model:{proxy.conn_id}/{proxy.model} is a model proxy, asked by the prompt"
        " stage, not a matching scorer (rapidfuzz or none)"
    )
