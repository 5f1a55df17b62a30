"""The discover and hash stages: find a run's raw objects, hash them, decide what is new.

A *batch* is the set of objects under ``<raw root>/<source>/<ds>/``; its hash is the SHA-256 of the
sorted object hashes (:func:`pipeline_hub.hashing.batch_hash`). A topic's publication is identified by
(``ds`` partition, batch hash, input object names, prompt version and template SHA-256, model(s),
row limit; :meth:`RunPlan.identity`): when the partition's publication index entry
(``<sanitized root>/_index/<topic>/ds=<ds>.json``, :mod:`pipeline_hub.pubindex`) holds exactly that
identity, the topic is skipped, so re-running an unchanged partition publishes nothing and calls no
LLM. The same bytes under another ``ds``, a partition reverted to an earlier batch and a renamed
object are published again, their answers from the response cache (0 LLM calls).

Every object below the prefix (at any depth) is listed with a status: ``read``; ``skipped`` with a
reason (``hidden``, ``marker``, ``unsupported_format``, ``subfolder``, ``empty_object``, see
:func:`classify`; skipped objects are not part of the batch hash, so a ``_SUCCESS`` marker does not
change it); or ``rejected`` (``unreadable_object`` here when the store cannot return the bytes, the
other reject codes at chunk time). The listing goes to the batch manifest
``<sanitized root>/_batches/<source>/<batch_hash>.json`` and to every publication manifest. A source
with nothing to read is the run outcome ``no_input`` (:data:`pipeline_hub.reasons.NO_INPUT`): its
topics get that status in the plan.

The run plan (a JSON document in staging) pins the prompt versions resolved at the start of the run
and the record limits (``settings.limits``) the chunk stage reads with.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.config import Settings
from pipeline_hub.hashing import batch_hash, sha256_object
from pipeline_hub.pubindex import holds
from pipeline_hub.readers import detect_format
from pipeline_hub.registry import list_topics, load_topic
from pipeline_hub.routing import resolve_routes

log = logging.getLogger(__name__)
DS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class TopicPlan:
    """One topic of a run: where it reads, the pinned prompt version, and whether it is new."""

    topic: str
    source: str
    prompt_version: str
    template_sha256: str
    batch_hash: str | None = None
    status: str = "pending"  # pending | skipped_published | no_input (reasons.NO_INPUT)
    published_manifest: str | None = None
    # Resolved routes (pipeline_hub.routing.resolve_routes): mode, primary/long_input/fallback {conn_id, model}.
    routes: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """The topic's primary model for this run."""
        return (self.routes.get("primary") or {}).get("model")

    @property
    def mode(self) -> str:
        """``stream`` (calls inside the prompt task) or ``batch`` (provider Batch API)."""
        return self.routes.get("mode") or "stream"


