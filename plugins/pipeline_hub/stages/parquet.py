"""The published tables as Parquet: Arrow schemas from output schemas, lineage key-value metadata, atomic writes.

:func:`arrow_type` and :func:`published_schema` type the published columns (JSON Schema Draft 2020-12
subset → Arrow); :data:`QUARANTINE_SCHEMA` and :data:`METRICS_SCHEMA` are the quarantine and LLM-usage
tables; :func:`lineage_metadata` puts a manifest's identity into ``pipeline_hub.*`` Parquet key-value
metadata; :func:`parquet_bytes` / :func:`write_table` serialise (zstd) and write one object atomically
under a Hive-style :func:`partition`. Used by the publish stage, erasure and the Athena DDL.
"""

from __future__ import annotations

import io
import json
import subprocess
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline_hub import __version__, storage
from pipeline_hub.config import get_settings, include_dir
from pipeline_hub.exceptions import ConfigError
from pipeline_hub.quality.checks import LINEAGE_COLUMNS, failed_expectations

QUARANTINE_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source_uri", pa.string()),
        ("position", pa.int64()),
        ("raw_answer", pa.string()),  # the last invalid LLM answer, PII-scrubbed (invalid_output only)
        ("batch_hash", pa.string()),
        ("prompt_name", pa.string()),
        ("prompt_version", pa.string()),
        ("run_id", pa.string()),
    ]
)


def arrow_type(schema: dict[str, Any]) -> pa.DataType:
    """Arrow type for a JSON Schema (Draft 2020-12 subset used by output schemas).

    object → struct (properties in declared order), array → list, string → string, number → float64,
    integer → int64, boolean → bool; ``["T", "null"]`` → nullable T. Raises ``ValueError`` otherwise.
    """
    types = schema.get("type")
    if isinstance(types, list):
        non_null = [t for t in types if t != "null"]
        if len(non_null) != 1:
            raise ValueError(f"unsupported JSON Schema union type {types}")
        types = non_null[0]
    if types is None and "enum" in schema:
        types = "string"
    if types == "object":
        return pa.struct([pa.field(k, arrow_type(v)) for k, v in schema.get("properties", {}).items()])
    if types == "array":
        return pa.list_(arrow_type(schema.get("items", {"type": "string"})))
    mapping = {"string": pa.string(), "number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}
    if types in mapping:
        return mapping[types]
    raise ValueError(f"unsupported JSON Schema type {types!r}")


NULLABLE_LINEAGE = frozenset({"route"})


def published_schema(output_schema: dict[str, Any], keep_fields: list[str]) -> pa.Schema:
    """Lineage columns, then kept input fields (strings), then the answer's top-level properties."""
    # ``route`` may be null: rows published before cascades existed (rewritten by an erasure) have none.
    fields = [pa.field(c, pa.string(), nullable=c in NULLABLE_LINEAGE) for c in LINEAGE_COLUMNS]
    fields += [pa.field(f, pa.string()) for f in keep_fields]
    fields += [pa.field(k, arrow_type(v)) for k, v in output_schema.get("properties", {}).items()]
    return pa.schema(fields)


def parquet_bytes(table: pa.Table, metadata: dict[str, str]) -> bytes:
    """Serialise ``table`` as Parquet (zstd) with ``metadata`` merged into the key-value metadata."""
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(_merged_metadata(table.schema, metadata)), buf, compression="zstd")
    return buf.getvalue()


def _merged_metadata(schema: pa.Schema, metadata: dict[str, str]) -> dict[bytes, bytes]:
    """``schema``'s key-value metadata with ``metadata`` (str → str) merged in, as bytes."""
    return {**(schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}}


