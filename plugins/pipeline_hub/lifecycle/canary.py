"""The canary of the ``prompt_evaluation`` DAG: the ``dev`` version answers, in shadow, a seeded random sample
of the topic's latest published batch, and its scrubbed answers are compared with the published ones.

:func:`run_canary` returns the agreement rate (and, for extraction, the item F1 against the published
items) and the list-price cost per record of dev and of the published run. Shadow answers are never
written anywhere but the response cache (raw zone, like every answer): only aggregates leave the task.
"""

from __future__ import annotations

import io
import logging
import math
import random
from typing import Any

from pipeline_hub import storage
from pipeline_hub.config import Settings
from pipeline_hub.lifecycle import metrics
from pipeline_hub.lifecycle.scoring import topic_metadata
from pipeline_hub.prompts.registry import load_topic

log = logging.getLogger(__name__)


def latest_publication(settings: Settings, topic: str) -> dict[str, Any] | None:
    """The manifest of the topic's latest published partition (largest ``ds``), or None."""
    base = storage.join(settings.sanitized_root, "sanitized_data", topic)
    if not base.exists():
        return None
    parts = sorted((p.name for p in base.iterdir() if p.name.startswith("ds=")), reverse=True)
    for part in parts:
        path = base / part / "_manifest.json"
        if path.exists():
            manifest = storage.read_json(path)
            if manifest.get("status") == "published" and manifest.get("outputs", {}).get("data"):
                return manifest
    return None


