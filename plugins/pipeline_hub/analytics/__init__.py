"""Analytics over the sanitized zone: DuckDB queries (``query``), partition reports (``reporting``, and the
HTML page with plots ``report_html`` and its Jinja2 template under ``templates/``), the Athena / Glue
DDL (``athena``) and drift against a trailing baseline (``drift``, stored by ``drift_store``).

Imports: base modules, ``prompts``, ``stages.parquet`` (the published schema) and ``stages.plan`` (the
DAG's drift task reads the run plan); never ``cli``.
"""
