"""The serving bundle: what the segment service needs from the last materialization, in files that load fast.

Layout (under the data folder): `realtime/bundles/<version>/` holds
- `customers.parquet`: one row per known customer, sorted by customer_id, only CUSTOMER_COLUMNS (scores, batch
  segments and the playbook's recommended action; never e-mail, phone, names or addresses: the writer selects
  an allow-list and refuses PII_COLUMNS); strings dictionary-encoded, so 1 M customers load in well under a
  second into a dict id -> row plus numpy arrays;
- `lookalike.json`: the prospect lookalike model (ml/lookalike.py) in its native form for a standardised logistic
  regression: scaler means/scales, coefficients, intercept; scoring is a 10-term dot product in pure Python
  (microseconds, no scikit-learn call per event) and the file is safe to read (no pickle);
- `rules.yaml`: the real-time rules the bundle was built with;
- `manifest.json`: version, creation time, as-of date, row counts, file sizes and sha256.
`realtime/bundles/CURRENT` names the current version; it is replaced atomically (os.replace) only after the
version folder is complete, and the service polls it to hot-reload. The newest KEEP_BUNDLES versions are kept.

The behavioural cluster model is not packed: its clusters are fitted on purchase features an anonymous visitor
does not have, so the service serves each known customer's batch cluster (behavioral_segment) instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from realtime.rules import Rules, parse_rules

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
CUSTOMERS_FILE = "customers.parquet"
LOOKALIKE_FILE = "lookalike.json"
RULES_FILE = "rules.yaml"
MANIFEST_FILE = "manifest.json"
KEEP_BUNDLES = 3
LOAD_SLICE_ROWS = 10_000
CATEGORY_COLUMNS = ("rfm_segment", "behavioral_segment", "recommended_action")
NUMBER_COLUMNS = ("predicted_clv", "purchase_propensity")
CUSTOMER_COLUMNS = ("customer_id", *CATEGORY_COLUMNS, *NUMBER_COLUMNS)
# Never in a bundle: the service answers personalization tools in the browser.
PII_COLUMNS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "postal_code",
        "address",
        "street",
        "city",
        "ip",
        "ip_address",
        "birth_date",
    }
)


class BundleError(RuntimeError):
    """No usable bundle (missing CURRENT, missing files, wrong format); the message says which."""


def bundles_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "realtime" / "bundles"


def current_version(root: str | Path) -> str | None:
    """The version named by `<root>/CURRENT`, or None when there is no bundle yet."""
    try:
        text = (Path(root) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


# --- lookalike ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LookalikeScorer:
    """P(high value) from a visitor's behaviour features: sigmoid(intercept + sum(coef * (x - mean) / scale)).

    method "base_rate" (the lookalike fallback) scores every visitor the base rate.
    """

    method: str
    feature_columns: tuple[str, ...]
    log_scaled: frozenset[str]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    base_rate: float

    def score(self, features: dict[str, float]) -> float:
        if self.method == "base_rate" or not self.feature_columns:
            return self.base_rate
        z = self.intercept
        for name, mean, scale, coef in zip(self.feature_columns, self.mean, self.scale, self.coef):
            value = max(features.get(name, 0.0), 0.0) if name in self.log_scaled else features.get(name, 0.0)
            if name in self.log_scaled:
                value = math.log1p(value)
            z += coef * (value - mean) / scale
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LookalikeScorer:
        return cls(
            method=str(doc["method"]),
            feature_columns=tuple(doc.get("feature_columns", [])),
            log_scaled=frozenset(doc.get("log_scaled", [])),
            mean=tuple(float(v) for v in doc.get("mean", [])),
            scale=tuple(float(v) or 1.0 for v in doc.get("scale", [])),
            coef=tuple(float(v) for v in doc.get("coef", [])),
            intercept=float(doc.get("intercept", 0.0)),
            base_rate=float(doc.get("base_rate", 0.0)),
        )


def lookalike_json(model: Any) -> dict[str, Any]:
    """`lookalike.json` from an ml.lookalike.LookalikeModel (scaler + logistic regression pipeline, or base rate)."""
    from ml.lookalike import LOG_SCALED_FEATURES

    doc: dict[str, Any] = {
        "method": model.method,
        "feature_columns": list(model.feature_columns),
        "log_scaled": sorted(set(model.feature_columns) & LOG_SCALED_FEATURES),
        "base_rate": float(model.base_rate),
        "holdout_auc": None if pd.isna(model.holdout_auc) else float(model.holdout_auc),
        "n_train": int(model.n_train),
    }
    if model.estimator is not None:
        scaler, logistic = model.estimator[0], model.estimator[-1]
        doc.update(
            mean=[float(v) for v in scaler.mean_],
            scale=[float(v) for v in scaler.scale_],
            coef=[float(v) for v in logistic.coef_[0]],
            intercept=float(logistic.intercept_[0]),
        )
    else:
        doc["method"] = "base_rate"
    return doc


# --- known customers ----------------------------------------------------------------------------------------


class CustomerTable:
    """Known customers for O(1) lookups: a dict customer_id -> row over numpy arrays (categories as int codes)."""

    def __init__(self, table: pa.Table):
        # Built in slices with a GIL release between them: a hot reload runs in a worker thread, and one C call
        # over 1 M ids (to_pylist, dict) would hold the GIL and stall every request for a second or more.
        ids = table.column("customer_id")
        self.row_of: dict[str, int] = {}
        for start in range(0, len(ids), LOAD_SLICE_ROWS):
            chunk = ids.slice(start, LOAD_SLICE_ROWS).to_pylist()
            self.row_of.update(zip(chunk, range(start, start + len(chunk))))
            time.sleep(0)
        self.codes: dict[str, np.ndarray] = {}
        self.labels: dict[str, list[str | None]] = {}
        for name in CATEGORY_COLUMNS:
            column = table.column(name).combine_chunks()
            if not pa.types.is_dictionary(column.type):
                column = column.dictionary_encode()
            self.codes[name] = column.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
            self.labels[name] = column.dictionary.to_pylist()
        self.numbers = {
            name: table.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in NUMBER_COLUMNS
        }

    def release(self) -> None:
        """Empty the id index in slices (run in a worker thread after a reload, so freeing 1 M ids never stalls
        the event loop in one deallocation)."""
        row_of = self.row_of
        while row_of:
            for _ in range(min(LOAD_SLICE_ROWS, len(row_of))):
                row_of.popitem()
            time.sleep(0)

    def __len__(self) -> int:
        return len(self.row_of)

    def __contains__(self, customer_id: str) -> bool:
        return customer_id in self.row_of

    def get(self, customer_id: str) -> dict[str, Any] | None:
        row = self.row_of.get(customer_id)
        if row is None:
            return None
        record: dict[str, Any] = {}
        for name in CATEGORY_COLUMNS:
            code = int(self.codes[name][row])
            record[name] = self.labels[name][code] if code >= 0 else None
        for name in NUMBER_COLUMNS:
            value = float(self.numbers[name][row])
            record[name] = None if math.isnan(value) else value
        return record


@dataclass
class Bundle:
    """A loaded bundle: version, manifest, known customers, lookalike scorer and the rules it was built with."""

    version: str
    path: Path
    manifest: dict[str, Any]
    customers: CustomerTable
    lookalike: LookalikeScorer
    rules: Rules
    extra: dict[str, Any] = field(default_factory=dict)


def load_bundle(root: str | Path, version: str | None = None, rules: Rules | None = None) -> Bundle:
    """Load `<root>/<version>` (default: CURRENT). `rules` overrides the bundle's own rules (SEGMINT_REALTIME_RULES)."""
    root = Path(root)
    version = version or current_version(root)
    if version is None:
        raise BundleError(f"no serving bundle in {root} (no {CURRENT_FILE} file)")
    path = root / version
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"bundle {version}: format_version {manifest.get('format_version')} is not {FORMAT_VERSION}"
            )
        table = pq.read_table(path / CUSTOMERS_FILE, read_dictionary=list(CATEGORY_COLUMNS))
        lookalike = LookalikeScorer.from_json(json.loads((path / LOOKALIKE_FILE).read_text(encoding="utf-8")))
        bundle_rules = rules or parse_rules(
            (path / RULES_FILE).read_text(encoding="utf-8"), source=f"bundle {version} {RULES_FILE}"
        )
    except FileNotFoundError as error:
        raise BundleError(f"bundle {version} is incomplete: {error.filename} is missing") from None
    return Bundle(version, path, manifest, CustomerTable(table), lookalike, bundle_rules)


