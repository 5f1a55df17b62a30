"""The prompt stage: render a topic's template for every record of a chunk, call the LLM, validate.

For each record: map record fields to the declared template inputs, add context (reference candidates
for matching), render with ``StrictUndefined``, ask the provider for JSON constrained by the topic's
output schema, then validate the answer with ``jsonschema`` (Draft 2020-12). An invalid answer gets one
repair attempt with the validation error fed back; if it is still invalid the record is quarantined
with reason ``invalid_output``. A record whose call still fails after the retry policy (and the fallback
route, if any) is quarantined with reason ``provider_error`` and a detail naming the connection, the
model and the last failure; it is not cached, so the next run of the batch sends it again. When most
records fail that way the chunk's circuit breaker stops it with ``ProviderUnavailable``
(:class:`~pipeline_hub.providers.breaker.CircuitBreaker`). Requests run concurrently, bounded by the connection's
``max_concurrency``; each record goes to the topic's primary or long-input model, and to its fallback
once the primary's retries are exhausted (:mod:`pipeline_hub.providers.routing`). Nothing here logs record text.

Before rendering, the topic's ``input_pii`` policy decides what record text may leave our network
(:func:`protect_inputs`): by default everything for a provider on 127.0.0.1, and for any other provider
the template inputs with PII replaced by ``<ENTITY>`` placeholders (``redact``) or keyed pseudonyms
(``pseudonymize``).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
from typing import Any

import jsonschema

from pipeline_hub import storage
from pipeline_hub.prompts.registry import Topic
from pipeline_hub.providers.breaker import CircuitBreaker
from pipeline_hub.providers.routing import RoutedSession, get_hook
from pipeline_hub.providers.session import Completion
from pipeline_hub.stages.budget import Budget
from pipeline_hub.stages.cascade import with_proxy_route
from pipeline_hub.stages.chunk import read_chunk
from pipeline_hub.stages.plan import RunPlan, plan_topic
from pipeline_hub.stages.progress import ProgressReporter
from pipeline_hub.stages.prompt_inputs import protect_inputs, route_providers
from pipeline_hub.stages.prompt_record import ChunkStats, process_record

log = logging.getLogger(__name__)


async def aprompt_records(
    hook,
    topic: Topic,
    records: list[dict],
    *,
    cache=None,
    budget: Budget | None = None,
    routes: dict[str, Any] | None = None,
    prefilled: dict[str, Completion] | None = None,
    progress: ProgressReporter | None = None,
) -> tuple[list[dict], ChunkStats]:
    """Prompt every staged record concurrently; return per-record results (input order) and stats.

    ``prefilled`` maps record ids to answers a provider batch job already gave (route ``batch``):
    those records are validated (and repaired if needed) without a first call, and cached.
    ``progress`` counts the records and logs done/total, rate, ETA, quarantined and calls in flight every
    ``PIPELINE_HUB_PROGRESS_INTERVAL_S`` (:mod:`pipeline_hub.stages.progress`); default: one for ``topic``.

    ``hook`` is the primary chat hook (``LLMHook`` or ``BedrockLLMHook``); ``routes`` (from
    :func:`pipeline_hub.providers.routing.resolve_routes`, pinned in the run plan) adds long-input routing and a
    fallback; without it every record goes to ``hook``. A version with a calibrated model proxy
    (``cascade.proxy: model:<conn_id>/<model>``) adds its ``proxy`` route here when ``routes`` lacks it
    (:func:`pipeline_hub.stages.cascade.with_proxy_route`), so the CLI and ``score`` ask it as runs do.

    A result is ``{"record_id", "source_uri", "position", "status": "ok"|"quarantined", "usage", ...}``
    with ``answer`` and ``fields`` (the topic's kept input fields only) when ok, ``reason`` and
    ``detail`` (and ``raw_answer`` for ``invalid_output``) when quarantined. ``usage`` holds tokens,
    attempts, latency (s), cost (USD), the model and route that answered, and whether every call was a
    cache hit. A record whose call fails after the retries (and the fallback, if any) is quarantined
    as ``provider_error``. Raises :class:`~pipeline_hub.providers.ProviderError` when the provider
    refuses the connection (401/403/404), and its subclass
    :class:`~pipeline_hub.providers.errors.ProviderUnavailable` when the chunk's circuit breaker trips
    (thresholds: the primary connection's ``breaker_*`` extras); the other requests are then cancelled.
    """
    stats = ChunkStats(records=len(records))
    routes = with_proxy_route(topic, routes or {"primary": {"conn_id": hook.conn_id, "model": hook.model}})
    records, protection = protect_inputs(topic, records, route_providers(hook, routes))
    if protection["policy"] != "allow":
        log.info(
            "%s: inputs sent under input_pii=%s, PII replaced: %s",
            topic.name,
            protection["policy"],
            protection["pii_found"],
        )
    validator = jsonschema.Draft202012Validator(topic.prompt.output_schema)
    budget = budget or Budget(model=hook.model)
    router = RoutedSession(routes=routes, cache=cache, hooks={"primary": hook})
    prefilled = prefilled or {}
    breaker = CircuitBreaker.for_hook(hook)
    results: list[dict[str, Any] | None] = [None] * len(records)
    pending = iter(enumerate(records))
    progress = progress or ProgressReporter(topic.name, len(records))

    async def worker() -> None:
        # Workers take records one at a time, so rendering interleaves with I/O instead of every
        # record being rendered before the first request leaves.
        for i, record in pending:
            results[i] = await process_record(
                session, topic, validator, record, stats, budget, prefilled.get(record["record_id"]), breaker
            )
            progress.advance(quarantined=results[i]["status"] != "ok")

    async with router as session, progress:
        progress.in_flight = lambda: session.in_flight
        # Twice the connections' concurrency: while one set waits on the network, the next is ready.
        workers = 2 * sum(hook.max_concurrency for hook in session.hooks.values())
        try:
            # A task group: the first worker to raise (a refusal, the breaker) cancels the others.
            async with asyncio.TaskGroup() as group:
                for _ in range(min(len(records), workers)):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise _first_error(failed) from None
    return list(results), stats


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a task group's failure: a provider refusal/breaker trip first, else the first."""
    from pipeline_hub.providers.errors import ProviderError

    leaves = list(_leaves(group))
    return next((e for e in leaves if isinstance(e, ProviderError)), leaves[0])


def _leaves(group: BaseExceptionGroup):
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def prompt_records(hook, topic: Topic, records: list[dict], **options: Any) -> tuple[list[dict], ChunkStats]:
    """Synchronous wrapper of :func:`aprompt_records` (same ``options``) for Airflow tasks and the CLI.

    The event loop runs with the process's long-lived objects frozen out of the garbage collector
    (:func:`freeze_heap`).
    """
    freeze_heap()
    return asyncio.run(aprompt_records(hook, topic, records, **options))


def freeze_heap() -> None:
    """Move the objects alive now out of the cyclic garbage collector's passes for the rest of the process
    (``gc.freeze``), once: later calls, or a heap something else froze (Airflow does before forking), leave
    it as it is.

    A task process holds a few hundred thousand objects once Airflow, openai and jsonschema are imported;
    each full (oldest-generation) collection walks all of them, 40-260 ms on our 2-core VM, with the
    event loop stopped, so every request due in that time left late (benchmarks/RESULTS.md, fan-out). The
    fan-out's own objects are collected as usual. Unfrozen only at exit: freezing again for each chunk of an
    in-process run would also freeze the cyclic garbage the previous chunk left in the oldest generation
    (about 30 objects, 4 KB, a record), which then no collection ever reaches (RSS grew 0.8 MiB every
    200-record chunk; flat with one freeze). Objects frozen here are still freed by reference counting.
    Source: Python docs, ``gc.freeze`` ("useful … to avoid … collections" of a long-lived heap).
    """
    if not gc.get_freeze_count():
        gc.freeze()
        # Back to the collector at exit, so interpreter shutdown can collect them as usual (else extension
        # modules such as duckdb's report their still-alive objects as leaks).
        atexit.register(gc.unfreeze)


def prompt_context(item: dict[str, Any]) -> tuple[RunPlan, Any, Any, list[dict], Any, Any]:
    """What a prompt task needs for one work item: ``(plan, topic plan, topic, records, hook, budget)``.

    ``hook`` is the topic's primary route; ``budget`` is this chunk's share of the run's cap.
    """
    plan = RunPlan.load(item["plan_uri"])
    tp, topic = plan_topic(plan, item["topic"])
    records = read_chunk(item["chunk_uri"])
    primary = tp.routes.get("primary") or {"conn_id": plan.llm_conn_id, "model": plan.model}
    hook = get_hook(primary["conn_id"], primary["model"])
    budget = Budget(model=hook.model)
    if plan.budget_usd is not None:
        share = item["chunk_records"] / max(1, item["topic_records"]) / max(1, len(plan.pending))
        budget = Budget(cap_usd=plan.budget_usd, allowance_usd=plan.budget_usd * share, model=hook.model)
    return plan, tp, topic, records, hook, budget


def run_prompt(item: dict[str, Any], prefilled: dict[str, Any] | None = None) -> dict[str, Any]:
    """Task ``prompt`` (mapped over topic × chunk): answers to ``<staging>/answers/<topic>/``.

    ``prefilled`` (record id → ``Completion``) carries answers a provider batch job already gave.
    Records whose calls fail after the retries are results with reason ``provider_error`` (counted in
    the summary's ``quarantined`` and, by last failure such as ``HTTP 500``, ``provider_failures``).
    Raises ``ProviderError`` on a refusal (401/403/404) and ``ProviderUnavailable`` when the chunk's
    circuit breaker trips: the task fails, and its retry resumes from the response cache.
    """
    from pipeline_hub.providers.cache import open_cache
    from pipeline_hub.stages.prompt import prompt_records

    plan, tp, topic, records, hook, budget = prompt_context(item)
    progress = ProgressReporter(
        topic.name, len(records), chunk_index=item["chunk_index"], topic_total=item.get("topic_records")
    )
    results, stats = prompt_records(
        hook,
        topic,
        records,
        cache=open_cache(),
        budget=budget,
        routes=tp.routes or None,
        prefilled=prefilled,
        progress=progress,
    )
    out = storage.join(plan.staging, "answers", topic.name)
    storage.write_jsonl(out / f"chunk-{item['chunk_index']:05d}.jsonl", results)
    summary = {
        "topic": topic.name,
        "chunk_index": item["chunk_index"],
        "records": stats.records,
        "ok": stats.ok,
        "quarantined": stats.quarantined,
        "llm_calls": stats.calls,
        "cache_hits": stats.cache_hits,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "cost_usd": round(stats.cost_usd, 6),
        "latency_s": round(stats.latency_s, 3),
        "routes": stats.routes,
        "provider_failures": stats.provider_failures,
        # A model proxy's calls and cost (included in llm_calls and cost_usd) and how its answers ended.
        "proxy_calls": stats.proxy_calls,
        "proxy_cost_usd": round(stats.proxy_cost_usd, 6),
        "proxy_outcomes": stats.proxy_outcomes,
        # Per-record provider latency (s) of records that made a call (not a rapidfuzz proxy answer, a cache
        # hit, a batch answer or a record stopped before its first call), for p50/p95 in the manifest.
        "record_latencies_s": [
            round(r["usage"]["latency_s"], 4)
            for r in results
            if "usage" in r
            and not r["usage"]["cache_hit"]
            and r["usage"]["route"] != "batch"
            and r["usage"]["attempts"] > 0
        ],
        "budget": {
            "cap_usd": budget.cap_usd,
            "allowance_usd": None if budget.cap_usd is None else round(budget.allowance_usd, 6),
            "spent_usd": round(budget.spent_usd, 6),
        },
    }
    storage.write_json(out / f"_stats-{item['chunk_index']:05d}.json", summary, atomic=False)
    log.info(
        "prompt %s chunk %d: %s",
        topic.name,
        item["chunk_index"],
        {k: v for k, v in summary.items() if k != "record_latencies_s"},
    )
    return {k: v for k, v in summary.items() if k != "record_latencies_s"}
