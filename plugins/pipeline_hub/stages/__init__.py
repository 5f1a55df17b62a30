"""The pipeline's stages, one module each, in run order: the functions the DAG tasks, the in-process
runner and the tests all call.

| stage | module | task body |
|---|---|---|
| discover | :mod:`~pipeline_hub.stages.discover` | ``run_discover`` |
| hash | :mod:`~pipeline_hub.stages.hash` | ``run_hash`` (writes the run plan, :mod:`~pipeline_hub.stages.plan`) |
| chunk | :mod:`~pipeline_hub.stages.chunk` | ``run_chunk`` |
| prompt | :mod:`~pipeline_hub.stages.prompt` (batch mode: :mod:`~pipeline_hub.stages.prompt_batch`) | ``run_prompt`` |
| scrub | :mod:`~pipeline_hub.stages.scrub` (answer types: :mod:`~pipeline_hub.stages.casting`) | ``run_scrub`` |
| validate | :mod:`~pipeline_hub.stages.validate` | ``run_validate`` |
| publish | :mod:`~pipeline_hub.stages.publish` (index: :mod:`~pipeline_hub.stages.pubindex`) | ``run_publish`` |
| in-process run | :mod:`~pipeline_hub.stages.runner` | ``run_pipeline`` |

The prompt stage's parts: what is sent for a record (:mod:`~pipeline_hub.stages.prompt_inputs`), one
record's call, validation and repair (:mod:`~pipeline_hub.stages.prompt_record`), the chunk's budget
share (:mod:`~pipeline_hub.stages.budget`) and its progress lines (:mod:`~pipeline_hub.stages.progress`).
The published tables as Parquet (schemas, lineage metadata, atomic writes): :mod:`~pipeline_hub.stages.parquet`.

Imports: stages may import the base modules (``config``, ``exceptions``, ``reasons``, ``hashing``,
``storage``, ``readers``) and the domain packages (``providers``, ``prompts``, ``pii``, ``quality``,
``governance.register``), never ``lifecycle``, ``orchestration``, ``analytics`` or ``cli``.

The task bodies are importable from here (``from pipeline_hub import stages; stages.run_hash(...)``),
loaded lazily so that a DAG file parsing this package loads none of the stage libraries.
"""

from __future__ import annotations

import importlib
from typing import Any

_TASKS = {
    "run_discover": "discover",
    "run_hash": "hash",
    "no_input_message": "hash",
    "run_chunk": "chunk",
    "max_chunks_per_source": "chunk",
    "run_prompt": "prompt",
    "run_scrub": "scrub",
    "run_validate": "validate",
    "run_publish": "publish",
    "publish_topic": "publish",
    "run_pipeline": "runner",
}

__all__ = [*_TASKS, "QualityGateFailed", "ConservationError"]


def __getattr__(name: str) -> Any:
    if name in _TASKS:
        return getattr(importlib.import_module(f"pipeline_hub.stages.{_TASKS[name]}"), name)
    if name in ("QualityGateFailed", "ConservationError"):
        from pipeline_hub import exceptions

        return getattr(exceptions, name)
    raise AttributeError(f"module 'pipeline_hub.stages' has no attribute {name!r}")