# --- writer -------------------------------------------------------------------------------------------------


def serving_customers(scores: pd.DataFrame, playbook: dict[str, Any]) -> pd.DataFrame:
    """marts.customer_scores rows -> the bundle's customer frame: CUSTOMER_COLUMNS, with recommended_action the
    playbook strategy of the customer's RFM segment (the playbook's default strategy when it has no entry)."""
    strategies = {
        name: entry.get("strategy")
        for name, entry in (playbook.get("segments") or {}).items()
        if isinstance(entry, dict)
    }
    default = (playbook.get("default") or {}).get("strategy")
    frame = scores.reindex(columns=[c for c in CUSTOMER_COLUMNS if c != "recommended_action"]).copy()
    # The rule once per distinct segment, then one vectorised lookup (a Python call per customer cost seconds at
    # 1 M customers, issue 18); a missing segment (code -1) takes the last entry, the default.
    codes, segments = pd.factorize(frame["rfm_segment"], use_na_sentinel=True)
    actions = [strategies.get(s, default) if isinstance(s, str) else default for s in segments]
    frame["recommended_action"] = np.array([*actions, default], dtype=object)[codes]
    return frame[list(CUSTOMER_COLUMNS)]


def customers_table(frame: pd.DataFrame) -> pa.Table:
    """The customers file's table: CUSTOMER_COLUMNS only (PII refused), sorted by customer_id, strings dictionary-encoded."""
    pii = sorted(PII_COLUMNS & set(frame.columns))
    missing = [column for column in CUSTOMER_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"the customers frame lacks {missing}")
    selected = frame[list(CUSTOMER_COLUMNS)].copy()
    if pii:  # the allow-list above already drops them; say so loudly in case someone widens it
        assert not set(pii) & set(selected.columns), f"PII columns would reach the bundle: {pii}"
    selected["customer_id"] = selected["customer_id"].astype(str)
    if selected["customer_id"].duplicated().any():
        raise ValueError("the customers frame has duplicate customer_id values")
    if not selected["customer_id"].is_monotonic_increasing:  # the asset reads them in order: no second sort
        selected = selected.sort_values("customer_id", kind="stable")
    arrays = {"customer_id": _string_array(selected["customer_id"])}
    for name in CATEGORY_COLUMNS:
        arrays[name] = _string_array(selected[name]).dictionary_encode()
    for name in NUMBER_COLUMNS:
        arrays[name] = pa.array(
            pd.to_numeric(selected[name], errors="coerce").to_numpy(dtype=float), pa.float64(), from_pandas=True
        )
    return pa.table(arrays)


