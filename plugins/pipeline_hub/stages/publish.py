"""The publish stage: sanitized Parquet, quarantine, manifest and publication index, written atomically.

Layout under the sanitized root (Hive-style partitions, readable by DuckDB and Athena)::

    sanitized_data/<topic>/ds=<ds>/part-00000.parquet   published rows (zstd), lineage in every row
    sanitized_data/<topic>/ds=<ds>/_manifest.json       written last: the commit point of a publication
    quarantine/<topic>/ds=<ds>/part-00000.parquet        quarantined records with reason and detail
    quarantine/<topic>/ds=<ds>/_manifest.json            manifest of a topic that failed its quality gate
    _index/<topic>/ds=<ds>.json                         publication index: what the partition holds
    _index/<topic>/batches/<batch_hash>/ds=<ds>.json    where a batch was published (pipeline_hub.stages.pubindex)

One Parquet object per topic and partition: S3 makes a PUT/copy visible only when complete and a
local rename is atomic, so readers never see a half-written batch. Files starting with ``_`` are
ignored by Athena/Hive and by our DuckDB views.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.exceptions import ConservationError, QualityGateFailed
from pipeline_hub.governance.register import ERASED_REASON, erased_pseudonyms, suppress_erased
from pipeline_hub.quality.checks import LINEAGE_COLUMNS, failed_expectations
from pipeline_hub.stages import pubindex
from pipeline_hub.stages.cascade import ORACLE_ROUTE, cascade_summary
from pipeline_hub.stages.cascade_usage import run_routes
from pipeline_hub.stages.casting import json_text
from pipeline_hub.stages.chunk import object_listing
from pipeline_hub.stages.parquet import (
    METRICS_SCHEMA,
    QUARANTINE_SCHEMA,
    USAGE_FIELDS,
    TableWriter,
    code_version,
    lineage_metadata,
    partition,
    published_schema,
    write_table,
)
from pipeline_hub.stages.plan import RunPlan, plan_topic

log = logging.getLogger(__name__)


def now() -> str:
    """The current UTC time as ISO 8601 text (``2026-12-03T13:24:17.123456+00:00``)."""
    return datetime.now(UTC).isoformat()


def write_metrics(sanitized_root: str, manifest: dict[str, Any]) -> None:
    """One row of LLM usage for a publication at ``metrics/llm_usage/ds=<ds>/<topic>.parquet``.

    Columns: :data:`METRICS_SCHEMA` (tokens, cost in USD, calls, cache hit rate, p50/p95 latency in s, and
    the cascade's records per route, calls saved and cost saved in USD,
    :func:`~pipeline_hub.stages.cascade_usage.run_routes`).
    """
    usage, counts = manifest["usage"], manifest["counts"]
    routes = run_routes(usage) or {}
    row = {
        "topic": manifest["topic"],
        "run_id": manifest["run_id"],
        "batch_hash": manifest["batch_hash"],
        "prompt_version": manifest["prompt"]["version"],
        "provider": manifest["provider"],
        "model": manifest["model"],
        "records_in": counts["in"],
        "published": counts["published"],
        "quarantined": counts["quarantined_total"],
        "budget_cap_usd": manifest["budget"]["cap_usd"],
        "finished_at": manifest["finished_at"],
        **{k: usage.get(k) for k in USAGE_FIELDS},
        "proxy_records": routes.get("proxy"),
        "oracle_records": routes.get("oracle"),
        "calls_saved": routes.get("calls_saved"),
        "cost_saved_usd": routes.get("cost_saved_usd"),
    }
    path = storage.join(sanitized_root, "metrics", "llm_usage", f"ds={manifest['ds']}", f"{manifest['topic']}.parquet")
    write_table(path, [row], METRICS_SCHEMA, lineage_metadata(manifest))


def _collect_stats(answers_dir) -> dict[str, Any]:
    """Per-topic usage from the chunks' ``_stats-*.json``: totals, cost, cache hit rate, p50/p95 latency, and
    a cascade's model-proxy calls, cost and outcomes (``proxy_calls``, ``proxy_cost_usd``, ``proxy_outcomes``;
    0 and empty for chunks without them)."""
    import numpy as np

    keys = ("records", "llm_calls", "cache_hits", "prompt_tokens", "completion_tokens")
    totals: Counter = Counter({k: 0 for k in keys})
    cost, latencies, exceeded, routes = 0.0, [], False, Counter()
    proxy_calls, proxy_cost, proxy_outcomes = 0, 0.0, Counter()
    if answers_dir.exists():
        for p in answers_dir.iterdir():
            if p.name.startswith("_stats-"):
                s = storage.read_json(answers_dir / p.name)
                totals.update({k: s[k] for k in keys})
                cost += s["cost_usd"]
                latencies += s["record_latencies_s"]
                exceeded = exceeded or bool(s["quarantined"].get("budget_exceeded"))
                routes.update(s.get("routes") or {})
                proxy_calls += int(s.get("proxy_calls") or 0)
                proxy_cost += float(s.get("proxy_cost_usd") or 0.0)
                proxy_outcomes.update(s.get("proxy_outcomes") or {})
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
        "proxy_calls": proxy_calls,
        "proxy_cost_usd": round(proxy_cost, 6),
        "proxy_outcomes": dict(proxy_outcomes),
    }


def run_publish(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``publish`` (per topic): Parquet + quarantine + manifest (last) + index entry.

    The partition's index entry is removed first and written last, and only when no record is
    quarantined for a reason the next run can cure (``provider_error``, ``budget_exceeded``;
    :mod:`pipeline_hub.stages.pubindex`); the manifest's ``reuse`` names the earlier publications of the
    same batch and the one that first paid for its answers.

    Returns the publish summary (``topic``, ``ds``, ``status``, ``batch_hash``, ``run_id``,
    ``prompt_version``, ``prompt_label``, ``model``, counts, ``usage``, ``cascade`` (records per route ``proxy`` /
    ``oracle``, ``calls_saved``, ``cost_saved_usd``), ``answers_first_paid_in`` (the ``ds`` whose
    run first paid for these answers, or None), ``manifest`` URI, ``dataset`` = URI of the topic's
    sanitized partition root). Raises :class:`QualityGateFailed` after quarantining the topic
    when a blocking expectation of its GX suite failed, and :class:`ConservationError` (publishing
    nothing) when records in != published + quarantined.
    """
    return publish_topic(plan_uri, topic_name)[0]


