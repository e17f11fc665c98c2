"""The regression check: compare a study's fresh leaderboard with the reference numbers committed under
results/reference/, metric by metric, with a tolerance per metric from conf/regress.yaml.

    python -m benchmarks.regress smoke_digits            # exit 1 if any metric dropped or is missing
    python -m benchmarks.regress smoke_digits --update   # write the reference from the current leaderboard
    python -m benchmarks.regress smoke_digits --add      # add the rows the reference lacks (a new method)
    python -m benchmarks.regress smoke_digits --also-accept   # a second environment's run: keep the worse

The reference file is only ever written by --update, --add or --also-accept from a leaderboard the project
computed.
``--add`` first runs the check on the rows both have (and refuses to add anything if one dropped), then
appends the fresh rows the reference lacks, leaving every existing row as it was. ``--also-accept`` takes
the fresh leaderboard as a second trusted measurement of the same code in another environment (another
CPU kind, or newer NumPy / SciPy / scikit-learn: a net trained for a few hundred steps follows the order
of its floating-point sums, which both change), so that the check passes in both: each row the two share
becomes the worse of the two means (and the larger interval), rows new to the reference are added. It
refuses a run with fewer seeds than the reference, and prints every row it lowers with the two values.
Use it only for the same code in a new environment (the records name the CPU and the library versions):
it lowers the bar in every environment, and a real drop taken in by it is not caught afterwards.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from benchmarks import protocol_base
from benchmarks.leaderboard import lower_is_better
from benchmarks.records import load_records, write_csv_atomic

KEYS = ["dataset", "protocol", "method", "metric"]
CONFIG = Path(__file__).resolve().parent.parent / "conf" / "regress.yaml"
PRESETS = CONFIG.parent / "experiment"


def thread_note(results: Path, study: str, presets: Path = PRESETS) -> str | None:
    """A note when the study's runs used another CPU thread count than its preset pins (the count its reference
    was made at): the count changes the order of floating-point sums, so a trained net's numbers move with it."""
    preset = presets / f"{study}.yaml"
    pinned = OmegaConf.load(preset).get("threads") if preset.is_file() else None
    if pinned is None:
        return None
    used = [r.get("threads") for r in load_records(results / "runs" / study)[0] if r.get("status") == "ok"]
    other = sorted({t for t in used if t is not None and t != pinned})
    if not other:
        return None
    count = sum(t in other for t in used)
    return (f"note: {count} of {len(used)} runs of {study} used threads={'/'.join(map(str, other))}, but its "
            f"reference was made at threads={pinned} ({preset.name} pins it), and the thread count moves trained "
            f"nets' numbers as a seed does; re-run at threads={pinned} to compare like with like")