def _string_array(values: pd.Series) -> pa.Array:
    """A text column as one Arrow string array, missing values as nulls. Arrow-backed strings (what DuckDB reads)
    are cast in Arrow: the same array as through a Python object per row, which cost ~1 s per 1 M customers."""
    chunks = getattr(values.array, "_pa_array", None)
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow" and chunks is not None:
        return pa.chunked_array(chunks).cast(pa.string()).combine_chunks()
    return pa.array(values.astype(object).where(values.notna(), None).to_numpy(dtype=object), pa.string())


def write_bundle(
    root: str | Path,
    customers: pd.DataFrame,
    lookalike: dict[str, Any],
    rules_text: str,
    as_of_date: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write a new version under `root`, point CURRENT at it, prune old versions; returns the manifest.

    The version is `<UTC time>-<first 10 hex of the content hash>`, so versions sort by creation time and two
    builds of the same content are recognisable.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    parse_rules(rules_text, source="rules packed into the bundle")  # never pack rules the service cannot read
    now = now or datetime.now(UTC)
    staging = root / f".tmp-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}"
    staging.mkdir()
    try:
        table = customers_table(customers)
        pq.write_table(table, staging / CUSTOMERS_FILE, compression="snappy")
        (staging / LOOKALIKE_FILE).write_text(json.dumps(lookalike, indent=2, sort_keys=True), encoding="utf-8")
        (staging / RULES_FILE).write_text(rules_text, encoding="utf-8")
        files = {}
        digest = hashlib.sha256()
        for name in (CUSTOMERS_FILE, LOOKALIKE_FILE, RULES_FILE):
            content = (staging / name).read_bytes()
            digest.update(content)
            files[name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        version = f"{now:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:10]}"
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "created_at": now.isoformat(),
            "as_of_date": as_of_date,
            "known_customers": table.num_rows,
            "lookalike_method": lookalike.get("method"),
            "files": files,
            "bytes": sum(f["bytes"] for f in files.values()),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _fsync_tree(staging)
        target = root / version
        if target.exists():  # same second, same content: already there
            shutil.rmtree(staging)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = root / f".{CURRENT_FILE}.tmp-{os.getpid()}"
    pointer.write_text(version + "\n", encoding="utf-8")
    with open(pointer, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, root / CURRENT_FILE)
    _prune(root, keep=version)
    return manifest


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _prune(root: Path, keep: str) -> None:
    versions = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in versions[:-KEEP_BUNDLES]:
        if name != keep:
            shutil.rmtree(root / name, ignore_errors=True)
