"""Special categories of personal data (GDPR art. 9): the denylist, and the landing screen that drops them.

The denylist is `config/special_categories.yaml` (versioned, extendable under `custom:`). Three callers use it:
- the landing ingest (`screen_source`): a matching column is removed from the loaded source before any record
  is parsed, so neither the raw tables nor raw.quarantine's `raw_record` ever hold it;
- config validation (`find_special_category`): an audience rule, a playbook entry or a model feature naming a
  matching column is refused with one line naming the file and field.
Names are matched on their normalized form (lower case, non-alphanumeric runs as `_`): "Health Condition" and
`health-condition` are both `health_condition`. The shipped name regexes match whole `_`-separated words, so
`race` does not catch `trace_id`; a camel-case `HealthCondition` is one word and needs its own pattern.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from landing.sources import RECORD_INDEX, LoadedSource, source_column, sql_string

DEFAULT_DENYLIST_PATH = Path(__file__).resolve().parents[1] / "config" / "special_categories.yaml"
# Identifiers in a SQL rule or a YAML field: words of letters, digits and `_` (a quoted identifier is matched on
# its inner words too, which only errs on the side of refusing).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SpecialCategoryError(ValueError):
    """A config file names a special-category column, or the denylist itself is malformed; one line."""


@dataclass(frozen=True)
class Category:
    """One art. 9 category: regexes on normalized column names and on values (case-insensitive)."""

    name: str
    column_names: tuple[str, ...]
    values: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Denylist:
    """The parsed denylist: its version and its categories (shipped and custom patterns merged)."""

    version: str
    categories: tuple[Category, ...]
    _compiled: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for category in self.categories:
            self._compiled[category.name] = tuple(re.compile(p) for p in category.column_names)

    def category_of_name(self, column: str) -> str | None:
        """The first category whose name patterns match `column` (normalized), None when none does."""
        normalized = normalize_name(column)
        for category in self.categories:
            if any(pattern.search(normalized) for pattern in self._compiled[category.name]):
                return category.name
        return None


@dataclass(frozen=True)
class DroppedColumn:
    """A landing column removed at ingest: which file, which column, which category, matched by name or value."""

    source_file: str
    column: str
    category: str
    matched_by: str  # "column name" | "values"

    def note(self) -> str:
        return (
            f"column '{self.column}' dropped at ingest: special category {self.category} (matched by {self.matched_by})"
        )


def normalize_name(name: str) -> str:
    """`Health Condition` -> `health_condition`: accents off, lower case, non-alphanumeric runs as `_`, trimmed."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.strip().lower()).strip("_")


