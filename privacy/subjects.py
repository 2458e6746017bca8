"""Salted hashes of a data subject's identifiers, and the per-installation secret (the salt) behind them.

A receipt or the suppression list must recognise a person again without naming them: each identifier is kept as
HMAC-SHA256(salt, value). The salt is a per-installation secret: without it the hashes cannot be tested against a
list of guessed ids or e-mails (plain SHA-256 of a customer number can be reversed by trying every number).
It is SEGMINT_PRIVACY_SALT when set, else a random 256-bit value written once to `<data dir>/privacy/salt`
(mode 0600). Losing it makes the suppression list useless for new ingests: back it up with the warehouse.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

SALT_ENV = "SEGMINT_PRIVACY_SALT"
PRIVACY_DIR = "privacy"
SALT_FILE = "salt"
MIN_SALT_CHARS = 16


class PrivacyError(ValueError):
    """A privacy setting or request segmint cannot use; the message is one line naming what is wrong."""


def privacy_dir(data_dir: Path) -> Path:
    """Where segmint keeps its privacy state on disk (salt, receipt chain head)."""
    return Path(data_dir) / PRIVACY_DIR


def load_salt(data_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """SEGMINT_PRIVACY_SALT, else the installation's salt file (created with a random value on first use)."""
    env = os.environ if env is None else env
    configured = (env.get(SALT_ENV) or "").strip()
    if configured:
        if len(configured) < MIN_SALT_CHARS:
            raise PrivacyError(f"{SALT_ENV} must be at least {MIN_SALT_CHARS} characters (a random secret)")
        return configured
    path = privacy_dir(data_dir) / SALT_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_hex(32)
    # Create-exclusive with owner-only permissions: a concurrent first use never gets two different salts.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(salt + "\n")
    return salt


def subject_hash(salt: str, value: str) -> str:
    """HMAC-SHA256 of one identifier (stripped, as ingest keeps it) under the salt, 64 hex characters."""
    return hmac.new(salt.encode("utf-8"), str(value).strip().encode("utf-8"), hashlib.sha256).hexdigest()


def hashes_of(salt: str, values: Iterable[str]) -> dict[str, str]:
    """value -> subject_hash for each distinct non-blank value."""
    return {value: subject_hash(salt, value) for value in {str(v).strip() for v in values} if value}
