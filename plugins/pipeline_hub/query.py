"""``pipeline-hub query``: DuckDB over the sanitized zone with the views of ``include/sql/views.sql``.

S3 is read through the fsspec file system of Airflow's ``ObjectStoragePath`` (registered with
``duckdb.register_filesystem``), so no DuckDB extension has to be downloaded at run time and the
Airflow ``aws`` connection supplies the endpoint and credentials.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from pipeline_hub import storage
from pipeline_hub.config import include_dir

VIEW = re.compile(r"CREATE OR REPLACE VIEW (\w+) AS\s+SELECT .*?read_parquet\('([^']+)'.*?;", re.S)


def connect(sanitized_root: str) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A DuckDB connection with one view per topic that has published files; returns (con, view names)."""
    root = storage.to_path(sanitized_root)
    con = duckdb.connect()
    if root.protocol not in ("", "file", "local"):
        con.register_filesystem(root.fs)
        base = f"{root.protocol}://{root.bucket}/{root.key}".rstrip("/")
    else:
        base = str(root.path).rstrip("/")
    views = []
    sql = (include_dir() / "sql" / "views.sql").read_text()
    for match in VIEW.finditer(sql):
        name, pattern = match.group(1), match.group(2).replace("{root}", base)
        if root.fs.glob(pattern.split("://", 1)[-1] if "://" in pattern else pattern):
            con.execute(match.group(0).replace("{root}", base))
            views.append(name)
    return con, views


def run_query(sanitized_root: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Execute ``sql`` against the views; returns ``(column names, rows)``. DuckDB errors propagate."""
    con, _ = connect(sanitized_root)
    try:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()