def _published_rows(settings: Settings, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    path = storage.join(settings.sanitized_root, "sanitized_data", manifest["topic"], f"ds={manifest['ds']}")
    table = pq.read_table(io.BytesIO((path / "part-00000.parquet").read_bytes()))
    return {r["record_id"]: r for r in table.to_pylist()}


def _batch_records(settings: Settings, source: str, manifest: dict[str, Any], wanted: set[str]):
    """Staged-style records of the published batch whose id is in ``wanted``; None when the raw bytes changed."""
    from pipeline_hub.hashing import sha256_object
    from pipeline_hub.readers import RecordError, iter_records
    from pipeline_hub.stages.chunk import normalise

    records: dict[str, dict[str, Any]] = {}
    for obj in manifest["inputs"]:
        name = obj["public_uri"].rstrip("/").rsplit("/", 1)[-1]
        path = storage.join(settings.raw_root, source, manifest["ds"], name)
        if not path.exists() or sha256_object(path)[0] != obj["sha256"]:
            return None
        for item in iter_records(obj["public_uri"], path.read_bytes()):
            if not isinstance(item, tuple):  # RecordError / ObjectError: never published
                continue
            record = normalise(obj["public_uri"], *item)
            if isinstance(record, RecordError):  # invalid_id: never published
                continue
            if record["record_id"] in wanted and record["record_id"] not in records:
                records[record["record_id"]] = record
    return records


def _agreement(evaluation: dict[str, Any], shadow: list[dict | None], published: list[dict]) -> dict[str, Any]:
    """Per-record agreement of (scrubbed) shadow answers with published rows, by evaluation task."""
    task = evaluation.get("task")
    if task in ("classification", "matching"):
        field = evaluation["label_field" if task == "classification" else "match_field"]

        def same(a, b):
            return (None if a is None else str(a)) == (None if b is None else str(b))

        agree = [s is not None and same(s.get(field), p.get(field)) for s, p in zip(shadow, published, strict=True)]
        return {"agree": agree, "item_f1": None}
    fields = {f: ("fuzzy" if kind == "fuzzy" else "text") for f, kind in evaluation["fields"].items()}
    items = evaluation["items"]
    m = metrics.extraction_metrics(
        [p.get(items) or [] for p in published],
        [None if s is None else s.get(items) or [] for s in shadow],
        fields,
        fuzzy_threshold=float(evaluation.get("fuzzy_threshold", 80)),
    )
    agree = [s is not None and not c["fp"] and not c["fn"] for s, c in zip(shadow, m["per_example"], strict=True)]
    return {"agree": agree, "item_f1": m["f1"]}


def _price_per_record(model: str | None, prompt_tokens: int, completion_tokens: int, records: int) -> float | None:
    from pipeline_hub.providers.pricing import cost_usd

    if not model or not records:
        return None
    cost = cost_usd(model, prompt_tokens, completion_tokens)
    return None if cost is None else cost / records


def run_canary(
    topic_name: str,
    *,
    conn_id: str = "llm_default",
    sample_pct: float = 10.0,
    seed: int = 0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Shadow-run the ``dev`` version of ``topic_name`` on a sample of its latest published batch.

    The sample is ``ceil(sample_pct / 100 × published records)`` record ids drawn with
    ``random.Random(seed)`` from the sorted published ids (at least one). Returns a summary:
    ``status`` (``ok``, ``skipped_no_publication``, ``skipped_dev_is_published`` or
    ``skipped_raw_changed``), versions, ``ds``, batch hash, ``sampled``, ``agreement_rate`` (share of
    sampled records where dev's scrubbed answer equals the published one on the scored fields; for
    extraction also ``item_f1`` of dev's items against the published ones), ``dev_invalid``, and the
    list-price cost per record of dev and of the published run and their difference (USD and %).
    """
    from pipeline_hub.providers.cache import open_cache
    from pipeline_hub.providers.routing import get_hook, resolve_routes
    from pipeline_hub.stages.prompt import prompt_records
    from pipeline_hub.stages.scrub import scrub_topic

    settings = settings or Settings.from_env()
    dev = load_topic(topic_name, settings.prompts_dir, pointer="dev")
    base = {
        "topic": topic_name,
        "dev_version": dev.version,
        "sample_pct": float(sample_pct),
        "seed": int(seed),
        "conn_id": conn_id,
    }
    manifest = latest_publication(settings, topic_name)
    if manifest is None:
        prod = load_topic(topic_name, settings.prompts_dir).version
        return {**base, "status": "skipped_no_publication", "prod_version": prod}
    prod_version = manifest["prompt"]["version"]
    base.update({"prod_version": prod_version, "ds": manifest["ds"], "batch_hash": manifest["batch_hash"]})
    if prod_version == dev.version and manifest["prompt"]["template_sha256"] == dev.prompt.template_sha256:
        return {**base, "status": "skipped_dev_is_published"}
    published = _published_rows(settings, manifest)
    ids = sorted(published)
    k = min(len(ids), max(1, math.ceil(len(ids) * float(sample_pct) / 100)))
    sample = sorted(random.Random(int(seed)).sample(ids, k))
    records = _batch_records(settings, dev.source, manifest, set(sample))
    if records is None:
        return {**base, "status": "skipped_raw_changed", "published_records": len(ids)}
    sample = [rid for rid in sample if rid in records]
    primary = get_hook(conn_id)
    routes = resolve_routes(dev.provider, conn_id, primary.model)
    hook = get_hook(routes["primary"]["conn_id"], routes["primary"]["model"])
    results, stats = prompt_records(hook, dev, [records[r] for r in sample], cache=open_cache(), routes=routes)
    answers = [{"record_id": r["record_id"], **r["answer"]} if r["status"] == "ok" else None for r in results]
    valid = [a for a in answers if a is not None]
    scrubbed, _, _ = scrub_topic(dev, valid, [])  # exactly as the scrub stage treats production answers
    by_id = {row["record_id"]: row for row in scrubbed}
    shadow = [by_id.get(rid) for rid in sample]
    evaluation = topic_metadata(dev).get("evaluation") or {}
    agreement = _agreement(evaluation, shadow, [published[rid] for rid in sample])
    usages = [r["usage"] for r in results if r.get("usage")]
    dev_pt, dev_ct = sum(u["prompt_tokens"] for u in usages), sum(u["completion_tokens"] for u in usages)
    dev_cost = _price_per_record(routes["primary"]["model"], dev_pt, dev_ct, len(sample))
    pub_usage = manifest.get("usage") or {}
    prod_cost = _price_per_record(
        manifest.get("model"),
        pub_usage.get("prompt_tokens", 0),
        pub_usage.get("completion_tokens", 0),
        pub_usage.get("records") or 0,
    )
    diff = None if dev_cost is None or prod_cost is None else dev_cost - prod_cost
    summary = {
        **base,
        "status": "ok",
        "published_records": len(ids),
        "sampled": len(sample),
        "agreed": sum(agreement["agree"]),
        "agreement_rate": metrics.ratio(sum(agreement["agree"]), len(sample)),
        "item_f1": agreement["item_f1"],
        "dev_invalid": len(sample) - len(valid),
        "dev_model": routes["primary"]["model"],
        "prod_model": manifest.get("model"),
        "dev_tokens_per_record": (dev_pt + dev_ct) / len(sample) if sample else None,
        "prod_tokens_per_record": (
            (pub_usage.get("prompt_tokens", 0) + pub_usage.get("completion_tokens", 0)) / pub_usage["records"]
            if pub_usage.get("records")
            else None
        ),
        "dev_cost_per_record_usd": dev_cost,
        "prod_cost_per_record_usd": prod_cost,
        "cost_diff_per_record_usd": diff,
        "cost_diff_pct": None if diff is None or not prod_cost else round(100 * diff / prod_cost, 2),
        "llm_calls": stats.calls,
        "cache_hits": stats.cache_hits,
    }
    log.info(
        "canary %s: dev %s vs published %s on %s: %d/%d agree",
        topic_name,
        dev.version,
        prod_version,
        manifest["ds"],
        summary["agreed"],
        summary["sampled"],
    )
    return summary