@lru_cache(maxsize=1)
def code_version() -> str:
    """``PIPELINE_HUB_CODE_VERSION``, else version+commit if the include dir is in a git checkout, else the version."""
    if env := get_settings().code_version:
        return env
    try:
        sha = subprocess.run(
            ["git", "-C", str(include_dir()), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{__version__}+g{sha}"
    except (OSError, subprocess.SubprocessError, ConfigError):
        return __version__


def partition(root: str, zone: str, topic: str, ds: str):
    """``<root>/<zone>/<topic>/ds=<ds>`` as an ObjectStoragePath."""
    return storage.join(root, zone, topic, f"ds={ds}")


def write_table(path, rows: list[dict], schema: pa.Schema, metadata: dict[str, str]) -> None:
    """Write ``rows`` (dicts keyed by column) as one Parquet object at ``path``, atomically."""
    table = pa.Table.from_pylist(rows, schema=schema)
    storage.write_bytes_atomic(path, parquet_bytes(table, metadata))


ROW_GROUP_ROWS = 65_536  # rows buffered per Parquet row group by TableWriter (DuckDB writes 122 880)


class TableWriter:
    """Rows to one Parquet object (zstd) in row groups of :data:`ROW_GROUP_ROWS`, streamed: O(row group) in memory.

    ``target`` is a :class:`pipeline_hub.storage.PendingObject`: nothing is visible at its path until
    the caller commits it. The file is opened on the first row, so ``count == 0`` means nothing was
    written. ``metadata`` goes into the key-value metadata as in :func:`parquet_bytes`. Use as a
    context manager; :meth:`close` finishes the file (footer) and is idempotent. Raises what
    ``pa.Table.from_pylist`` raises for a row that does not fit ``schema``.
    """

    def __init__(self, target: storage.PendingObject, schema: pa.Schema, metadata: dict[str, str]) -> None:
        self.target, self.schema = target, schema.with_metadata(_merged_metadata(schema, metadata))
        self.count = 0
        self._buffer: list[pa.Table] = []  # columnar at once: a dict per row costs ~10x its Arrow size
        self._buffered = 0
        self._fh = self._writer = None

    def write(self, rows: list[dict]) -> None:
        """Add ``rows`` (dicts keyed by column; missing keys are null)."""
        if not rows:
            return
        self._buffer.append(pa.Table.from_pylist(rows, schema=self.schema))
        self._buffered += len(rows)
        self.count += len(rows)
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self._fh = self.target.open()
            self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        self._writer.write_table(pa.concat_tables(self._buffer), row_group_size=ROW_GROUP_ROWS)
        self._buffer, self._buffered = [], 0

    def close(self) -> None:
        """Write what is buffered and the footer; close the object."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._fh.close()
            self._writer = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lineage_metadata(manifest: dict[str, Any]) -> dict[str, str]:
    """Parquet key-value metadata: the manifest's identity fields as strings (``pipeline_hub.*`` keys).

    Keys: ``topic``, ``ds``, ``status``, ``batch_hash``, ``run_id``, ``model``, ``provider``,
    ``code_version``, ``prompt_name``, ``prompt_version``, ``template_sha256``, ``prompt`` (JSON),
    ``inputs`` (JSON list of raw objects with SHA-256 and size), ``quality`` (JSON: suite, success,
    failed blocking expectations, Data Docs URI), each prefixed ``pipeline_hub.``.
    """
    keys = ("topic", "ds", "status", "batch_hash", "run_id", "model", "provider", "code_version")
    meta = {f"pipeline_hub.{k}": str(manifest.get(k)) for k in keys}
    prompt = manifest["prompt"]
    meta.update({f"pipeline_hub.prompt_{k}": str(prompt[k]) for k in ("name", "version")})
    meta["pipeline_hub.template_sha256"] = str(prompt["template_sha256"])
    meta["pipeline_hub.prompt"] = json.dumps(prompt, sort_keys=True)
    meta["pipeline_hub.inputs"] = json.dumps(manifest["inputs"], sort_keys=True)
    quality = manifest.get("quality") or {}
    meta["pipeline_hub.quality"] = json.dumps(
        {
            "suite": quality.get("suite"),
            "success": quality.get("success"),
            "failed": failed_expectations(quality) if "expectations" in quality else [],
            "data_docs": quality.get("data_docs"),
        },
        sort_keys=True,
    )
    return meta


# Columns of METRICS_SCHEMA copied from a manifest's ``usage`` (the publish stage's metrics row).
USAGE_FIELDS = (
    "llm_calls",
    "cache_hits",
    "cache_hit_rate",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_p50_s",
    "latency_p95_s",
    "budget_exceeded",
)
METRICS_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("run_id", pa.string()),
        ("batch_hash", pa.string()),
        ("prompt_version", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("records_in", pa.int64()),
        ("published", pa.int64()),
        ("quarantined", pa.int64()),
        ("llm_calls", pa.int64()),
        ("cache_hits", pa.int64()),
        ("cache_hit_rate", pa.float64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_p50_s", pa.float64()),
        ("latency_p95_s", pa.float64()),
        # The cascade (pipeline_hub.stages.cascade_usage.run_routes): records answered per route, calls and
        # cost (USD, an estimate) saved; proxy 0 without a cascade.
        ("proxy_records", pa.int64()),
        ("oracle_records", pa.int64()),
        ("calls_saved", pa.int64()),
        ("cost_saved_usd", pa.float64()),
        ("budget_cap_usd", pa.float64()),
        ("budget_exceeded", pa.bool_()),
        ("finished_at", pa.string()),
    ]
)
