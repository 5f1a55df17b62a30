"""The discover and hash stages: find a run's raw objects, hash them, decide what is new.

A *batch* is the set of objects under ``<raw root>/<source>/<ds>/``; its hash is the SHA-256 of the
sorted object hashes (:func:`pipeline_hub.hashing.batch_hash`). A topic's publication is identified by
(``ds`` partition, batch hash, input object names, prompt version and template SHA-256, model(s),
row limit; :meth:`RunPlan.identity`): when the partition's publication index entry
(``<sanitized root>/_index/<topic>/ds=<ds>.json``, :mod:`pipeline_hub.pubindex`) holds exactly that
identity, the topic is skipped, so re-running an unchanged partition publishes nothing and calls no
LLM. The same bytes under another ``ds``, a partition reverted to an earlier batch and a renamed
object are published again, their answers from the response cache (0 LLM calls).

The run plan (a JSON document in staging) pins the prompt versions resolved at the start of the run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline_hub import storage
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
    status: str = "pending"  # pending | skipped_published | skipped_no_input
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


def discover(settings: Settings, ds: str, topics: list[str]) -> dict[str, dict[str, Any]]:
    """List raw objects per source for ``ds``: ``{source: {"objects": [uri…], "ignored": [uri…]}}``.

    Objects with unsupported extensions are listed under ``ignored`` (and logged by name).
    Raises ``ValueError`` when ``ds`` is not ``YYYY-MM-DD``.
    """
    if not DS_PATTERN.match(ds):
        raise ValueError(f"ds must be YYYY-MM-DD, got {ds!r}")
    sources = sorted({load_topic(t, settings.prompts_dir).source for t in topics})
    found: dict[str, dict[str, Any]] = {}
    for source in sources:
        prefix = storage.join(settings.raw_root, source, ds)
        objects, ignored = [], []
        for path in storage.list_files(prefix):
            (objects if detect_format(path.name)[0] else ignored).append(str(path))
        for uri in ignored:
            log.warning("ignoring raw object with unsupported format: %s", storage.public_uri(uri))
        log.info("discovered %d objects for source %s at %s", len(objects), source, storage.public_uri(prefix))
        found[source] = {"objects": objects, "ignored": ignored}
    return found


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
        },
        budget_usd=budget_usd,
        started_at=datetime.now(UTC).isoformat(),
        staging=str(staging),
    )
    for source, info in discovered.items():
        objects = []
        for uri in info["objects"]:
            digest, size = sha256_object(storage.to_path(uri))
            objects.append({"uri": uri, "public_uri": storage.public_uri(uri), "sha256": digest, "size": size})
        bh = batch_hash(o["sha256"] for o in objects) if objects else None
        plan.sources[source] = {
            "batch_hash": bh,
            "objects": objects,
            "ignored": [storage.public_uri(u) for u in info["ignored"]],
        }
        if bh:
            manifest = {
                "source": source,
                "ds": ds,
                "batch_hash": bh,
                "run_id": run_id,
                "objects": [{k: o[k] for k in ("public_uri", "sha256", "size")} for o in objects],
            }
            storage.write_json(storage.join(settings.sanitized_root, "_batches", source, f"{bh}.json"), manifest)
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
            tp.status = "skipped_no_input"
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
