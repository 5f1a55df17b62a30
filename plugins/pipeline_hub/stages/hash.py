"""The hash stage: SHA-256 every listed object and each batch, write the run plan, decide what is new.

The listing goes to the batch manifest ``<sanitized root>/_batches/<source>/<batch_hash>.json``. A
topic whose partition index entry holds the run's identity is skipped, so re-running an unchanged
partition publishes nothing and calls no LLM; the same bytes under another ``ds``, a partition reverted
to an earlier batch and a renamed object are published again, their answers from the response cache
(0 LLM calls).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.config import Settings
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.hashing import batch_hash, sha256_object
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.providers.routing import PROXY_ROUTE, get_hook, require_connection, resolve_routes, route_models
from pipeline_hub.stages.cascade import with_proxy_route
from pipeline_hub.stages.plan import (
    READ,
    REJECTED,
    RunPlan,
    TopicPlan,
    batch_manifest,
    batch_manifest_path,
    resolve_labels,
    safe_run_id,
)
from pipeline_hub.stages.pubindex import holds

log = logging.getLogger(__name__)


def _hash_objects(listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SHA-256 every object to read (in place: ``sha256``); an object the store cannot return is rejected."""
    for o in listing:
        o.setdefault("sha256", None)
        o.setdefault("records", None)
        if o["status"] != READ:
            continue
        try:
            o["sha256"], o["size"] = sha256_object(storage.to_path(o["uri"]))
        except OSError as exc:
            o["status"], o["reason"] = REJECTED, reasons.UNREADABLE_OBJECT
            o["detail"] = reasons.plain(
                reasons.detail(
                    "{obj}: the store could not return its bytes ({err})", obj=o["public_uri"], err=type(exc).__name__
                )
            )
            log.warning("raw object rejected: %s", o["detail"])
    return listing


def hash_and_plan(
    settings: Settings,
    *,
    run_id: str,
    ds: str,
    topics: list[str],
    discovered: dict[str, dict[str, Any]],
    row_limit: int | None,
    llm_conn_id: str,
    model: str,
    provider: str,
    budget_usd: float | None = None,
    prompt_labels: dict[str, str] | None = None,
) -> RunPlan:
    """Hash every discovered object, compute batch hashes, write batch manifests and the run plan.

    Each topic's prompt version is resolved through its label in ``prompt_labels`` (``prod`` when not
    named; :func:`~pipeline_hub.stages.plan.resolve_labels` raises ``ConfigError`` first for an unknown
    topic or label) and pinned with the label. Topics whose ``ds`` partition already holds this run's
    identity (publication index, :func:`pipeline_hub.stages.pubindex.holds`) are marked ``skipped_published``.
    Returns the plan (also written to ``plan.staging + "/plan.json"``).
    """
    labels = resolve_labels(settings, prompt_labels)
    staging = storage.join(settings.staging_root, safe_run_id(run_id))
    plan = RunPlan(
        run_id=run_id,
        ds=ds,
        row_limit=row_limit,
        llm_conn_id=llm_conn_id,
        model=model,
        provider=provider,
        settings={
            "raw_root": settings.raw_root,
            "sanitized_root": settings.sanitized_root,
            "staging_root": settings.staging_root,
            "chunk_size": settings.chunk_size,
            "max_chunks": settings.max_chunks,
            "validate_batch_records": settings.validate_batch_records,
            "limits": settings.limits,
        },
        budget_usd=budget_usd,
        started_at=datetime.now(UTC).isoformat(),
        staging=str(staging),
    )
    for source, info in discovered.items():
        listing = _hash_objects([dict(o) for o in info["objects"]])
        objects = [{k: o[k] for k in ("uri", "public_uri", "sha256", "size")} for o in listing if o["status"] == READ]
        # The batch is the bytes to read: skipped objects (a _SUCCESS marker, a README) do not change it.
        bh = batch_hash(o["sha256"] for o in objects) if objects else None
        plan.sources[source] = {
            "prefix": info.get("prefix"),
            "batch_hash": bh,
            "objects": objects,
            "listing": [{k: v for k, v in o.items() if k != "uri"} for o in listing],
        }
        if bh:
            storage.write_json(batch_manifest_path(settings, source, bh), batch_manifest(plan, source))
        else:
            log.warning(
                "source %s: %s (nothing to read at %s; %d objects skipped)",
                source,
                reasons.NO_INPUT,
                info.get("prefix"),
                len(listing),
            )
    for name in topics:
        label = labels.get(name, "prod")
        topic = load_topic(name, settings.prompts_dir, pointer=label)
        tp = TopicPlan(
            topic=name,
            source=topic.source,
            prompt_version=topic.version,
            template_sha256=topic.prompt.template_sha256,
            cascade_sha256=topic.prompt.cascade_sha256,
            prompt_label=label,
            batch_hash=plan.sources.get(topic.source, {}).get("batch_hash"),
            # A calibrated model proxy is a route too (pinned, priced, shown in the manifest; not in the identity,
            # which holds the cascade block itself).
            routes=with_proxy_route(topic, resolve_routes(topic.provider, llm_conn_id, model)),
        )
        if tp.batch_hash is None:
            tp.status = reasons.NO_INPUT
            log.info("topic %s: no raw objects for source %s on %s", name, topic.source, ds)
        else:
            held = holds(settings.sanitized_root, name, plan.identity(tp), plan.legacy_identity(tp))
            if held:
                tp.status = "skipped_published"
                tp.published_manifest = held
                log.info(
                    "topic %s: ds=%s already published from batch %s with these objects, prompt and model; "
                    "skipping, no LLM calls",
                    name,
                    ds,
                    tp.batch_hash[:12],
                )
        plan.topics.append(tp)
    storage.write_json(staging / "plan.json", plan.to_dict())
    return plan


