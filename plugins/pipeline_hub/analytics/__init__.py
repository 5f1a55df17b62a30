"""Analytics over the sanitized zone: DuckDB queries (``query``), partition reports (``reporting``, and the
HTML page with plots ``report_html`` and its Jinja2 template under ``templates/``) and the Athena / Glue
DDL (``athena``).

Imports: base modules, ``prompts`` and ``stages.parquet`` (the published schema); never ``cli``.
"""
