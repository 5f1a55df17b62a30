"""The prompt lifecycle: static validation of the registry (``validation``), scoring against labelled
examples (``scoring``, ``metrics``, ``reports``), the promotion gate (``promotion``) and the
``prompt_evaluation`` DAG's task bodies (``evaluation``: validate → score → canary → report).

Imports: base modules, ``providers``, ``prompts``, ``pii``, ``quality`` and ``stages`` (scores go through
the production prompt stage and cache); never ``orchestration``, ``analytics``, ``governance`` or ``cli``.
"""
