"""What the Prompt Hub view shows, read from the files the pipeline already writes; never record text.

Sources, per topic:

- the registry (``include/prompts/<topic>/metadata.yaml`` through :mod:`pipeline_hub.prompts.registry`):
  versions with their changelog line, creation date and cascade thresholds, the ``dev``/``prod`` pointers
  and any further named labels (a top-level ``labels:`` mapping, when the registry has one);
- ``include/prompts/<topic>/CHANGELOG.md`` and the audit log ``include/prompts/_audit.jsonl``
  (:func:`pipeline_hub.lifecycle.promotion.read_audit`): who promoted or rolled back what, when;
- ``metrics/llm_usage/`` Parquet under the sanitized root, queried with DuckDB
  (:func:`pipeline_hub.analytics.query.connect`): one row per publication (counts, LLM calls, cache hit
  rate, tokens, cost, p50/p95 latency, budget);
- the publication manifests ``sanitized_data/<topic>/ds=<ds>/_manifest.json`` (or ``quarantine/…``):
  status, quarantine reasons, the GX result and its Data Docs, PII counts per entity, records per route of
  the cascade (``usage.cascade`` / ``usage.records_by_route``) with the calls and cost saved;
- the gate scores under the artifacts root (:func:`pipeline_hub.lifecycle.scoring.read_score`, summarised as
  the audit log keeps them by :func:`pipeline_hub.lifecycle.promotion.score_summary`);
- ``metrics/drift/ds=<ds>/<topic>.parquet`` (:func:`pipeline_hub.analytics.drift_store.read_drift`);
- ``feedback/<topic>/`` (:func:`pipeline_hub.prompts.feedback.read_feedback`): agreement per prompt version
  and the latest corrections, without their notes.

Only counts, names, labels of the output schema, versions, identifiers (the published, scrubbed
``record_id``) and timestamps are returned: no free-text field of a record, no feedback note.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import yaml

from pipeline_hub import storage
from pipeline_hub.config import get_settings, include_dir

DS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ZONES = ("sanitized_data", "quarantine")
# Columns of metrics/llm_usage the view shows: the publish stage's METRICS_SCHEMA without the identities
# the page already names (topic) or does not show (batch hash, provider), plus the Hive ``ds``.
HIDDEN_USAGE_COLUMNS = ("topic", "batch_hash", "provider")


def sanitized_root() -> str:
    """The sanitized root the view reads (setting ``PIPELINE_HUB_SANITIZED_URI``)."""
    return get_settings().sanitized_uri


def topics() -> list[str]:
    """Every topic of the registry (``include/prompts/<topic>/metadata.yaml``), sorted."""
    from pipeline_hub.prompts.registry import list_topics

    return list_topics()


def registry(topic: str) -> dict[str, Any]:
    """Versions and labels of ``topic``: ``{"description", "owner", "versions": [{"version", "created",
    "changelog", "labels", "cascade", "score"}], "labels": {label: version}, "changelog_md", "audit": [entries]}``.

    ``score`` is :func:`score` of the version (its gate score, or None when it was never scored);
    ``cascade`` is :func:`cascade` of its ``cascade`` block (None without one).
    ``labels`` holds ``dev``, ``prod`` and the named labels of a ``labels:`` mapping; ``changelog_md`` is the
    text of ``CHANGELOG.md`` ("" when absent); ``audit`` the topic's audit entries, newest first.
    Raises ``FileNotFoundError`` for an unknown topic.
    """
    from pipeline_hub.lifecycle.promotion import read_audit

    prompts = include_dir() / "prompts"
    meta = yaml.safe_load((prompts / topic / "metadata.yaml").read_text())
    labels = {k: str(meta[k]) for k in ("dev", "prod") if meta.get(k)}
    labels |= {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    versions = []
    for name, spec in (meta.get("versions") or {}).items():
        spec = spec or {}
        versions.append(
            {
                "version": str(name),
                "created": str(spec.get("created", "")),
                "changelog": str(spec.get("changelog", "")),
                "labels": sorted(label for label, v in labels.items() if v == str(name)),
                "cascade": cascade(spec.get("cascade")),
            }
        )
    for v in versions:
        v["score"] = score(topic, v["version"])
    changelog = prompts / topic / "CHANGELOG.md"
    audit = [
        {k: e.get(k) for k in ("at", "actor", "action", "from", "to", "label", "scores")}
        for e in reversed(read_audit(prompts, topic))
    ]
    return {
        "description": meta.get("description", ""),
        "owner": meta.get("owner", ""),
        "versions": versions,
        "labels": labels,
        "changelog_md": changelog.read_text() if changelog.exists() else "",
        "audit": audit,
    }


def cascade(block: Any) -> dict[str, Any] | None:
    """A version's ``cascade`` block as the view shows it, or None without one: ``{"proxy", "oracle", "target",
    "thresholds"}``; ``thresholds`` is None until calibrated, else ``{"upper", "lower", "sample_size",
    "calibrated_at" (text), "achieved": {"precision", "recall", "oracle_share"}}`` (shares in [0, 1]).

    Read as written in ``metadata.yaml`` (``pipeline-hub validate`` checks it), so a hand-edited block still
    renders; what is not a mapping counts as absent.
    """
    if not isinstance(block, dict):
        return None
    raw = block.get("thresholds")
    thresholds = None
    if isinstance(raw, dict):
        achieved = raw.get("achieved") if isinstance(raw.get("achieved"), dict) else {}
        thresholds = {k: raw.get(k) for k in ("upper", "lower", "sample_size")}
        thresholds["calibrated_at"] = None if raw.get("calibrated_at") is None else str(raw["calibrated_at"])
        thresholds["achieved"] = {k: achieved.get(k) for k in ("precision", "recall", "oracle_share")}
    target = block.get("target") if isinstance(block.get("target"), dict) else {}
    return {
        "proxy": str(block.get("proxy", "")),
        "oracle": str(block.get("oracle", "primary")),
        "target": {k: target.get(k) for k in ("precision", "recall")},
        "thresholds": thresholds,
    }


def score(topic: str, version: str) -> dict[str, Any] | None:
    """The gate score of ``topic`` ``version``: ``{"metric", "value", "invalid_rate", "cost_usd", "model",
    "scored_at"}`` (``value`` and ``invalid_rate`` shares in [0, 1], cost in USD), or None when the version
    was never scored or its score file cannot be read (then ``{"error": "unreadable"}``)."""
    from pipeline_hub.lifecycle.promotion import score_summary
    from pipeline_hub.lifecycle.scoring import read_score

    try:
        summary = score_summary(read_score(topic, version))
    except (OSError, ValueError, KeyError, TypeError):  # a truncated or hand-edited score file
        return {"error": "unreadable"}
    keep = ("metric", "value", "invalid_rate", "cost_usd", "model", "scored_at")
    return None if summary is None else {k: summary.get(k) for k in keep}


def drift(root: str, topic: str, ds: str) -> dict[str, Any] | None:
    """The stored drift row of ``topic`` and ``ds`` (``metrics/drift/``), or None when none was computed.

    Keys: ``status`` (``ok``/``drift``/``no_baseline``), ``drifted`` (figures over the threshold),
    ``psi_threshold``, ``label_field``, ``label_psi``, ``label_chi2_p``, ``labels`` (``[{"label",
    "current", "baseline"}]`` counts), ``confidence_shift``, ``invalid_output_rate_shift``,
    ``input_length_shift``, ``baseline_ds``, ``ds``. An unreadable object gives ``{"status": "unreadable"}``.
    """
    from pipeline_hub.analytics.drift_store import read_drift

    try:
        row = read_drift(root, topic, ds)
    except (OSError, ValueError) as exc:  # a truncated object: the page still renders
        return {"status": "unreadable", "error": type(exc).__name__, "ds": ds}
    if row is None:
        return None
    keep = (
        "status", "drifted", "psi_threshold", "label_field", "label_psi", "label_chi2_p", "labels",
        "confidence_shift", "invalid_output_rate_shift", "input_length_shift", "baseline_ds", "ds",
    )  # fmt: skip
    return {k: row.get(k) for k in keep}


FEEDBACK_COLUMNS = ("created_at", "author", "ds", "record_id", "prompt_version", "model", "published_label", "label")
"""Columns of a feedback row the view shows: never ``note`` (free text, though scrubbed)."""


def feedback(root: str, topic: str, latest: int = 10) -> dict[str, Any]:
    """Analysts' feedback on ``topic``: ``{"total", "by_version": {version: agreement}, "latest": [rows]}``.

    ``by_version`` is :func:`pipeline_hub.prompts.feedback.agreement` (feedback, agreed, corrections,
    agreement_rate in [0, 1], models); ``latest`` the newest ``latest`` rows, newest first, with
    :data:`FEEDBACK_COLUMNS` and ``has_note`` (bool) only.
    """
    from pipeline_hub.prompts.feedback import agreement, read_feedback

    rows = read_feedback(root, topic)
    shown = [{**{k: r.get(k) for k in FEEDBACK_COLUMNS}, "has_note": bool(r.get("note"))} for r in rows[::-1]]
    return {"total": len(rows), "by_version": agreement(rows), "latest": shown[:latest]}


def manifest(root: str, topic: str, ds: str) -> dict[str, Any] | None:
    """The manifest of ``topic`` for ``ds`` (published zone first, then quarantine), or None."""
    for zone in ZONES:
        path = storage.join(root, zone, topic, f"ds={ds}", "_manifest.json")
        if path.exists():
            return storage.read_json(path)
    return None


def usage_rows(root: str, topic: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` publications of ``topic`` from ``metrics/llm_usage/`` (DuckDB), newest ``ds`` first.

    Each row has ``ds`` (``YYYY-MM-DD``) and the columns of ``METRICS_SCHEMA`` but
    :data:`HIDDEN_USAGE_COLUMNS`; a column the stored files do not have yet (written by older code, e.g. the
    cascade's ``proxy_records``) is None. [] when nothing was published yet. The query is parameterised
    (topic and limit are never spliced into SQL text; the column names are the schema's own).
    """
    from pipeline_hub.analytics.query import connect
    from pipeline_hub.stages.parquet import METRICS_SCHEMA

    columns = ("ds", *(c for c in METRICS_SCHEMA.names if c not in HIDDEN_USAGE_COLUMNS))
    con, views = connect(root)
    try:
        if "llm_usage" not in views:
            return []
        stored = {d[0] for d in con.execute("SELECT * FROM llm_usage LIMIT 0").description}
        cols = ", ".join(c if c in stored else f"NULL AS {c}" for c in columns)
        cur = con.execute(
            f"SELECT {cols} FROM llm_usage WHERE topic = ? ORDER BY ds DESC, finished_at DESC LIMIT ?",
            [topic, limit],
        )
        rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    for r in rows:
        r["ds"] = r["ds"].isoformat() if isinstance(r["ds"], date) else str(r["ds"])
    return rows


