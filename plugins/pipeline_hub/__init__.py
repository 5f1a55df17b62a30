"""Prompt Pipeline Hub: the importable logic behind the `prompt_pipeline` DAG and the `pipeline-hub` CLI.

Stages live in one module each (``discover``, ``hashing``, ``chunking``, ``prompting``, ``scrub``,
``quality``, ``publish``); ``pipeline`` runs them in-process and ``dags/prompt_pipeline.py`` wires
them as Airflow tasks.
"""

__version__ = "0.1.0"
