"""Raw-zone retention: list (and on request delete) raw objects older than a number of days.

The raw zone (``PIPELINE_HUB_RAW_URI``) and staging (``PIPELINE_HUB_STAGING_URI``, chunks and answers
of past runs) hold unscrubbed record text, so they are kept only as long as re-processing may need
them (GDPR Art. 5(1)(e), storage limitation). The ``retention`` DAG runs :func:`run_retention` daily;
by default it only lists what has expired (a dry run) and writes the list to a report, so the
deletion itself stays with the S3 lifecycle rule in production (``infra/s3/raw-lifecycle.json``,
same number of days) or with an operator who triggers the DAG with ``delete=true``.

Age is measured like S3 lifecycle expiration does: from the object's last-modified time (S3
``LastModified``; ``mtime`` on a local file system), not from the ``ds`` in its key, so a backfill
uploaded today for an old ``ds`` is kept for the full period. An object is expired when
``last_modified < as_of - days``.

``PIPELINE_HUB_RAW_RETENTION_DAYS`` sets the days (default 90). Reports go to
``<sanitized root>/_audit/retention/<as_of>-<id>.json``: object URIs, sizes and times, never content.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline_hub import storage
from pipeline_hub.config import get_settings
from pipeline_hub.exceptions import ConfigError

log = logging.getLogger(__name__)

ENV_DAYS = "PIPELINE_HUB_RAW_RETENTION_DAYS"
DEFAULT_DAYS = 90  # = the default of HubSettings.raw_retention_days
REPORT_PREFIX = ("_audit", "retention")


def retention_days(value: int | str | None = None) -> int:
    """``value``, else ``PIPELINE_HUB_RAW_RETENTION_DAYS``, else 90.

    Raises :class:`~pipeline_hub.exceptions.ConfigError` (a ``ValueError``) naming the variable if not an
    integer ≥ 1.
    """
    if value is None:
        return get_settings().raw_retention_days
    raw = value
    try:
        days = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{ENV_DAYS}={raw!r}: expected a whole number of days") from None
    if days < 1:
        raise ConfigError(f"{ENV_DAYS}={raw!r}: retention must be at least 1 day")
    return days


@dataclass
class RawObject:
    """One object under a retention root: public URI, zone, size (bytes), last modified (UTC ISO 8601)."""

    uri: str
    zone: str
    size: int
    last_modified: str
    age_days: float


def _last_modified(info: dict[str, Any]) -> datetime | None:
    """Last-modified time of an fsspec ``info`` dict (s3fs ``LastModified``, local ``mtime``), in UTC."""
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _public(root, name: str) -> str:
    return f"{root.protocol}://{name}" if root.protocol not in ("", "file", "local") else f"file://{name}"


def list_objects(root_uri: str, zone: str, as_of: datetime) -> list[tuple[str, RawObject]]:
    """Every file under ``root_uri`` as ``(file-system path, RawObject)``, sorted by URI; [] if absent.

    Raises ``ValueError`` naming the object when the store reports no last-modified time.
    """
    root = storage.to_path(root_uri)
    if not root.exists():
        return []
    found = []
    for name, info in sorted(root.fs.find(root.path, detail=True).items()):
        if info.get("type") == "directory":
            continue
        modified = _last_modified(info)
        if modified is None:
            raise ValueError(f"{_public(root, name)}: the object store reports no last-modified time")
        age = (as_of - modified).total_seconds() / 86400
        found.append(
            (
                name,
                RawObject(_public(root, name), zone, int(info.get("size") or 0), modified.isoformat(), round(age, 2)),
            )
        )
    return found


def run_retention(
    *,
    roots: dict[str, str] | None = None,
    report_root: str | None = None,
    days: int | None = None,
    as_of: datetime | None = None,
    delete: bool = False,
) -> dict[str, Any]:
    """List the objects under ``roots`` (``{zone: uri}``) older than ``days``; delete them only if ``delete``.

    Defaults: ``roots`` = ``{"raw": PIPELINE_HUB_RAW_URI, "staging": PIPELINE_HUB_STAGING_URI}``,
    ``report_root`` = ``PIPELINE_HUB_SANITIZED_URI``, ``days`` = :func:`retention_days`, ``as_of`` =
    now (UTC). Writes the report (see module docstring) and returns a small summary for XCom:
    ``{"report", "days", "cutoff", "expired", "bytes", "deleted", "dry_run"}``.
    """
    from pipeline_hub.config import Settings

    settings = Settings.from_env()
    roots = roots or {"raw": settings.raw_root, "staging": settings.staging_root}
    days = retention_days(days)
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    cutoff = as_of - timedelta(days=days)
    expired: list[RawObject] = []
    deleted = 0
    for zone, uri in roots.items():
        old = [(n, o) for n, o in list_objects(uri, zone, as_of) if datetime.fromisoformat(o.last_modified) < cutoff]
        expired += [obj for _, obj in old]
        if delete and old:
            storage.to_path(uri).fs.rm([name for name, _ in old])
            deleted += len(old)
    report = {
        "as_of": as_of.isoformat(),
        "days": days,
        "cutoff": cutoff.isoformat(),
        "roots": {zone: storage.public_uri(uri) for zone, uri in roots.items()},
        "dry_run": not delete,
        "expired": [asdict(o) for o in expired],
        "deleted": deleted,
    }
    name = f"{as_of.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}.json"
    path = storage.join(report_root or settings.sanitized_root, *REPORT_PREFIX, name)
    storage.write_json(path, report)
    summary = {
        "report": storage.public_uri(path),
        "days": days,
        "cutoff": report["cutoff"],
        "expired": len(expired),
        "bytes": sum(o.size for o in expired),
        "deleted": deleted,
        "dry_run": not delete,
    }
    log.info("retention: %s", summary)
    return summary
