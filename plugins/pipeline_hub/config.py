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
``PIPELINE_HUB_STATE_DIR``
    Local state directory of in-process runs (default ``$XDG_STATE_HOME/pipeline-hub``, else
    ``~/.local/state/pipeline-hub``: XDG Base Directory Specification 0.8, ``XDG_STATE_HOME``). Local
    runs (``pipeline-hub run``) stage raw record text under ``<state dir>/staging/<run>/`` (mode 0700),
    removed when the run ends and swept by the next run after a crash; never in the system temp dir.

Record limits (per record, see :mod:`pipeline_hub.readers`; a record over a limit is quarantined
with the code in the last column, the run goes on):

==================================  ==========================  =============  ===================
Variable                            Limit                       Default        Reason code
==================================  ==========================  =============  ===================
``PIPELINE_HUB_MAX_FIELD_CHARS``    characters per string       1 048 576      ``oversize_field``
``PIPELINE_HUB_MAX_RECORD_BYTES``   bytes per record (UTF-8)    8 388 608      ``oversize_record``
``PIPELINE_HUB_MAX_NESTING_DEPTH``  nested lists/objects        64             ``too_deep``
==================================  ==========================  =============  ===================

A record's bytes are its line (JSONL, CSV) or its JSON text (JSON elements, Parquet rows as JSON); the
record object itself is nesting depth 1. Every value must be a positive integer.
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
    """``int`` of variable ``name`` (None when unset or empty); ``ValueError`` naming it when not an integer."""
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer: set it to a whole number or unset it") from None


def state_dir() -> Path:
    """The local state directory: ``PIPELINE_HUB_STATE_DIR``, else ``$XDG_STATE_HOME/pipeline-hub``, else
    ``~/.local/state/pipeline-hub`` (XDG Base Directory Specification: a relative ``XDG_STATE_HOME`` is
    invalid and ignored). Not created here."""
    explicit = os.environ.get("PIPELINE_HUB_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "pipeline-hub"


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
    max_field_chars: int = 1 << 20
    max_record_bytes: int = 8 << 20
    max_nesting_depth: int = 64

    def __post_init__(self) -> None:
        for name in ("max_field_chars", "max_record_bytes", "max_nesting_depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"setting {name} (PIPELINE_HUB_{name.upper()}) must be a positive integer, "
                    f"got {getattr(self, name)!r}"
                )

    @property
    def prompts_dir(self) -> Path:
        """The prompt registry: ``<include>/prompts``."""
        return self.include / "prompts"

    @property
    def limits(self) -> dict[str, int]:
        """The record limits as ``{"max_field_chars", "max_record_bytes", "max_nesting_depth"}``."""
        return {k: int(getattr(self, k)) for k in ("max_field_chars", "max_record_bytes", "max_nesting_depth")}

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
            "max_field_chars": _int_env("PIPELINE_HUB_MAX_FIELD_CHARS"),
            "max_record_bytes": _int_env("PIPELINE_HUB_MAX_RECORD_BYTES"),
            "max_nesting_depth": _int_env("PIPELINE_HUB_MAX_NESTING_DEPTH"),
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in env.items() if v is not None})
