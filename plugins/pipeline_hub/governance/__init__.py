"""Governance of the published data: GDPR erasure (``erasure``; of analysts' feedback: ``feedback_erasure``),
its audit log and register of erased subjects (``register``), the scrubber of feedback notes
(``feedback_notes``), and raw-zone retention (``retention``).

Imports: base modules, ``pii``, ``quality``, ``providers.cache``, ``prompts.feedback`` and ``stages.parquet``
(erasure rewrites published partitions and feedback); ``register`` imports only base modules, ``quality``
and ``pii``, because the publish stage reads it. Never ``lifecycle``, ``orchestration``, ``analytics`` or ``cli``.
"""
