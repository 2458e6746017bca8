"""Audience activation: audience rules, destinations (HTTP APIs), sync ledger, hashing, CSV exports.

Pure Python + DuckDB; nothing here imports dagster or orchestration, and nothing runs at import time.
"""
