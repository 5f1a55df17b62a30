"""Object storage helpers over Airflow's ``ObjectStoragePath`` (S3 through the amazon provider, or local).

The pipeline never talks to boto3 directly: a URI such as ``s3://aws_default@raw/raw_data`` resolves
credentials and ``endpoint_url`` from the Airflow ``aws`` connection, so the same code runs against
AWS S3, SeaweedFS or a local folder.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

from airflow.sdk import ObjectStoragePath

from pipeline_hub.exceptions import ConfigError


def to_path(uri: str | ObjectStoragePath) -> ObjectStoragePath:
    """Return an ``ObjectStoragePath`` for ``uri`` (``s3://conn@bucket/key``, ``file://…`` or a local path)."""
    return uri if isinstance(uri, ObjectStoragePath) else ObjectStoragePath(str(uri))


def check_connection(uri: str | ObjectStoragePath) -> None:
    """Make sure the Airflow connection named in ``uri`` (``s3://<conn_id>@bucket/key``) exists.

    Looks it up with ``BaseHook.get_connection`` before any ``ObjectStoragePath`` is built for ``uri``:
    building one creates its file system, and for an unknown connection id the amazon provider falls
    back to boto3's default credentials and then to anonymous S3 access (a warning in the log, nothing
    else). Local paths and URIs without a connection id pass. Raises
    :class:`~pipeline_hub.exceptions.ConfigError` (one line naming the connection and how to define it)
    when the connection is not defined.
    """
    from urllib.parse import urlsplit

    if isinstance(uri, ObjectStoragePath):
        scheme, conn_id, where = uri.protocol, uri.conn_id, f"{uri.protocol}://{uri.bucket}/{uri.key}"
    else:
        parts = urlsplit(str(uri))
        scheme, conn_id, where = parts.scheme, parts.username, f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    if not conn_id or scheme in ("", "file", "local"):
        return
    from pipeline_hub.config import connection_defined

    if not connection_defined(conn_id):
        raise ConfigError(
            f"unknown connection '{conn_id}' in {where} (given as {scheme}://{conn_id}@…): define the Airflow "
            f"connection (AIRFLOW_CONN_{conn_id.upper()}, `airflow connections add {conn_id}` or a secrets "
            "backend) or name an existing one; it is never replaced by anonymous access"
        )


def public_uri(path: ObjectStoragePath | str) -> str:
    """URI of ``path`` without the connection id, for manifests and lineage (``s3://bucket/key``)."""
    p = to_path(path)
    if p.protocol in ("", "file", "local"):
        return "file://" + p.path if not str(p).startswith("file://") else str(p)
    return f"{p.protocol}://{p.bucket}/{p.key}"


def join(root: str | ObjectStoragePath, *parts: str) -> ObjectStoragePath:
    """``root / part / …`` keeping the connection of ``root``."""
    p = to_path(root)
    for part in parts:
        p = p / part
    return p


def write_bytes_atomic(path: ObjectStoragePath, data: bytes) -> None:
    """Write ``data`` so readers see either the old object or the complete new one, never a part.

    Writes a sibling ``_tmp-<uuid>`` object, then renames it (:class:`PendingObject`). On a local file
    system the rename is an atomic ``os.rename``; on S3 it is a server-side copy, and an S3 object becomes
    visible only once complete (PUT/CopyObject are atomic per object, AWS S3 consistency model).
    """
    pending = PendingObject(path)
    try:
        with pending.open() as fh:
            fh.write(data)
        pending.commit()
    finally:
        pending.discard()


def write_json(path: ObjectStoragePath, obj: Any, *, atomic: bool = True) -> None:
    """Serialise ``obj`` as indented UTF-8 JSON to ``path``."""
    data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    if atomic:
        write_bytes_atomic(path, data)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_json(path: ObjectStoragePath) -> Any:
    """Parse the JSON object at ``path``. Raises ``FileNotFoundError`` when it does not exist."""
    return json.loads(path.read_bytes())


def write_jsonl(path: ObjectStoragePath, rows: list[dict]) -> None:
    """Write ``rows`` as JSON Lines (one object per line, UTF-8; :class:`JsonlWriter`)."""
    with JsonlWriter(path) as out:
        out.write(rows)


def read_jsonl(path: ObjectStoragePath) -> list[dict]:
    """Read a JSON Lines object written by :func:`write_jsonl`."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def iter_jsonl(path: ObjectStoragePath) -> Iterator[dict]:
    """The objects of a JSON Lines object one at a time (streamed: O(1 line) in memory); nothing if absent."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def batched_jsonl(path: ObjectStoragePath, size: int) -> Iterator[list[dict]]:
    """:func:`iter_jsonl` in lists of at most ``size`` objects (the last may be shorter)."""
    rows = iter_jsonl(path)
    while batch := list(itertools.islice(rows, size)):
        yield batch


class JsonlWriter:
    """Append-only JSON Lines writer to ``path`` (streamed, one object per line).

    Use as a context manager; :meth:`write` takes a list of objects. The object is complete once the
    context exits (on S3 a multipart upload completes then).
    """

    def __init__(self, path: ObjectStoragePath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("wb")

    def write(self, rows: list[dict]) -> None:
        """Append ``rows`` (sorted keys; values JSON cannot encode become their ``str``)."""
        if rows:
            self._fh.write("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows).encode())

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


class PendingObject:
    """An object written under a sibling ``_tmp-<uuid>`` name (readers skip ``_`` names) and put at
    ``path`` by :meth:`commit` (a rename, atomic as in :func:`write_bytes_atomic`) or dropped by
    :meth:`discard`. :meth:`open` gives the binary file object to stream into (once)."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path
        self.tmp = path.parent / f"_tmp-{uuid.uuid4().hex}-{path.name}"

    def open(self) -> Any:
        """The temporary object opened for writing (``wb``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.tmp.open("wb")

    def commit(self) -> None:
        """Rename the written temporary object onto ``path``."""
        self.tmp.rename(self.path)

    def discard(self) -> None:
        """Remove the temporary object if it is there (nothing happens to ``path``)."""
        if self.tmp.exists():
            self.tmp.unlink()


def list_files(root: ObjectStoragePath) -> list[ObjectStoragePath]:
    """Files directly under ``root`` (sorted by name), ignoring ``_``/``.`` prefixed markers; [] if absent."""
    if not root.exists():
        return []
    children = (root / p.name for p in root.iterdir() if not p.name.startswith(("_", ".")))
    return sorted((c for c in children if c.is_file()), key=lambda c: c.name)


def list_objects(root: ObjectStoragePath) -> list[tuple[str, ObjectStoragePath, int]]:
    """Every object below ``root`` at any depth: ``[(relative key, path, size in bytes), …]`` sorted by key.

    Nothing is filtered (markers, hidden names and sub-folders included: callers decide and say why).
    Directory placeholders (S3 keys ending in ``/``) are not objects. ``[]`` when ``root`` is absent.
    Uses the fsspec ``find`` of ``root``'s file system (``s3fs`` on S3: one paginated ListObjectsV2).
    """
    root = to_path(root)
    base = root.path.rstrip("/")
    try:
        found = root.fs.find(base, detail=True)
    except FileNotFoundError:
        return []
    out = []
    for name, info in found.items():
        if info.get("type") not in (None, "file") or name.endswith("/"):
            continue
        rel = name[len(base) :].lstrip("/") if name.startswith(base) else name.rsplit("/", 1)[-1]
        if rel:
            out.append((rel, join(root, *rel.split("/")), int(info.get("size") or 0)))
    return sorted(out, key=lambda item: item[0])