@dataclass
class RunPlan:
    """Everything later tasks need, written once to ``<staging>/<run>/plan.json``."""

    run_id: str
    ds: str
    row_limit: int | None
    llm_conn_id: str
    model: str
    provider: str
    settings: dict[str, Any]
    started_at: str
    budget_usd: float | None = None
    topics: list[TopicPlan] = field(default_factory=list)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    staging: str = ""

    @property
    def pending(self) -> list[TopicPlan]:
        return [t for t in self.topics if t.status == "pending"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        topics = [TopicPlan(**t) for t in data.pop("topics")]
        return cls(**data, topics=topics)

    @classmethod
    def load(cls, uri: str) -> RunPlan:
        return cls.from_dict(storage.read_json(storage.to_path(uri)))

    def topic(self, name: str) -> TopicPlan:
        return next(t for t in self.topics if t.topic == name)

    def identity(self, t: TopicPlan) -> dict[str, Any]:
        """What makes a partition's publication the same: where, which bytes, prompt, model(s), row limit.

        ``{"ds", "batch_hash", "inputs": [[public_uri, sha256], …] (sorted), "prompt_version",
        "template_sha256", "model", "row_limit"[, "routes"]}``. The input names count so a renamed
        object is republished with manifest inputs naming the current objects. The long-input and
        fallback routes count only when a topic has them, so adding neither leaves earlier
        publications valid; the mode (stream or batch) does not count: same model, same answers.
        """
        from pipeline_hub.pubindex import input_names

        identity = {
            "ds": self.ds,
            "batch_hash": t.batch_hash,
            "inputs": input_names(self.sources.get(t.source, {}).get("objects") or []),
            "prompt_version": t.prompt_version,
            "template_sha256": t.template_sha256,
            "model": t.model or self.model,
            "row_limit": self.row_limit,
        }
        extra = {k: t.routes[k] for k in ("long_input", "threshold_tokens", "fallback") if t.routes.get(k)}
        if extra:
            identity["routes"] = extra
        return identity

    def legacy_identity(self, t: TopicPlan) -> dict[str, Any]:
        """The identity as the old per-batch index (``_index/<topic>/<batch_hash>.json``) keyed it."""
        identity = self.identity(t)
        keys = ("batch_hash", "template_sha256", "model", "row_limit", "routes")
        return {k: identity[k] for k in keys if k in identity}


def batch_manifest(plan: RunPlan, source: str) -> dict[str, Any]:
    """The batch manifest of ``source``: every object of its ``ds`` prefix with status, reason, detail.

    ``{"source", "ds", "batch_hash", "run_id", "prefix", "objects": [{"public_uri", "key", "size",
    "sha256", "status", "reason", "detail", "records"}], "counts": {"objects": {"seen", "read",
    "skipped", "rejected"}}}``; ``records`` (records read, after the chunk stage) is None before.
    """
    info = plan.sources[source]
    return {
        "source": source,
        "ds": plan.ds,
        "batch_hash": info["batch_hash"],
        "run_id": plan.run_id,
        "prefix": info.get("prefix"),
        "objects": info["listing"],
        "counts": {"objects": object_counts(info["listing"])},
    }


def safe_run_id(run_id: str) -> str:
    """``run_id`` made safe as one path segment (Airflow run ids contain ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id)


def resolve_topics(settings: Settings, topics: list[str] | None, source: str | None) -> list[str]:
    """Requested topics (all by default), filtered to those reading ``source`` when given.

    Raises ``ValueError`` for an unknown topic or a source no requested topic reads.
    """
    known = list_topics(settings.prompts_dir)
    chosen = topics or known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ValueError(f"unknown topics {unknown}; known: {known}")
    if source:
        chosen = [t for t in chosen if load_topic(t, settings.prompts_dir).source == source]
        if not chosen:
            raise ValueError(f"no requested topic reads source '{source}'")
    return chosen


# Object statuses in the batch and publication manifests (``objects[].status``).
READ, SKIPPED, REJECTED = "read", "skipped", "rejected"


def classify(key: str, size: int) -> str | None:
    """Skip reason of the raw object at ``key`` (relative to the ``ds`` prefix), or None to read it.

    In order: ``subfolder`` (key below a sub-folder of the prefix), ``hidden`` (name starts with
    ``.``), ``marker`` (name starts with ``_``, e.g. ``_SUCCESS``), ``unsupported_format`` (not
    ``.jsonl``/``.ndjson``/``.json``/``.csv``/``.parquet``, optionally ``.gz``), ``empty_object``
    (zero bytes).
    """
    name = key.rsplit("/", 1)[-1]
    if "/" in key:
        return reasons.SUBFOLDER
    if name.startswith("."):
        return reasons.HIDDEN
    if name.startswith("_"):
        return reasons.MARKER
    if detect_format(name)[0] is None:
        return reasons.UNSUPPORTED_FORMAT
    if size == 0:
        return reasons.EMPTY_OBJECT
    return None


_SKIP_DETAIL = {
    reasons.SUBFOLDER: "{obj}: in a sub-folder of the ds prefix (only objects directly under it are read)",
    reasons.HIDDEN: "{obj}: hidden object (name starts with '.')",
    reasons.MARKER: "{obj}: marker object (name starts with '_')",
    reasons.UNSUPPORTED_FORMAT: "{obj}: unsupported format (read: .jsonl, .ndjson, .json, .csv, .parquet, "
    "optionally .gz)",
    reasons.EMPTY_OBJECT: "{obj}: empty object (0 bytes)",
}


def discover(settings: Settings, ds: str, topics: list[str]) -> dict[str, dict[str, Any]]:
    """List every raw object below ``<raw root>/<source>/<ds>/`` (recursively) for the sources of ``topics``.

    Returns ``{source: {"prefix": public URI, "objects": [{"uri", "public_uri", "key", "size",
    "status", "reason", "detail"}, …]}}`` where ``status`` is ``read`` (reason None) or ``skipped``
    (reason from :func:`classify`). Nothing is dropped silently: skipped objects are listed here, in
    the batch manifest and in every publication manifest. Raises ``ValueError`` when ``ds`` is not
    ``YYYY-MM-DD``.
    """
    if not DS_PATTERN.match(ds):
        raise ValueError(f"ds must be YYYY-MM-DD, got {ds!r}")
    sources = sorted({load_topic(t, settings.prompts_dir).source for t in topics})
    found: dict[str, dict[str, Any]] = {}
    for source in sources:
        prefix = storage.join(settings.raw_root, source, ds)
        objects = []
        for key, path, size in storage.list_objects(prefix):
            public = storage.public_uri(path)
            reason = classify(key, size)
            objects.append(
                {
                    "uri": str(path),
                    "public_uri": public,
                    "key": key,
                    "size": size,
                    "status": SKIPPED if reason else READ,
                    "reason": reason,
                    "detail": reasons.plain(reasons.detail(_SKIP_DETAIL[reason], obj=public)) if reason else None,
                }
            )
        skipped = Counter(o["reason"] for o in objects if o["reason"])
        log.info(
            "source %s at %s: %d objects, %d to read, skipped %s",
            source,
            storage.public_uri(prefix),
            len(objects),
            len(objects) - sum(skipped.values()),
            dict(skipped) or "none",
        )
        found[source] = {"prefix": storage.public_uri(prefix), "objects": objects}
    return found


def object_counts(listing: list[dict[str, Any]]) -> dict[str, int]:
    """``{"seen", "read", "skipped", "rejected"}`` of an object listing; seen = read + skipped + rejected."""
    by_status = Counter(o["status"] for o in listing)
    return {"seen": len(listing), **{s: by_status.get(s, 0) for s in (READ, SKIPPED, REJECTED)}}


def batch_manifest_path(settings_or_root: Settings | str, source: str, bh: str):
    """``<sanitized root>/_batches/<source>/<batch hash>.json``."""
    root = settings_or_root.sanitized_root if isinstance(settings_or_root, Settings) else settings_or_root
    return storage.join(root, "_batches", source, f"{bh}.json")


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
) -> RunPlan:
    """Hash every discovered object, compute batch hashes, write batch manifests and the run plan.

    Topics whose ``ds`` partition already holds this run's identity (publication index,
    :func:`pipeline_hub.pubindex.holds`) are marked ``skipped_published``.
    Returns the plan (also written to ``plan.staging + "/plan.json"``).
    """
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
        topic = load_topic(name, settings.prompts_dir)
        tp = TopicPlan(
            topic=name,
            source=topic.source,
            prompt_version=topic.version,
            template_sha256=topic.prompt.template_sha256,
            batch_hash=plan.sources.get(topic.source, {}).get("batch_hash"),
            routes=resolve_routes(topic.provider, llm_conn_id, model),
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
