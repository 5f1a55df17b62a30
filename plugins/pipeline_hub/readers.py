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
line, with a line never buffered beyond ``max_record_bytes``; ``.json`` documents and gzipped Parquet
are read whole (JSON has no record boundary to stream on without a parser of our own; Parquet needs
random access).

Encodings: UTF-8 (RFC 3629), an optional UTF-8 BOM at the start is dropped. JSON per RFC 8259 (the
``json`` module, which also accepts ``NaN``/``Infinity``); JSON Lines per https://jsonlines.org
(``\\n``-separated, blank lines ignored); CSV per RFC 4180 with a header row (the ``csv`` module,
excel dialect); Parquet via pyarrow.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from pipeline_hub import reasons

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Per-record limits: characters per string, bytes per record, container nesting depth."""

    max_field_chars: int = MIB
    max_record_bytes: int = 8 * MIB
    max_nesting_depth: int = 64


@dataclass(frozen=True)
class RecordError:
    """A record that cannot be used: ``position`` (1-based line/element/row), ``reason`` (a
    :mod:`pipeline_hub.reasons` record code), ``detail`` (built with :func:`reasons.detail`, no record
    text) and ``field`` (the field path, when one field is at fault)."""

    position: int
    reason: str
    detail: str
    field: str | None = None


@dataclass(frozen=True)
class ObjectError:
    """The whole object cannot be read: ``reason`` is an object-level reject code, ``position`` the
    record (line/element/row) at which reading stopped (0 = before any record). Everything yielded
    before it from the same object is void (see the module docstring)."""

    reason: str
    detail: str
    position: int = 0


Item = tuple[int, dict[str, Any]] | RecordError | ObjectError


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
            yield from _parquet(name, stream.read(), limits, progress)
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


def _error_name(exc: BaseException) -> str:
    return "zlib.error" if isinstance(exc, zlib.error) else type(exc).__name__


class _Progress:
    """Last record position reached while streaming, for object-level details."""

    position = 0


def _lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes without the newline)``; ``None`` for a line longer than ``limit`` bytes.

    A too long line is read and dropped in ``limit``-sized pieces: memory stays bounded.
    """
    lineno = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(limit + 1)) and not rest.endswith(b"\n"):
                pass
            yield lineno, None
            continue
        yield lineno, line.rstrip(b"\n").removesuffix(b"\r")


def _jsonl(name: str, stream: BinaryIO, limits: Limits, progress: _Progress) -> Iterator[Item]:
    for lineno, raw in _lines(stream, limits.max_record_bytes):
        progress.position = lineno
        where = {"obj": name, "line": lineno}
        if raw is None:
            yield _oversize_record(lineno, "{obj} line {line}", where, limits)
            continue
        if lineno == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RecordError(
                lineno,
                reasons.INVALID_ENCODING,
                reasons.detail("{obj} line {line}: not UTF-8 at byte {byte}", byte=exc.start, **where),
            )
            continue
        yield _parse_json_record(text, lineno, "{obj} line {line}", where, limits)


def _parse_json_record(text: str, position: int, at: str, where: dict, limits: Limits) -> Item:
    try:
        obj = json.loads(text)
    except RecursionError:
        return _too_deep(position, at, where, limits, None)
    except json.JSONDecodeError as exc:
        return RecordError(
            position,
            reasons.UNPARSEABLE,
            reasons.detail(at + ": invalid JSON at column {col} ({msg})", col=exc.colno, msg=exc.msg, **where),
        )
    if not isinstance(obj, dict):
        return RecordError(
            position,
            reasons.UNPARSEABLE,
            reasons.detail(at + ": expected a JSON object, got {kind}", kind=_kind(obj), **where),
        )
    return _checked(position, obj, at, where, limits)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _checked(position: int, record: dict[str, Any], at: str, where: dict, limits: Limits) -> Item:
    """``(position, record)`` or the :class:`RecordError` of the first limit ``record`` breaks."""
    fault = check_limits(record, limits)
    if fault is None:
        return position, record
    reason, path = fault
    if reason == reasons.TOO_DEEP:
        return _too_deep(position, at, where, limits, path)
    if reason == reasons.INVALID_ENCODING:
        return RecordError(
            position,
            reasons.INVALID_ENCODING,
            reasons.detail(at + ": field {field} holds a lone surrogate (not Unicode text)", field=path, **where),
            field=path,
        )
    return RecordError(
        position,
        reasons.OVERSIZE_FIELD,
        reasons.detail(
            at + ": field {field} longer than {limit} characters (max_field_chars)",
            field=path,
            limit=limits.max_field_chars,
            **where,
        ),
        field=path,
    )


