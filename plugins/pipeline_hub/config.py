"""Runtime settings, read from environment variables with local defaults.

Every location is a URI understood by Airflow's ``ObjectStoragePath``: ``s3://<conn_id>@<bucket>/<key>``
for S3 (the Airflow ``aws`` connection supplies credentials and ``endpoint_url``), or a local path.

Environment variables (all optional):

``PIPELINE_HUB_RAW_URI``
    Raw-zone root holding ``<source>/<ds>/<files>`` (default ``s3://aws_default@raw/raw_data``).
``PIPELINE_HUB_SANITIZED_URI``
    Root that receives ``sanitized_data/`` and ``quarantine/`` (default ``s3://aws_default@sanitized``).
``PIPELINE_HUB_STAGING_URI``
    Scratch space for chunks and intermediate answers. It holds raw record text, so it defaults to the
    raw bucket (``s3://aws_default@raw/staging``), never to the sanitized one.
``PIPELINE_HUB_INCLUDE_DIR``
    The project's ``include/`` folder (prompts, reference tables, PII config); defaults to the one
    next to ``plugins/``.
``PIPELINE_HUB_LLM_CONN_ID``
    Airflow connection of the LLM provider (default ``llm_default``).
``PIPELINE_HUB_CHUNK_SIZE``
    Records per chunk, i.e. per mapped prompt task (default 500).
``PIPELINE_HUB_MAX_CHUNKS``
    Most chunks per source (default 100): larger sources get larger chunks, so 100 000 records
    need about 100 mapped prompt tasks per topic, never more than Airflow's ``max_map_length``.
``PIPELINE_HUB_LLM_CACHE``
    Response cache backend (see :mod:`pipeline_hub.providers.cache`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parents[1]


def include_dir() -> Path:
    """Return the ``include/`` directory (``PIPELINE_HUB_INCLUDE_DIR`` or ``<repo>/include``)."""
    return Path(os.environ.get("PIPELINE_HUB_INCLUDE_DIR", REPO_DIR / "include")).resolve()


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


@dataclass(frozen=True)
class Settings:
    """Locations and knobs of one pipeline run; see the module docstring for the variables."""

    raw_root: str = "s3://aws_default@raw/raw_data"
    sanitized_root: str = "s3://aws_default@sanitized"
    staging_root: str = "s3://aws_default@raw/staging"
    include: Path = field(default_factory=include_dir)
    llm_conn_id: str = "llm_default"
    chunk_size: int = 500
    max_chunks: int = 100

    @property
    def prompts_dir(self) -> Path:
        return self.include / "prompts"

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Build settings from the environment; keyword ``overrides`` win when not None."""
        env = {
            "raw_root": os.environ.get("PIPELINE_HUB_RAW_URI"),
            "sanitized_root": os.environ.get("PIPELINE_HUB_SANITIZED_URI"),
            "staging_root": os.environ.get("PIPELINE_HUB_STAGING_URI"),
            "llm_conn_id": os.environ.get("PIPELINE_HUB_LLM_CONN_ID"),
            "chunk_size": _int_env("PIPELINE_HUB_CHUNK_SIZE"),
            "max_chunks": _int_env("PIPELINE_HUB_MAX_CHUNKS"),
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in env.items() if v is not None})
