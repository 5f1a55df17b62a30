"""Airflow glue: the publish operator (``operators``), the batch-mode chunk operator (``batch_operator``),
its batch adapter for our ``openai`` connections (``batch_adapter``), Assets and OpenLineage datasets
(``lineage``), the cluster policy (``policies``), the alert callbacks of the DAGs (``alerts``), the
publish task's extra link (``links``) and the Prompt Hub view (``ui``, a layer of its own above
``lifecycle`` and ``analytics``, which it may import; see ``ui/__init__.py``).

Imports: base modules, ``prompts``, ``providers`` and ``stages``; never ``cli``. DAG files import from
here and from ``stages``; modules keep heavy imports inside functions so a DAG parses fast.
"""
