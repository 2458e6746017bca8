"""Benchmark harness: generates shops of growing size, runs the whole graph as `make run` does, writes BENCHMARKS.md."""
