"""Airflow glue: the publish operator (``operators``), the batch-mode chunk operator (``batch_operator``),
Assets and OpenLineage datasets (``lineage``) and the cluster policy (``policies``).

Imports: base modules, ``prompts``, ``providers`` and ``stages``; never ``cli``. DAG files import from
here and from ``stages``; modules keep heavy imports inside functions so a DAG parses fast.
"""
