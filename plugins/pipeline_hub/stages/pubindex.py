"""The publication index: what each partition holds, so a rerun never pays the LLM twice nor skips wrongly.

"Never process the same bytes twice" means never *pay* for the same answers twice, not never
*publish* them: the response cache (:mod:`pipeline_hub.providers.cache`) makes a republication
free, and the index decides only whether a topic's partition already holds exactly what this run
would publish. Layout under the sanitized root::

    _index/<topic>/ds=<ds>.json                        what partition ds=<ds> holds (one per partition)
    _index/<topic>/batches/<batch_hash>/ds=<ds>.json   where a batch was published (lineage of answers)
    _index/<topic>/<batch_hash>.json                   old layout (one per batch), still read

A partition entry is ``{"identity", "manifest", "run_id", "published_at"}``; the identity
(:meth:`pipeline_hub.stages.plan.RunPlan.identity`) is the partition ``ds``, the batch hash, the input
objects by name and SHA-256, the prompt version and template SHA-256, the model(s) and the row
limit. A topic is skipped only when the partition's entry holds exactly this run's identity and the
partition's manifest is there. Hence:

- the same bytes under a new ``ds`` are published into that partition, answered from the response
  cache with 0 LLM calls; the manifest's ``reuse`` names the partition(s) the batch was published in
  and the one whose run first paid for the answers;
- a partition reverted to an earlier batch's bytes is republished (its entry holds the later batch);
- a renamed object (same bytes, new name) is republished, so the manifest's inputs name the
  current objects and no stale lineage stays.

The partition entry is removed before a publish writes anything into the partition and written
again only after the manifest, and only when no record is quarantined with a reason a later run can
cure (:data:`RETRY_REASONS`: ``provider_error``, ``budget_exceeded``): such a partial publication is
published, but the next run of the same batch runs the topic again, the cached answers cost nothing
and only the failed records are called. Batch entries are one object per (batch, partition) so
runs of different ``ds`` never overwrite each other's entry.

Old layout: an entry ``_index/<topic>/<batch_hash>.json`` written before this layout counts when
its identity matches (batch, template, model(s), row limit) *and* the partition's manifest, written
by that older code (it has no ``reuse`` field), holds this run's identity. Nothing is migrated:
the next publication into the partition writes the new entry.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline_hub import reasons, storage

log = logging.getLogger(__name__)

# Quarantine reasons a later run of the same batch can cure: their records are retried.
RETRY_REASONS = (reasons.PROVIDER_ERROR, reasons.BUDGET_EXCEEDED)
# Identity keys that name the partition and its objects, not the answers: the rest is the answer key.
PLACEMENT_KEYS = ("ds", "inputs")


def partition_entry(sanitized_root: str, topic: str, ds: str):
    """``_index/<topic>/ds=<ds>.json``: what the partition currently holds."""
    return storage.join(sanitized_root, "_index", topic, f"ds={ds}.json")


def batch_entry(sanitized_root: str, topic: str, batch_hash: str, ds: str):
    """``_index/<topic>/batches/<batch_hash>/ds=<ds>.json``: one publication of a batch."""
    return storage.join(sanitized_root, "_index", topic, "batches", batch_hash, f"ds={ds}.json")


def legacy_entry(sanitized_root: str, topic: str, batch_hash: str):
    """``_index/<topic>/<batch_hash>.json``: the layout before the per-partition index."""
    return storage.join(sanitized_root, "_index", topic, f"{batch_hash}.json")


def published_manifest_path(sanitized_root: str, topic: str, ds: str):
    """``sanitized_data/<topic>/ds=<ds>/_manifest.json``, the commit point of a publication."""
    return storage.join(sanitized_root, "sanitized_data", topic, f"ds={ds}", "_manifest.json")


def input_names(objects: list[dict[str, Any]]) -> list[list[str]]:
    """``[[public_uri, sha256], …]`` sorted: the input objects by name and bytes (identity and manifests)."""
    return sorted([o["public_uri"], o["sha256"]] for o in objects)


def answer_key(identity: dict[str, Any]) -> dict[str, Any]:
    """The part of an identity that decides the answers (batch, prompt, model(s), row limit)."""
    return {k: v for k, v in identity.items() if k not in PLACEMENT_KEYS}


def manifest_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The identity (as :meth:`pipeline_hub.stages.plan.RunPlan.identity` builds it) a manifest was published with."""
    identity = {
        "ds": manifest["ds"],
        "batch_hash": manifest["batch_hash"],
        "inputs": input_names(manifest.get("inputs") or []),
        "prompt_version": manifest["prompt"]["version"],
        "template_sha256": manifest["prompt"]["template_sha256"],
        "model": manifest["model"],
        "row_limit": manifest.get("row_limit"),
    }
    routes = manifest.get("routes") or {}
    extra = {k: routes[k] for k in ("long_input", "threshold_tokens", "fallback") if routes.get(k)}
    if extra:
        identity["routes"] = extra
    return identity


def _read(path) -> dict[str, Any] | None:
    return storage.read_json(path) if path.exists() else None


