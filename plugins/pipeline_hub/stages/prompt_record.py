"""Prompting one record: render, call (through the routed session, within the budget), validate the answer
with ``jsonschema`` (Draft 2020-12), one repair attempt when it is invalid; and the chunk's counters
(:class:`ChunkStats`) the record is counted in.

A record ends ``ok`` or quarantined as ``missing_field``, ``invalid_output``, ``budget_exhausted`` or
``provider_error`` (see :mod:`pipeline_hub.stages.prompt`). A version with a calibrated cascade answers
the records its proxy is sure of (:mod:`pipeline_hub.stages.cascade`): a rapidfuzz proxy without a call, a
model proxy with one call on its ``proxy`` route, the same prompt and validation (one attempt, no repair:
an invalid or failed proxy answer, or one below ``upper``, goes to the oracle and never quarantines the
record by itself). The oracle's calls go to the cascade's oracle route. Nothing here logs record text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from pipeline_hub import reasons
from pipeline_hub.prompts.registry import Topic
from pipeline_hub.providers.breaker import CircuitBreaker
from pipeline_hub.providers.errors import BudgetExhausted, CallFailed
from pipeline_hub.providers.routing import RoutedSession
from pipeline_hub.providers.session import Completion
from pipeline_hub.stages.budget import Budget
from pipeline_hub.stages.cascade import (
    ORACLE_ROUTE,
    PROXY_MODEL,
    PROXY_ROUTE,
    model_proxy_accepts,
    oracle_route,
    proxy_answer,
    proxy_route,
)
from pipeline_hub.stages.prompt_inputs import build_variables

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
    # A model proxy (cascade): calls made on its route (in ``calls`` too), their cost (USD, in ``cost_usd``
    # too), and how its answers ended: accepted | unsure (below upper) | invalid | failed | budget.
    proxy_calls: int = 0
    proxy_cost_usd: float = 0.0
    proxy_outcomes: dict[str, int] = field(default_factory=dict)

    def quarantine(self, reason: str) -> None:
        """Count one record quarantined with ``reason`` (a :mod:`pipeline_hub.reasons` code)."""
        self.quarantined[reason] = self.quarantined.get(reason, 0) + 1


def _schema_error(validator: jsonschema.Draft202012Validator, answer: Any) -> str | None:
    """First validation error as ``$.path: keyword`` (never the offending value, which may be PII)."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(answer))
    if error is None:
        return None
    return f"{error.json_path}: fails '{error.validator}'"


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


