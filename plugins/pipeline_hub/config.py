"""Runtime settings: one typed model, :class:`HubSettings`, read from ``PIPELINE_HUB_*`` environment variables.

Every setting is optional; README "Settings" lists them (the table is :func:`settings_table`, a test keeps
it in sync with the model). Read them with :func:`get_settings`: the environment is parsed and validated
once per distinct set of ``PIPELINE_HUB_*`` (and ``XDG_STATE_HOME``) values, so a process reads it once
and a test that changes a variable sees the change; ``get_settings.cache_clear()`` forgets the cache.
A bad value raises :class:`~pipeline_hub.exceptions.ConfigError` (also a ``ValueError``) naming the
variable.

Every location is a URI understood by Airflow's ``ObjectStoragePath``: ``s3://<conn_id>@<bucket>/<key>``
for S3 (the Airflow ``aws`` connection supplies credentials and ``endpoint_url``), or a local path.

Record limits (per record, see :mod:`pipeline_hub.readers`; a record over a limit is quarantined with
the reason code ``oversize_field``, ``oversize_record`` or ``too_deep``, the run goes on). A record's
bytes are its line (JSONL, CSV) or its JSON text (JSON elements, Parquet rows as JSON); the record
object itself is nesting depth 1.

:class:`Settings` is the frozen per-run view the stages take (roots, include dir, chunking, limits),
built by :meth:`Settings.from_env` from :func:`get_settings` plus per-run overrides.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, PositiveInt, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline_hub.exceptions import ConfigError

ENV_PREFIX = "PIPELINE_HUB_"
INCLUDE_NOT_FOUND = (
    "include dir not found: set PIPELINE_HUB_INCLUDE_DIR to the folder holding prompts/ (the repo's include/)"
)


def _shown(default: str) -> dict[str, str]:
    """``json_schema_extra`` naming the default a user sees when the field's own default is None."""
    return {"shown_default": default}


class HubSettings(BaseSettings):
    """Every environment variable the package reads; field ``x`` is ``PIPELINE_HUB_X`` unless aliased.

    Empty values count as unset. Construct through :func:`get_settings` (cached, errors as ConfigError).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    raw_uri: str = Field("s3://aws_default@raw/raw_data", description="Raw-zone root holding `<source>/<ds>/<files>`.")
    sanitized_uri: str = Field(
        "s3://aws_default@sanitized", description="Root that receives `sanitized_data/` and `quarantine/`."
    )
    staging_uri: str = Field(
        "s3://aws_default@raw/staging",
        description="Scratch space for chunks and answers; holds raw record text, so never the sanitized bucket.",
    )
    include_dir: Path | None = Field(
        None,
        description="The project's `include/` (prompts, PII and quality config, pricing, SQL, sample data).",
        json_schema_extra=_shown("`./include` if it holds `prompts/`, else an error"),
    )
    llm_conn_id: str = Field("llm_default", description="Airflow connection of the LLM provider.")
    llm_pool: str = Field("llm_default", description="Airflow pool of the DAGs' LLM tasks.")
    llm_cache: str | None = Field(
        None,
        description="Response cache: `disk:<dir>`, an object-store URI, or `off`.",
        json_schema_extra=_shown("`disk:.local/cache/llm` next to the include dir"),
    )
    chunk_size: int = Field(500, description="Records per chunk, i.e. per mapped prompt task.")
    max_chunks: int = Field(
        100, description="Most chunks per source: larger sources get larger chunks (Airflow's `max_map_length`)."
    )
    validate_batch_records: int = Field(
        100_000,
        ge=1,
        description="Records per Great Expectations validation batch: bounds the validate task's memory; "
        "a larger topic is validated in batches whose verdicts are combined.",
    )
    progress_interval_s: float = Field(
        10.0,
        gt=0,
        description="Seconds between a prompt task's progress log lines (records done/total, rate, ETA, "
        "quarantined, calls in flight).",
    )
    max_field_chars: PositiveInt = Field(1 << 20, description="Characters per string field of a record.")
    max_record_bytes: PositiveInt = Field(8 << 20, description="Bytes (UTF-8) per record.")
    max_nesting_depth: PositiveInt = Field(64, description="Nested lists/objects per record.")
    state_dir: Path | None = Field(
        None,
        description="Local state of in-process runs (staging of `pipeline-hub run`, mode 0700).",
        json_schema_extra=_shown("`$XDG_STATE_HOME/pipeline-hub`, else `~/.local/state/pipeline-hub`"),
    )
    xdg_state_home: str | None = Field(
        None,
        validation_alias="XDG_STATE_HOME",
        description="XDG Base Directory 0.8 state home (absolute; a relative value is ignored).",
        json_schema_extra=_shown("unset"),
    )
    raw_retention_days: int = Field(90, ge=1, description="Days raw and staging objects are kept.")
    artifacts_uri: str | None = Field(
        None,
        description="Where prompt scores, reports and evaluations go.",
        json_schema_extra=_shown("`.local/` next to the include dir"),
    )
    actor: str | None = Field(
        None, description="Who promotes or rolls back prompts (audit log).", json_schema_extra=_shown("login name")
    )
    code_version: str | None = Field(
        None,
        description="Code version stamped into Parquet metadata and manifests.",
        json_schema_extra=_shown("package version, `+g<commit>` in a git checkout"),
    )
    pii_key: SecretStr | None = Field(
        None,
        description="HMAC key (hex) of the pseudonyms.",
        json_schema_extra=_shown("`PIPELINE_HUB_PII_KEY_FILE`, else Airflow connection `pii_hmac_key`"),
    )
    pii_key_file: Path | None = Field(
        None, description="File holding the HMAC key (hex).", json_schema_extra=_shown("unset")
    )
    debug: bool = Field(False, description="CLI errors show their traceback (as `--debug`).")
    alert_conn_id: str | None = Field(
        None,
        description="Airflow SMTP connection of alert mails (its extra `from_email` is the sender).",
        json_schema_extra=_shown("unset: no mail"),
    )
    alert_to: str | None = Field(
        None, description="Recipients of alert mails, comma-separated.", json_schema_extra=_shown("unset")
    )
    alert_apprise_conn_id: str | None = Field(
        None,
        description="Airflow Apprise connection of alerts (Slack, Teams, ...).",
        json_schema_extra=_shown("unset: none"),
    )
    alert_quarantine_rate: float = Field(
        0.2, ge=0, le=1, description="Alert when a published topic quarantined more than this fraction of its records."
    )
    drift_baseline_days: PositiveInt = Field(
        7, description="Days before `ds` whose published partitions are the drift baseline (`pipeline-hub drift`)."
    )
    drift_psi_threshold: float = Field(
        0.2,
        gt=0,
        description="PSI over which a topic's drift is reported over threshold (`pipeline-hub drift` exits 1).",
    )


def env_name(name: str) -> str:
    """The environment variable of field ``name`` of :class:`HubSettings`."""
    alias = HubSettings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + name.upper()


def _env_key() -> tuple[tuple[str, str], ...]:
    """The environment values :class:`HubSettings` depends on (the cache key of :func:`get_settings`)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX) or k == "XDG_STATE_HOME"))