READ_BATCH = 10_000  # staged rows parsed at a time (memory: O(batch + one Parquet row group))


def publish_topic(plan_uri: str, topic_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`run_publish`, returning ``(summary, manifest)`` (the manifest for lineage, not XCom).

    Streams: the scrubbed rows and quarantine rows are read :data:`READ_BATCH` at a time and written as
    Parquet row groups (:class:`~pipeline_hub.stages.parquet.TableWriter`) into temporary objects beside
    the partition, which are renamed into place only once the counts balance (else removed).
    """
    plan = RunPlan.load(plan_uri)
    tp, topic = plan_topic(plan, topic_name)
    stage = storage.join(plan.staging, "scrubbed", topic.name)
    quality = storage.read_json(stage / "_quality.json")
    scrub_summary = storage.read_json(stage / "_summary.json")
    source_counts = storage.read_json(storage.join(plan.staging, "chunks", tp.source, "_counts.json"))
    lineage = {
        "batch_hash": tp.batch_hash,
        **topic.lineage(),
        "model": tp.model or plan.model,
        "route": ORACLE_ROUTE,  # a row's own route (proxy) wins
        "run_id": plan.run_id,
    }
    status = "published" if quality["success"] else "quarantined_quality"
    data_dir = partition(plan.settings["sanitized_root"], "sanitized_data", topic.name, plan.ds)
    q_dir = partition(plan.settings["sanitized_root"], "quarantine", topic.name, plan.ds)
    manifest_path = (data_dir if quality["success"] else q_dir) / "_manifest.json"
    source = plan.sources[tp.source]
    # The manifest's identity (all that lineage_metadata reads): known before a record is read.
    head = {
        "topic": topic.name,
        "ds": plan.ds,
        "status": status,
        "batch_hash": tp.batch_hash,
        "inputs": [{k: o[k] for k in ("public_uri", "sha256", "size")} for o in source["objects"]],
        "prompt": {
            "name": topic.name,
            "version": topic.version,
            "template_sha256": topic.prompt.template_sha256,
            "label": tp.prompt_label,  # the label the run resolved the version through (not in the identity)
        },
        "provider": plan.provider,
        "model": tp.model or plan.model,
        "run_id": plan.run_id,
        "code_version": code_version(),
        "quality": quality,
    }
    meta = lineage_metadata(head)
    data_obj = storage.PendingObject(data_dir / "part-00000.parquet")
    q_obj = storage.PendingObject(q_dir / "part-00000.parquet")
    try:
        n_published, n_quarantined, by_reason, suppressed = _write_tables(
            plan, topic, stage, lineage, quality, meta, data_obj, q_obj
        )
        if suppressed:
            log.info(
                "topic %s: %d rows of erased data subjects quarantined as %s", topic.name, suppressed, ERASED_REASON
            )
        records_in = source_counts["staged"] + sum(source_counts["rejected"].values())
        counts = {
            "rows_read": source_counts["rows_read"],
            "duplicates_dropped": source_counts["duplicates_dropped"],
            "in": records_in,
            "published": n_published,
            "quarantined": dict(by_reason),
            "quarantined_total": n_quarantined,
        }
        if counts["in"] != counts["published"] + counts["quarantined_total"]:
            raise ConservationError(
                f"topic {topic.name}: in={counts['in']} != published={counts['published']} + "
                f"quarantined={counts['quarantined_total']}"
            )
        objects, counts["objects"] = object_listing(plan, tp.source)  # every raw object: read/skipped/rejected
        usage = _collect_stats(storage.join(plan.staging, "answers", topic.name))
        proxy = {k: usage.pop(k) for k in ("proxy_calls", "proxy_cost_usd", "proxy_outcomes")}  # cascade only
        if topic.prompt.cascade is not None:
            usage["cascade"] = cascade_summary(
                usage["records_by_route"],
                usage["cost_usd"],
                proxy_calls=proxy["proxy_calls"],
                proxy_cost_usd=proxy["proxy_cost_usd"],
            ) | {"proxy_outcomes": proxy["proxy_outcomes"]}
        if usage["budget_exceeded"]:
            log.warning(
                "topic %s: budget cap of %s USD reached; %d records quarantined as budget_exceeded",
                topic.name,
                plan.budget_usd,
                by_reason.get("budget_exceeded", 0),
            )
        finished_at = now()
        identity = plan.identity(tp)
        this = {"ds": plan.ds, "run_id": plan.run_id, "manifest": storage.public_uri(manifest_path)}
        reuse = pubindex.reuse_lineage(
            plan.settings["sanitized_root"], topic.name, identity, usage, {**this, "published_at": finished_at}
        )
        manifest = {
            **{k: head[k] for k in ("topic", "ds", "status", "batch_hash", "inputs")},
            "objects": objects,
            "prompt": head["prompt"],
            "provider": head["provider"],
            "model": head["model"],
            "routes": tp.routes,
            "generation_params": topic.prompt.model_params,
            "run_id": plan.run_id,
            "code_version": head["code_version"],
            "row_limit": plan.row_limit,
            "counts": counts,
            "quality": quality,
            "pii_found": scrub_summary["pii_found"],
            "usage": usage,
            "budget": {
                "cap_usd": plan.budget_usd,
                "spent_usd": usage["cost_usd"],
                "exceeded": usage["budget_exceeded"],
            },
            "reuse": reuse,
            "started_at": plan.started_at,
            "finished_at": finished_at,
            "outputs": {
                "data": storage.public_uri(data_obj.path) if n_published else None,
                "quarantine": storage.public_uri(q_obj.path) if n_quarantined else None,
                "data_docs": quality.get("data_docs"),
            },
        }
        summary = {
            "topic": topic.name,
            "ds": plan.ds,
            "status": head["status"],
            "batch_hash": tp.batch_hash,
            "run_id": plan.run_id,
            "prompt_version": topic.version,
            "prompt_label": tp.prompt_label,
            "model": manifest["model"],
            **{k: counts[k] for k in ("in", "published")},
            "quarantined": counts["quarantined"],
            "quarantined_total": counts["quarantined_total"],
            "usage": manifest["usage"],
            "cascade": run_routes(usage),  # records per route (proxy/oracle), calls and cost (USD) saved
            "answers_first_paid_in": (reuse["answers_first_paid_in"] or {}).get("ds"),
            "manifest": storage.public_uri(manifest_path),
            "dataset": storage.public_uri(data_dir.parent),
        }
        # Not "published" while the partition is being written: a crash from here on leaves no stale skip.
        pubindex.invalidate(plan.settings["sanitized_root"], topic.name, plan.ds)
        if n_quarantined:
            q_obj.commit()
        elif q_obj.path.exists():
            q_obj.path.unlink()  # nothing quarantined now: drop an earlier run's records
        if not quality["success"]:
            storage.write_json(manifest_path, manifest)
            raise QualityGateFailed(
                f"topic {topic.name}: topic failed quality gate: {', '.join(failed_expectations(quality))}; "
                f"{counts['quarantined_total']} records quarantined at {storage.public_uri(q_dir)}"
                + (f"; Data Docs: {quality['data_docs']}" if quality.get("data_docs") else ""),
                summary=summary,
                manifest=manifest,
            )
        if n_published:
            data_obj.commit()
        elif data_obj.path.exists():
            data_obj.path.unlink()  # this batch publishes no rows: drop the older batch's
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
    finally:
        data_obj.discard()  # nothing once committed; a half-written or unbalanced table otherwise
        q_obj.discard()


def _write_tables(plan, topic, stage, lineage, quality, meta, data_obj, q_obj) -> tuple[int, int, Counter, int]:
    """The pass over the staged records: ``(published, quarantined, quarantined by reason, erased)``.

    Quarantine rows first (``quarantine.jsonl``), then the scrubbed rows: GDPR erasure is permanent, so rows
    of a subject erased earlier move to the quarantine as ``erased_subject``, even from a re-processed
    batch; when the quality gate failed every row moves there as ``quality_failed``.
    """
    erased = erased_pseudonyms(plan.settings["sanitized_root"])
    q_extra = {"batch_hash": lineage["batch_hash"], "prompt_name": topic.name, "prompt_version": topic.version}
    q_extra["run_id"] = plan.run_id
    # Made after the scrub stage (published as is): the expectation names are ours, no outside text.
    failed_detail = reasons.plain(
        reasons.detail("topic failed quality gate: {failed}", failed=", ".join(failed_expectations(quality)))
    )
    schema = published_schema(topic.prompt.output_schema, topic.keep_fields)
    by_reason, suppressed = Counter(), 0
    with TableWriter(q_obj, QUARANTINE_SCHEMA, meta) as qw, TableWriter(data_obj, schema, meta) as dw:
        for batch in storage.batched_jsonl(stage / "quarantine.jsonl", READ_BATCH):
            _, batch, _ = suppress_erased([], batch, erased)
            by_reason.update(q["reason"] for q in batch)
            qw.write([{**q, **q_extra} for q in batch])
        for batch in storage.batched_jsonl(stage / "rows.jsonl", READ_BATCH):
            kept, moved, n = suppress_erased(batch, [], erased)
            suppressed += n
            if not quality["success"]:
                moved += [
                    {"record_id": r["record_id"], "reason": reasons.QUALITY_FAILED, "detail": failed_detail}
                    for r in kept
                ]
                kept = []
            by_reason.update(q["reason"] for q in moved)
            qw.write([{"source_uri": None, "position": None, **q, **q_extra} for q in moved])
            published = [{**{c: lineage[c] for c in LINEAGE_COLUMNS if c != "record_id"}, **r} for r in kept]
            for r in published:  # the scrub stage made them text already; rows staged by older code may not be
                for f in topic.keep_fields:
                    r[f] = json_text(r.get(f))
            dw.write(published)
    return dw.count, qw.count, by_reason, suppressed
