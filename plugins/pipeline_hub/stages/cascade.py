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
goes to the oracle. Records answered here are counted on the route :data:`PROXY_ROUTE` (``routes`` of
the chunk's stats, ``records_by_route`` of the manifest) and publish ``route = "proxy"``; every other
published row has ``route = "oracle"``. Without thresholds, with the ``none`` proxy, or on a topic
without reference candidates, every record goes to the oracle. Nothing here logs record text.

Source: LOTUS (Patel et al., "Semantic Operators", VLDB 2025), model cascades with a proxy and an oracle.
"""

from __future__ import annotations

from typing import Any

from pipeline_hub.cascade.proxy import ProxyScore, decide, rapidfuzz_score
from pipeline_hub.prompts.registry import Topic

PROXY_ROUTE = "proxy"
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


def cascade_summary(records_by_route: dict[str, int], cost_usd: float) -> dict[str, Any]:
    """The manifest's ``usage.cascade``: ``{"proxy", "oracle", "calls_saved", "cost_saved_usd"}``.

    ``proxy``/``oracle``: records answered by each; ``calls_saved``: at least one call per proxy answer;
    ``cost_saved_usd``: proxy answers times the mean cost (USD) of an oracle-answered record in this run
    (an estimate; None when no record went to the oracle).
    """
    proxy = int(records_by_route.get(PROXY_ROUTE, 0))
    oracle = sum(int(n) for route, n in records_by_route.items() if route != PROXY_ROUTE)
    saved = round(cost_usd / oracle * proxy, 6) if oracle else None
    return {"proxy": proxy, "oracle": oracle, "calls_saved": proxy, "cost_saved_usd": saved}
