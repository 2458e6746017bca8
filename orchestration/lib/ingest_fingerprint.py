"""The version of everything raw_tables reads: when it is unchanged, the raw tables it would write are the same.

The ingest (landing/ingest.py) is a function of the landing files, the real-time service's log files, the as-of
date and CLV horizon, the landing options (currency, date format, delimiter, source format, the special-category
denylist), the suppression list and its salt, and its own code. `ingest_fingerprint` hashes all of them (file
contents, not their dates: a copied or touched file with the same bytes is the same input); raw_tables records it
as the raw tables' Dagster data version and, when the next run computes the same fingerprint and the warehouse
still holds the rows it recorded, keeps the tables instead of re-reading every file ("kept: inputs unchanged" in
its metadata).

This only helps a run whose inputs did not change: a real day brings a new export (new bytes), so the daily
refresh ingests again. SEGMINT_FORCE_INGEST=1 re-ingests whatever the fingerprint says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The code that decides what raw.* holds: a change to any of these files re-ingests.
INGEST_CODE = ("landing", "privacy/erasure.py", "privacy/subjects.py", "orchestration/defs/landing.py")
FINGERPRINT_VERSION = "ingest-fingerprint-v1"


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def files_digest(paths: Iterable[Path]) -> dict[str, str]:
    """{file path: sha256 of its bytes}, for the regular files given (missing ones are left out). Keyed by the whole
    path: the real-time log keeps one folder per service instance with the same file names in each."""
    return {str(path): file_digest(path) for path in sorted(paths) if path.is_file()}


def code_digest(root: Path = PROJECT_ROOT, parts: Iterable[str] = INGEST_CODE) -> str:
    digest = hashlib.sha256()
    for part in parts:
        target = root / part
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            if path.is_file():
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def ingest_fingerprint(
    landing_files: Iterable[Path],
    realtime_log_files: Iterable[Path],
    settings: dict[str, object],
    suppression: Iterable[str],
    salt: str,
    code: str | None = None,
) -> str:
    """One hex digest of every input of the ingest; equal digests mean equal raw tables."""
    payload = {
        "version": FINGERPRINT_VERSION,
        "landing": files_digest(landing_files),
        "realtime_log": files_digest(realtime_log_files),
        "settings": settings,
        "suppression": sorted(suppression),
        "salt": hashlib.sha256(salt.encode()).hexdigest(),
        "code": code if code is not None else code_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
