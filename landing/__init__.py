"""Landing zone -> typed raw.* tables in DuckDB, with quarantine (the only entry point of user data)."""

from landing.ingest import FileReport, LandingReport, ingest_landing, quarantine_summary
from landing.sources import LandingError

__all__ = ["FileReport", "LandingError", "LandingReport", "ingest_landing", "quarantine_summary"]
