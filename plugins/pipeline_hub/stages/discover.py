"""The discover stage: list every object below each source's ``ds`` prefix, with a status.

Every object below the prefix (at any depth) is listed: ``read``; ``skipped`` with a reason
(``hidden``, ``marker``, ``unsupported_format``, ``subfolder``, ``empty_object``, see :func:`classify`;
skipped objects are not part of the batch hash, so a ``_SUCCESS`` marker does not change it); or
``rejected`` (``unreadable_object`` when the store cannot return the bytes, the other reject codes at
chunk time). A source with nothing to read is the run outcome ``no_input``
(:data:`pipeline_hub.reasons.NO_INPUT`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.config import Settings
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.prompts.registry import load_topic
from pipeline_hub.readers import detect_format
from pipeline_hub.stages.plan import DS_PATTERN, READ, SKIPPED, resolve_topics

log = logging.getLogger(__name__)


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
    the batch manifest and in every publication manifest. Raises ``ConfigError`` (a ``ValueError``) when ``ds`` is not
    ``YYYY-MM-DD`` or a root names an Airflow connection that does not exist (:func:`storage.check_connection`).
    """
    if not DS_PATTERN.match(ds):
        raise ConfigError(f"ds must be YYYY-MM-DD, got {ds!r}")
    for root in (settings.raw_root, settings.sanitized_root, settings.staging_root):
        storage.check_connection(root)  # an unknown connection stops here, never anonymous S3
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


def run_discover(settings: Settings, ds: str, topics: list[str] | None, source: str | None) -> dict[str, Any]:
    """Task ``discover``: ``{"ds", "topics", "discovered": {source: {"prefix", "objects": [...]}}}``.

    Every object below each source's ``ds`` prefix is listed with ``status`` ``read`` or ``skipped``
    and a reason (:func:`pipeline_hub.stages.discover.discover`); object names and sizes only, no record text.
    """
    chosen = resolve_topics(settings, topics, source)
    return {"ds": ds, "topics": chosen, "discovered": discover(settings, ds, chosen)}
