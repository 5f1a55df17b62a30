"""``pipeline-hub query``: DuckDB over the sanitized zone with the views of ``include/sql/views.sql``.

S3 is read through the fsspec file system of Airflow's ``ObjectStoragePath`` (registered with
``duckdb.register_filesystem``), so no DuckDB extension has to be downloaded at run time and the
Airflow ``aws`` connection supplies the endpoint and credentials.

``views.sql`` holds ``{root}`` (the sanitized root) and ``{include}`` (the project's ``include/``)
placeholders. Each statement is run on its own: a statement reading the sanitized zone runs only
when every ``read_parquet``/``read_json`` glob under ``{root}`` in it matches a file (a topic with
nothing published gets no view), and a statement reading a view that was not created (e.g. the
joined ``companies`` view before both of its topics are published) is skipped.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from pipeline_hub import storage
from pipeline_hub.config import include_dir

SOURCE_GLOB = re.compile(r"read_(?:parquet|json|csv)\('([^']+)'")
VIEW_NAME = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(\w+)", re.I)


def views_sql() -> str:
    """The text of ``include/sql/views.sql`` (placeholders unfilled)."""
    return (include_dir() / "sql" / "views.sql").read_text()


def duckdb_base(sanitized_root: str) -> str:
    """The sanitized root as DuckDB globs see it: ``s3://bucket/key`` (file system registered by
    :func:`connect`) or a local folder path, without a trailing slash."""
    root = storage.to_path(sanitized_root)
    if root.protocol not in ("", "file", "local"):
        return f"{root.protocol}://{root.bucket}/{root.key}".rstrip("/")
    return str(root.path).rstrip("/")


def connect(sanitized_root: str) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A DuckDB connection with the views of ``views.sql`` that can be built; returns (con, view names).

    Raises ``duckdb.Error`` when a statement fails for a reason other than a missing view, ``ConfigError``
    when ``sanitized_root`` names an Airflow connection that does not exist.
    """
    storage.check_connection(sanitized_root)
    root = storage.to_path(sanitized_root)
    con = duckdb.connect()
    if root.protocol not in ("", "file", "local"):
        con.register_filesystem(root.fs)
    base = duckdb_base(sanitized_root)
    sql = views_sql().replace("{root}", base).replace("{include}", str(include_dir()))
    views = []
    for statement in duckdb.extract_statements(sql):
        text = statement.query
        globs = [g for g in SOURCE_GLOB.findall(text) if g.startswith(base)]
        if any(not root.fs.glob(g.split("://", 1)[-1]) for g in globs):
            continue
        try:
            con.execute(text)
        except duckdb.CatalogException:
            if not globs:  # a joined view over a view that does not exist (its topic has no files)
                continue
            raise
        if name := VIEW_NAME.search(text):
            views.append(name.group(1))
    return con, views


def run_query(sanitized_root: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Execute ``sql`` against the views; returns ``(column names, rows)``. DuckDB errors propagate."""
    con, _ = connect(sanitized_root)
    try:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()
