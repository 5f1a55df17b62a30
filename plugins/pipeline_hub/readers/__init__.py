"""Parse raw objects into records: JSON Lines, JSON documents, CSV and Parquet, each optionally gzipped.

:func:`iter_records` never raises for bad input. It yields, in order:

* ``(position, record)`` for every good record (``record`` a ``dict``);
* :class:`RecordError` for a record that cannot be used, with a fixed code from
  :mod:`pipeline_hub.reasons` (``unparseable``, ``invalid_encoding``, ``oversize_field``,
  ``oversize_record``, ``too_deep``) and a detail naming the object, the 1-based position (line for
  JSONL and CSV, element for JSON, row for Parquet) and the field, never the record text;
* at most one :class:`ObjectError`, always last, when the object as a whole cannot be read
  (``unreadable_gzip``, ``unreadable_parquet``, ``unparseable_object``, ``invalid_encoding_object``,
  ``unreadable_object``).

**Rule for a fault after some records (documented in README "Data layout"):** when an object yields
an :class:`ObjectError`, *every* item it yielded before is void: the consumer rejects the object with
all its records (none is published or quarantined, the object is listed as ``rejected`` in the batch
and publication manifests). A truncated ``.gz`` is therefore never half-published, and the batch can
be fixed and re-sent whole.

Limits (:class:`Limits`, settings ``max_field_chars``, ``max_record_bytes``, ``max_nesting_depth``):
a string (key or value, at any depth) longer than ``max_field_chars`` characters is ``oversize_field``;
a record longer than ``max_record_bytes`` bytes (its line for JSONL/CSV, its JSON text for JSON elements
and Parquet rows) is ``oversize_record``; containers nested deeper than ``max_nesting_depth`` (the
record object itself is depth 1) are ``too_deep``. JSONL, CSV and gzip are read as streams, line by
line, with a line never buffered beyond ``max_record_bytes``; Parquet is read 1 024 rows at a time from
the (seekable) object; a gzipped or unseekable Parquet object is first decompressed into a spooled
temporary file (in memory up to :data:`SPOOL_BYTES`, then an anonymous file in ``<state dir>/spool``,
:func:`pipeline_hub.config.spool_dir`, removed when read), since Parquet needs random access.
``.json`` documents are read whole (JSON has no record boundary to stream on without a parser of our own).

Encodings: UTF-8 (RFC 3629), an optional UTF-8 BOM at the start is dropped. JSON per RFC 8259 (the
``json`` module, which also accepts ``NaN``/``Infinity``); JSON Lines per https://jsonlines.org
(``\\n``-separated, blank lines ignored); CSV per RFC 4180 with a header row (the ``csv`` module,
excel dialect); Parquet via pyarrow.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from pipeline_hub import reasons
from pipeline_hub.readers.limits import Item, Limits, ObjectError, RecordError, _error_name, _Progress
from pipeline_hub.readers.parquet import _parquet
from pipeline_hub.readers.text import _csv, _json_document, _jsonl

__all__ = ["FORMATS", "SPOOL_BYTES", "Item", "Limits", "ObjectError", "RecordError", "detect_format", "iter_records"]

# A gzipped Parquet object is decompressed into memory up to this size, beyond it into a temporary file.
SPOOL_BYTES = 64 << 20
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


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


def _sized_readline(stream: BinaryIO) -> BinaryIO:
    """``stream`` with ``readline(size)``: fsspec's buffered files (s3fs) take no size, so they are
    wrapped in ``io.BufferedReader`` (they implement ``readinto``)."""
    if isinstance(stream, io.BufferedIOBase | io.BytesIO) and not hasattr(stream, "fs"):
        return stream
    return io.BufferedReader(stream)


def _seekable(stream: BinaryIO, gz: bool) -> BinaryIO:
    """``stream`` itself when it can seek (and is not gzip), else its bytes copied 1 MiB at a time into a
    :class:`tempfile.SpooledTemporaryFile` (memory up to :data:`SPOOL_BYTES`, then ``<state dir>/spool``), rewound.
    A truncated gzip stream raises here (``EOFError``, ``zlib.error``), before any record."""
    if not gz and stream.seekable():
        return stream
    from pipeline_hub.config import spool_dir

    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=spool_dir())
    try:
        shutil.copyfileobj(stream, spool, 1 << 20)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def iter_records(name: str, data: bytes | BinaryIO, limits: Limits | None = None) -> Iterator[Item]:
    """Yield ``(position, record)``, :class:`RecordError` or a final :class:`ObjectError` for object ``name``.

    ``data`` is the object's bytes or a binary stream (read once, not closed). ``name`` is used in
    details only. An unsupported extension yields ``ObjectError(unsupported_format)`` (discovery skips
    those objects before they get here). Never raises for bad input.
    """
    limits = limits or Limits()
    fmt, gz = detect_format(name)
    if fmt is None:
        yield ObjectError(reasons.UNSUPPORTED_FORMAT, reasons.detail("{obj}: unsupported format", obj=name))
        return
    stream: BinaryIO = io.BytesIO(data) if isinstance(data, bytes | bytearray) else _sized_readline(data)
    if gz:
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    progress = _Progress()
    try:
        if fmt == "jsonl":
            yield from _jsonl(name, stream, limits, progress)
        elif fmt == "csv":
            yield from _csv(name, stream, limits, progress)
        elif fmt == "json":
            yield from _json_document(name, stream.read(), limits)
        else:
            seekable = _seekable(stream, gz)
            try:
                yield from _parquet(name, seekable, limits, progress)
            finally:
                if seekable is not stream:
                    seekable.close()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if not gz:
            raise
        yield ObjectError(
            reasons.UNREADABLE_GZIP,
            reasons.detail("{obj}: truncated or corrupt gzip stream after record {pos} ({err})",
                           obj=name, pos=progress.position, err=_error_name(exc)),
            progress.position,
        )  # fmt: skip
    except OSError as exc:
        yield ObjectError(
            reasons.UNREADABLE_OBJECT,
            reasons.detail("{obj}: the store could not return its bytes ({err})", obj=name, err=type(exc).__name__),
            progress.position,
        )