def run_hash(
    settings: Settings,
    discovered: dict[str, Any],
    *,
    run_id: str,
    row_limit: int | None,
    llm_conn_id: str,
    budget_usd: float | None = None,
    prompt_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Task ``hash``: hash objects, write the plan (prompt versions pinned through ``prompt_labels``).

    Returns ``{"plan_uri", "pending": [topic…], "skipped": {topic: status}, "no_input": {source:
    prefix URI}, "outcome"}``: ``no_input`` names every requested source with nothing to read (its
    topics have status ``no_input`` in ``skipped``); ``outcome`` is ``no_input``
    (:data:`pipeline_hub.reasons.NO_INPUT`) when no requested topic has input, else ``ok``. Callers
    decide what ``no_input`` means for them (the DAG fails its ``hash`` task, ``pipeline-hub run``
    exits 3); the other sources run.

    Raises ``ConfigError`` (a ``ValueError``) when a budget cap is set but a model a pending topic may
    call has no price in ``include/pricing.yaml``, ``prompt_labels`` names an unknown topic or label, or a
    pending topic's cascade proxy names a connection Airflow does not define.
    """
    from pipeline_hub.providers.pricing import price_of

    hook = get_hook(llm_conn_id)
    plan = hash_and_plan(
        settings,
        run_id=run_id,
        ds=discovered["ds"],
        topics=discovered["topics"],
        discovered=discovered["discovered"],
        row_limit=row_limit,
        llm_conn_id=llm_conn_id,
        model=hook.model,
        provider=hook.provider,
        budget_usd=budget_usd,
        prompt_labels=prompt_labels,
    )
    for t in plan.pending:  # a model proxy's connection: refused here, before any task asks it
        if proxy := t.routes.get(PROXY_ROUTE):
            require_connection(proxy["conn_id"], f"topic '{t.topic}' {t.prompt_version}: cascade.proxy")
    if budget_usd is not None:
        for t in plan.pending:
            unpriced = [m for m in route_models(t.routes) if price_of(m) is None]
            if unpriced:
                raise ConfigError(
                    f"budget_usd is set but model(s) {unpriced} of topic '{t.topic}' (connection "
                    f"'{llm_conn_id}', the topic's provider routes or its cascade proxy) have no price in "
                    "genai-prices or include/pricing.yaml: "
                    "add them, or run without a budget cap"
                )
    skipped = {t.topic: t.status for t in plan.topics if t.status != "pending"}
    no_input = {src: info.get("prefix") for src, info in plan.sources.items() if not info.get("batch_hash")}
    all_no_input = bool(plan.topics) and all(t.status == reasons.NO_INPUT for t in plan.topics)
    if no_input:
        log.warning("%s: nothing to read under %s", reasons.NO_INPUT, ", ".join(map(str, no_input.values())))
    if not plan.pending:
        log.info("nothing new to publish for %s: %s", plan.ds, skipped)
    return {
        "plan_uri": f"{plan.staging}/plan.json",
        "pending": [t.topic for t in plan.pending],
        "skipped": skipped,
        "ds": plan.ds,
        "no_input": no_input,
        "outcome": reasons.NO_INPUT if all_no_input else "ok",
    }


def no_input_message(planned: dict[str, Any]) -> str:
    """One line naming the prefixes of :func:`run_hash`'s ``no_input`` sources and what to do."""
    prefixes = ", ".join(str(p) for p in planned["no_input"].values())
    return (
        f"{reasons.NO_INPUT}: no raw object to read under {prefixes} for ds {planned.get('ds', '?')}: "
        "upload the batch there (objects directly under the prefix; names starting with '_' or '.' are skipped)"
    )
