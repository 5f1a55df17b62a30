"""The cascade's figures of a run, read back from what the pipeline wrote, and the batch-mode proxy.

:func:`run_routes` gives the records per route (``proxy`` / ``oracle``), the calls saved and the cost saved
(USD) of one publication from its manifest's ``usage`` (:mod:`pipeline_hub.stages.publish`): the
``usage.cascade`` block when the topic's version has a cascade (:func:`pipeline_hub.stages.cascade.cascade_summary`),
else derived from ``usage.records_by_route`` (every record then on the oracle, nothing saved), and None for
a manifest written before routes were counted. The Prompt Hub view, ``pipeline-hub report`` and the
``metrics/llm_usage/`` row read it through here, so they show the same figures.

:func:`batch_proxy_answer` is the proxy of a batch-mode chunk (:mod:`pipeline_hub.stages.prompt_batch`): the
no-call rapidfuzz path only (:func:`pipeline_hub.stages.cascade.proxy_answer`), so a record it answers is
never submitted to the provider's batch.

Source: LOTUS (Patel et al., "Semantic Operators", VLDB 2025), model cascades with a proxy and an oracle.
"""

from __future__ import annotations

from typing import Any

from pipeline_hub.prompts.registry import Topic
from pipeline_hub.stages.cascade import cascade_summary, proxy_answer

ROUTE_FIGURES = ("proxy", "oracle", "calls_saved", "cost_saved_usd")
"""Keys of :func:`run_routes`: records (int) per route, calls saved (int), cost saved (USD float or None)."""


def run_routes(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"proxy", "oracle", "calls_saved", "cost_saved_usd"}`` of a manifest's ``usage``, or None.

    ``proxy``/``oracle`` count the records answered (ok) by each route; ``calls_saved`` is the oracle calls
    avoided (one per proxy answer); ``cost_saved_usd`` an estimate (proxy answers times the mean oracle cost
    of the run, minus what a model proxy's calls cost; :func:`pipeline_hub.stages.cascade.cascade_summary`),
    None when no record went to the oracle. Without ``usage.cascade`` (a version without cascade)
    the figures come from ``usage.records_by_route``: everything on the oracle. None when the manifest has
    neither (written by code older than the cascade).
    """
    usage = usage or {}
    block = usage.get("cascade")
    if isinstance(block, dict):
        return {k: block.get(k) for k in ROUTE_FIGURES}
    by_route = usage.get("records_by_route")
    if not isinstance(by_route, dict):
        return None
    summary = cascade_summary(by_route, float(usage.get("cost_usd") or 0.0))
    return {k: summary[k] for k in ROUTE_FIGURES}


def batch_proxy_answer(
    topic: Topic, record: dict[str, Any], variables: dict[str, Any], validator
) -> dict[str, Any] | None:
    """The proxy's answer to ``record`` in batch mode (a dict valid for ``validator``), or None: batch it.

    Only the ``rapidfuzz`` proxy answers here (no call, :func:`pipeline_hub.stages.cascade.proxy_answer`); a
    model proxy (``proxy: model:<conn_id>/<model>``) or none sends every record to the provider's batch,
    as does a version without calibrated thresholds. ``variables`` are the record's template variables
    (:func:`pipeline_hub.stages.prompt_inputs.build_variables`), ``validator`` its output-schema validator
    (JSON Schema 2020-12).
    """
    cascade = topic.prompt.cascade
    if cascade is None or cascade.thresholds is None or cascade.proxy.kind != "rapidfuzz":
        return None
    return proxy_answer(topic, record, variables, validator)
