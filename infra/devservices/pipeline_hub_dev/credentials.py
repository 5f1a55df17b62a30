"""Secrets of the dev services: the S3 credentials of the embedded SeaweedFS, the PII HMAC key, and
:func:`write_private` for files only the user may read (mode 0600, under ``<home>/secrets/``)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .config import ServicesConfig, resolve_home


@dataclass(frozen=True)
class S3Credentials:
    """Access key id and secret of the embedded S3 server."""

    access_key: str
    secret_key: str


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _secrets_dir(config: ServicesConfig) -> Path:
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.secrets_dir, 0o700)
    return config.secrets_dir


def ensure_pii_key(home: Path | str | None = None) -> Path:
    """Create ``secrets/pii_hmac.key`` (32 random bytes as 64 hex chars, mode 0600) unless it exists;
    return its path. An existing key is never replaced (pseudonyms depend on it)."""
    config = ServicesConfig(resolve_home(home))
    _secrets_dir(config)
    path = config.pii_key_file
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path


def s3_credentials(home: Path | str | None = None) -> S3Credentials:
    """Credentials of the embedded S3 server: ``PIPELINE_HUB_S3_ACCESS_KEY``/``_SECRET_KEY`` if both are
    set, else ``secrets/s3_credentials.json``, generated (mode 0600) on first use."""
    key, secret = os.environ.get("PIPELINE_HUB_S3_ACCESS_KEY"), os.environ.get("PIPELINE_HUB_S3_SECRET_KEY")
    if key and secret:
        return S3Credentials(key, secret)
    config = ServicesConfig(resolve_home(home))
    path = config.s3_credentials_file
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        data = json.loads(path.read_text())
        return S3Credentials(str(data["access_key"]), str(data["secret_key"]))
    _secrets_dir(config)
    creds = S3Credentials("PH" + secrets.token_hex(9).upper(), secrets.token_hex(20))
    write_private(path, json.dumps({"access_key": creds.access_key, "secret_key": creds.secret_key}) + "\n")
    return creds
