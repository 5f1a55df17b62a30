"""Analytics over the sanitized zone: DuckDB queries (``query``), partition reports (``reporting``), the
Athena / Glue DDL (``athena``) and drift against a trailing baseline (``drift``, stored by ``drift_store``).

Imports: base modules, ``prompts``, ``stages.parquet`` (the published schema) and ``stages.plan`` (the
DAG's drift task reads the run plan); never ``cli``.
"""
