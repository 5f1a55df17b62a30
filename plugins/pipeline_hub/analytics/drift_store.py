"""Where drift reads from and writes to: published partitions of a topic, and ``metrics/drift/`` Parquet.

Reads (never record text out of this module: only the columns drift needs, as Arrow arrays):

- a partition is *published* when ``sanitized_data/<topic>/ds=<ds>/_manifest.json`` exists with
  ``status == "published"`` (the manifest is the publish stage's commit point); its rows are every
  ``part-*.parquet`` beside it (none when the batch published no row);
- the baseline of ``ds`` is every published partition of the ``days`` calendar days before it
  (``ds - days`` … ``ds - 1``), oldest first.

Writes one row per topic and ``ds`` to ``<sanitized root>/metrics/drift/ds=<ds>/<topic>.parquet``
(:data:`DRIFT_SCHEMA`, zstd, atomic, like ``metrics/llm_usage/``; ``ds`` comes from the Hive path, as
the DuckDB view ``drift`` of ``include/sql/views.sql`` reads it).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pyarrow as pa

from pipeline_hub import storage
from pipeline_hub.exceptions import ConfigError, InputError
from pipeline_hub.stages.parquet import partition, write_table

LABELS_TYPE = pa.list_(pa.struct([("label", pa.string()), ("current", pa.int64()), ("baseline", pa.int64())]))

DRIFT_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("status", pa.string()),  # ok | drift | no_baseline
        ("prompt_version", pa.string()),
        ("run_id", pa.string()),
        ("rows", pa.int64()),
        ("baseline_ds", pa.list_(pa.string())),
        ("baseline_rows", pa.int64()),
        ("baseline_days", pa.int64()),
        ("psi_threshold", pa.float64()),
        ("drifted", pa.list_(pa.string())),  # which PSI figures are over the threshold
        ("label_field", pa.string()),
        ("label_psi", pa.float64()),
        ("label_chi2_p", pa.float64()),
        ("labels", LABELS_TYPE),
        ("confidence_field", pa.string()),
        ("confidence_mean", pa.float64()),
        ("baseline_confidence_mean", pa.float64()),
        ("confidence_shift", pa.float64()),
        ("confidence_psi", pa.float64()),
        ("confidence_ks_p", pa.float64()),
        ("invalid_output_rate", pa.float64()),
        ("baseline_invalid_output_rate", pa.float64()),
        ("invalid_output_rate_shift", pa.float64()),
        ("input_length_fields", pa.list_(pa.string())),
        ("input_length_mean", pa.float64()),
        ("baseline_input_length_mean", pa.float64()),
        ("input_length_shift", pa.float64()),
        ("input_length_psi", pa.float64()),
        ("input_length_ks_p", pa.float64()),
        ("notes", pa.list_(pa.string())),
        ("computed_at", pa.string()),
    ]
)


def parse_ds(ds: str) -> date:
    """``YYYY-MM-DD`` as a date; raises :class:`ConfigError` (exit 2) naming ``--ds`` otherwise."""
    try:
        if len(ds) == 10:
            return date.fromisoformat(ds)
    except ValueError:
        pass
    raise ConfigError(f"--ds must be a date YYYY-MM-DD, got {ds!r}")


def published_manifest(sanitized_root: str, topic: str, ds: str) -> dict[str, Any] | None:
    """The manifest of ``topic``'s published partition ``ds``, or None when that partition is not published."""
    path = partition(sanitized_root, "sanitized_data", topic, ds) / "_manifest.json"
    if not path.exists():
        return None
    manifest = storage.read_json(path)
    return manifest if manifest.get("status") == "published" else None


def require_published(sanitized_root: str, topic: str, ds: str) -> dict[str, Any]:
    """:func:`published_manifest`, raising :class:`InputError` (one line, exit 2) when there is none."""
    manifest = published_manifest(sanitized_root, topic, ds)
    if manifest is not None:
        return manifest
    where = f"topic {topic} ds={ds} under {storage.public_uri(sanitized_root)}"
    if (partition(sanitized_root, "quarantine", topic, ds) / "_manifest.json").exists():
        raise InputError(
            f"nothing published for {where}: the topic failed its quality gate "
            f"(quarantine/{topic}/ds={ds}/_manifest.json), so there is no output to compare"
        )
    raise InputError(
        f"nothing published for {where}: no sanitized_data/{topic}/ds={ds}/_manifest.json; run the pipeline "
        f"for ds={ds} (or check --output / PIPELINE_HUB_SANITIZED_URI)"
    )


def baseline_partitions(sanitized_root: str, topic: str, ds: str, days: int) -> list[tuple[str, dict[str, Any]]]:
    """``[(ds, manifest)]`` of the published partitions in the ``days`` days before ``ds``, oldest first."""
    day = parse_ds(ds)
    found = []
    for back in range(days, 0, -1):
        earlier = (day - timedelta(days=back)).isoformat()
        manifest = published_manifest(sanitized_root, topic, earlier)
        if manifest is not None:
            found.append((earlier, manifest))
    return found


def read_columns(sanitized_root: str, topic: str, ds: str, columns: list[str]) -> pa.Table:
    """The ``columns`` (those present) of every ``part-*.parquet`` of the partition, concatenated.

    A partition without part files (a batch that published no row) gives an empty table. Columns a
    part lacks (an older prompt version's schema) are null there.
    """
    import pyarrow.parquet as pq

    tables = []
    for path in storage.list_files(partition(sanitized_root, "sanitized_data", topic, ds)):
        if not (path.name.startswith("part-") and path.name.endswith(".parquet")):
            continue
        with path.open("rb") as f:
            pf = pq.ParquetFile(f)
            present = [c for c in columns if c in pf.schema_arrow.names]
            tables.append(pf.read(columns=present))
    if not tables:
        return pa.table({c: pa.array([], pa.null()) for c in columns})
    table = pa.concat_tables(tables, promote_options="permissive")
    for c in columns:
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(table.num_rows))
    return table


def drift_path(sanitized_root: str, topic: str, ds: str):
    """``<root>/metrics/drift/ds=<ds>/<topic>.parquet`` as an ObjectStoragePath."""
    return storage.join(sanitized_root, "metrics", "drift", f"ds={ds}", f"{topic}.parquet")


def write_drift(sanitized_root: str, ds: str, result: dict[str, Any]) -> str:
    """Write ``result`` (one row of :data:`DRIFT_SCHEMA`) atomically; returns the object's public URI.

    The Parquet key-value metadata holds ``pipeline_hub.topic``, ``pipeline_hub.ds`` and
    ``pipeline_hub.status``. A later computation for the same topic and ``ds`` replaces the object.
    """
    path = drift_path(sanitized_root, result["topic"], ds)
    meta = {"pipeline_hub.topic": result["topic"], "pipeline_hub.ds": ds, "pipeline_hub.status": result["status"]}
    write_table(path, [{k: result.get(k) for k in DRIFT_SCHEMA.names}], DRIFT_SCHEMA, meta)
    return storage.public_uri(path)


def read_drift(sanitized_root: str, topic: str, ds: str) -> dict[str, Any] | None:
    """The stored drift row of ``topic`` and ``ds`` (with ``ds`` added), or None when none was written."""
    import pyarrow.parquet as pq

    path = drift_path(sanitized_root, topic, ds)
    if not path.exists():
        return None
    with path.open("rb") as f:
        rows = pq.read_table(f).to_pylist()
    return {**rows[0], "ds": ds} if rows else None
