"""The prompt lifecycle: static validation of the registry (``validation``; findings ``problems``, the
strict structured-output subset ``strict_schema``, a version's cascade block ``cascade_checks``), a
cascade's thresholds (``calibration``: ``pipeline-hub calibrate``), scoring against labelled examples (``scoring``,
``metrics``, ``reports``), the promotion gate (``promotion``; label and pointer edits of
``metadata.yaml``: ``pointers``) and the ``prompt_evaluation`` DAG's task bodies (``evaluation``:
validate → score → report; ``canary``: dev in shadow on the latest publication).

Imports: base modules, ``cascade``, ``providers``, ``prompts``, ``pii``, ``quality`` and ``stages`` (scores go through
the production prompt stage and cache); never ``orchestration``, ``analytics``, ``governance`` or ``cli``.
"""
