"""Speed of the runs of some studies, from their records: what a GPU (or CPU) session reports beside its tables.

    python -m benchmarks.throughput ci_fashion_mnist ci_omniglot            # Markdown table on stdout
    python -m benchmarks.throughput ci_fashion_mnist --results DIR --out throughput.md

One row per (study, dataset, protocol, method, precision) over the study's ok records: the device the runs
named, how many runs, their summed run time, the median training steps per second
(``throughput.fit_steps_per_s``; learners that train nothing have none, and a run that loaded a cached fit
repeats that fit's own rate, so it is left out rather than counted twice) and the median evaluation images
per second (test samples embedded and scored per second of the protocol's evaluation,
``throughput.eval_test_samples_per_s``; "—" for a protocol that scores data outside the split, such as
``omniglot_oneshot``'s official runs). Then one line per study: its runs, summed run time and span (first
start to last finish: its wall time, if it ran in one go). A study with no ok record is named and left out;
unreadable records are named. Figures are read from the records, never typed in.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pandas as pd

from benchmarks.records import load_records
from benchmarks.suite import study_times


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def study_rows(records: list[dict], study: str) -> list[dict]:
    """Per (dataset, protocol, method, precision): device, runs, summed run time, median fit steps/s and
    eval images/s."""
    groups: dict[tuple[str, str, str, str], list[dict]] = {}
    for rec in records:
        precision = str((rec.get("config") or {}).get("precision", "fp32"))
        groups.setdefault((rec["dataset"], rec["protocol"], rec["method"], precision), []).append(rec)
    rows = []
    for (dataset, protocol, method, precision), recs in sorted(groups.items()):
        fitted = [r for r in recs if not (r.get("fit_cache") or {}).get("loaded")]
        rows.append({
            "study": study, "dataset": dataset, "protocol": protocol, "method": method, "precision": precision,
            "device": ", ".join(sorted({str(r.get("device")) for r in recs})),
            "runs": len(recs),
            "run_s": round(sum(r["timings"]["total_s"] for r in recs), 1),
            "fit_steps_per_s": _median([r["throughput"]["fit_steps_per_s"] for r in fitted
                                        if "fit_steps_per_s" in (r.get("throughput") or {})]),
            # records written before run.py left the rate out for protocols that score data outside the split
            # (omniglot_oneshot) hold 0 there: not a measured rate, so it is left out like a missing one
            "eval_images_per_s": _median([r["throughput"]["eval_test_samples_per_s"] for r in recs
                                          if (r.get("throughput") or {}).get("eval_test_samples_per_s", 0) > 0]),
        })
    return rows


def build(studies: list[str], results: Path) -> str:
    tables, totals = [], []
    for study in studies:
        root = results / "runs" / study
        if not root.is_dir():
            raise FileNotFoundError(f"no records of study {study} under {root}; run it first "
                                    f"(python -m benchmarks.run -m experiment={study}) or give --results")
        found, unreadable = load_records(root)
        for path in unreadable:
            print(f"WARNING: cannot read {path} (corrupt or another schema version); left out", file=sys.stderr)
        records = [r for r in found if r.get("status") == "ok"]
        if not records:
            print(f"WARNING: study {study} has no ok records under {root}; left out", file=sys.stderr)
            continue
        tables += study_rows(records, study)
        times = study_times(results, study)
        totals.append(f"- {study}: {times['ok_runs']} runs, {times['compute_s']:.0f} s of run time, "
                      f"span {times['span_s']:.0f} s")
    if not tables:
        raise FileNotFoundError(f"no ok records in any of {', '.join(studies)} under {results / 'runs'}")
    frame = pd.DataFrame(tables)
    for column in ("fit_steps_per_s", "eval_images_per_s"):
        frame[column] = frame[column].map(lambda v: "—" if v is None or pd.isna(v) else f"{v:,.4g}")
    return frame.to_markdown(index=False) + "\n\n" + "\n".join(totals) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", help="studies whose records to read (results/runs/<study>/)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        text = build(args.studies, args.results)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