async def process_record(
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
    schema = extra.get("schema", topic.prompt.output_schema)
    if "schema" in extra:
        validator = jsonschema.Draft202012Validator(schema)
    cascade = None if topic.prompt.cascade is None else ORACLE_ROUTE
    answer = proxy_answer(topic, record, variables, validator) if cascade else None
    if answer is not None:
        stats.ok += 1
        stats.routes[PROXY_ROUTE] = stats.routes.get(PROXY_ROUTE, 0) + 1
        usage = {**_NO_CALL, "model": PROXY_MODEL, "route": PROXY_ROUTE, "cascade": PROXY_ROUTE}
        kept = {k: record["fields"].get(k) for k in topic.keep_fields}
        return {**base, "status": "ok", "answer": answer, "usage": usage, "fields": kept}
    messages = topic.prompt.render(variables)
    params = dict(topic.prompt.model_params)
    error = None
    # cache_hit stays True only while every answer came from the cache; cascade is None without a cascade,
    # else "oracle" (a proxy answer returned above or below).
    usage = {**_NO_CALL, "cache_hit": True, "model": None, "route": None, "cascade": cascade}
    request = {"schema": schema, "schema_name": topic.name, "params": params, "gate": budget.open, "paid": budget.pay}
    if prefilled is None and proxy_route(topic) is not None:  # a batch job's answer is not asked again
        answer = await _ask_proxy(session, topic, validator, messages, request, stats, budget, usage)
        if answer is not None:
            stats.ok += 1
            stats.routes[PROXY_ROUTE] = stats.routes.get(PROXY_ROUTE, 0) + 1
            _count_usage(stats, usage)
            kept = {k: record["fields"].get(k) for k in topic.keep_fields}
            return {**base, "status": "ok", "answer": answer, "usage": usage, "fields": kept}
    oracle = oracle_route(topic)  # None: the usual routing (primary, long input, fallback)
    for attempt in range(2):  # first answer + one repair
        try:
            if attempt == 0 and prefilled is not None:  # answered by a provider batch job
                completion = prefilled
                await session.store(messages, completion, schema=schema, params=params)
            else:
                completion = await session.complete(messages, route=oracle, **request)
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
        _add_completion(stats, usage, budget, completion)
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


async def _ask_proxy(
    session: RoutedSession,
    topic: Topic,
    validator,
    messages: list[dict[str, str]],
    request: dict[str, Any],
    stats: ChunkStats,
    budget: Budget,
    usage: dict[str, Any],
) -> dict[str, Any] | None:
    """The model proxy's answer to ``messages`` when it is valid and sure enough (``usage`` then names the
    proxy), else None (the oracle answers; ``usage`` keeps the proxy call's tokens and cost).

    One attempt, no repair. ``usage["proxy"]`` records the proxy call alone: ``{"model", "prompt_tokens",
    "completion_tokens", "cost_usd", "outcome"}`` (outcome: accepted | unsure | invalid | failed | budget).
    Provider refusals (401/403/404, a :class:`~pipeline_hub.exceptions.ProviderError` other than
    ``CallFailed``) are raised: a misconfigured proxy connection fails the task like the primary's.
    """
    route = session.routes[PROXY_ROUTE]
    mine = {"model": route["model"], "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}

    def outcome(name: str) -> None:
        usage["proxy"] = {**mine, "outcome": name}
        stats.proxy_outcomes[name] = stats.proxy_outcomes.get(name, 0) + 1

    try:
        completion = await session.complete(messages, route=PROXY_ROUTE, **request)
    except BudgetExhausted:  # the oracle's call meets the same closed gate and quarantines the record
        outcome("budget")
        return None
    except CallFailed as exc:  # retries exhausted: the oracle answers this record
        stats.calls += exc.attempts
        stats.proxy_calls += exc.attempts
        usage["attempts"] += exc.attempts
        usage["cache_hit"] = False
        log.warning("cascade proxy: %s; the oracle answers the record", exc)  # connection, model, failure only
        outcome("failed")
        return None
    cost = _add_completion(stats, usage, budget, completion)
    stats.proxy_calls += completion.attempts
    stats.proxy_cost_usd += cost
    mine |= {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
    mine["cost_usd"] = cost
    try:
        answer = json.loads(completion.content)
    except json.JSONDecodeError:
        answer = None
    if answer is None or _schema_error(validator, answer) is not None:
        outcome("invalid")
        return None
    if not model_proxy_accepts(topic, answer):
        outcome("unsure")
        return None
    outcome("accepted")
    usage["cascade"] = PROXY_ROUTE
    return answer


def _add_completion(stats: ChunkStats, usage: dict[str, Any], budget: Budget, completion: Completion) -> float:
    """Fold one completion into the chunk's counters and the record's ``usage``; returns its cost (USD)."""
    # A provider's answer was charged on arrival (``Budget.pay``); a batch job's answer is charged here.
    cost = 0.0 if completion.cache_hit else budget.pay(completion)
    stats.calls += completion.attempts
    stats.cache_hits += int(completion.cache_hit)
    for key in ("prompt_tokens", "completion_tokens", "attempts"):
        usage[key] += getattr(completion, key)
    usage["latency_s"] += 0.0 if completion.cache_hit else completion.latency_s
    usage["answer_latency_s"] += completion.latency_s
    usage["cache_hit"] = usage["cache_hit"] and completion.cache_hit
    usage["cost_usd"] += cost
    usage["model"], usage["route"] = completion.model, completion.route
    return cost


# A record's usage before any call (a proxy answer keeps it): answer_latency_s is the provider latency of
# the answer(s), also when served from the cache.
_NO_CALL = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "attempts": 0,
    "latency_s": 0.0,
    "answer_latency_s": 0.0,
    "cache_hit": False,
    "cost_usd": 0.0,
}


def _count_usage(stats: ChunkStats, usage: dict) -> None:
    stats.prompt_tokens += usage["prompt_tokens"]
    stats.completion_tokens += usage["completion_tokens"]
    stats.latency_s += usage["latency_s"]
    stats.cost_usd += usage["cost_usd"]
