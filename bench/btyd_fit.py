"""Time the BTYD fits at scale: `python -m bench.btyd_fit [--customers 1000000] [--old]`.

Customers are simulated from the published CDNOW BG/NBD fit converted to days (r 0.243, alpha 30.9, a 0.793,
b 2.426) over a 540-day window with acquisition days uniform in it, and Gamma-Gamma spend (p 6.25, q 3.74,
v 15.44). Times each fit and each model's 90-day forecast (P(alive), expected purchases, spend, days to the next
order) of every customer. --before also times the fits and forecasts of ml/btyd.py as of BEFORE_COMMIT (per-customer
special functions, BLAS threads as the machine has them); --old the BG/NBD fit as of OLD_COMMIT (per-customer
likelihood, L-BFGS-B without gradient, then a 4000-iteration Nelder-Mead polish).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ml import btyd

OLD_COMMIT = "963d47c"
BEFORE_COMMIT = "ced45e4"  # before the per-distinct-value computation, the shared spend fit and single-threaded fits
HORIZON_DAYS = 90
WINDOW_DAYS = 540


def simulate(customers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T, mean repeat spend) in whole days, like customer_features."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.243, 1 / (4.414 * 7), customers)
    dropout = rng.beta(0.793, 2.426, customers)
    age = rng.integers(1, WINDOW_DAYS + 1, customers).astype(float)
    x, t_x, clock = np.zeros(customers), np.zeros(customers), np.zeros(customers)
    alive = np.ones(customers, dtype=bool)
    while alive.any():
        clock = clock + rng.exponential(1 / np.maximum(rate, 1e-12))
        bought = alive & (clock <= age)
        x[bought] += 1
        t_x[bought] = clock[bought]
        alive = bought & (rng.random(customers) > dropout)
    nu = rng.gamma(3.74, 1 / 15.44, customers)
    spend = rng.gamma(6.25 * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1)
    return x, np.floor(t_x), age, np.round(np.where(x > 0, spend, 0.0), 2)


def _old_module(commit: str = OLD_COMMIT):
    source = subprocess.run(
        ["git", "show", f"{commit}:ml/btyd.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    spec = importlib.util.spec_from_loader(f"btyd_{commit}", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    exec(compile(source, f"btyd_{commit}.py", "exec"), module.__dict__)
    return module


def _timed(label: str, function, *args):
    start = time.perf_counter()
    result = function(*args)
    shown = result if not isinstance(result, np.ndarray) else f"{result.size:,} values"
    print(f"{label:<44} {time.perf_counter() - start:8.2f} s  {shown}", flush=True)
    return result


def _forecast(module, params, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, spend_params, spend: np.ndarray):
    """What FittedBTYD.forecast computes per customer, from arrays (so any version of ml/btyd.py can run it)."""
    module.p_alive(params, x, t_x, age)
    module.expected_purchases(params, HORIZON_DAYS, x, t_x, age)
    module.expected_days_to_next_purchase(params, x, t_x, age, within=HORIZON_DAYS)
    return module.expected_average_spend(spend_params, x, spend)


def _time_version(label: str, module, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, spend: np.ndarray) -> None:
    bgnbd = _timed(f"{label} BG/NBD fit", module.fit_bgnbd, x, t_x, age)
    pareto = _timed(f"{label} Pareto/NBD fit", module.fit_pareto_nbd, x, t_x, age)
    repeat = x > 0
    gamma_gamma = _timed(f"{label} Gamma-Gamma fit", module.fit_gamma_gamma, x[repeat], spend[repeat])
    for name, params in (("BG/NBD", bgnbd), ("Pareto/NBD", pareto)):
        _timed(f"{label} {name} forecast", _forecast, module, params, x, t_x, age, gamma_gamma, spend)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--before", action="store_true", help=f"also time ml/btyd.py as of {BEFORE_COMMIT}")
    parser.add_argument("--old", action="store_true", help=f"also time the BG/NBD fit as of {OLD_COMMIT}")
    args = parser.parse_args(argv)
    x, t_x, age, spend = simulate(args.customers)
    triples = len(np.unique(np.column_stack([x, t_x, age]), axis=0))
    pairs = len(np.unique(np.column_stack([x, t_x]), axis=0)) + len(np.unique(np.column_stack([x, age]), axis=0))
    print(
        f"{args.customers:,} customers, {int((x > 0).sum()):,} repeat buyers, {triples:,} distinct (x, t_x, T),"
        f" {pairs:,} distinct (x, t_x) + (x, T); load {os.getloadavg()[0]:.1f}"
    )
    _time_version("now:", btyd, x, t_x, age, spend)
    if args.before:
        _time_version(f"{BEFORE_COMMIT}:", _old_module(BEFORE_COMMIT), x, t_x, age, spend)
    if args.old:
        _timed(f"{OLD_COMMIT}: BG/NBD fit", _old_module().fit_bgnbd, x, t_x, age)
    return 0


if __name__ == "__main__":
    sys.exit(main())
