"""Scrub one JSONL, CSV or Parquet file with the pipeline's scrubber (``pipeline-hub scrub``), same format out.

Only the chosen columns are touched (default: every text column); in JSONL and nested Parquet
columns every string inside the column's value is scrubbed. Non-text values (numbers, booleans,
nulls) are left as they are. The whole file is read into memory; large inputs are analyzed by worker
processes (see :mod:`pipeline_hub.pii.engine`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline_hub.exceptions import InputError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class ScrubFileError(InputError):
    """The input cannot be scrubbed as asked; the message names the file (and line or column)."""


def detect_format(path: Path) -> tuple[str, bool]:
    """``(format, gzipped)`` from the file name: ``.jsonl``/``.ndjson``, ``.csv`` (each maybe ``.gz``), ``.parquet``."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = suffixes[-2] if gz and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    fmt = FORMATS.get(ext)
    if fmt is None or (gz and fmt == "parquet"):
        raise ScrubFileError(f"{path}: unsupported file type (use .jsonl, .ndjson, .csv, optionally .gz, or .parquet)")
    return fmt, gz


def _string_slots(holder: Any, key: Any, out: list) -> None:
    value = holder[key]
    if isinstance(value, str):
        out.append((holder, key))
    elif isinstance(value, dict):
        for k in value:
            _string_slots(value, k, out)
    elif isinstance(value, list):
        for i in range(len(value)):
            _string_slots(value, i, out)


def _scrub_rows(rows: list[dict], columns: list[str], scrubber, policy: str | None) -> tuple[Counter, int]:
    slots: list = []
    for row in rows:
        for c in columns:
            if c in row:
                _string_slots(row, c, slots)
    texts, found = scrubber.scrub_texts([h[k] for h, k in slots], policy=policy)
    for (holder, key), text in zip(slots, texts, strict=True):
        holder[key] = text
    return found, len(slots)


def _open_text(path: Path, gz: bool, mode: str):
    if gz:
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8", newline="")
    return path.open(mode, encoding="utf-8", newline="")


def scrub_file(
    input_path: Path | str,
    output_path: Path | str,
    columns: list[str] | None = None,
    policy: str | None = None,
    scrubber=None,
) -> dict[str, Any]:
    """Scrub ``input_path`` into ``output_path`` (same format); return ``{"rows", "values", "pii_found"}``.

    ``columns``: the columns to scrub (default: every text column; JSONL: every key). ``policy``: None
    applies the ``presidio.yaml`` operators (pseudonyms need the HMAC key, see
    :mod:`pipeline_hub.pii.pseudonym`), ``redact`` replaces PII by ``<ENTITY>`` placeholders,
    ``pseudonymize`` by keyed pseudonyms. Raises :class:`ScrubFileError` naming the file and the line
    or column for unreadable input, unknown columns, or an output path equal to the input.
    """
    from pipeline_hub.pii.scrubber import Scrubber

    src, dst = Path(input_path), Path(output_path)
    fmt, gz = detect_format(src)
    if detect_format(dst) != (fmt, gz):
        raise ScrubFileError(f"{dst}: output must have the input's format ({src.name})")
    if src.resolve() == dst.resolve():
        raise ScrubFileError(f"{dst}: output must not overwrite the input")
    if not src.is_file():
        raise ScrubFileError(f"{src}: no such file")
    own = scrubber is None
    scrubber = scrubber or Scrubber()
    try:
        if fmt == "parquet":
            result = _scrub_parquet(src, dst, columns, scrubber, policy)
        elif fmt == "csv":
            result = _scrub_csv(src, dst, gz, columns, scrubber, policy)
        else:
            result = _scrub_jsonl(src, dst, gz, columns, scrubber, policy)
    finally:
        if own:
            scrubber.close()
    return result


def _check_columns(src: Path, available: list[str], columns: list[str] | None) -> None:
    unknown = [c for c in columns or [] if c not in available]
    if unknown:
        raise ScrubFileError(f"{src}: no column(s) {unknown} (columns: {available})")


def _scrub_jsonl(src: Path, dst: Path, gz: bool, columns, scrubber, policy) -> dict[str, Any]:
    rows = []
    with _open_text(src, gz, "r") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ScrubFileError(f"{src} line {n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ScrubFileError(f"{src} line {n}: expected a JSON object")
            rows.append(row)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    _check_columns(src, keys, columns)
    found, values = _scrub_rows(rows, columns or keys, scrubber, policy)
    with _open_text(dst, gz, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"rows": len(rows), "values": values, "pii_found": dict(sorted(found.items()))}


def _scrub_csv(src: Path, dst: Path, gz: bool, columns, scrubber, policy) -> dict[str, Any]:
    with _open_text(src, gz, "r") as fh:
        try:
            reader = csv.DictReader(fh)
            rows = list(reader)
        except csv.Error as exc:
            raise ScrubFileError(f"{src} line {reader.line_num}: malformed CSV ({exc})") from None
        header = list(reader.fieldnames or [])
    _check_columns(src, header, columns)
    chosen = columns or header
    if any(None in r for r in rows):
        bad = next(i for i, r in enumerate(rows, start=2) if None in r)
        raise ScrubFileError(f"{src} line {bad}: more fields than the header")
    found, values = _scrub_rows(rows, chosen, scrubber, policy)
    with _open_text(dst, gz, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return {"rows": len(rows), "values": values, "pii_found": dict(sorted(found.items()))}


def _has_text(dtype) -> bool:
    import pyarrow as pa

    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _has_text(dtype.value_type)
    if pa.types.is_struct(dtype):
        return any(_has_text(dtype.field(i).type) for i in range(dtype.num_fields))
    return False


def _scrub_parquet(src: Path, dst: Path, columns, scrubber, policy) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(src)
    except (OSError, pa.ArrowException) as exc:
        raise ScrubFileError(f"{src}: not a readable Parquet file ({type(exc).__name__})") from None
    _check_columns(src, table.column_names, columns)
    chosen = [c for c in (columns or table.column_names) if _has_text(table.schema.field(c).type)]
    found: Counter = Counter()
    values = 0
    for name in chosen:
        cells = [{"v": v} for v in table.column(name).to_pylist()]
        f, n = _scrub_rows(cells, ["v"], scrubber, policy)
        found.update(f)
        values += n
        i = table.column_names.index(name)
        table = table.set_column(
            i, table.schema.field(i), pa.array([c["v"] for c in cells], type=table.schema.field(i).type)
        )
    pq.write_table(table, dst, compression="zstd")
    return {"rows": table.num_rows, "values": values, "pii_found": dict(sorted(found.items()))}
