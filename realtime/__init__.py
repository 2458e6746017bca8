"""segmint's real-time segment service: pure core (engine, rules, events), durable log, serving bundle, HTTP layer.

Nothing here imports dagster or orchestration (docs/ARCHITECTURE.md); the Dagster asset that writes the
serving bundle lives in orchestration/defs/realtime.py.
"""
