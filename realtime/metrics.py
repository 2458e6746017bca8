"""Prometheus text exposition (format 0.0.4) for the few series the service keeps; no client library needed."""

from __future__ import annotations

import bisect
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, cumulative = [], 0
        sep = "," if labels else ""
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {cumulative}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {self.sum}")
        out.append(f"{name}_count{braces} {self.count}")
        return out


class Metrics:
    """Request counters and latency per route, plus whatever gauges the service reports at scrape time."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = defaultdict(Histogram)
        self.counters: dict[str, int] = defaultdict(int)

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self.latency[route].observe(seconds)

    def render(
        self, gauges: dict[str, tuple[str, float, str]], counters: dict[str, tuple[str, float]], info: dict[str, str]
    ) -> str:
        """`gauges`: name -> (help, value, labels); `counters`: name -> (help, value); `info`: labels of segmint_realtime_info."""
        lines = [
            "# HELP segmint_realtime_requests_total HTTP requests answered, by route and status code.",
            "# TYPE segmint_realtime_requests_total counter",
        ]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f'segmint_realtime_requests_total{{route="{route}",code="{status}"}} {count}')
        lines += [
            "# HELP segmint_realtime_request_seconds Time from reading the request to the answer (log write included).",
            "# TYPE segmint_realtime_request_seconds histogram",
        ]
        for route, histogram in sorted(self.latency.items()):
            lines += histogram.lines("segmint_realtime_request_seconds", f'route="{route}"')
        for name, (help_text, value) in counters.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        for name, (help_text, value, labels) in gauges.items():
            braces = f"{{{labels}}}" if labels else ""
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{braces} {value}"]
        label_text = ",".join(f'{key}="{_escape(value)}"' for key, value in info.items())
        lines += [
            "# HELP segmint_realtime_info The serving bundle and settings in use.",
            "# TYPE segmint_realtime_info gauge",
            f"segmint_realtime_info{{{label_text}}} 1",
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
