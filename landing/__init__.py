"""Landing zone -> typed raw.* tables in DuckDB, with quarantine (the only entry point of user data)."""

from landing.ingest import FileReport, LandingOptions, LandingReport, ingest_landing, quarantine_summary
from landing.sources import LandingError

__all__ = ["FileReport", "LandingError", "LandingOptions", "LandingReport", "ingest_landing", "quarantine_summary"]
