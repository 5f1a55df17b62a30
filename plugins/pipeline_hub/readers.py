"""Parse raw objects into records: JSON Lines, JSON arrays, CSV and Parquet, each optionally gzipped.

A record that cannot be parsed is yielded as a :class:`RecordError` naming the object and the
1-based record number (line for JSONL/CSV, element for JSON arrays, row for Parquet) so it can be
quarantined; the message never contains record text.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class RecordError:
    """A record (or a whole object) that could not be parsed; ``position`` 0 means the whole object."""

    position: int
    reason: str  # machine-readable, e.g. "malformed_record", "unreadable_object"
    detail: str  # human-readable, names the format problem, never the record text


def detect_format(name: str) -> tuple[str | None, bool]:
    """Return ``(format, gzipped)`` from an object name such as ``a.jsonl.gz``; format None if unsupported."""
    lower = name.lower()
    gz = lower.endswith(".gz")
    if gz:
        lower = lower[:-3]
    for ext, fmt in FORMATS.items():
        if lower.endswith(ext):
            return fmt, gz
    return None, gz


def iter_records(name: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]] | RecordError]:
    """Yield ``(position, record)`` or :class:`RecordError` for every record of object ``name``.

    ``data`` is the object's bytes. Raises ``ValueError`` for an unsupported file extension.
    """
    fmt, gz = detect_format(name)
    if fmt is None:
        raise ValueError(f"{name}: unsupported format (expected .jsonl, .json, .csv or .parquet, optionally .gz)")
    if gz:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            yield RecordError(0, "unreadable_object", f"{name}: not a valid gzip stream ({type(exc).__name__})")
            return
    if fmt == "parquet":
        yield from _parquet(name, data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield RecordError(0, "unreadable_object", f"{name}: not UTF-8 at byte {exc.start}")
        return
    if fmt == "jsonl":
        yield from _jsonl(name, text)
    elif fmt == "json":
        yield from _json_array(name, text)
    else:
        yield from _csv(name, text)


def _jsonl(name: str, text: str):
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RecordError(lineno, "malformed_record", f"{name}: line {lineno}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            yield RecordError(lineno, "malformed_record", f"{name}: line {lineno}: expected a JSON object")
            continue
        yield lineno, obj


def _json_array(name: str, text: str):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        yield RecordError(0, "unreadable_object", f"{name}: invalid JSON at line {exc.lineno} ({exc.msg})")
        return
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        yield RecordError(0, "unreadable_object", f"{name}: expected a JSON array of objects")
        return
    for idx, obj in enumerate(doc, start=1):
        if isinstance(obj, dict):
            yield idx, obj
        else:
            yield RecordError(idx, "malformed_record", f"{name}: element {idx}: expected a JSON object")


def _csv(name: str, text: str):
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    # Line numbers count the header as line 1, as a spreadsheet would.
    for row in reader:
        lineno = reader.line_num
        if None in row or any(v is None for v in row.values()):
            yield RecordError(lineno, "malformed_record", f"{name}: line {lineno}: expected {len(header)} columns")
            continue
        yield lineno, {k: v for k, v in row.items() if v != ""}


def _parquet(name: str, data: bytes):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        yield RecordError(0, "unreadable_object", f"{name}: not a readable Parquet file ({type(exc).__name__})")
        return
    for idx, row in enumerate(table.to_pylist(), start=1):
        yield idx, {k: v for k, v in row.items() if v is not None}