def _quality(m: dict[str, Any]) -> dict[str, Any]:
    q = m.get("quality") or {}
    failed = [e for e in q.get("expectations") or [] if not e.get("success")]
    return {
        "success": q.get("success"),
        "suite": q.get("suite"),
        "evaluated": q.get("evaluated"),
        "failed": [{k: e.get(k) for k in ("check", "type", "column", "unexpected_count")} for e in failed],
        "has_data_docs": bool(q.get("data_docs") or (m.get("outputs") or {}).get("data_docs")),
    }


def runs(root: str, topic: str, limit: int = 10) -> list[dict[str, Any]]:
    """The last ``limit`` runs of ``topic``, one per ``ds``, newest first.

    Each is a :func:`usage_rows` row plus from the manifest: ``status`` (``published``/``quarantined``),
    ``reasons`` ``{reason: count}``, ``quarantined_total``, ``quality`` (GX success, suite, failed
    expectations with counts only, whether Data Docs exist), ``pii`` ``{entity: count}``, ``tokens``
    (prompt + completion), ``cascade`` (records per route ``proxy`` / ``oracle``, ``calls_saved``,
    ``cost_saved_usd`` in USD: :func:`pipeline_hub.stages.cascade_usage.run_routes` of the manifest, else the
    metrics row; None for a run older than the route counts) and ``drift`` (:func:`drift`, or None).
    """
    from pipeline_hub.stages.cascade_usage import run_routes

    out, seen = [], set()
    for row in usage_rows(root, topic, limit * 4):
        if row["ds"] in seen:
            continue  # an older publication of the same ds (a rerun with new input)
        seen.add(row["ds"])
        m = manifest(root, topic, row["ds"]) or {}
        counts = m.get("counts") or {}
        row |= {
            "status": m.get("status", "unknown"),
            "reasons": dict(sorted((counts.get("quarantined") or {}).items())),
            "quarantined_total": counts.get("quarantined_total", row["quarantined"]),
            "quality": _quality(m) if m else None,
            "pii": dict(sorted((m.get("pii_found") or {}).items())),
            "tokens": (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0),
            "cascade": run_routes(m.get("usage")) or _row_routes(row),
            "drift": drift(root, topic, row["ds"]),
        }
        out.append(row)
        if len(out) == limit:
            break
    return out


