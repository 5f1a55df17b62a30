"""The model cascade in the prompt stage: the proxy answers the records it is sure of, before any call.

A topic version with a calibrated cascade (``versions.<v>.cascade.thresholds``, :mod:`pipeline_hub.cascade`)
and the ``rapidfuzz`` proxy, on a topic whose context offers reference candidates (company matching):
the proxy score is the best candidate's ``token_sort_ratio`` / 100 against the query field
(:func:`pipeline_hub.cascade.proxy.rapidfuzz_score`, over the same top-``k`` candidates the prompt would
show), and :func:`pipeline_hub.cascade.proxy.decide` makes it

- ``accept``: the answer is that candidate's id with ``confidence`` = the score;
- ``reject``: the answer is "no match" (``null``) with ``confidence`` = 1 - score;
- ``oracle``: the record is prompted as without a cascade.

A proxy answer is validated against the record's output schema like a model's; one that does not fit
goes to the oracle. Records answered by a proxy are counted on the route :data:`PROXY_ROUTE` (``routes`` of
the chunk's stats, ``records_by_route`` of the manifest) and publish ``route = "proxy"``; every other
published row has ``route = "oracle"``. Without thresholds, with the ``none`` proxy, or (rapidfuzz) on a
topic without reference candidates, every record goes to the oracle. Nothing here logs record text.

A ``model:<conn_id>/<model>`` proxy (classification, extraction, matching alike) is a cheaper model on a
route of its own (:func:`proxy_route`, :data:`~pipeline_hub.providers.routing.PROXY_ROUTE`): the prompt
stage sends it the record's rendered prompt with the same structured output, validates its answer as the
oracle's (one attempt, no repair), and scores it by the answer's confidence field
(:func:`model_proxy_score`: ``quality.confidence_field``, default ``confidence``). ``score >= upper``
publishes the proxy's answer (``model`` = the proxy model); anything else (a lower confidence, an invalid
answer, a failed call) goes to the oracle, whose record then carries the usage of both calls. A model
proxy never rejects (``lower`` is 0). Records a provider batch job already answered are not asked again.

The oracle is the route the cascade names (``cascade.oracle``, :func:`oracle_route`): ``primary`` is the
topic's usual routing (long inputs to ``long_input``, retries exhausted to ``fallback``); ``long_input``
or ``fallback`` sends every oracle record to that route. The registry refuses, at load time, a cascade
naming a route the topic's ``provider`` section does not configure
(:func:`pipeline_hub.prompts.registry.cascade_problem`): sending its records elsewhere than the block
says would silently change who answers.

Source: LOTUS (Patel et al., "Semantic Operators", VLDB 2025), model cascades with a proxy and an oracle.
"""

from __future__ import annotations

from typing import Any

from pipeline_hub.cascade.proxy import ProxyScore, confidence_score, decide, model_decision, rapidfuzz_score
from pipeline_hub.prompts.registry import Topic
from pipeline_hub.providers.routing import PROXY_ROUTE

ORACLE_ROUTE = "oracle"
PROXY_MODEL = "rapidfuzz:token_sort_ratio"  # the published ``model`` of a proxy-answered row


def matching_context(topic: Topic) -> tuple[str, dict[str, Any]] | None:
    """``(variable, context spec)`` of the topic's reference candidates with a ``constrain_field``, or None."""
    for var, ctx in topic.context.items():
        if ctx.get("kind") == "reference_candidates" and ctx.get("constrain_field"):
            return var, ctx
    return None


def proxy_score(
    topic: Topic, record: dict[str, Any], variables: dict[str, Any]
) -> tuple[ProxyScore, list, dict] | None:
    """``(score, candidates, context spec)`` of the rapidfuzz proxy for ``record``, or None when it has no
    opinion (no matching context, no candidates, no query). ``candidates`` are ``variables``' offered ones
    (``[{"id", "name", "score"}]``), ``score.index`` the best one's position."""
    found = matching_context(topic)
    if found is None:
        return None
    var, ctx = found
    candidates = variables.get(var) or []
    query = record["fields"].get(ctx.get("query_field", "name"))
    if not candidates or query is None:
        return None
    scored = rapidfuzz_score(str(query), [str(c["name"]) for c in candidates])
    return None if scored.score is None else (scored, candidates, ctx)


