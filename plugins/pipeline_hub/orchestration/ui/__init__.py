"""The Prompt Hub view in the Airflow UI: an Airflow plugin (``plugin``) mounting a FastAPI app (``api``,
Jinja2 ``templates/``) that renders what ``data`` reads from the registry, the manifests and the
``metrics/llm_usage`` Parquet (DuckDB). Never record text.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), not the plugins folder. Layer:
above ``lifecycle``, ``analytics`` and the rest of ``orchestration`` (it reads what they write), below nothing
but ``cli``; nothing imports it but Airflow's plugin manager.
"""