def holds(sanitized_root: str, topic: str, identity: dict[str, Any], legacy_identity: dict[str, Any]) -> str | None:
    """Public URI of the manifest when partition ``identity["ds"]`` of ``topic`` holds exactly ``identity``.

    None when it holds something else, nothing, or a partial publication (see the module docstring;
    ``legacy_identity`` is the identity as the old layout keyed it). Reads at most three small objects.
    """
    ds, bh = identity["ds"], identity["batch_hash"]
    manifest_path = published_manifest_path(sanitized_root, topic, ds)
    entry = _read(partition_entry(sanitized_root, topic, ds))
    if entry is not None:
        held = entry.get("identity") or {}
        if held == identity and manifest_path.exists():
            return entry.get("manifest")
        changed = sorted(k for k in {*held, *identity} if held.get(k) != identity.get(k)) or ["manifest missing"]
        log.info("topic %s: ds=%s holds another publication (%s differ); publishing again", topic, ds, changed)
        return None
    old = _read(legacy_entry(sanitized_root, topic, bh))
    if old is None or old.get("identity") != legacy_identity:
        return None
    manifest = _read(manifest_path)
    if manifest is None or "reuse" in manifest or manifest.get("status") != "published":
        return None  # the partition was republished by newer code (or never held this batch)
    return storage.public_uri(manifest_path) if manifest_identity(manifest) == identity else None


def invalidate(sanitized_root: str, topic: str, ds: str) -> None:
    """Remove the partition entry before a publish writes into the partition (a crash leaves no stale skip)."""
    path = partition_entry(sanitized_root, topic, ds)
    if path.exists():
        path.unlink()


def reuse_lineage(
    sanitized_root: str, topic: str, identity: dict[str, Any], usage: dict[str, Any], this: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's ``reuse`` field: where this batch was published before and who paid for its answers.

    ``this`` is this publication: ``{"ds", "run_id", "manifest", "published_at"}``. Returns
    ``{"batch_published_in": [{"ds", "run_id", "manifest"}…]`` (earlier publications of the same
    batch with the same prompt and model(s), oldest first, this partition's earlier one included),
    ``"answers_first_paid_in": {"ds", "run_id", "manifest"} | None`` (the earliest of those whose run
    made LLM calls; this publication itself when it is the first; None when every answer came from
    the response cache but no indexed publication paid for them, e.g. after the index was removed),
    ``"llm_calls"``, ``"cache_hits"``}.
    """
    key = answer_key(identity)
    folder = storage.join(sanitized_root, "_index", topic, "batches", identity["batch_hash"])
    earlier = [storage.read_json(p) for p in storage.list_files(folder)]
    earlier = sorted((e for e in earlier if e.get("answer_key") == key), key=lambda e: e.get("published_at") or "")
    paid = [e["first_paid_in"] for e in earlier if e.get("first_paid_in")]
    first = min(paid, key=lambda p: p.get("published_at") or "") if paid else None
    if first is None and usage.get("llm_calls"):
        first = dict(this)
    return {
        "batch_published_in": [{k: e.get(k) for k in ("ds", "run_id", "manifest")} for e in earlier],
        "answers_first_paid_in": first,
        "llm_calls": usage.get("llm_calls", 0),
        "cache_hits": usage.get("cache_hits", 0),
    }


def retry_counts(quarantined: dict[str, int]) -> dict[str, int]:
    """The quarantined counts whose reason a later run can cure (:data:`RETRY_REASONS`)."""
    return {r: n for r, n in quarantined.items() if r in RETRY_REASONS and n}


def record(
    sanitized_root: str,
    topic: str,
    identity: dict[str, Any],
    *,
    manifest_uri: str,
    run_id: str,
    published_at: str,
    reuse: dict[str, Any],
    quarantined: dict[str, int],
) -> bool:
    """Write the index after a publication: its batch entry always, the partition entry when complete.

    Complete = no record quarantined with a :data:`RETRY_REASONS` reason. Returns whether the
    partition entry was written (False: the next run of this batch runs the topic again).
    """
    ds, bh = identity["ds"], identity["batch_hash"]
    this = {"ds": ds, "run_id": run_id, "manifest": manifest_uri, "published_at": published_at}
    retry = retry_counts(quarantined)
    storage.write_json(
        batch_entry(sanitized_root, topic, bh, ds),
        {
            **this,
            "answer_key": answer_key(identity),
            "llm_calls": reuse.get("llm_calls", 0),
            "cache_hits": reuse.get("cache_hits", 0),
            "first_paid_in": reuse.get("answers_first_paid_in"),
            "complete": not retry,
        },
    )
    if retry:
        log.warning(
            "topic %s ds=%s: %s records quarantined for a reason the next run can cure; "
            "the partition is not marked published, so the next run of this batch retries them",
            topic,
            ds,
            retry,
        )
        return False
    storage.write_json(
        partition_entry(sanitized_root, topic, ds),
        {"identity": identity, "manifest": manifest_uri, "run_id": run_id, "published_at": published_at},
    )
    return True
