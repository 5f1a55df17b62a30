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
import copy
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from pipeline_hub import reasons, storage
from pipeline_hub.config import include_dir
from pipeline_hub.prompts.matching import load_reference
from pipeline_hub.prompts.registry import Topic
from pipeline_hub.providers.breaker import CircuitBreaker
from pipeline_hub.providers.errors import BudgetExhausted, CallFailed
from pipeline_hub.providers.pricing import cost_usd
from pipeline_hub.providers.routing import RoutedSession, get_hook
from pipeline_hub.providers.session import Completion
from pipeline_hub.stages.chunk import read_chunk
from pipeline_hub.stages.plan import RunPlan, plan_topic

log = logging.getLogger(__name__)


@dataclass
class ChunkStats:
    """Counters of one prompt chunk: records, outcomes by reason, tokens, calls, latency (s)."""

    records: int = 0
    ok: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    routes: dict[str, int] = field(default_factory=dict)  # records answered per route
    provider_failures: dict[str, int] = field(default_factory=dict)  # provider_error records by last failure

    def quarantine(self, reason: str) -> None:
        self.quarantined[reason] = self.quarantined.get(reason, 0) + 1


def _schema_error(validator: jsonschema.Draft202012Validator, answer: Any) -> str | None:
    """First validation error as ``$.path: keyword`` (never the offending value, which may be PII)."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(answer))
    if error is None:
        return None
    return f"{error.json_path}: fails '{error.validator}'"


def build_variables(topic: Topic, record: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, dict]:
    """Template variables for ``record`` as ``(variables, missing_field, extra)``.

    ``missing_field`` names the first required field the record lacks (variables is then None).
    Template inputs come from ``record["sent_fields"]`` when :func:`protect_inputs` set it; context
    lookups (reference candidates) always use the record's own fields, they never leave the process.
    ``extra`` may carry ``{"schema": …}``: the output schema narrowed for this record, e.g. the
    matching answer's ``constrain_field`` limited to the offered candidate ids (or null), so a
    structured-output server can only answer with an id it was shown.
    """
    fields = record["fields"]
    sent = record.get("sent_fields", fields)  # what the input_pii policy lets leave (protect_inputs)
    variables: dict[str, Any] = {}
    for spec in topic.inputs:
        value = fields.get(spec.field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.required:
                return None, spec.field, {}
            value = None
        variables[spec.name] = None if value is None else sent.get(spec.field, value)
    extra: dict[str, Any] = {}
    for var, ctx in topic.context.items():
        if ctx.get("kind") != "reference_candidates":
            raise ValueError(f"{topic.metadata_path}: context '{var}' has unknown kind '{ctx.get('kind')}'")
        index = load_reference(
            str(include_dir() / ctx["reference"]),
            ctx.get("id_column", "ref_id"),
            ctx.get("name_column", "name"),
        )
        query = fields.get(ctx.get("query_field", "name"))
        if query is None:
            return None, ctx.get("query_field", "name"), {}
        cands = index.candidates(str(query), int(ctx.get("k", 5)))
        variables[var] = cands
        if field_name := ctx.get("constrain_field"):
            schema = copy.deepcopy(topic.prompt.output_schema)
            schema["properties"][field_name]["enum"] = [*(c["id"] for c in cands), None]
            extra["schema"] = schema
    return variables, None, extra


def _ours(text: str) -> str:
    """``text`` (our own words) safe as part of a :func:`reasons.detail` template."""
    return text.replace("{", "{{").replace("}", "}}")


def provider_error_result(base: dict[str, Any], exc: CallFailed, usage: dict[str, Any]) -> dict[str, Any]:
    """The quarantined result of a record whose call failed after the retry policy (reason ``provider_error``).

    The detail names the record's object and position, the connection, the model and the last failure
    (``HTTP 500``, ``timeout after 5s``, ``connection refused``, …), never the request or the server's text.
    """
    return {
        **base,
        "status": "quarantined",
        "reason": reasons.PROVIDER_ERROR,
        "detail": reasons.detail(
            "{uri} record {position}: the provider call failed after the retry policy on connection {conn} "
            "model {model}: " + _ours(f"{exc.failure} ({exc.attempts} attempts); retried by the next run"),
            uri=base["source_uri"],
            position=base["position"],
            conn=exc.conn_id,
            model=exc.model,
        ),
        "usage": usage,
    }


async def _process_record(
    session: RoutedSession,
    topic: Topic,
    validator,
    record: dict,
    stats: ChunkStats,
    budget: Budget,
    prefilled: Completion | None = None,
    breaker: CircuitBreaker | None = None,
) -> dict[str, Any]:
    """Prompt one record (answer, one repair if invalid); count it in ``breaker`` when it was sent.

    Raises :class:`~pipeline_hub.providers.errors.ProviderUnavailable` when this record trips the breaker.
    """
    sent: list[bool] = []
    result = await _answer_record(session, topic, validator, record, stats, budget, prefilled, sent)
    failure = result.pop("_failure", None)
    if breaker is not None and sent:
        breaker.record(failure)
    return result


async def _answer_record(
    session: RoutedSession,
    topic: Topic,
    validator,
    record: dict,
    stats: ChunkStats,
    budget: Budget,
    prefilled: Completion | None,
    sent: list[bool],
) -> dict[str, Any]:
    base = {k: record[k] for k in ("record_id", "source_uri", "position")}
    variables, missing, extra = build_variables(topic, record)
    if variables is None:
        stats.quarantine(reasons.MISSING_FIELD)
        return {
            **base,
            "status": "quarantined",
            "reason": reasons.MISSING_FIELD,
            "detail": reasons.detail(
                "{uri} record {position}: field '" + _ours(missing) + "' is missing or empty",
                uri=record["source_uri"],
                position=record["position"],
            ),
        }
    messages = topic.prompt.render(variables)
    params = dict(topic.prompt.model_params)
    schema = extra.get("schema", topic.prompt.output_schema)
    if "schema" in extra:
        validator = jsonschema.Draft202012Validator(schema)
    error = None
    usage = {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "attempts": 0,
        "latency_s": 0.0,
        "answer_latency_s": 0.0,  # provider latency of the answer(s), also when served from the cache
        "cache_hit": True,
        "cost_usd": 0.0,
        "model": None,
        "route": None,
    }
    for attempt in range(2):  # first answer + one repair
        try:
            if attempt == 0 and prefilled is not None:  # answered by a provider batch job
                completion = prefilled
                session.store(messages, completion, schema=schema, params=params)
            else:
                completion = await session.complete(
                    messages, schema=schema, schema_name=topic.name, params=params, gate=budget.open
                )
        except BudgetExhausted:
            stats.quarantine(reasons.BUDGET_EXCEEDED)
            _count_usage(stats, usage)
            return {
                **base,
                "status": "quarantined",
                "reason": reasons.BUDGET_EXCEEDED,
                "detail": reasons.detail(
                    _ours(
                        f"run budget of {budget.cap_usd} USD reached (this chunk's share: "
                        f"{budget.allowance_usd:.4f} USD)"
                    )
                ),
                "usage": usage,
            }
        except CallFailed as exc:  # retries (and the fallback) exhausted: this record only, not cached
            sent.append(True)
            stats.quarantine(reasons.PROVIDER_ERROR)
            stats.provider_failures[exc.failure] = stats.provider_failures.get(exc.failure, 0) + 1
            stats.calls += exc.attempts
            usage["attempts"] += exc.attempts
            usage["cache_hit"] = False
            _count_usage(stats, usage)
            log.warning("%s", exc)  # connection, model and failure only: never the record
            return {**provider_error_result(base, exc, usage), "_failure": exc}
        if not completion.cache_hit:
            sent.append(True)
        cost = 0.0 if completion.cache_hit else budget.charge(completion)
        stats.calls += completion.attempts
        stats.cache_hits += int(completion.cache_hit)
        for key in ("prompt_tokens", "completion_tokens", "attempts"):
            usage[key] += getattr(completion, key)
        usage["latency_s"] += 0.0 if completion.cache_hit else completion.latency_s
        usage["answer_latency_s"] += completion.latency_s
        usage["cache_hit"] = usage["cache_hit"] and completion.cache_hit
        usage["cost_usd"] += cost
        usage["model"], usage["route"] = completion.model, completion.route
        try:
            answer = json.loads(completion.content)
            error = _schema_error(validator, answer)
        except json.JSONDecodeError as exc:
            answer, error = None, f"$: not valid JSON ({exc.msg})"
        if error is None:
            stats.ok += 1
            stats.routes[completion.route] = stats.routes.get(completion.route, 0) + 1
            _count_usage(stats, usage)
            kept = {k: record["fields"].get(k) for k in topic.keep_fields}
            return {**base, "status": "ok", "answer": answer, "usage": usage, "fields": kept}
        if attempt == 0:
            messages = [
                *messages,
                {"role": "assistant", "content": completion.content},
                {
                    "role": "user",
                    "content": f"That answer is invalid: {error}. Reply again with only the corrected JSON object.",
                },
            ]
    stats.quarantine(reasons.INVALID_OUTPUT)
    _count_usage(stats, usage)
    return {
        **base,
        "status": "quarantined",
        "reason": reasons.INVALID_OUTPUT,
        "detail": reasons.detail(
            # The JSON path may name keys the model invented (outside text); the rest is ours.
            "{uri} record {position}: answer failed schema validation after one repair: {path}: "
            + _ours(error.rsplit(": ", 1)[1]),
            uri=record["source_uri"],
            position=record["position"],
            path=error.rsplit(": ", 1)[0],
        ),
        "raw_answer": completion.content,
        "usage": usage,
    }


def route_providers(hook, routes: dict[str, Any] | None) -> list[str]:
    """Where a record of this chunk may be sent: the primary hook's provider and every other route's."""
    from pipeline_hub.providers.routing import get_hook

    providers = [hook.provider]
    for name in ("long_input", "fallback"):
        route = (routes or {}).get(name)
        if route:
            providers.append(get_hook(route["conn_id"], route.get("model")).provider)
    return providers


def protect_inputs(topic: Topic, records: list[dict], providers: list[str]) -> tuple[list[dict], dict[str, Any]]:
    """Apply the topic's ``input_pii`` policy for ``providers``; return ``(records, report)``.

    With ``allow`` the records are returned unchanged. With ``redact`` or ``pseudonymize`` each record
    gets ``sent_fields``: its template-input fields with PII replaced (``<ENTITY>`` placeholders, or
    keyed ``psn_…`` pseudonyms equal to those the scrub stage publishes), which
    :func:`build_variables` renders instead of ``fields``. ``report`` is ``{"policy", "pii_found":
    {entity: count}}`` (counts only). Raises :class:`~pipeline_hub.pii.config.PiiConfigError` naming
    the topic's metadata.yaml when its policy is invalid.
    """
    from pipeline_hub.pii.config import TopicPii, input_policy

    policy = input_policy(TopicPii.from_topic(topic), providers)
    if policy == "allow" or not records:
        return records, {"policy": policy, "pii_found": {}}
    from pipeline_hub.stages.scrub import Scrubber

    names = list(dict.fromkeys(spec.field for spec in topic.inputs))
    slots = [(i, f) for i, r in enumerate(records) for f in names if isinstance(r["fields"].get(f), str)]
    with Scrubber() as scrubber:
        texts, found = scrubber.scrub_texts([records[i]["fields"][f] for i, f in slots], policy=policy)
    out = [{**r, "sent_fields": dict(r["fields"])} for r in records]
    for (i, f), text in zip(slots, texts, strict=True):
        out[i]["sent_fields"][f] = text
    return out, {"policy": policy, "pii_found": dict(sorted(found.items()))}


def _count_usage(stats: ChunkStats, usage: dict) -> None:
    stats.prompt_tokens += usage["prompt_tokens"]
    stats.completion_tokens += usage["completion_tokens"]
    stats.latency_s += usage["latency_s"]
    stats.cost_usd += usage["cost_usd"]


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


async def aprompt_records(
    hook,
    topic: Topic,
    records: list[dict],
    *,
    cache=None,
    budget: Budget | None = None,
    routes: dict[str, Any] | None = None,
    prefilled: dict[str, Completion] | None = None,
) -> tuple[list[dict], ChunkStats]:
    """Prompt every staged record concurrently; return per-record results (input order) and stats.

    ``prefilled`` maps record ids to answers a provider batch job already gave (route ``batch``):
    those records are validated (and repaired if needed) without a first call, and cached.

    ``hook`` is the primary chat hook (``LLMHook`` or ``BedrockLLMHook``); ``routes`` (from
    :func:`pipeline_hub.providers.routing.resolve_routes`, pinned in the run plan) adds long-input routing and a
    fallback; without it every record goes to ``hook``.

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
    if routes is None:
        router = RoutedSession.single(hook, cache)
    else:
        router = RoutedSession(routes=routes, cache=cache, hooks={"primary": hook})
    prefilled = prefilled or {}
    breaker = CircuitBreaker.for_hook(hook)
    results: list[dict[str, Any] | None] = [None] * len(records)
    pending = iter(enumerate(records))

    async def worker() -> None:
        # Workers take records one at a time, so rendering interleaves with I/O instead of every
        # record being rendered before the first request leaves.
        for i, record in pending:
            results[i] = await _process_record(
                session, topic, validator, record, stats, budget, prefilled.get(record["record_id"]), breaker
            )

    async with router as session:
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
    """Synchronous wrapper of :func:`aprompt_records` (same ``options``) for Airflow tasks and the CLI."""
    return asyncio.run(aprompt_records(hook, topic, records, **options))


def prompt_context(item: dict[str, Any]) -> tuple[RunPlan, Any, Any, list[dict], Any, Any]:
    """What a prompt task needs for one work item: ``(plan, topic plan, topic, records, hook, budget)``.

    ``hook`` is the topic's primary route; ``budget`` is this chunk's share of the run's cap.
    """
    from pipeline_hub.stages.prompt import Budget

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
    results, stats = prompt_records(
        hook, topic, records, cache=open_cache(), budget=budget, routes=tp.routes or None, prefilled=prefilled
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
        # Per-record provider latency (s) of records that needed a call, for p50/p95 in the manifest.
        "record_latencies_s": [
            round(r["usage"]["latency_s"], 4)
            for r in results
            if "usage" in r and not r["usage"]["cache_hit"] and r["usage"]["route"] != "batch"
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
