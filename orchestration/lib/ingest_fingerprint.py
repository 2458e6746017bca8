"""The version of everything raw_tables reads: when it is unchanged, the raw tables it would write are the same.

The ingest (landing/ingest.py) is a function of the landing files, the real-time service's log files, the as-of
date and CLV horizon, the landing options (currency, date format, delimiter, source format, the special-category
denylist), the suppression list and its salt, and its own code. `ingest_fingerprint` hashes all of them (file
contents, not their dates: a copied or touched file with the same bytes is the same input); raw_tables records it
as the raw tables' Dagster data version and, when the next run computes the same fingerprint and the warehouse
still holds the rows it recorded, keeps the tables instead of re-reading every file ("kept: inputs unchanged" in
its metadata).

This only helps a run whose inputs did not change. When only the as-of date moved forward (the next day over
the same files), `append_inputs` (the same record without the as-of date) lets the ingest append the records
now due instead of reading every file (landing/append.py). A day that brings a new export (new bytes) ingests
again in full. SEGMINT_FORCE_INGEST=1 re-ingests in full whatever the fingerprint says.
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
# Settings an append ingest may see change: the as-of date (forward only; landing/append.py) and where the
# warehouse file lies (the held records and the ingest state travel inside it).
APPEND_MOVABLE_SETTINGS = ("as_of", "warehouse")


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


def ingest_inputs(
    landing_files: Iterable[Path],
    realtime_log_files: Iterable[Path],
    settings: dict[str, object],
    suppression: Iterable[str],
    salt: str,
    code: str | None = None,
) -> dict[str, object]:
    """Every input of the ingest, files and code as sha256 digests (JSON-ready)."""
    return {
        "version": FINGERPRINT_VERSION,
        "landing": files_digest(landing_files),
        "realtime_log": files_digest(realtime_log_files),
        "settings": settings,
        "suppression": sorted(suppression),
        "salt": hashlib.sha256(salt.encode()).hexdigest(),
        "code": code if code is not None else code_digest(),
    }


def inputs_fingerprint(inputs: dict[str, object]) -> str:
    """One hex digest of an ingest_inputs record; equal digests mean equal raw tables."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def append_inputs(inputs: dict[str, object]) -> dict[str, object]:
    """The inputs an append ingest must find unchanged: all but APPEND_MOVABLE_SETTINGS (ingest_landing)."""
    settings = {k: v for k, v in dict(inputs["settings"]).items() if k not in APPEND_MOVABLE_SETTINGS}
    return inputs | {"settings": settings}
