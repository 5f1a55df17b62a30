"""Answers and kept fields cast to their published Parquet types before they are scrubbed and published.

The published columns are typed by :func:`pipeline_hub.stages.parquet.published_schema`: kept input fields
are strings, each answer property has the Arrow type :func:`pipeline_hub.stages.parquet.arrow_type` gives its
JSON Schema. JSON Schema validation (in the prompt stage) is not enough to write those types: Draft
2020-12 counts ``2.0`` and ``1e30`` as integers, an ``array`` without ``items`` is published as a
list of strings, and a record's kept field may hold any JSON value. So, per record:

- every answer property is cast to its Arrow type (:func:`cast_value`): ``integer`` takes ints and
  integral floats within int64, ``number`` ints and floats, ``string`` strings, ``boolean`` booleans,
  ``object`` dicts (its declared properties only, in schema order), ``array`` lists (each item cast);
  ``null`` is kept (JSON Schema validation already decided whether it is allowed). A value that does
  not fit raises :class:`CastError` naming the field path (``contacts[].phone``), never the value,
  and the record is quarantined as ``invalid_output`` (:data:`pipeline_hub.reasons.INVALID_OUTPUT`);
- answer keys the output schema does not declare are dropped (they have no column);
- a kept field that is not a string is published as JSON text (:func:`json_text`: ``{"a": 1}``,
  ``[1, 2]``, ``42``, ``true``), never as a Python ``str()`` repr such as ``{'a': 1}``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa

from pipeline_hub.exceptions import InputError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class CastError(InputError):
    """A value does not fit its published type; ``path`` is the field path, ``expected`` the Arrow type."""

    def __init__(self, path: str, expected: pa.DataType) -> None:
        super().__init__(f"field '{path}' cannot be cast to {expected}")
        self.path = path
        self.expected = expected


def _jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for values a Parquet or CSV reader may give: dates, decimals, bytes."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def json_text(value: Any) -> str | None:
    """A kept field as published text: strings as they are, None as None, anything else as JSON (RFC 8259).

    Non-ASCII characters are kept (``ensure_ascii=False``); dates become ISO 8601, decimals their
    decimal string, bytes UTF-8 text (else base64).
    """
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def cast_value(value: Any, arrow: pa.DataType, path: str) -> Any:
    """``value`` as the Python value of Arrow type ``arrow`` (see the module docstring); raises :class:`CastError`."""
    if value is None:
        return None
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        if isinstance(value, str):
            return value
    elif pa.types.is_boolean(arrow):
        if isinstance(value, bool):
            return value
    elif pa.types.is_integer(arrow):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
            return value
    elif pa.types.is_floating(arrow):
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an int beyond float64
                pass
    elif pa.types.is_struct(arrow):
        if isinstance(value, dict):
            return {f.name: cast_value(value.get(f.name), f.type, f"{path}.{f.name}") for f in arrow}
    elif pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        if isinstance(value, list):
            return [cast_value(v, arrow.value_type, f"{path}[]") for v in value]
    raise CastError(path, arrow)


def answer_types(output_schema: dict[str, Any]) -> dict[str, pa.DataType]:
    """``{property: Arrow type}`` of an output schema's top-level properties (``parquet.arrow_type``)."""
    from pipeline_hub.stages.parquet import arrow_type

    return {k: arrow_type(v) for k, v in output_schema.get("properties", {}).items()}


def cast_row(
    row: dict[str, Any],
    types: dict[str, pa.DataType],
    keep_fields: Iterable[str],
    passthrough: Iterable[str] = ("record_id", "model", "route"),
) -> dict[str, Any]:
    """A new row: ``passthrough`` keys unchanged, kept fields as :func:`json_text`, answer properties cast.

    Keys that are neither passthrough, kept nor declared are dropped. Raises :class:`CastError` for the
    first answer value that does not fit.
    """
    keep, passthrough = set(keep_fields), set(passthrough)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in passthrough:
            out[key] = value
        elif key in keep:
            out[key] = json_text(value)
        elif key in types:
            out[key] = cast_value(value, types[key], key)
    return out
