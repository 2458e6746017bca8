"""Time the BTYD fits at scale: `python -m bench.btyd_fit [--customers 1000000] [--old]`.

Customers are simulated from the published CDNOW BG/NBD fit converted to days (r 0.243, alpha 30.9, a 0.793,
b 2.426) over a 540-day window with acquisition days uniform in it, and Gamma-Gamma spend (p 6.25, q 3.74,
v 15.44). --old also times the BG/NBD fit of ml/btyd.py as of commit OLD_COMMIT (per-customer likelihood,
L-BFGS-B without gradient, then a 4000-iteration Nelder-Mead polish) for the before/after comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ml import btyd

OLD_COMMIT = "963d47c"
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


def _old_module():
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:ml/btyd.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    spec = importlib.util.spec_from_loader("btyd_old", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    exec(compile(source, "btyd_old.py", "exec"), module.__dict__)
    return module


def _timed(label: str, function, *args) -> None:
    start = time.perf_counter()
    params = function(*args)
    print(f"{label:<34} {time.perf_counter() - start:8.2f} s  {params}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--old", action="store_true", help="also time the pre-change BG/NBD fit")
    args = parser.parse_args(argv)
    x, t_x, age, spend = simulate(args.customers)
    triples = len(np.unique(np.column_stack([x, t_x, age]), axis=0))
    print(f"{args.customers:,} customers, {int((x > 0).sum()):,} repeat buyers, {triples:,} distinct triples")
    _timed("BG/NBD (weighted triples, jac)", btyd.fit_bgnbd, x, t_x, age)
    _timed("Pareto/NBD (weighted triples)", btyd.fit_pareto_nbd, x, t_x, age)
    _timed("Gamma-Gamma (weighted pairs, jac)", btyd.fit_gamma_gamma, x, spend)
    if args.old:
        _timed(f"BG/NBD as of {OLD_COMMIT}", _old_module().fit_bgnbd, x, t_x, age)
    return 0


if __name__ == "__main__":
    sys.exit(main())
