"""Model cascades: a cheap proxy answers the records it is sure of, an oracle (the LLM route) the rest.

Following LOTUS (Patel et al., "Semantic Operators: A Declarative Model for Rich, AI-based Data
Processing", VLDB 2025, arXiv:2407.11418) and SUPG (Kang et al., "Approximate Selection with Guarantees
using Proxies", PVLDB 13(11), 2020): a proxy scores each record in [0, 1]; a record scoring at least
``upper`` is accepted as positive, one below ``lower`` answered negative, and the band ``[lower, upper)``
goes to the oracle. The two thresholds are learned on a labelled sample so that, with probability at
least ``1 - delta``, the cascade keeps the topic's target precision and recall.

Imports: base modules only (:mod:`pipeline_hub.exceptions`), numpy, scipy and rapidfuzz; nothing from
``providers``, ``prompts`` or above (the registry parses a version's block with :mod:`spec`). Used by
:mod:`pipeline_hub.stages.cascade` (proxy answers in the prompt stage) and
:mod:`pipeline_hub.lifecycle.calibration` (``pipeline-hub calibrate``).

Modules: :mod:`~pipeline_hub.cascade.spec` (the ``cascade:`` block of a topic's ``metadata.yaml``),
:mod:`~pipeline_hub.cascade.calibration` (learning the thresholds) and
:mod:`~pipeline_hub.cascade.proxy` (the decision rule and the RapidFuzz / ``none`` proxies).

A cascade lives in a topic version (``versions.<v>.cascade``), and its block's SHA-256 is part of a
publication's identity (:attr:`pipeline_hub.prompts.registry.PromptVersion.cascade_sha256`).
"""
