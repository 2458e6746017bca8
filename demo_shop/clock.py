"""Time helpers on epoch seconds (int64, naive UTC): the shop's window, growth-shaped arrival times, time of day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from demo_shop.config import HOUR_WEIGHTS, MONTH_SEASONALITY, SECONDS_PER_DAY, SECONDS_PER_YEAR

_HOUR_CDF = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()


@dataclass(frozen=True)
class ShopWindow:
    """The observed period ends at `cutoff` (exclusive: midnight after end_date); the truth runs to `horizon_end`."""

    cutoff: int  # epoch seconds; landing rows are strictly before it
    horizon_end: int  # epoch seconds; future rows are in [cutoff, horizon_end)

    @classmethod
    def from_end_date(cls, end_date: date, future_days: int) -> ShopWindow:
        cutoff = epoch_seconds(end_date + timedelta(days=1))
        return cls(cutoff=cutoff, horizon_end=cutoff + future_days * SECONDS_PER_DAY)


def epoch_seconds(day: date) -> int:
    """Seconds since 1970-01-01 of midnight at the start of `day`."""
    return int((datetime(day.year, day.month, day.day) - datetime(1970, 1, 1)).total_seconds())


def growing_arrivals(n: int, end: int, span_years: float, growth: float, rng: np.random.Generator) -> np.ndarray:
    """n arrival times in [end - span, end) whose density grows like exp(growth * years): a growing shop."""
    u = rng.random(n)
    # Inverse CDF of a truncated exponential density on [0, 1] (in units of the span).
    position = np.log1p(u * np.expm1(growth)) / growth if growth else u
    start = end - span_years * SECONDS_PER_YEAR
    return (start + position * span_years * SECONDS_PER_YEAR).astype(np.int64)


def at_shopping_hour(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Same calendar day, new time of day drawn from when people shop (evenings more than nights)."""
    days = times // SECONDS_PER_DAY
    hours = np.searchsorted(_HOUR_CDF, rng.random(len(times)), side="right").clip(0, 23)
    seconds = rng.integers(0, 3_600, len(times))
    return days * SECONDS_PER_DAY + hours * 3_600 + seconds


def month_of(times: np.ndarray) -> np.ndarray:
    """Calendar month (1..12) of epoch seconds."""
    months = times.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return months % 12 + 1


def seasonality(times: np.ndarray) -> np.ndarray:
    """Relative buying intensity at these times (holiday season up, January down)."""
    return MONTH_SEASONALITY[month_of(times) - 1]
