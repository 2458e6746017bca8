"""Which compiled dbt models translate from DuckDB to a server warehouse's SQL dialect (checked with sqlglot).

A first answer to "will the same models run on Snowflake/BigQuery/Postgres" that needs no server: sqlglot
parses the DuckDB SQL and reports the constructs it cannot express in the target dialect. Passing here is
necessary, not sufficient: only a run on the real adapter proves the models.

`python -m bench.portability COMPILED_DIR` prints one line per model and dialect.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import sqlglot
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

TARGET_DIALECTS = ("snowflake", "bigquery", "postgres")


def unsupported_constructs(sql: str, dialect: str) -> list[str]:
    """What sqlglot cannot express when translating DuckDB `sql` to `dialect`; empty when everything translates."""
    try:
        expressions = sqlglot.parse(sql, read="duckdb")
    except ParseError as error:
        return [f"DuckDB SQL does not parse: {str(error).splitlines()[0]}"]
    problems: list[str] = []
    for expression in expressions:
        if expression is None:
            continue
        try:
            expression.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as error:
            problems.extend(line.strip() for line in str(error).splitlines() if line.strip())
    return sorted(set(problems))


def main(argv: Sequence[str] | None = None) -> None:
    """Checks every compiled model (not the tests) under a dbt `target/compiled` folder."""
    parser = argparse.ArgumentParser(prog="python -m bench.portability")
    parser.add_argument("compiled_dir", type=Path)
    args = parser.parse_args(argv)
    for path in sorted(args.compiled_dir.rglob("models/**/*.sql")):
        if any(part.endswith(".yml") for part in path.parts):
            continue  # compiled generic tests
        for dialect in TARGET_DIALECTS:
            problems = unsupported_constructs(path.read_text(), dialect)
            print(f"{path.stem:35s} {dialect:10s} {'ok' if not problems else '; '.join(problems)}")


if __name__ == "__main__":
    main()
