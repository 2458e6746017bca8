"""The CLV champion at many cuts of the two real logs (the pre-registered sweep of bench/results/clv_sweep.md).

Usage:
  python -m bench.clv_sweep run DATASET PATH OUT.jsonl [DAY:H ...]   # every grid cut of DATASET, or only those given
  python -m bench.clv_sweep report OUT.jsonl ...                      # the markdown table + summary of the runs

DATASET is cdnow or completejourney, PATH as `bench.champion_cdnow` takes it. Each cut runs `champion_cdnow.run_cut`
(back-test + production step + both BTYD peers, no Dagster) and appends one JSON line, so a run can be split over
processes or resumed (cuts already in OUT are skipped).
"""

from __future__ import annotations

import calendar
import json
import resource
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from bench import champion_cdnow
from bench.clv import PEERS
from ml import champion


def month_ends(first: tuple[int, int], last: tuple[int, int]) -> list[date]:
    year, month = first
    out = []
    while (year, month) <= last:
        out.append(date(year, month, calendar.monthrange(year, month)[1]))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


# (first day of the log = day 0, last day, as-of month ends, horizons, the README's cuts as (day, h))
GRIDS = {
    "cdnow": (date(1997, 1, 1), date(1998, 6, 30), month_ends((1997, 4), (1998, 3)), (30, 90, 180)),
    "completejourney": (date(2017, 1, 1), date(2017, 12, 31), month_ends((2017, 3), (2017, 11)), (30, 60, 90)),
}
README_CUTS = {
    "cdnow": {(150, 90), (272, 90), (364, 180), (454, 90)},
    "completejourney": {(150, 90), (272, 90), (303, 60), (180, 180)},
}
LEVEL_BAND = (0.8, 1.25)  # the sweep's failure band (pre-registered), wider than done_when's 0.9-1.1
SPEARMAN_SLACK = 0.02


def grid_cuts(dataset: str) -> list[tuple[int, int]]:
    first, last, ends, horizons = GRIDS[dataset]
    return [((end - first).days, h) for end in ends for h in horizons if end + timedelta(days=h) <= last]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(dataset: str, path: str, out: Path, cuts: list[tuple[int, int]]) -> None:
    done = set()
    if out.exists():
        done = {(r["day"], r["horizon"]) for r in map(json.loads, out.read_text().splitlines())}
    shop = champion_cdnow.SHOPS[dataset](path)
    first = GRIDS[dataset][0]
    for day, horizon in cuts:
        if (day, horizon) in done:
            continue
        started = cpu_seconds()
        record = {"dataset": dataset, "day": day, "horizon": horizon, "as_of": str(first + timedelta(days=day))}
        record["readme_cut"] = (day, horizon) in README_CUTS[dataset]
        try:
            result, production = champion_cdnow.run_cut(shop, day, horizon)
        except Exception as error:  # a crash is a finding: record it and go on with the next cut
            record["error"] = f"{type(error).__name__}: {error}"
        else:
            reported = result.evaluation[result.evaluation["backtest_window"] == champion.EVALUATION]
            record.update(
                champion=result.champion,
                mode=result.mode,
                seasonality=str(reported["seasonality"].iloc[0]),
                reason=result.reason,
                notes=list(result.notes),
                rows=production.drop(columns="cut").to_dict("records"),
                criteria=[[name, ok, figures] for name, ok, figures in champion_cdnow.criteria(production)],
            )
        record["cpu_s"] = round(cpu_seconds() - started, 1)
        with out.open("a") as sink:
            sink.write(json.dumps(record, default=str) + "\n")
        print(json.dumps({k: record.get(k) for k in ("as_of", "horizon", "champion", "mode", "error", "cpu_s")}))
        sys.stdout.flush()