def compare(fresh: pd.DataFrame, reference: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """Every reference metric with its fresh value, the change (positive = better) and a verdict."""
    tol = settings.get("tolerance", {}) or {}
    merged = reference[KEYS + ["mean", "n_seeds"]].merge(fresh[KEYS + ["mean", "n_seeds"]], on=KEYS, how="left",
                                                         suffixes=("_reference", "_fresh"))
    sign = merged["metric"].map(lambda m: -1.0 if lower_is_better(m) else 1.0)
    merged["change"] = sign * (merged["mean_fresh"] - merged["mean_reference"])
    by_protocol = settings.get("protocol_tolerance", {}) or {}
    merged["tolerance"] = [float(by_protocol.get(p, by_protocol.get(protocol_base(p),  # @split<k>: the protocol's
                                                             tol.get(m, settings["default_tolerance"]))))
                           for p, m in zip(merged["protocol"], merged["metric"])]
    merged["verdict"] = "ok"
    merged.loc[merged["change"] < -merged["tolerance"], "verdict"] = "DROPPED"
    merged.loc[merged["n_seeds_fresh"] < merged["n_seeds_reference"], "verdict"] = "FEWER SEEDS"
    merged.loc[merged["mean_fresh"].isna(), "verdict"] = "MISSING"
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--reference", type=Path, default=None,
                        help="reference CSV (default: <results>/reference/<study>.csv)")
    parser.add_argument("--update", action="store_true", help="write the reference from the current leaderboard")
    parser.add_argument("--add", action="store_true",
                        help="append the leaderboard rows the reference lacks, after checking the rows both have")
    parser.add_argument("--also-accept", action="store_true",
                        help="a second environment's measurement: each shared row keeps the worse mean; new rows added")
    parser.add_argument("--config", type=Path, default=CONFIG)
    args = parser.parse_args(argv)
    table_path = args.results / args.study / "leaderboard.csv"
    ref_path = args.reference or args.results / "reference" / f"{args.study}.csv"
    if not table_path.is_file():
        print(f"No leaderboard at {table_path}; run `python -m benchmarks.report {args.study}` first.", file=sys.stderr)
        return 2
    fresh = pd.read_csv(table_path)
    if args.update:
        write_csv_atomic(ref_path, fresh[KEYS + ["mean", "ci95", "n_seeds"]])
        print(f"Wrote {len(fresh)} reference numbers to {ref_path}")
        return 0
    if not ref_path.is_file():
        print(f"No reference at {ref_path}; create it with --update from a trusted run.", file=sys.stderr)
        return 2
    settings = OmegaConf.to_container(OmegaConf.load(args.config))
    reference = pd.read_csv(ref_path)
    if args.add:
        return add_rows(fresh, reference, ref_path, settings)
    if args.also_accept:
        return accept_second(fresh, reference, ref_path)
    note = thread_note(args.results, args.study)
    if note is not None:
        print(note)
    result = compare(fresh, reference, settings)
    bad = result[result["verdict"] != "ok"]
    counts = result["verdict"].value_counts()
    print(f"Regression check of {table_path} against {ref_path}: {len(result)} metrics, "
          f"{counts.get('DROPPED', 0)} dropped, {counts.get('MISSING', 0)} missing, "
          f"{counts.get('FEWER SEEDS', 0)} with fewer seeds.")
    if len(bad):
        print(bad.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        return 1
    return 0


def add_rows(fresh: pd.DataFrame, reference: pd.DataFrame, ref_path: Path, settings: dict) -> int:
    """Append to the reference the fresh rows it lacks, once the rows both hold pass the check."""
    shared = reference.merge(fresh[KEYS], on=KEYS, how="inner")
    if len(shared):
        result = compare(fresh, shared, settings)
        bad = result[result["verdict"] != "ok"]
        if len(bad):
            print(f"Not adding to {ref_path}: rows it already holds dropped:\n"
                  + bad.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=sys.stderr)
            return 1
    known = reference[KEYS].apply(tuple, axis=1)
    new = fresh[~fresh[KEYS].apply(tuple, axis=1).isin(set(known))]
    write_csv_atomic(ref_path, pd.concat([reference, new[KEYS + ["mean", "ci95", "n_seeds"]]], ignore_index=True))
    print(f"Added {len(new)} reference numbers to {ref_path} ({len(shared)} rows it held checked, "
          f"{len(reference)} kept as they were)")
    return 0


def accept_second(fresh: pd.DataFrame, reference: pd.DataFrame, ref_path: Path) -> int:
    """Each reference row the fresh leaderboard shares becomes the worse of the two means (and the wider
    interval, the fewer seeds' count stays the reference's); fresh rows it lacks are appended."""
    merged = reference.merge(fresh[KEYS + ["mean", "ci95", "n_seeds"]], on=KEYS, how="left", suffixes=("", "_fresh"))
    fewer = merged[merged["n_seeds_fresh"] < merged["n_seeds"]]
    if len(fewer):
        print(f"Not merging into {ref_path}: {len(fewer)} rows were run on fewer seeds than the reference holds "
              f"(e.g. {', '.join(fewer[KEYS].astype(str).agg('/'.join, axis=1).head(3))}); run the full preset",
              file=sys.stderr)
        return 1
    lower = merged["metric"].map(lower_is_better)
    seen = merged["mean_fresh"].notna()
    worse = merged["mean_fresh"].where(lower, -merged["mean_fresh"]) > merged["mean"].where(lower, -merged["mean"])
    moved = seen & worse
    merged.loc[moved, "mean"] = merged.loc[moved, "mean_fresh"]
    merged.loc[seen, "ci95"] = merged.loc[seen, ["ci95", "ci95_fresh"]].max(axis=1)
    known = set(reference[KEYS].apply(tuple, axis=1))
    new = fresh[~fresh[KEYS].apply(tuple, axis=1).isin(known)]
    out = pd.concat([merged[KEYS + ["mean", "ci95", "n_seeds"]], new[KEYS + ["mean", "ci95", "n_seeds"]]],
                    ignore_index=True)
    write_csv_atomic(ref_path, out)
    if moved.any():
        shown = merged.loc[moved, KEYS + ["mean_fresh"]].assign(was=reference.loc[moved.values, "mean"].values)
        print("rows lowered to the fresh value (was -> now):\n" + shown.rename(columns={"mean_fresh": "now"})[
            KEYS + ["was", "now"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"{ref_path}: {int(moved.sum())} of {int(seen.sum())} shared rows now hold the fresh (worse) value, "
          f"{int(seen.sum() - moved.sum())} kept theirs; {len(new)} rows added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
