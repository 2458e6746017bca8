"""Privacy: erasure (right to be forgotten), the ingest suppression list, erasure receipts, consent checks.

Pure code over a DuckDB connection and the data folder; `orchestration` wraps it in assets, checks and the CLI.
"""