def flat(record: dict) -> dict:
    """One row per cut: segmint's and the peers' four metrics, the criteria passed, the failure flags."""
    row = {k: record[k] for k in ("dataset", "as_of", "day", "horizon", "readme_cut")}
    if "error" in record:
        return row | {"error": record["error"]}
    rows = pd.DataFrame(record["rows"]).set_index("model")
    ours = rows.loc[rows.index.str.startswith("segmint")].iloc[0]
    peers = rows.loc[list(PEERS)]
    row |= {"champion": record["champion"], "mode": record["mode"], "seasonality": record["seasonality"]}
    for label, values in [("seg", ours), ("bg", rows.loc["bgnbd"]), ("pnbd", rows.loc["pareto_nbd"])]:
        for metric in ("spearman", "propensity_auc", "decile_mape", "calibration_ratio"):
            row[f"{label}_{metric}"] = values[metric]
    row |= {f"pass_{i}": ok for i, (_, ok, _) in enumerate(record["criteria"])}
    row["passed"] = sum(ok for _, ok, _ in record["criteria"])
    row["level_failure"] = not (LEVEL_BAND[0] <= ours["calibration_ratio"] <= LEVEL_BAND[1])
    row["spearman_failure"] = bool(ours["spearman"] < peers["spearman"].max() - SPEARMAN_SLACK)
    return row


CRITERIA = ["Spearman > best peer", "AUC > best peer", "decile MAPE < best peer", "level in 0.9-1.1"]


def report(paths: list[str]) -> str:
    records = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines()]
    table = pd.DataFrame([flat(r) for r in records]).sort_values(["dataset", "day", "horizon"])
    lines = [
        "| log | as-of | h | champion | mode | seasonality | Spearman seg / BG / PNBD | AUC seg / BG / PNBD "
        "| decile MAPE seg / BG / PNBD | level seg / BG / PNBD | criteria | failure |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        cut = f"**{row['as_of']}**" if row["readme_cut"] else row["as_of"]
        if isinstance(row.get("error"), str):
            lines.append(f"| {row['dataset']} | {cut} | {row['horizon']} | CRASH: {row['error']} |||||||||")
            continue

        def trio(metric: str, row: dict = row) -> str:
            return " / ".join(f"{row[f'{m}_{metric}']:.3f}" for m in ("seg", "bg", "pnbd"))

        failure = ", ".join(
            name for name, flag in [("level", row["level_failure"]), ("Spearman", row["spearman_failure"])] if flag
        )
        lines.append(
            f"| {row['dataset']} | {cut} | {row['horizon']} | `{row['champion']}` | {row['mode']} | "
            f"{row['seasonality']} | {trio('spearman')} | {trio('propensity_auc')} | {trio('decile_mape')} | "
            f"{trio('calibration_ratio')} | {row['passed']} of 4 | {failure} |"
        )
    lines.append("")
    ok = table[table.get("error", pd.Series(index=table.index, dtype=object)).isna()]
    for label, subset in [("unseen", ok[~ok["readme_cut"]]), ("README cuts", ok[ok["readme_cut"]])]:
        for dataset, cuts in [("both logs", subset), *subset.groupby("dataset")]:
            if cuts.empty:
                continue
            shares = ", ".join(f"{name} {cuts[f'pass_{i}'].sum()}/{len(cuts)}" for i, name in enumerate(CRITERIA))
            level = cuts["seg_calibration_ratio"]
            worst = level.iloc[(level - 1).abs().argmax()]
            lines.append(
                f"- {label}, {dataset} ({len(cuts)} cuts): {shares}; criteria {cuts['passed'].sum()} of "
                f"{4 * len(cuts)}; segmint level median {level.median():.3f}, worst {worst:.3f} "
                f"(range {level.min():.3f}-{level.max():.3f}); failures: level {cuts['level_failure'].sum()}, "
                f"Spearman {cuts['spearman_failure'].sum()}"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if argv[0] == "run":
        dataset, path, out = argv[1], argv[2], Path(argv[3])
        cuts = [tuple(int(v) for v in c.split(":")) for c in argv[4:]] or grid_cuts(dataset)
        run(dataset, path, out, cuts)
    else:
        print(report(argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