def _patterns(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise SpecialCategoryError(f"{where}: must be a list of regex strings")
    for pattern in raw:
        try:
            re.compile(pattern)
        except re.error as error:
            raise SpecialCategoryError(f"{where}: {pattern!r} is not a valid regex ({error})") from None
    return tuple(raw)


def parse_denylist(document: Any, source: str = "special_categories.yaml") -> Denylist:
    """A Denylist from the parsed YAML; `custom:` entries extend (or add) categories. One-line errors."""
    if not isinstance(document, dict) or not isinstance(document.get("categories"), dict):
        raise SpecialCategoryError(f"{source}: needs a `categories` mapping")
    if "version" not in document:
        raise SpecialCategoryError(f"{source}: missing `version`")
    custom = document.get("custom") or {}
    if not isinstance(custom, dict):
        raise SpecialCategoryError(f"{source}: `custom` must be a mapping of category -> patterns")
    merged: dict[str, Category] = {}
    for section, entries in (("categories", document["categories"]), ("custom", custom)):
        for name, entry in entries.items():
            where = f"{source}: {section}.{name}"
            if not isinstance(entry, dict):
                raise SpecialCategoryError(f"{where}: must be a mapping with column_names and/or values")
            unknown = set(entry) - {"description", "column_names", "values"}
            if unknown:
                raise SpecialCategoryError(f"{where}: unknown field(s) {sorted(unknown)}")
            names = _patterns(entry.get("column_names"), f"{where}.column_names")
            values = _patterns(entry.get("values"), f"{where}.values")
            for pattern in values:
                _check_duckdb_regex(pattern, f"{where}.values")
            previous = merged.get(str(name))
            if previous is not None:
                names, values = previous.column_names + names, previous.values + values
            merged[str(name)] = Category(str(name), names, values, str(entry.get("description") or ""))
    return Denylist(version=str(document["version"]), categories=tuple(merged.values()))


def _check_duckdb_regex(pattern: str, where: str) -> None:
    # Values are matched in DuckDB (RE2): refuse a pattern RE2 cannot run (backreferences, lookarounds) up front.
    try:
        duckdb.sql(f"SELECT regexp_matches('', {sql_string(pattern)}, 'i')").fetchall()
    except duckdb.Error as error:
        first_line = str(error).splitlines()[0]
        raise SpecialCategoryError(f"{where}: {pattern!r} is not a valid RE2 regex ({first_line})") from None


def load_denylist(path: str | Path = DEFAULT_DENYLIST_PATH) -> Denylist:
    """The denylist from its YAML file; a missing or malformed file is a one-line SpecialCategoryError.

    There is no silent fallback: without the file, special-category data would enter unnoticed.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecialCategoryError(f"{path}: special-category denylist not found") from None
    except yaml.YAMLError as error:
        raise SpecialCategoryError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_denylist(document, source=path.name)


def _any_match_sql(column: str, patterns: list[str]) -> str:
    # One RE2 alternation per column: a single automaton pass per value, whatever the number of patterns.
    combined = "|".join(f"(?:{pattern})" for pattern in patterns)
    return f"coalesce(bool_or(regexp_matches(CAST({column} AS VARCHAR), {sql_string(combined)}, 'i')), false)"


def _values_category(
    conn: duckdb.DuckDBPyConnection, source: LoadedSource, positions: list[int], denylist: Denylist
) -> dict[int, str]:
    """The first category whose value patterns match some value of each column.

    One scan of the file tests every column against all patterns at once; only a column that matched is scanned
    again, per category, to name it (rare: such a column is dropped).
    """
    patterns = [pattern for category in denylist.categories for pattern in category.values]
    if not patterns or not positions:
        return {}
    checks = ", ".join(_any_match_sql(source_column(position), patterns) for position in positions)
    row = conn.execute(f"SELECT {checks} FROM {source.relation}").fetchall()[0]
    found: dict[int, str] = {}
    for position in (position for position, matched in zip(positions, row, strict=True) if matched):
        categories = [category for category in denylist.categories if category.values]
        checks = ", ".join(_any_match_sql(source_column(position), list(c.values)) for c in categories)
        per_category = conn.execute(f"SELECT {checks} FROM {source.relation}").fetchall()[0]
        found[position] = next(c.name for c, matched in zip(categories, per_category, strict=True) if matched)
    return found


def screen_source(
    conn: duckdb.DuckDBPyConnection,
    source: LoadedSource,
    file_name: str,
    contract_names: frozenset[str],
    denylist: Denylist,
) -> tuple[LoadedSource, tuple[DroppedColumn, ...]]:
    """The source without its special-category columns, and what was dropped.

    By name: any column. By value: only columns outside the landing contract (`contract_names`), whose
    meaning segmint does not know; a contract column such as first_name is judged by its name alone.
    The returned relation renumbers the kept columns c0..cK, so every later step sees a file without them.
    """
    dropped: dict[int, DroppedColumn] = {}
    for position, name in enumerate(source.header):
        category = denylist.category_of_name(name)
        if category is not None:
            dropped[position] = DroppedColumn(file_name, name, category, "column name")
    unknown = [
        position
        for position, name in enumerate(source.header)
        if position not in dropped and normalize_name(name) not in contract_names
    ]
    if unknown and source.rows_in:
        for position, category in _values_category(conn, source, unknown, denylist).items():
            dropped[position] = DroppedColumn(file_name, source.header[position], category, "values")
    if not dropped:
        return source, ()
    kept = [position for position in range(len(source.header)) if position not in dropped]
    columns = "".join(f", {source_column(old)} AS {source_column(new)}" for new, old in enumerate(kept))
    relation = f"(SELECT {RECORD_INDEX}{columns} FROM {source.relation})"
    screened = LoadedSource(
        relation=relation,
        header=tuple(source.header[position] for position in kept),
        types=tuple(source.types[position] for position in kept),
        rows_in=source.rows_in,
        notes=source.notes,
        is_parquet=source.is_parquet,
        delimiter=source.delimiter,
    )
    return screened, tuple(dropped[position] for position in sorted(dropped))


def find_special_category(text: str, denylist: Denylist) -> tuple[str, str] | None:
    """(identifier, category) for the first identifier in `text` (a SQL rule, a name) that the denylist names."""
    for identifier in _IDENTIFIER.findall(text):
        category = denylist.category_of_name(identifier)
        if category is not None:
            return identifier, category
    return None


def special_category_columns(columns: list[str] | tuple[str, ...], denylist: Denylist) -> list[tuple[str, str]]:
    """(column, category) for every column name the denylist matches, in the given order."""
    return [(column, category) for column in columns if (category := denylist.category_of_name(column)) is not None]


def _text_category(text: str, denylist: Denylist) -> str | None:
    """The first category a free text names: a name pattern on its words, or a value pattern on it."""
    normalized = normalize_name(text)
    for category in denylist.categories:
        if any(pattern.search(normalized) for pattern in denylist._compiled[category.name]):
            return category.name
        if any(re.search(pattern, text, re.IGNORECASE) for pattern in category.values):
            return category.name
    return None


def _scrub_json(value: Any, contract_names: frozenset[str], denylist: Denylist, found: list[str]) -> Any:
    """`value` without the keys (at any depth) that name a special category or hold one under a non-contract key."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            category = denylist.category_of_name(str(key))
            if category is None and normalize_name(str(key)) not in contract_names and isinstance(item, str):
                category = next(
                    (c.name for c in denylist.categories if any(re.search(p, item, re.IGNORECASE) for p in c.values)),
                    None,
                )
            if category is not None:
                found.append(category)
                continue
            kept[key] = _scrub_json(item, contract_names, denylist, found)
        return kept
    if isinstance(value, list):
        return [_scrub_json(item, contract_names, denylist, found) for item in value]
    return value


def scrub_record_text(text: str, contract_names: frozenset[str], denylist: Denylist) -> tuple[str, tuple[str, ...]]:
    """A quarantined source record without its special-category fields, and the categories removed.

    A JSON record loses the matching keys (any depth); a record that is not JSON (a broken line) and names a
    category anywhere is withheld whole: `{"withheld": "special-category data (<category>)"}`.
    """
    try:
        document = json.loads(text)
    except ValueError:
        category = _text_category(text, denylist)
        if category is None:
            return text, ()
        return json.dumps({"withheld": f"special-category data ({category})"}), (category,)
    found: list[str] = []
    cleaned = _scrub_json(document, contract_names, denylist, found)
    if not found:
        return text, ()
    return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")), tuple(dict.fromkeys(found))


def scrub_quarantined_records(
    conn: duckdb.DuckDBPyConnection, quarantine: str, where: str, contract_names: frozenset[str], denylist: Denylist
) -> int:
    """Scrub `raw_record` of the quarantine rows selected by `where` (scrub_record_text); the number changed.

    For records quarantined in their source form (a format translator's rejects), which no column screen saw.
    """
    rows = conn.execute(f"SELECT rowid, raw_record FROM {quarantine} WHERE {where}").fetchall()
    changed = []
    for rowid, text in rows:
        cleaned, categories = scrub_record_text(text or "", contract_names, denylist)
        if categories:
            changed.append([cleaned, rowid])
    if changed:
        conn.executemany(f"UPDATE {quarantine} SET raw_record = ? WHERE rowid = ?", changed)
    return len(changed)
