"""Batch mode: a topic's chunk answered by the provider's Batch API (half price, hours not seconds).

A topic with ``provider.mode: batch`` in its ``metadata.yaml`` has its chunks sent through the common-ai
provider's ``LLMBatchOperator`` (see :mod:`pipeline_hub.orchestration.batch_operator`), in three steps:

1. :func:`prepare` renders every record of the chunk, as the streaming prompt task would, and writes
   the requests to ``<staging>/batch/<topic>/chunk-NNNNN/requests.jsonl`` (XCom never sees record text).
   Records that need no batch call stay out: a missing input field (quarantined later), a cached
   answer (never paid twice), a record the cascade's rapidfuzz proxy answers (``proxy``, see below), a
   long input routed to another model, or past the chunk's budget share.
2. The operator submits the requests, defers while the provider works, re-attaches on retry and lands
   the results as JSONL under the same folder.
3. :func:`fold` turns the landed rows into the same per-record answers as the streaming task
   (``answers/<topic>/chunk-NNNNN.jsonl`` + ``_stats``): each answer is validated against the topic's
   schema and gets the same single repair call when invalid; a row the provider failed (error,
   expired, cancelled, missing) and every record left out in step 1 go through the streaming path.
   Scrub, validate and publish then run unchanged.

A version with a calibrated cascade and the ``rapidfuzz`` proxy (:mod:`pipeline_hub.stages.cascade`) submits
only the band: the records the proxy is sure of are left out in step 1 and answered in step 3 by the
proxy, without a call (published with ``route = "proxy"``, counted in the chunk's ``routes`` and the
manifest's ``usage.cascade`` as in streaming mode; :func:`pipeline_hub.stages.cascade_usage.batch_proxy_answer`).
A model proxy (``proxy: model:<conn_id>/<model>``) is not run in batch mode: every record goes to the batch,
as without a cascade. Conservation holds: every record of the chunk ends in step 3 as ok or quarantined.

Sources: OpenAI Batch API guide (platform.openai.com/docs/guides/batch); Airflow common-ai provider,
``LLMBatchOperator`` (operator guide: result rows and manifest).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pipeline_hub import storage
from pipeline_hub.providers.pricing import cost_usd
from pipeline_hub.providers.routing import estimate_tokens
from pipeline_hub.providers.session import Completion
from pipeline_hub.stages.cascade_usage import batch_proxy_answer
from pipeline_hub.stages.plan import RunPlan
from pipeline_hub.stages.prompt_inputs import build_variables, protect_inputs, route_providers

log = logging.getLogger(__name__)


def batch_dir(plan, topic: str, chunk_index: int):
    """``<staging>/batch/<topic>/chunk-NNNNN/``: requests, the operator's state and its landed results."""
    return storage.join(plan.staging, "batch", topic, f"chunk-{chunk_index:05d}")


def output_type(schema: dict[str, Any]) -> Any:
    """A type whose JSON Schema is ``schema`` (what ``LLMBatchOperator`` sends as structured output).

    The operator accepts Pydantic types; ``Annotated[dict, WithJsonSchema(schema)]`` passes any JSON
    object through, so the topic's own ``jsonschema`` validation (in :func:`fold`) stays the judge.
    """
    from pydantic import WithJsonSchema

    clean = {k: v for k, v in schema.items() if k not in ("$schema", "title")}
    return Annotated[dict[str, Any], WithJsonSchema(clean)]