def _row_routes(row: dict[str, Any]) -> dict[str, Any] | None:
    """The cascade figures of a metrics row (:func:`usage_rows`), None when it has none."""
    if row.get("proxy_records") is None and row.get("oracle_records") is None:
        return None
    keys = {"proxy": "proxy_records", "oracle": "oracle_records"}
    return {k: row.get(keys.get(k, k)) for k in ("proxy", "oracle", "calls_saved", "cost_saved_usd")}


def data_docs(root: str, topic: str, ds: str, rel: str = "index.html") -> storage.ObjectStoragePath | None:
    """A file of the GX Data Docs site of ``topic``'s ``ds`` (``rel`` below the site's folder), or None.

    The site is the folder of the page the manifest names (a public URI without connection id, under
    ``reports/quality/``); it is read below ``root`` at the same key. None for a malformed ``ds``, a
    ``rel`` leaving the folder, no Data Docs, or a missing file.
    """
    if not DS_RE.match(ds) or ".." in rel.split("/") or rel.startswith("/"):
        return None
    m = manifest(root, topic, ds) or {}
    uri = (m.get("quality") or {}).get("data_docs") or (m.get("outputs") or {}).get("data_docs")
    marker = "/reports/quality/"
    if not uri or marker not in uri:
        return None
    site = uri.split(marker, 1)[1].rsplit("/", 1)[0]
    page = storage.join(root, "reports", "quality", *site.split("/"), *rel.split("/"))
    return page if page.exists() and page.is_file() else None
