"""Keyed pseudonyms: HMAC-SHA256 (RFC 2104, FIPS 198-1) of a normalised value under a secret key.

The same person gets the same pseudonym in every run and topic (joinable), and nobody without the key
can recompute or reverse it. The key comes, in order, from ``PIPELINE_HUB_PII_KEY`` (hex), the file
named by ``PIPELINE_HUB_PII_KEY_FILE``, or the password of the Airflow connection ``pii_hmac_key``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from pipeline_hub.config import get_settings
from pipeline_hub.exceptions import PiiError

PREFIX = "psn_"
_WS = re.compile(r"\s+")
_PSEUDONYM = re.compile(rf"^{PREFIX}[0-9a-f]{{16}}$")


class MissingKeyError(PiiError, RuntimeError):
    """No pseudonymisation key is configured (see module docstring for where it is looked up)."""


def load_key() -> bytes:
    """Return the HMAC key bytes; raises :class:`MissingKeyError` when none is configured."""
    settings = get_settings()
    if settings.pii_key is not None:
        return bytes.fromhex(settings.pii_key.get_secret_value().strip())
    if settings.pii_key_file is not None:
        return bytes.fromhex(Path(settings.pii_key_file).read_text().strip())
    try:
        from airflow.sdk import BaseHook

        password = BaseHook.get_connection("pii_hmac_key").password
    except Exception:  # connection not defined
        password = None
    if password:
        return bytes.fromhex(password.strip())
    raise MissingKeyError(
        "no pseudonymisation key: set PIPELINE_HUB_PII_KEY (hex), PIPELINE_HUB_PII_KEY_FILE, "
        "or the password of the Airflow connection 'pii_hmac_key'"
    )


def normalise(value: str, kind: str) -> str:
    """Canonical form before hashing: e-mail lower-cased; phone digits (and a leading +); else case-folded."""
    value = value.strip()
    if kind == "EMAIL_ADDRESS":
        return value.lower()
    if kind == "PHONE_NUMBER":
        digits = re.sub(r"\D", "", value)
        return ("+" if value.startswith("+") else "") + digits
    return _WS.sub(" ", value).casefold()


def pseudonymize(value: str, kind: str, key: bytes) -> str:
    """``psn_`` + first 16 hex chars (64 bits) of HMAC-SHA256(key, kind ":" normalised value)."""
    message = f"{kind}:{normalise(value, kind)}".encode()
    return PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()[:16]


def is_pseudonym(value: str) -> bool:
    """True for a value that already is one of our pseudonyms (``psn_`` + 16 hex), e.g. one the LLM was sent."""
    return bool(_PSEUDONYM.match(value))