@functools.lru_cache(maxsize=16)
def _settings_for(_key: tuple[tuple[str, str], ...]) -> HubSettings:
    try:
        return HubSettings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            var = name if name.isupper() else env_name(name) if name in HubSettings.model_fields else name
            problems.append(f"{var}={err.get('input')!r}: {err['msg']}")
        raise ConfigError("; ".join(problems) + " (fix or unset the variable)") from None


def get_settings() -> HubSettings:
    """The validated settings of the current environment (read once per distinct environment).

    Raises :class:`ConfigError` (a ``ValueError``) naming each variable with a bad value.
    """
    return _settings_for(_env_key())


get_settings.cache_clear = _settings_for.cache_clear  # type: ignore[attr-defined]


def include_dir() -> Path:
    """The ``include/`` directory: ``PIPELINE_HUB_INCLUDE_DIR``, else ``./include`` when it holds ``prompts/``.

    Raises :class:`ConfigError` when neither applies.
    """
    explicit = get_settings().include_dir
    if explicit is not None:
        return explicit.expanduser().resolve()
    here = Path.cwd() / "include"
    if (here / "prompts").is_dir():
        return here.resolve()
    raise ConfigError(INCLUDE_NOT_FOUND)


def local_dir() -> Path:
    """The git-ignored ``.local/`` next to the include dir (the checkout's ``.local/``); not created here."""
    return include_dir().parent / ".local"


def state_dir() -> Path:
    """The local state directory: ``PIPELINE_HUB_STATE_DIR``, else ``$XDG_STATE_HOME/pipeline-hub``, else
    ``~/.local/state/pipeline-hub`` (XDG Base Directory Specification: a relative ``XDG_STATE_HOME`` is
    invalid and ignored). Not created here."""
    settings = get_settings()
    if settings.state_dir is not None:
        return settings.state_dir.expanduser().resolve()
    xdg = settings.xdg_state_home
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "pipeline-hub"


def spool_dir() -> Path:
    """``<state dir>/spool`` (:func:`state_dir`), created with mode 0700: where raw record text that must
    touch local disk goes (anonymous temporary files), never the system temp dir."""
    path = state_dir() / "spool"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def connection_defined(conn_id: str) -> bool:
    """True when Airflow defines the connection ``conn_id`` (``BaseHook.get_connection``: environment,
    metadata database or secrets backend); the callers word their own one-line error."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def settings_table() -> str:
    """README "Settings": a Markdown table, one row per :class:`HubSettings` field (variable, default, meaning)."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, info in HubSettings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        default = extra.get("shown_default") or f"`{info.default}`"
        rows.append(f"| `{env_name(name)}` | {default} | {info.description} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class Settings:
    """Locations and knobs of one pipeline run (see :class:`HubSettings` for the variables)."""

    raw_root: str = "s3://aws_default@raw/raw_data"
    sanitized_root: str = "s3://aws_default@sanitized"
    staging_root: str = "s3://aws_default@raw/staging"
    include: Path = field(default_factory=include_dir)
    llm_conn_id: str = "llm_default"
    chunk_size: int = 500
    max_chunks: int = 100
    validate_batch_records: int = 100_000
    max_field_chars: int = 1 << 20
    max_record_bytes: int = 8 << 20
    max_nesting_depth: int = 64

    def __post_init__(self) -> None:
        for name in ("max_field_chars", "max_record_bytes", "max_nesting_depth"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(
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
        """Build settings from :func:`get_settings`; keyword ``overrides`` win when not None."""
        s = get_settings()
        values = {
            "raw_root": s.raw_uri,
            "sanitized_root": s.sanitized_uri,
            "staging_root": s.staging_uri,
            "llm_conn_id": s.llm_conn_id,
            "chunk_size": s.chunk_size,
            "max_chunks": s.max_chunks,
            "validate_batch_records": s.validate_batch_records,
            "max_field_chars": s.max_field_chars,
            "max_record_bytes": s.max_record_bytes,
            "max_nesting_depth": s.max_nesting_depth,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
