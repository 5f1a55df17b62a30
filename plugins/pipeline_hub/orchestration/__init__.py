"""Airflow glue: the publish operator (``operators``), the batch-mode chunk operator (``batch_operator``),
its batch adapter for our ``openai`` connections (``batch_adapter``), Assets and OpenLineage datasets
(``lineage``), the cluster policy (``policies``) and the alert callbacks of the DAGs (``alerts``).

Imports: base modules, ``prompts``, ``providers`` and ``stages``; never ``cli``. DAG files import from
here and from ``stages``; modules keep heavy imports inside functions so a DAG parses fast.
"""
