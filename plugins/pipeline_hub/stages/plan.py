"""The run plan: what a run of one ``ds`` partition will do, pinned at its start.

A *batch* is the set of objects under ``<raw root>/<source>/<ds>/``; its hash is the SHA-256 of the
sorted object hashes (:func:`pipeline_hub.hashing.batch_hash`). A topic's publication is identified by
(``ds`` partition, batch hash, input object names, prompt version and template SHA-256, model(s),
row limit; :meth:`RunPlan.identity`): when the partition's publication index entry
(``<sanitized root>/_index/<topic>/ds=<ds>.json``, :mod:`pipeline_hub.stages.pubindex`) holds exactly that
identity, the topic is skipped (:mod:`pipeline_hub.stages.hash`).

The run plan (a JSON document in staging) pins the prompt versions resolved at the start of the run
(through ``prod``, or the label a run pins per topic: DAG param ``prompt_labels``, ``pipeline-hub run
--label topic=label``, :func:`resolve_labels`; the label is recorded, not part of the identity: the same
version is the same publication) and the record limits (``settings.limits``) the chunk stage reads
with. Object statuses (``read``, ``skipped``, ``rejected``) are set by :mod:`pipeline_hub.stages.discover`
and the chunk stage.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline_hub import storage
from pipeline_hub.config import Settings
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.prompts.registry import list_topics, load_topic

log = logging.getLogger(__name__)
DS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class TopicPlan:
    """One topic of a run: where it reads, the pinned prompt version, and whether it is new."""

    topic: str
    source: str
    prompt_version: str
    template_sha256: str
    cascade_sha256: str | None = None  # the version's cascade block (None: no cascade), in the identity
    prompt_label: str = "prod"  # the label prompt_version was resolved through (not in the identity)
    batch_hash: str | None = None
    status: str = "pending"  # pending | skipped_published | no_input (reasons.NO_INPUT)
    published_manifest: str | None = None
    # Resolved routes (pipeline_hub.providers.routing.resolve_routes): mode, primary/long_input/fallback
    # {conn_id, model}.
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
        """The topics still to run (status ``pending``), in plan order."""
        return [t for t in self.topics if t.status == "pending"]

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (the run plan file's content)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        """The plan from :meth:`to_dict` data (``data`` is consumed: its ``topics`` key is popped)."""
        topics = [TopicPlan(**t) for t in data.pop("topics")]
        return cls(**data, topics=topics)

    @classmethod
    def load(cls, uri: str) -> RunPlan:
        """The plan stored at ``uri`` (a local path or object-store URI, as written by the hash stage)."""
        return cls.from_dict(storage.read_json(storage.to_path(uri)))

    def topic(self, name: str) -> TopicPlan:
        """The :class:`TopicPlan` of topic ``name``; raises ``StopIteration`` when the plan has none."""
        return next(t for t in self.topics if t.topic == name)

    def identity(self, t: TopicPlan) -> dict[str, Any]:
        """What makes a partition's publication the same: where, which bytes, prompt, model(s), row limit.

        ``{"ds", "batch_hash", "inputs": [[public_uri, sha256], …] (sorted), "prompt_version",
        "template_sha256", "model", "row_limit"[, "routes"][, "cascade_sha256"]}``. The input names count so
        a renamed object is republished with manifest inputs naming the current objects. The long-input and
        fallback routes, and the version's cascade, count only when a topic has them, so adding none leaves
        earlier publications valid; the mode (stream or batch) does not count: same model, same answers.
        """
        from pipeline_hub.stages.pubindex import input_names

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
        if t.cascade_sha256:
            identity["cascade_sha256"] = t.cascade_sha256
        return identity

    def legacy_identity(self, t: TopicPlan) -> dict[str, Any]:
        """The identity as the old per-batch index (``_index/<topic>/<batch_hash>.json``) keyed it."""
        identity = self.identity(t)
        keys = ("batch_hash", "template_sha256", "model", "row_limit", "routes", "cascade_sha256")
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

    Raises ``ConfigError`` (a ``ValueError``) for an unknown topic or a source no requested topic reads.
    """
    known = list_topics(settings.prompts_dir)
    chosen = topics or known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ConfigError(f"unknown topics {unknown}; known: {known}")
    if source:
        chosen = [t for t in chosen if load_topic(t, settings.prompts_dir).source == source]
        if not chosen:
            raise ConfigError(f"no requested topic reads source '{source}'")
    return chosen


def resolve_labels(settings: Settings, prompt_labels: dict[str, str] | None) -> dict[str, str]:
    """The labels a run pins, ``{topic: label}`` (a topic not named uses ``prod``), checked at plan time.

    A run may pin ``prod`` or a named label of the topic's ``labels:`` (each passed the promotion gate);
    ``dev`` is refused (not gated). Raises ``ConfigError`` (one line naming ``prompt_labels``, the topic
    and its known labels) for an unknown topic or label, before anything is read or any LLM is called.
    """
    if not prompt_labels:
        return {}
    if not isinstance(prompt_labels, dict):
        raise ConfigError(f"prompt_labels must be an object topic -> label, got {type(prompt_labels).__name__}")
    known = list_topics(settings.prompts_dir)
    for name, label in prompt_labels.items():
        if name not in known:
            raise ConfigError(f"prompt_labels: unknown topic '{name}' (known topics: {', '.join(known)})")
        topic = load_topic(name, settings.prompts_dir)
        pinnable = ["prod", *topic.labels]
        if label not in pinnable:
            why = " (dev is not gated: promote the version to a named label)" if label == "dev" else ""
            raise ConfigError(
                f"prompt_labels: topic '{name}' has no label {label!r}{why}; known labels: {', '.join(pinnable)} "
                f"({topic.metadata_path})"
            )
    return dict(prompt_labels)


# Object statuses in the batch and publication manifests (``objects[].status``).
READ, SKIPPED, REJECTED = "read", "skipped", "rejected"


def object_counts(listing: list[dict[str, Any]]) -> dict[str, int]:
    """``{"seen", "read", "skipped", "rejected"}`` of an object listing; seen = read + skipped + rejected."""
    by_status = Counter(o["status"] for o in listing)
    return {"seen": len(listing), **{s: by_status.get(s, 0) for s in (READ, SKIPPED, REJECTED)}}


def batch_manifest_path(settings_or_root: Settings | str, source: str, bh: str):
    """``<sanitized root>/_batches/<source>/<batch hash>.json``."""
    root = settings_or_root.sanitized_root if isinstance(settings_or_root, Settings) else settings_or_root
    return storage.join(root, "_batches", source, f"{bh}.json")


def plan_topic(plan: RunPlan, name: str):
    """``(topic plan, Topic)`` of ``name``: the prompt version the plan pinned; raises if its template or
    cascade changed since the plan was made."""
    tp = plan.topic(name)
    topic = load_topic(name, pointer="prod", version=tp.prompt_version)
    if topic.prompt.template_sha256 != tp.template_sha256:
        raise RuntimeError(
            f"topic {name} {tp.prompt_version}: template changed during the run "
            f"(plan {tp.template_sha256[:12]}, now {topic.prompt.template_sha256[:12]}); re-run"
        )
    if topic.prompt.cascade_sha256 != tp.cascade_sha256:
        raise RuntimeError(
            f"topic {name} {tp.prompt_version}: its cascade block in metadata.yaml changed during the run; re-run"
        )
    return tp, topic
