"""Governance of the published data: GDPR erasure (``erasure``), its audit log and register of erased
subjects (``register``), and raw-zone retention (``retention``).

Imports: base modules, ``pii``, ``quality``, ``providers.cache`` and ``stages.parquet`` (erasure rewrites
published partitions); ``register`` imports only base modules, ``quality`` and ``pii``, because the publish stage
reads it. Never ``lifecycle``, ``orchestration``, ``analytics`` or ``cli``.
"""