def proxy_answer(topic: Topic, record: dict[str, Any], variables: dict[str, Any], validator) -> dict[str, Any] | None:
    """The proxy's answer to ``record`` (a dict valid for ``validator``), or None when the oracle decides.

    ``variables`` are the record's template variables (:func:`pipeline_hub.stages.prompt_inputs.build_variables`),
    whose candidates (``[{"id", "name", "score"}]``) the proxy scores; ``validator`` the record's output-schema
    validator (JSON Schema 2020-12).
    """
    cascade = topic.prompt.cascade
    if cascade is None or cascade.thresholds is None or cascade.proxy.kind != "rapidfuzz":
        return None
    proxied = proxy_score(topic, record, variables)
    if proxied is None:
        return None
    scored, candidates, ctx = proxied
    decision = decide(scored.score, cascade.thresholds)
    if decision == "oracle":
        return None
    confidence_field = (topic.quality or {}).get("confidence_field", "confidence")
    if decision == "accept":
        answer = {ctx["constrain_field"]: candidates[scored.index]["id"], confidence_field: scored.score}
    else:
        answer = {ctx["constrain_field"]: None, confidence_field: round(1.0 - scored.score, 4)}
    return answer if validator.is_valid(answer) else None


def proxy_route(topic: Topic) -> dict[str, str] | None:
    """``{"conn_id", "model"}`` of the version's calibrated ``model:`` proxy, None without one.

    An uncalibrated model proxy is never asked, so it needs no route (nor its connection).
    """
    cascade = topic.prompt.cascade
    if cascade is None or cascade.proxy.kind != "model" or cascade.thresholds is None:
        return None
    return {"conn_id": str(cascade.proxy.conn_id), "model": str(cascade.proxy.model)}


def with_proxy_route(topic: Topic, routes: dict[str, Any]) -> dict[str, Any]:
    """``routes`` (:func:`pipeline_hub.providers.routing.resolve_routes`) plus the ``proxy`` route of a
    calibrated model proxy (:func:`proxy_route`); ``routes`` itself when there is none or it has one."""
    route = proxy_route(topic)
    if route is None or routes.get(PROXY_ROUTE):
        return routes
    return {**routes, PROXY_ROUTE: route}


def oracle_route(topic: Topic) -> str | None:
    """The route the cascade's oracle records go to by name (``long_input`` or ``fallback``), or None for
    the usual routing (no cascade, or ``oracle: primary``)."""
    cascade = topic.prompt.cascade
    return None if cascade is None or cascade.oracle == "primary" else cascade.oracle


def model_proxy_score(topic: Topic, answer: Any) -> float | None:
    """The model proxy's score of its (schema-valid) ``answer``: its confidence field in [0, 1], else None."""
    return confidence_score(answer, (topic.quality or {}).get("confidence_field", "confidence"))


def model_proxy_accepts(topic: Topic, answer: Any) -> bool:
    """True when the version's calibrated model proxy publishes ``answer`` (its score reaches ``upper``)."""
    cascade = topic.prompt.cascade
    thresholds = None if cascade is None else cascade.thresholds
    return model_decision(model_proxy_score(topic, answer), thresholds) == "accept"


def cascade_summary(
    records_by_route: dict[str, int], cost_usd: float, *, proxy_calls: int = 0, proxy_cost_usd: float = 0.0
) -> dict[str, Any]:
    """The manifest's ``usage.cascade``: ``{"proxy", "oracle", "calls_saved", "proxy_calls", "proxy_cost_usd",
    "cost_saved_usd"}``.

    ``proxy``/``oracle``: records answered by each; ``calls_saved``: oracle calls avoided, at least one per
    proxy answer; ``proxy_calls``/``proxy_cost_usd``: calls made to a model proxy and their cost (USD; 0
    for a rapidfuzz proxy), whether the proxy's answer was kept or the record went on to the oracle.
    ``cost_saved_usd`` is net: proxy answers times the mean oracle cost of an oracle-answered record
    (``(cost_usd - proxy_cost_usd) / oracle``), minus what the proxy calls cost; an estimate, negative when
    the proxy cost more than it saved, None when no record went to the oracle.
    """
    proxy = int(records_by_route.get(PROXY_ROUTE, 0))
    oracle = sum(int(n) for route, n in records_by_route.items() if route != PROXY_ROUTE)
    oracle_cost = max(0.0, cost_usd - proxy_cost_usd)
    saved = round(oracle_cost / oracle * proxy - proxy_cost_usd, 6) if oracle else None
    return {
        "proxy": proxy,
        "oracle": oracle,
        "calls_saved": proxy,
        "proxy_calls": int(proxy_calls),
        "proxy_cost_usd": round(proxy_cost_usd, 6),
        "cost_saved_usd": saved,
    }