# A lone surrogate (JSON "\\ud800" escapes) is not Unicode text: it cannot be encoded as UTF-8 later.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_limits(record: dict[str, Any], limits: Limits) -> tuple[str, str] | None:
    """``(reason, field path)`` of the first string longer than ``max_field_chars`` (``oversize_field``),
    string holding a lone surrogate (``invalid_encoding``) or container deeper than ``max_nesting_depth``
    (``too_deep``; depth 1 = the record) in ``record``, else ``None``. Iterative: any depth.

    Field paths: ``a.b[2].c``; ``(key)`` when a key is at fault, ``(record)`` for the record itself."""
    stack: list[tuple[Any, str, int]] = [(record, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limits.max_nesting_depth:
                return reasons.TOO_DEEP, path or "(record)"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(key, str) and (len(key) > limits.max_field_chars or _SURROGATE.search(key)):
                    reason = reasons.OVERSIZE_FIELD if len(key) > limits.max_field_chars else reasons.INVALID_ENCODING
                    return reason, f"{path}.(key)" if path else "(key)"
                sub = f"{path}[{key}]" if isinstance(value, list) else (f"{path}.{key}" if path else str(key))
                stack.append((child, sub, depth + 1))
        elif isinstance(value, str | bytes) and len(value) > limits.max_field_chars:
            return reasons.OVERSIZE_FIELD, path
        elif isinstance(value, str) and _SURROGATE.search(value):
            return reasons.INVALID_ENCODING, path
    return None


def _too_deep(position: int, at: str, where: dict, limits: Limits, path: str | None) -> RecordError:
    return RecordError(
        position,
        reasons.TOO_DEEP,
        reasons.detail(
            at + ": field {field} nested deeper than {limit} levels (max_nesting_depth)",
            field=path or "(record)",
            limit=limits.max_nesting_depth,
            **where,
        ),
        field=path,
    )


def _oversize_record(position: int, at: str, where: dict, limits: Limits) -> RecordError:
    return RecordError(
        position,
        reasons.OVERSIZE_RECORD,
        reasons.detail(at + ": record longer than {limit} bytes (max_record_bytes)", limit=limits.max_record_bytes,
                       **where),
    )  # fmt: skip


# --- JSON documents -------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
# A JSON string or one bracket: enough to find where a (too deep) value ends without parsing it.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _json_document(name: str, data: bytes, limits: Limits) -> Iterator[Item]:
    """A ``.json`` document: an array of objects (element positions) or one object (position 1)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield ObjectError(
            reasons.INVALID_ENCODING_OBJECT, reasons.detail("{obj}: not UTF-8 at byte {byte}", obj=name, byte=exc.start)
        )
        return
    start = _WS.match(text).end()
    if start == len(text):
        return  # whitespace only: an empty document, zero records
    if text[start] != "[":
        yield _single(name, text, start, limits)
        return
    decoder = json.JSONDecoder()
    idx, element = _WS.match(text, start + 1).end(), 0
    if text.startswith("]", idx):
        idx = _WS.match(text, idx + 1).end()
        if idx != len(text):
            yield _bad_document(name, "data after the array", element)
        return
    while True:
        element += 1
        where = {"obj": name, "element": element}
        try:
            value, end = decoder.raw_decode(text, idx)
        except RecursionError:
            end = _skip_value(text, idx)
            if end is None:
                yield _bad_document(name, "unterminated array element", element)
                return
            yield _too_deep(element, "{obj} element {element}", where, limits, None)
        except json.JSONDecodeError as exc:
            yield _bad_document(name, f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})", element)
            return
        else:
            if _too_big(text, idx, end, limits.max_record_bytes):
                yield _oversize_record(element, "{obj} element {element}", where, limits)
            elif not isinstance(value, dict):
                yield RecordError(
                    element,
                    reasons.UNPARSEABLE,
                    reasons.detail("{obj} element {element}: expected a JSON object, got {kind}", kind=_kind(value),
                                   **where),
                )  # fmt: skip
            else:
                yield _checked(element, value, "{obj} element {element}", where, limits)
        idx = _WS.match(text, end).end()
        if text.startswith(",", idx):
            idx = _WS.match(text, idx + 1).end()
            continue
        if text.startswith("]", idx) and _WS.match(text, idx + 1).end() == len(text):
            return
        yield _bad_document(name, "expected ',' or ']' after the element", element)
        return


def _single(name: str, text: str, start: int, limits: Limits) -> Item:
    """A document holding one value: an object is record 1; anything else rejects the object."""
    where = {"obj": name, "element": 1}
    try:
        value, end = json.JSONDecoder().raw_decode(text, start)
    except RecursionError:
        return _bad_document(name, "nested too deep to parse", 0)
    except json.JSONDecodeError as exc:
        return _bad_document(name, f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})", 0)
    if _WS.match(text, end).end() != len(text):
        return _bad_document(name, "data after the JSON value", 0)
    if not isinstance(value, dict):
        return _bad_document(name, f"expected an array of objects or one object, got {_kind(value)}", 0)
    if _too_big(text, start, end, limits.max_record_bytes):
        return _oversize_record(1, "{obj} element {element}", where, limits)
    return _checked(1, value, "{obj} element {element}", where, limits)


def _bad_document(name: str, problem: str, element: int) -> ObjectError:
    return ObjectError(
        reasons.UNPARSEABLE_OBJECT,
        reasons.detail("{obj}: not a JSON array of objects at element {element}: {problem}", obj=name,
                       element=element, problem=problem),
        element,
    )  # fmt: skip


def _too_big(text: str, start: int, end: int, limit: int) -> bool:
    """Whether ``text[start:end]`` is longer than ``limit`` bytes in UTF-8 (encodes only when it may be)."""
    n = end - start
    if n * 4 <= limit:
        return False
    return n > limit or len(text[start:end].encode("utf-8", "surrogatepass")) > limit


def _skip_value(text: str, idx: int) -> int | None:
    """End offset of the array/object starting at ``idx`` (brackets counted outside strings), or None."""
    depth = 0
    for m in _TOKEN.finditer(text, idx):
        tok = m.group()
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    return None


# --- CSV ------------------------------------------------------------------------------------------


class _CsvLines:
    """Decoded lines for ``csv.reader``; remembers a line that was not UTF-8 or longer than the limit."""

    def __init__(self, stream: BinaryIO, limit: int, progress: _Progress) -> None:
        self._lines = _lines(stream, limit)
        self.progress = progress
        self.lineno = 0
        self.last = ""
        self.bad: tuple[str, int, int] | None = None  # (reason, line, byte)

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        self.lineno, raw = next(self._lines)
        self.progress.position = self.lineno
        if raw is None:
            self.bad = self.bad or (reasons.OVERSIZE_RECORD, self.lineno, 0)
            self.last = "\n"
            return self.last
        if self.lineno == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            self.last = raw.decode("utf-8") + "\n"
        except UnicodeDecodeError as exc:
            self.bad = self.bad or (reasons.INVALID_ENCODING, self.lineno, exc.start)
            self.last = raw.decode("utf-8", "surrogateescape") + "\n"
        return self.last


def _csv(name: str, stream: BinaryIO, limits: Limits, progress: _Progress) -> Iterator[Item]:
    """CSV with a header row; position = the physical line a record starts on (header = line 1)."""
    # The csv module's field limit is process-wide (131 072 by default): raise it to the record limit
    # (never lower it); our own max_field_chars check below then names the field.
    if csv.field_size_limit() < limits.max_record_bytes + 2:
        csv.field_size_limit(limits.max_record_bytes + 2)
    lines = _CsvLines(stream, limits.max_record_bytes, progress)
    reader = csv.reader(lines)
    header: list[str] | None = None
    while True:
        start = lines.lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = {"obj": name, "line": start}
            if "field limit" in str(exc):  # a quoted field beyond the record limit
                _resync(lines)
                lines.bad = None
                yield _oversize_record(start, "{obj} line {line}", where, limits)
                continue
            lines.bad = None
            yield RecordError(
                start, reasons.UNPARSEABLE, reasons.detail("{obj} line {line}: {err}", err=str(exc), **where)
            )
            continue
        bad, lines.bad = lines.bad, None
        if header is None:
            if bad:
                encoding = bad[0] == reasons.INVALID_ENCODING
                yield ObjectError(
                    reasons.INVALID_ENCODING_OBJECT if encoding else reasons.UNPARSEABLE_OBJECT,
                    reasons.detail("{obj} line {line}: header row not readable ({reason})", obj=name, line=bad[1],
                                   reason=bad[0]),
                    0,
                )  # fmt: skip
                return
            if row:
                header = row
            continue
        if not row and not bad:
            continue  # blank line
        yield _csv_record(name, start, header, row, bad, limits)


def _resync(lines: _CsvLines) -> None:
    """After the csv field limit broke inside a quoted field: skip to the line that closes the field.

    Lines longer than the limit never reach ``csv`` (see :func:`_lines`), so only a quoted field spanning
    lines can break it, and the field was open at the start of the last line read. Inside a quoted
    field every literal quote is doubled (RFC 4180 §2.7): the closing line is the first (from that
    one) with an odd number of ``"``; parsing resumes on the line after it.
    """
    if lines.last.count('"') % 2:
        return
    for text in lines:
        if text.count('"') % 2:
            return


def _csv_record(name: str, start: int, header: list[str], row: list[str], bad, limits: Limits) -> Item:
    where = {"obj": name, "line": start}
    if bad:
        reason, line, byte = bad
        if reason == reasons.OVERSIZE_RECORD:
            return _oversize_record(start, "{obj} line {line}", where, limits)
        return RecordError(
            start,
            reasons.INVALID_ENCODING,
            reasons.detail("{obj} line {line}: not UTF-8 at byte {byte} of line {bad_line}", byte=byte,
                           bad_line=line, **where),
        )  # fmt: skip
    if len(row) != len(header):
        return RecordError(
            start,
            reasons.UNPARSEABLE,
            reasons.detail("{obj} line {line}: expected {n} columns, got {got}", n=len(header), got=len(row), **where),
        )
    if sum(len(v) for v in row) > limits.max_record_bytes:
        return _oversize_record(start, "{obj} line {line}", where, limits)
    record = {k: v for k, v in zip(header, row, strict=True) if v != ""}
    return _checked(start, record, "{obj} line {line}", where, limits)


# --- Parquet --------------------------------------------------------------------------------------


def _parquet(name: str, data: bytes, limits: Limits, progress: _Progress) -> Iterator[Item]:
    """Parquet rows (read from memory: the format needs random access), ``None`` values dropped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        for batch in pf.iter_batches(batch_size=1024):
            for values in batch.to_pylist():
                row += 1
                progress.position = row
                where = {"obj": name, "row": row}
                record = {k: v for k, v in values.items() if v is not None}
                size = len(json.dumps(record, default=str, ensure_ascii=False).encode("utf-8", "replace"))
                if size > limits.max_record_bytes:
                    yield _oversize_record(row, "{obj} row {row}", where, limits)
                else:
                    yield _checked(row, record, "{obj} row {row}", where, limits)
    except (pa.ArrowException, ValueError, OSError) as exc:  # bad magic, thrift, pages (bytes are in memory)
        yield ObjectError(
            reasons.UNREADABLE_PARQUET,
            reasons.detail("{obj}: not a readable Parquet file at row {row} ({err})", obj=name, row=row,
                           err=type(exc).__name__),
            row,
        )  # fmt: skip
