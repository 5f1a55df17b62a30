"""What a reader yields and the per-record limits every format applies (see :mod:`pipeline_hub.readers`).

:class:`Limits` (settings ``max_field_chars``, ``max_record_bytes``, ``max_nesting_depth``),
:class:`RecordError` (one unusable record), :class:`ObjectError` (the object as a whole), and the
checks shared by the format readers: string length, record size, nesting depth, lone surrogates.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

from pipeline_hub import reasons

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


def _error_name(exc: BaseException) -> str:
    return "zlib.error" if isinstance(exc, zlib.error) else type(exc).__name__


class _Progress:
    """Last record position reached while streaming, for object-level details."""

    position = 0


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
