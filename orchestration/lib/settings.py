"""Run settings, read from the environment at run time (never at import).

One place for every path and default, so the Dagster resources, dbt's profile and the Makefile agree.

The data folder (demo shop, landing work files, model copies, exports, reports) belongs to one warehouse, so two
shops run from one checkout never share artefacts. Unless SEGMINT_DATA_DIR says otherwise it follows
SEGMINT_WAREHOUSE (`data_dir_for`): a warehouse named `warehouse.duckdb` keeps its files beside it
(`data/warehouse.duckdb` -> `data/`, the default layout), any other name gets a sibling folder named after it
(`/srv/acme.duckdb` -> `/srv/acme_data/`). With neither set: `data/` and `data/warehouse.duckdb`; with only
SEGMINT_DATA_DIR: the warehouse is `<SEGMINT_DATA_DIR>/warehouse.duckdb`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from landing.formats import SOURCE_FORMATS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
CONFIG_DIR = PROJECT_ROOT / "config"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
WAREHOUSE_FILE = "warehouse.duckdb"  # the warehouse's name inside a data folder
DATA_DIR_SUFFIX = "_data"  # <stem>_data/ beside a warehouse with any other name
DEFAULT_HORIZON_DAYS = 365
DEFAULT_DEMO_CUSTOMERS = 5000
DEFAULT_DEMO_SEED = 42
DEFAULT_MODEL_REFIT_DAYS = 7  # weekly; 0 refits on every run (ml/cadence.py owns the rule)
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
DATE_FORMAT_WORDS = ("DMY", "MDY")
CSV_DELIMITER_WORDS = {",": ",", ";": ";", "|": "|", "tab": "\t", "\\t": "\t"}
DEFAULT_EVENT_MAPPING = CONFIG_DIR / "event_mapping.yaml"
SPECIAL_CATEGORIES_FILE = CONFIG_DIR / "special_categories.yaml"  # GDPR art. 9 denylist (landing/special_categories.py)
# SEGMINT_ENGINE: where the SQL runs and the tables live. `duckdb` (one file, the default) or `spark` (Parquet
# tables under SEGMINT_SPARK_WAREHOUSE with a Hive metastore; README "Past one machine").
ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"
DEFAULT_SPARK_MASTER = "local[2]"
SPARK_WAREHOUSE_DIR = "spark-warehouse"  # <data dir>/spark-warehouse unless SEGMINT_SPARK_WAREHOUSE says otherwise


class SettingsError(ValueError):
    """A setting has a value segmint cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know about where data lives and which dates it covers."""

    data_dir: Path
    warehouse: Path
    landing_dir: Path | None  # None: generate the demo shop
    as_of: date | None  # None: the last accepted order date
    horizon_days: int
    demo_customers: int
    demo_seed: int
    currency: str | None = None  # reporting currency (ISO 4217); None: landing.ingest.choose_reporting_currency
    date_format: str | None = None  # DMY, MDY or a strptime pattern; None: detected per file
    csv_delimiter: str | None = None  # None: detected per file
    source_format: str | None = None  # None: detected from the landing files (landing/formats/)
    event_mapping: Path | None = None  # None: built-in presets only (the default file is absent)
    model_refit_days: int = DEFAULT_MODEL_REFIT_DAYS  # CLV chain and clustering refit at least this often
    force_refit: bool = False  # refit the CLV chain and clustering now, whatever the cadence
    force_ingest: bool = False  # re-read the landing files even when nothing raw_tables reads changed
    engine: str = DEFAULT_ENGINE  # duckdb | spark
    spark_master: str = DEFAULT_SPARK_MASTER  # local[N], spark://host:7077, yarn, ... (Spark engine only)
    spark_warehouse: Path | None = None  # None: <data_dir>/spark-warehouse (Spark engine only)

    @property
    def spark_warehouse_dir(self) -> Path:
        """Where the Spark engine keeps its Parquet tables (`<schema>.db/<table>/`) and its Derby metastore."""
        return self.spark_warehouse or self.data_dir / SPARK_WAREHOUSE_DIR

    @property
    def is_demo(self) -> bool:
        return self.landing_dir is None

    @property
    def demo_landing_dir(self) -> Path:
        return self.data_dir / "demo" / "landing"

    @property
    def demo_truth_dir(self) -> Path:
        """Ground truth of the demo shop; only tests and benchmarks read it."""
        return self.data_dir / "demo" / "truth"

    @property
    def landing_work_dir(self) -> Path:
        """Where a GA4/Segment/Shopify export is translated into contract files (kept for inspection)."""
        return self.data_dir / "landing_work"

    @property
    def realtime_log_dir(self) -> Path:
        """The real-time service's durable log (events-*.jsonl, transitions-*.jsonl), read by the next run."""
        return self.data_dir / "realtime" / "log"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def _int_setting(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _bool_setting(env: dict[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in TRUE_WORDS + FALSE_WORDS:
        raise SettingsError(f"{name}={raw!r} must be 1/true/yes or 0/false/no")
    return raw in TRUE_WORDS


def _date_setting(env: dict[str, str], name: str) -> date | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date (expected YYYY-MM-DD)") from None


def _currency_setting(env: dict[str, str]) -> str | None:
    raw = env.get("SEGMINT_CURRENCY", "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"[A-Za-z]{3}", raw):
        raise SettingsError(f"SEGMINT_CURRENCY={raw!r} is not a three-letter ISO 4217 code (e.g. EUR)")
    return raw.upper()


def _date_format_setting(env: dict[str, str]) -> str | None:
    raw = env.get("SEGMINT_DATE_FORMAT", "").strip()
    if not raw:
        return None
    if raw.upper() in DATE_FORMAT_WORDS:
        return raw.upper()
    if "%" in raw:
        return raw
    raise SettingsError(f"SEGMINT_DATE_FORMAT={raw!r} must be DMY, MDY or a strptime pattern such as %d.%m.%Y")


def _delimiter_setting(env: dict[str, str]) -> str | None:
    raw = env.get("SEGMINT_CSV_DELIMITER", "")
    if not raw:
        return None
    key = raw if raw.strip() == "" else raw.strip().lower()
    if key not in CSV_DELIMITER_WORDS:
        raise SettingsError(f"SEGMINT_CSV_DELIMITER={raw!r} must be one of , ; | tab")
    return CSV_DELIMITER_WORDS[key]


def _source_format_setting(env: dict[str, str]) -> str | None:
    raw = env.get("SEGMINT_SOURCE_FORMAT", "").strip().lower()
    if raw and raw not in SOURCE_FORMATS:
        raise SettingsError(f"SEGMINT_SOURCE_FORMAT={raw!r} is not one of {', '.join(SOURCE_FORMATS)}")
    return raw or None


def data_dir_for(warehouse: Path) -> Path:
    """The data folder that belongs to a warehouse file: its own folder for `warehouse.duckdb`, else `<stem>_data`."""
    if warehouse.name == WAREHOUSE_FILE:
        return warehouse.parent
    return warehouse.with_name(warehouse.stem + DATA_DIR_SUFFIX)


def _paths(env: dict[str, str]) -> tuple[Path, Path]:
    """(data_dir, warehouse), absolute: SEGMINT_DATA_DIR when set, else the data folder follows the warehouse."""
    data_raw, warehouse_raw = env.get("SEGMINT_DATA_DIR", "").strip(), env.get("SEGMINT_WAREHOUSE", "").strip()
    if warehouse_raw:
        warehouse = Path(warehouse_raw).expanduser().resolve()
        data_dir = Path(data_raw).expanduser().resolve() if data_raw else data_dir_for(warehouse)
        return data_dir, warehouse
    data_dir = Path(data_raw or DEFAULT_DATA_DIR).expanduser().resolve()
    return data_dir, data_dir / WAREHOUSE_FILE


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from SEGMINT_* environment variables; relative paths are made absolute."""
    env = dict(os.environ if env is None else env)
    data_dir, warehouse = _paths(env)
    landing_raw = env.get("SEGMINT_LANDING_DIR", "").strip()
    landing_dir = Path(landing_raw).expanduser().resolve() if landing_raw else None
    if landing_dir is not None and not landing_dir.is_dir():
        raise SettingsError(f"SEGMINT_LANDING_DIR={landing_raw!r} is not a folder")
    return Settings(
        data_dir=data_dir,
        warehouse=warehouse,
        landing_dir=landing_dir,
        as_of=_date_setting(env, "SEGMINT_AS_OF"),
        horizon_days=_int_setting(env, "SEGMINT_CLV_HORIZON_DAYS", DEFAULT_HORIZON_DAYS, minimum=7),
        demo_customers=_int_setting(env, "SEGMINT_DEMO_CUSTOMERS", DEFAULT_DEMO_CUSTOMERS, minimum=50),
        demo_seed=_int_setting(env, "SEGMINT_DEMO_SEED", DEFAULT_DEMO_SEED, minimum=0),
        currency=_currency_setting(env),
        date_format=_date_format_setting(env),
        csv_delimiter=_delimiter_setting(env),
        source_format=_source_format_setting(env),
        event_mapping=_event_mapping_setting(env),
        model_refit_days=_int_setting(env, "SEGMINT_MODEL_REFIT_DAYS", DEFAULT_MODEL_REFIT_DAYS, minimum=0),
        force_refit=_bool_setting(env, "SEGMINT_FORCE_REFIT"),
        force_ingest=_bool_setting(env, "SEGMINT_FORCE_INGEST"),
        engine=_engine_setting(env),
        spark_master=env.get("SEGMINT_SPARK_MASTER", "").strip() or DEFAULT_SPARK_MASTER,
        spark_warehouse=_optional_path(env, "SEGMINT_SPARK_WAREHOUSE"),
    )


def _engine_setting(env: dict[str, str]) -> str:
    raw = env.get("SEGMINT_ENGINE", "").strip().lower()
    if raw and raw not in ENGINES:
        raise SettingsError(f"SEGMINT_ENGINE={raw!r} is not one of {', '.join(ENGINES)}")
    return raw or DEFAULT_ENGINE


def _optional_path(env: dict[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def _event_mapping_setting(env: dict[str, str]) -> Path | None:
    """SEGMINT_EVENT_MAPPING (must exist), else config/event_mapping.yaml when present."""
    raw = env.get("SEGMINT_EVENT_MAPPING", "").strip()
    if not raw:
        return DEFAULT_EVENT_MAPPING if DEFAULT_EVENT_MAPPING.is_file() else None
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise SettingsError(f"SEGMINT_EVENT_MAPPING={raw!r} is not a file")
    return path
