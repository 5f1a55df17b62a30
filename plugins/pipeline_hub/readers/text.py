"""Readers for the text formats: JSON Lines (streamed line by line), JSON documents (read whole) and CSV.

JSON per RFC 8259 (the ``json`` module); JSON Lines per https://jsonlines.org (``\\n``-separated, blank
lines ignored); CSV per RFC 4180 with a header row (the ``csv`` module, excel dialect). Lines are never
buffered beyond ``max_record_bytes``. Called by :func:`pipeline_hub.readers.iter_records`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import BinaryIO

from pipeline_hub import reasons
from pipeline_hub.readers.limits import (
    Item,
    Limits,
    ObjectError,
    RecordError,
    _checked,
    _kind,
    _oversize_record,
    _Progress,
    _too_deep,
)


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
