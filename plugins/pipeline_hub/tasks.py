"""Task bodies of the ``prompt_pipeline`` DAG, shared by the DAG, the CLI (``pipeline-hub run``) and tests.

Each function takes and returns small JSON-serialisable values (URIs, names, counts): record text
stays in staging objects and never goes through XCom or logs.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from pipeline_hub import pubindex, reasons, storage
from pipeline_hub.casting import json_text
from pipeline_hub.chunking import chunk_source, object_listing, read_chunk
from pipeline_hub.config import Settings
from pipeline_hub.erasure import ERASED_REASON, erased_pseudonyms, suppress_erased
from pipeline_hub.plan import RunPlan, discover, hash_and_plan, resolve_topics
from pipeline_hub.publish import (
    QUARANTINE_SCHEMA,
    code_version,
    lineage_metadata,
    now,
    partition,
    published_schema,
    write_metrics,
    write_table,
)
from pipeline_hub.quality import LINEAGE_COLUMNS, failed_expectations, validate_topic
from pipeline_hub.registry import load_topic
from pipeline_hub.routing import get_hook, route_models

log = logging.getLogger(__name__)


QUARANTINE_FIELDS = ("record_id", "reason", "detail", "source_uri", "position", "raw_answer")


class QualityGateFailed(RuntimeError):
    """A topic failed a blocking expectation: its rows were quarantined, the run must end failed.

    ``summary`` is the publish summary of the quarantined topic (counts, URI of its manifest in the
    quarantine zone, no record values) and ``manifest`` that manifest, for lineage and callers.
    """

    def __init__(
        self, message: str, summary: dict[str, Any] | None = None, manifest: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.summary = summary or {}
        self.manifest = manifest or {}


class ConservationError(RuntimeError):
    """Records in != published + quarantined for a topic: a bug, never published over."""


def run_discover(settings: Settings, ds: str, topics: list[str] | None, source: str | None) -> dict[str, Any]:
    """Task ``discover``: ``{"ds", "topics", "discovered": {source: {"prefix", "objects": [...]}}}``.

    Every object below each source's ``ds`` prefix is listed with ``status`` ``read`` or ``skipped``
    and a reason (:func:`pipeline_hub.plan.discover`); object names and sizes only, no record text.
    """
    chosen = resolve_topics(settings, topics, source)
    return {"ds": ds, "topics": chosen, "discovered": discover(settings, ds, chosen)}


def run_hash(
    settings: Settings,
    discovered: dict[str, Any],
    *,
    run_id: str,
    row_limit: int | None,
    llm_conn_id: str,
    budget_usd: float | None = None,
) -> dict[str, Any]:
    """Task ``hash``: hash objects, write the plan.

    Returns ``{"plan_uri", "pending": [topic…], "skipped": {topic: status}, "no_input": {source:
    prefix URI}, "outcome"}``: ``no_input`` names every requested source with nothing to read (its
    topics have status ``no_input`` in ``skipped``); ``outcome`` is ``no_input``
    (:data:`pipeline_hub.reasons.NO_INPUT`) when no requested topic has input, else ``ok``. Callers
    decide what ``no_input`` means for them (the DAG fails its ``hash`` task, ``pipeline-hub run``
    exits 3); the other sources run.

    Raises ``ValueError`` when a budget cap is set but a model a pending topic may call has no price in
    ``include/pricing.yaml``.
    """
    from pipeline_hub.pricing import price_of

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
    )
    if budget_usd is not None:
        for t in plan.pending:
            unpriced = [m for m in route_models(t.routes) if price_of(m) is None]
            if unpriced:
                raise ValueError(
                    f"budget_usd is set but model(s) {unpriced} of topic '{t.topic}' (connection "
                    f"'{llm_conn_id}' or the topic's provider routes) have no price in include/pricing.yaml: "
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


def run_chunk(plan_uri: str) -> list[dict[str, Any]]:
    """Task ``chunk``: chunk every source a pending topic reads; one work item per (topic, chunk)."""
    plan = RunPlan.load(plan_uri)
    chunk_size = int(plan.settings["chunk_size"])
    max_chunks = max_chunks_per_source(plan)
    by_source = {}
    for tp in plan.pending:
        if tp.source not in by_source:
            by_source[tp.source] = chunk_source(plan, tp.source, chunk_size, max_chunks[tp.source])
            counts = by_source[tp.source]["counts"]
            log.info("source %s: %s", tp.source, counts)
    return [
        {
            "plan_uri": plan_uri,
            "topic": tp.topic,
            "chunk_uri": c["uri"],
            "chunk_index": c["index"],
            "chunk_records": c["records"],
            "topic_records": by_source[tp.source]["counts"]["staged"],
            "mode": tp.mode,
        }
        for tp in plan.pending
        for c in by_source[tp.source]["chunks"]
    ]


def max_chunks_per_source(plan: RunPlan) -> dict[str, int]:
    """Most chunks a source may be cut into, so the mapped prompt tasks stay within bounds.

    Per source: ``min(settings.max_chunks, max_map_length // topics reading it)``, where
    ``max_map_length`` is Airflow's ``[core] max_map_length`` (default 1024). The chunk size grows
    beyond its default when a source is larger than ``max_chunks × chunk_size`` records.
    """
    try:
        from airflow.configuration import conf

        max_map_length = conf.getint("core", "max_map_length", fallback=1024)
    except Exception:  # outside an Airflow installation's configuration
        max_map_length = 1024
    readers = Counter(tp.source for tp in plan.pending)
    return {src: max(1, min(int(plan.settings["max_chunks"]), max_map_length // n)) for src, n in readers.items()}


def _topic(plan: RunPlan, name: str):
    tp = plan.topic(name)
    topic = load_topic(name, pointer="prod", version=tp.prompt_version)
    if topic.prompt.template_sha256 != tp.template_sha256:
        raise RuntimeError(
            f"topic {name} {tp.prompt_version}: template changed during the run "
            f"(plan {tp.template_sha256[:12]}, now {topic.prompt.template_sha256[:12]}); re-run"
        )
    return tp, topic


def prompt_context(item: dict[str, Any]) -> tuple[RunPlan, Any, Any, list[dict], Any, Any]:
    """What a prompt task needs for one work item: ``(plan, topic plan, topic, records, hook, budget)``.

    ``hook`` is the topic's primary route; ``budget`` is this chunk's share of the run's cap.
    """
    from pipeline_hub.prompting import Budget

    plan = RunPlan.load(item["plan_uri"])
    tp, topic = _topic(plan, item["topic"])
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
    from pipeline_hub.prompting import prompt_records
    from pipeline_hub.providers.cache import open_cache

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


def run_scrub(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``scrub`` (per topic): types cast, Presidio over every answer, kept field, id and detail.

    Records whose answer does not fit its published types are quarantined as ``invalid_output``, records
    still holding PII after scrubbing as ``residual_pii`` (per record, with the field path), ids holding
    PII become keyed pseudonyms (see :func:`pipeline_hub.scrub.scrub_topic`). Writes
    ``scrubbed/<topic>/rows.jsonl``, ``quarantine.jsonl`` and ``_summary.json`` (counts only: ``rows``,
    ``quarantined``, ``pii_found``, ``pii_left``, ``pii_found_quarantine``, ``pii_found_ids``,
    ``ids_pseudonymized``, ``quarantined_here``, ``residual_pii``, ``strings_scanned``) and returns the
    summary.
    """
    from pipeline_hub.scrub import scrub_topic

    plan = RunPlan.load(plan_uri)
    tp, topic = _topic(plan, topic_name)
    answers_dir = storage.join(plan.staging, "answers", topic.name)
    rows, quarantine, origins = [], [], {}
    for path in storage.list_files(answers_dir):
        for r in storage.read_jsonl(path):
            if r["status"] == "ok":
                origins[r["record_id"]] = {"source_uri": r.get("source_uri"), "position": r.get("position")}
                collision = set(r["fields"]) & set(r["answer"])
                if collision:
                    raise ValueError(f"{topic.metadata_path}: kept fields {sorted(collision)} collide with answer keys")
                row = {"record_id": r["record_id"], **r["fields"], **r["answer"]}
                if (r.get("usage") or {}).get("model"):
                    row["model"] = r["usage"]["model"]  # per record: routing may pick another model
                rows.append(row)
            else:
                quarantine.append({k: r.get(k) for k in QUARANTINE_FIELDS})
    rejects = storage.read_jsonl(storage.join(plan.staging, "chunks", tp.source, "_rejects.jsonl"))
    quarantine += [{k: r.get(k) for k in QUARANTINE_FIELDS} for r in rejects]
    scrubbed, quarantine, summary = scrub_topic(topic, rows, quarantine, origins=origins)
    out = storage.join(plan.staging, "scrubbed", topic.name)
    storage.write_jsonl(out / "rows.jsonl", scrubbed)
    storage.write_jsonl(out / "quarantine.jsonl", quarantine)
    storage.write_json(out / "_summary.json", summary, atomic=False)
    log.info("scrub %s: %s", topic.name, summary)
    return summary


def run_validate(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``validate`` (per topic): the topic's GX suite over all its records; summary to staging.

    Validates the scrubbed answered rows together with the records quarantined so far (see
    :mod:`pipeline_hub.quality`), builds Data Docs into ``<sanitized root>/reports/quality/<topic>/ds=<ds>/``
    and writes the summary to ``<staging>/scrubbed/<topic>/_quality.json`` for publish. Returns
    ``{"topic", "success", "failed": [failed blocking expectations], "data_docs"}`` (no record values).
    """
    plan = RunPlan.load(plan_uri)
    tp, topic = _topic(plan, topic_name)
    out = storage.join(plan.staging, "scrubbed", topic.name)
    rows = storage.read_jsonl(out / "rows.jsonl")
    quarantine = storage.read_jsonl(out / "quarantine.jsonl")
    source_counts = storage.read_json(storage.join(plan.staging, "chunks", tp.source, "_counts.json"))
    records_in = source_counts["staged"] + sum(source_counts["rejected"].values())
    result = validate_topic(
        topic,
        rows,
        quarantine,
        records_in=records_in,
        run_name=plan.run_id,
        docs_target=partition(plan.settings["sanitized_root"], "reports/quality", topic.name, plan.ds),
    )
    storage.write_json(out / "_quality.json", result, atomic=False)
    failed = failed_expectations(result)
    log.info(
        "validate %s: success=%s over %d records; failed: %s; data docs: %s",
        topic.name,
        result["success"],
        result["evaluated"],
        failed or "none",
        result["data_docs"],
    )
    return {"topic": topic.name, "success": result["success"], "failed": failed, "data_docs": result["data_docs"]}


def _collect_stats(answers_dir) -> dict[str, Any]:
    """Per-topic usage from the chunks' ``_stats-*.json``: totals, cost, cache hit rate, p50/p95 latency."""
    import numpy as np

    keys = ("records", "llm_calls", "cache_hits", "prompt_tokens", "completion_tokens")
    totals: Counter = Counter({k: 0 for k in keys})
    cost, latencies, exceeded, routes = 0.0, [], False, Counter()
    if answers_dir.exists():
        for p in answers_dir.iterdir():
            if p.name.startswith("_stats-"):
                s = storage.read_json(answers_dir / p.name)
                totals.update({k: s[k] for k in keys})
                cost += s["cost_usd"]
                latencies += s["record_latencies_s"]
                exceeded = exceeded or bool(s["quarantined"].get("budget_exceeded"))
                routes.update(s.get("routes") or {})
    lookups = totals["cache_hits"] + totals["llm_calls"]
    p50, p95 = np.percentile(latencies, [50, 95]).round(4).tolist() if latencies else (None, None)
    return {
        **dict(totals),
        "cost_usd": round(cost, 6),
        "cache_hit_rate": round(totals["cache_hits"] / lookups, 4) if lookups else None,
        "latency_p50_s": p50,
        "latency_p95_s": p95,
        "budget_exceeded": exceeded,
        "records_by_route": dict(routes),
    }


def run_publish(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``publish`` (per topic): Parquet + quarantine + manifest (last) + index entry.

    The partition's index entry is removed first and written last, and only when no record is
    quarantined for a reason the next run can cure (``provider_error``, ``budget_exceeded``;
    :mod:`pipeline_hub.pubindex`); the manifest's ``reuse`` names the earlier publications of the
    same batch and the one that first paid for its answers.

    Returns the publish summary (``topic``, ``ds``, ``status``, ``batch_hash``, ``run_id``,
    ``prompt_version``, ``model``, counts, ``usage``, ``answers_first_paid_in`` (the ``ds`` whose
    run first paid for these answers, or None), ``manifest`` URI, ``dataset`` = URI of the topic's
    sanitized partition root). Raises :class:`QualityGateFailed` after quarantining the topic
    when a blocking expectation of its GX suite failed, and :class:`ConservationError` (publishing
    nothing) when records in != published + quarantined.
    """
    return publish_topic(plan_uri, topic_name)[0]


def publish_topic(plan_uri: str, topic_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`run_publish`, returning ``(summary, manifest)`` (the manifest for lineage, not XCom)."""
    plan = RunPlan.load(plan_uri)
    tp, topic = _topic(plan, topic_name)
    stage = storage.join(plan.staging, "scrubbed", topic.name)
    rows = storage.read_jsonl(stage / "rows.jsonl")
    quarantine = storage.read_jsonl(stage / "quarantine.jsonl")
    quality = storage.read_json(stage / "_quality.json")
    scrub_summary = storage.read_json(stage / "_summary.json")
    source_counts = storage.read_json(storage.join(plan.staging, "chunks", tp.source, "_counts.json"))
    lineage = {"batch_hash": tp.batch_hash, **topic.lineage(), "model": tp.model or plan.model, "run_id": plan.run_id}
    # GDPR erasure is permanent: rows of a subject erased earlier stay out, even from a re-processed batch.
    rows, quarantine, suppressed = suppress_erased(rows, quarantine, erased_pseudonyms(plan.settings["sanitized_root"]))
    if suppressed:
        log.info("topic %s: %d rows of erased data subjects quarantined as %s", topic.name, suppressed, ERASED_REASON)
    if not quality["success"]:
        # Made after the scrub stage (published as is): the expectation names are ours, no outside text.
        detail = reasons.plain(
            reasons.detail("topic failed quality gate: {failed}", failed=", ".join(failed_expectations(quality)))
        )
        quarantine += [
            {
                "record_id": r["record_id"],
                "reason": reasons.QUALITY_FAILED,
                "detail": detail,
                "source_uri": None,
                "position": None,
            }
            for r in rows
        ]
        rows = []
    records_in = source_counts["staged"] + sum(source_counts["rejected"].values())
    by_reason = Counter(q["reason"] for q in quarantine)
    counts = {
        "rows_read": source_counts["rows_read"],
        "duplicates_dropped": source_counts["duplicates_dropped"],
        "in": records_in,
        "published": len(rows),
        "quarantined": dict(by_reason),
        "quarantined_total": sum(by_reason.values()),
    }
    if counts["in"] != counts["published"] + counts["quarantined_total"]:
        raise ConservationError(
            f"topic {topic.name}: in={counts['in']} != published={counts['published']} + "
            f"quarantined={counts['quarantined_total']}"
        )
    source = plan.sources[tp.source]
    objects, counts["objects"] = object_listing(plan, tp.source)  # every raw object: read/skipped/rejected
    usage = _collect_stats(storage.join(plan.staging, "answers", topic.name))
    if usage["budget_exceeded"]:
        log.warning(
            "topic %s: budget cap of %s USD reached; %d records quarantined as budget_exceeded",
            topic.name,
            plan.budget_usd,
            by_reason.get("budget_exceeded", 0),
        )
    status = "published" if quality["success"] else "quarantined_quality"
    data_dir = partition(plan.settings["sanitized_root"], "sanitized_data", topic.name, plan.ds)
    q_dir = partition(plan.settings["sanitized_root"], "quarantine", topic.name, plan.ds)
    manifest_path = (data_dir if quality["success"] else q_dir) / "_manifest.json"
    finished_at = now()
    identity = plan.identity(tp)
    this = {"ds": plan.ds, "run_id": plan.run_id, "manifest": storage.public_uri(manifest_path)}
    reuse = pubindex.reuse_lineage(
        plan.settings["sanitized_root"], topic.name, identity, usage, {**this, "published_at": finished_at}
    )
    manifest = {
        "topic": topic.name,
        "ds": plan.ds,
        "status": status,
        "batch_hash": tp.batch_hash,
        "inputs": [{k: o[k] for k in ("public_uri", "sha256", "size")} for o in source["objects"]],
        "objects": objects,
        "prompt": {
            "name": topic.name,
            "version": topic.version,
            "template_sha256": topic.prompt.template_sha256,
        },
        "provider": plan.provider,
        "model": tp.model or plan.model,
        "routes": tp.routes,
        "generation_params": topic.prompt.model_params,
        "run_id": plan.run_id,
        "code_version": code_version(),
        "row_limit": plan.row_limit,
        "counts": counts,
        "quality": quality,
        "pii_found": scrub_summary["pii_found"],
        "usage": usage,
        "budget": {"cap_usd": plan.budget_usd, "spent_usd": usage["cost_usd"], "exceeded": usage["budget_exceeded"]},
        "reuse": reuse,
        "started_at": plan.started_at,
        "finished_at": finished_at,
        "outputs": {
            "data": storage.public_uri(data_dir / "part-00000.parquet") if rows else None,
            "quarantine": storage.public_uri(q_dir / "part-00000.parquet") if quarantine else None,
            "data_docs": quality.get("data_docs"),
        },
    }
    summary = {
        "topic": topic.name,
        "ds": plan.ds,
        "status": status,
        "batch_hash": tp.batch_hash,
        "run_id": plan.run_id,
        "prompt_version": topic.version,
        "model": manifest["model"],
        **{k: counts[k] for k in ("in", "published")},
        "quarantined": counts["quarantined"],
        "quarantined_total": counts["quarantined_total"],
        "usage": manifest["usage"],
        "answers_first_paid_in": (reuse["answers_first_paid_in"] or {}).get("ds"),
        "manifest": storage.public_uri(manifest_path),
        "dataset": storage.public_uri(data_dir.parent),
    }
    meta = lineage_metadata(manifest)
    # Not "published" while the partition is being written: a crash from here on leaves no stale skip.
    pubindex.invalidate(plan.settings["sanitized_root"], topic.name, plan.ds)
    if quarantine:
        q_rows = [
            {
                **q,
                "batch_hash": tp.batch_hash,
                "prompt_name": topic.name,
                "prompt_version": topic.version,
                "run_id": plan.run_id,
            }
            for q in quarantine
        ]
        write_table(q_dir / "part-00000.parquet", q_rows, QUARANTINE_SCHEMA, meta)
    elif (q_dir / "part-00000.parquet").exists():
        (q_dir / "part-00000.parquet").unlink()  # nothing quarantined now: drop an earlier run's records
    if not quality["success"]:
        storage.write_json(manifest_path, manifest)
        raise QualityGateFailed(
            f"topic {topic.name}: topic failed quality gate: {', '.join(failed_expectations(quality))}; "
            f"{counts['quarantined_total']} records quarantined at {storage.public_uri(q_dir)}"
            + (f"; Data Docs: {quality['data_docs']}" if quality.get("data_docs") else ""),
            summary=summary,
            manifest=manifest,
        )
    if rows:
        schema = published_schema(topic.prompt.output_schema, topic.keep_fields)
        published = [{**{c: lineage[c] for c in LINEAGE_COLUMNS if c != "record_id"}, **r} for r in rows]
        for r in published:  # the scrub stage made them text already; rows staged by older code may not be
            for f in topic.keep_fields:
                r[f] = json_text(r.get(f))
        write_table(data_dir / "part-00000.parquet", published, schema, meta)
    elif (data_dir / "part-00000.parquet").exists():
        (data_dir / "part-00000.parquet").unlink()  # this batch publishes no rows: drop the older batch's
    write_metrics(plan.settings["sanitized_root"], manifest)
    storage.write_json(manifest_path, manifest)
    if (q_dir / "_manifest.json").exists():
        (q_dir / "_manifest.json").unlink()  # an earlier attempt's failed-gate manifest no longer holds
    pubindex.record(
        plan.settings["sanitized_root"],
        topic.name,
        identity,
        manifest_uri=this["manifest"],
        run_id=plan.run_id,
        published_at=finished_at,
        reuse=reuse,
        quarantined=counts["quarantined"],
    )
    log.info("publish %s: %s", topic.name, summary)
    return summary, manifest
