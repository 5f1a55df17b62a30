"""Where the dev services keep their state and which ports they use (:class:`ServicesConfig`).

The repository root is found from the current directory (:func:`find_repo_root`): this is a dev tool
run from a checkout. Runtime code does not use any of it.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServiceError

SERVICES = ("s3", "llm")
HOST = "127.0.0.1"
DEFAULT_S3_PORT = 8333
DEFAULT_LLM_PORT = 8090
DEFAULT_BUCKETS = ("raw", "sanitized")
REGION = "us-east-1"
STOP_TIMEOUT = 10.0
S3_READY_TIMEOUT = 60.0
LLM_READY_TIMEOUT = 180.0


def find_repo_root(start: Path | str | None = None) -> Path:
    """Nearest directory at or above ``start`` (default: cwd) whose ``pyproject.toml`` names the project
    ``prompt-pipeline-hub`` (``[project] name``); ``start`` itself when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        pyproject = directory / "pyproject.toml"
        with contextlib.suppress(OSError, ValueError):
            if pyproject.is_file():
                project = tomllib.loads(pyproject.read_text(errors="replace")).get("project", {})
                if project.get("name") == "prompt-pipeline-hub":
                    return directory
    return here


def resolve_home(home: Path | str | None = None) -> Path:
    """The state directory: ``home`` if given, else ``$PIPELINE_HUB_HOME``, else ``<repo>/.local``
    (absolute; not created)."""
    if home is None:
        home = os.environ.get("PIPELINE_HUB_HOME") or find_repo_root() / ".local"
    return Path(home).expanduser().resolve()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ServiceError(f"{name}={value!r} is not an integer port") from None


@dataclass(frozen=True)
class ServicesConfig:
    """Where the embedded services keep their state and which ports they use.

    ``s3_port`` is the SeaweedFS base port (S3 API port; the others follow, see
    :class:`pipeline_hub_dev.seaweedfs.SeaweedPorts`), ``llm_port`` the llama.cpp server port,
    ``buckets`` the S3 buckets created on start.
    """

    home: Path
    s3_port: int = DEFAULT_S3_PORT
    llm_port: int = DEFAULT_LLM_PORT
    buckets: tuple[str, ...] = DEFAULT_BUCKETS
    host: str = HOST

    @classmethod
    def from_env(cls, home: Path | str | None = None, **overrides: Any) -> ServicesConfig:
        """Read ``PIPELINE_HUB_S3_PORT``, ``PIPELINE_HUB_LLM_PORT``, ``PIPELINE_HUB_S3_BUCKETS``;
        keyword ``overrides`` that are not None win. Raises :class:`ServiceError` on a bad port value."""
        buckets = [b.strip() for b in os.environ.get("PIPELINE_HUB_S3_BUCKETS", "").split(",") if b.strip()]
        values: dict[str, Any] = {
            "home": resolve_home(home),
            "s3_port": _env_int("PIPELINE_HUB_S3_PORT", DEFAULT_S3_PORT),
            "llm_port": _env_int("PIPELINE_HUB_LLM_PORT", DEFAULT_LLM_PORT),
            "buckets": tuple(buckets) or DEFAULT_BUCKETS,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["buckets"] = tuple(values["buckets"])
        return cls(**values)

    run_dir = property(lambda self: self.home / "run")
    logs_dir = property(lambda self: self.home / "logs")
    s3_dir = property(lambda self: self.home / "s3")
    models_dir = property(lambda self: self.home / "models")
    secrets_dir = property(lambda self: self.home / "secrets")
    env_file = property(lambda self: self.home / "env.sh")
    pii_key_file = property(lambda self: self.home / "secrets" / "pii_hmac.key")
    s3_credentials_file = property(lambda self: self.home / "secrets" / "s3_credentials.json")

    def pid_file(self, service: str) -> Path:
        """``run/<service>.pid``."""
        return self.run_dir / f"{service}.pid"

    def state_file(self, service: str) -> Path:
        """``run/<service>.json``: endpoint, ports and log of the running process."""
        return self.run_dir / f"{service}.json"

    def log_file(self, service: str) -> Path:
        """``logs/<service>.log``."""
        return self.logs_dir / f"{service}.log"

    @property
    def s3_endpoint_url(self) -> str:
        """S3 API URL of the embedded SeaweedFS, e.g. ``http://127.0.0.1:8333``."""
        return f"http://{self.host}:{self.s3_port}"

    @property
    def llm_base_url(self) -> str:
        """OpenAI base URL of the embedded llama.cpp server, e.g. ``http://127.0.0.1:8090/v1``."""
        return f"http://{self.host}:{self.llm_port}/v1"


@dataclass(frozen=True)
class ServiceEndpoints:
    """Endpoint URLs the pipeline should use.

    ``s3``: S3 API ``endpoint_url`` (``http://127.0.0.1:8333``); ``llm``: OpenAI-compatible base URL
    including ``/v1``. ``*_external`` is True when a user override (see the package docstring) is in
    force; the URL is then the one found in that override, or None when it could not be read from it.
    """

    s3: str | None
    llm: str | None
    s3_external: bool = False
    llm_external: bool = False