def prepare(item: dict[str, Any]) -> dict[str, Any]:
    """Step 1: write the chunk's batch requests; return (and write to ``prepared.json``) ``{"requests_uri",
    "requests", "result_path", "conn_id", "model", "max_tokens", "output_schema", "left_out": {reason: n}}``
    (no record text). ``left_out`` reasons: ``missing_field``, ``proxy`` (the rapidfuzz proxy answers it),
    ``cached``, ``long_input``, ``budget``."""
    import jsonschema

    from pipeline_hub.providers.cache import cache_key, open_cache
    from pipeline_hub.stages.prompt import prompt_context

    plan, tp, topic, records, hook, budget = prompt_context(item)
    # The topic's input_pii policy, as in the streaming path: what a remote provider may see of a record.
    records, _ = protect_inputs(topic, records, route_providers(hook, tp.routes or None))
    folder = batch_dir(plan, topic.name, item["chunk_index"])
    cache = open_cache()
    params = dict(topic.prompt.model_params)
    max_tokens = int(params.pop("max_tokens", 1024))
    threshold = tp.routes.get("threshold_tokens") if tp.routes.get("long_input") else None
    lines, left_out, estimate = [], {}, 0.0
    validator = jsonschema.Draft202012Validator(topic.prompt.output_schema)
    for record in records:
        variables, _, extra = build_variables(topic, record)
        if variables is None:
            left_out["missing_field"] = left_out.get("missing_field", 0) + 1
            continue
        schema = extra.get("schema", topic.prompt.output_schema)
        checker = jsonschema.Draft202012Validator(schema) if "schema" in extra else validator
        if batch_proxy_answer(topic, record, variables, checker) is not None:
            left_out["proxy"] = left_out.get("proxy", 0) + 1  # answered in fold(), without a call
            continue
        messages = topic.prompt.render(variables)
        key = cache_key(
            provider=hook.provider, model=hook.model, params=topic.prompt.model_params, messages=messages, schema=schema
        )
        if cache.get(key) is not None:
            left_out["cached"] = left_out.get("cached", 0) + 1
            continue
        if threshold and estimate_tokens(messages) > threshold:
            left_out["long_input"] = left_out.get("long_input", 0) + 1
            continue
        if budget.cap_usd is not None:
            cost = cost_usd(hook.model, estimate_tokens(messages), max_tokens, batch=True) or 0.0
            if estimate + cost > budget.allowance_usd:
                left_out["budget"] = left_out.get("budget", 0) + 1
                continue
            estimate += cost
        system, user = messages[0]["content"], messages[1]["content"]
        lines.append({"record_id": record["record_id"], "prompt": user, "system_prompt": system, "params": params})
    storage.write_jsonl(folder / "requests.jsonl", lines)
    log.info("batch %s chunk %d: %d requests, left out %s", topic.name, item["chunk_index"], len(lines), left_out)
    prepared = {
        "requests_uri": str(folder / "requests.jsonl"),
        "requests": len(lines),
        "result_path": str(folder),
        "conn_id": hook.conn_id,
        "model": hook.model,
        "max_tokens": max_tokens,
        "output_schema": topic.prompt.output_schema,
        "left_out": left_out,
    }
    storage.write_json(folder / "prepared.json", prepared)
    return prepared


def load_prepared(item: dict[str, Any]) -> dict[str, Any]:
    """What :func:`prepare` returned for ``item``, read back (after a deferral the batch's results must be
    matched against the very requests that were submitted, not a fresh rendering)."""
    plan = RunPlan.load(item["plan_uri"])
    return storage.read_json(batch_dir(plan, item["topic"], item["chunk_index"]) / "prepared.json")


def load_requests(requests_uri: str) -> tuple[list[str], list[dict[str, Any]]]:
    """``(record_ids, requests)`` from a ``requests.jsonl`` written by :func:`prepare`, in batch order."""
    rows = storage.read_jsonl(storage.to_path(requests_uri))
    requests = [{k: r[k] for k in ("prompt", "system_prompt", "params")} for r in rows]
    return [r["record_id"] for r in rows], requests


def fold(item: dict[str, Any], manifest: dict[str, Any] | None, model: str) -> dict[str, Any]:
    """Step 3: the landed rows (``manifest["result_uri"]``; None when nothing was submitted) become
    this chunk's answers, through the same validation/repair/stream path as streaming mode.

    Returns the chunk summary of :func:`pipeline_hub.stages.prompt.run_prompt`, plus ``batch`` counts.
    """
    import json

    from pipeline_hub.stages.prompt import run_prompt

    prefilled: dict[str, Completion] = {}
    outcomes: dict[str, int] = {}
    if manifest:
        record_ids, _ = load_requests(item["requests_uri"])
        for row in storage.read_jsonl(storage.to_path(manifest["result_uri"])):
            status = row["status"]
            outcomes[status] = outcomes.get(status, 0) + 1
            if status not in ("success", "invalid_output"):
                continue  # provider error, expired, cancelled, missing: the streaming path answers it
            usage = row.get("usage") or {}
            content = json.dumps(row["output"]) if status == "success" else (row.get("raw_output") or "")
            prefilled[record_ids[row["index"]]] = Completion(
                content=content,
                prompt_tokens=int(usage.get("input_tokens") or 0),
                completion_tokens=int(usage.get("output_tokens") or 0),
                latency_s=0.0,
                attempts=1,
                model=model,
                route="batch",
            )
    summary = run_prompt(item, prefilled=prefilled)
    summary["batch"] = {"rows": outcomes, "answered": len(prefilled)}
    log.info("batch %s chunk %d folded: %s", item["topic"], item["chunk_index"], summary["batch"])
    return summary
