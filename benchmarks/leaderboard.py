"""Leaderboard tables built with pandas from result records only.

Per (dataset, protocol, method, metric): the mean over training seeds with a 95% interval over seeds
(Student t) when there are two or more seeds and the learner depends on its seed (any metric of the row
differs between seeds), else the run's own interval (over episodes or queries): one seed, or a learner the
seed does not change (raw features, full-batch LMNN).
The spread over seeds is the honest one to compare methods by: it is usually far wider than one run's.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.stats import mean_ci

KEYS = ["dataset", "protocol", "method"]
# Lower is better for these, and for any metric named "<one of them>_<qualifier>" (eer_real,
# eer_reconstructed); every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"eer", "knn_error", "oneshot_error"})


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or any(metric.startswith(f"{name}_") for name in LOWER_IS_BETTER)


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (record, metric), plus one row per failed record with metric = None."""
    rows = []
    for rec in records:
        base = {"study": rec["study"], "dataset": rec["dataset"], "protocol": rec["protocol"],
                "method": rec["method"], "reference_row": rec.get("reference_row", False), "seed": rec["seed"],
                "budget": rec.get("budget"), "status": rec["status"], "run_dir": rec.get("_dir"),
                "fit_s": rec.get("timings", {}).get("fit_s"), "eval_s": rec.get("timings", {}).get("eval_s")}
        if rec["status"] != "ok":
            rows.append(base | {"metric": None, "value": np.nan, "run_ci95": np.nan, "n": 0,
                                "error": (rec.get("error") or {}).get("message")})
            continue
        for name, m in rec["metrics"].items():
            rows.append(base | {"metric": name, "value": m["mean"],
                                "run_ci95": np.nan if m["ci95"] is None else m["ci95"], "n": m["n"], "error": None})
    return pd.DataFrame(rows)


def aggregate(long: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard in long form: one row per (dataset, protocol, method, metric)."""
    ok = long[long["status"] == "ok"]
    # a row's learner depends on its training seed where any of its metrics differs between seeds; then every
    # metric of the row is given over seeds, one whose seeds happen to agree (two P@1 of 0.963) included
    seeded = ok.groupby(KEYS + ["metric"], sort=False)["value"].nunique().gt(1).groupby(level=KEYS).any()
    out = []
    for (dataset, protocol, method, metric), g in ok.groupby(KEYS + ["metric"], sort=False):
        g = g.sort_values("seed")
        stat = mean_ci(g["value"].to_numpy(), use_t=True)
        if stat.n >= 2 and seeded[(dataset, protocol, method)]:
            ci, ci_over = stat.ci95, "seeds"
        else:  # one seed, or a method the training seed does not change (raw, full-batch LMNN)
            run_ci = g["run_ci95"].iloc[0]
            ci, ci_over = (None, "none") if np.isnan(run_ci) else (float(run_ci), "within run")
        out.append({"dataset": dataset, "protocol": protocol, "method": method, "metric": metric,
                    "reference_row": bool(g["reference_row"].iloc[0]), "mean": stat.mean, "ci95": ci,
                    "ci_over": ci_over, "n_seeds": stat.n, "seeds": ",".join(str(s) for s in g["seed"]),
                    "mean_run_ci95": float(np.nanmean(g["run_ci95"])) if g["run_ci95"].notna().any() else None,
                    "lower_is_better": lower_is_better(metric),
                    "fit_s": float(g["fit_s"].mean())})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    # reference rows first, then learners, each in order of first appearance; protocols in order of their
    # numbers (fewshot@split2 before fewshot@split10)
    table["_order"] = (~table["reference_row"]).astype(int)
    table["_protocol"] = table["protocol"].map(lambda p: re.sub(r"\d+", lambda n: n.group().zfill(12), str(p)))
    return table.sort_values(["dataset", "_protocol", "_order"], kind="stable").drop(columns=["_order", "_protocol"]) \
        .reset_index(drop=True)


def ci_text(ci: float) -> str:
    """A 95% CI half-width at three decimals; a positive one that rounds to 0 is "<0.001" (the values differ,
    below the table's precision), so "0.000" only ever means no spread at all. Tables and figures use this."""
    return "<0.001" if 0 < ci < 5e-4 else f"{ci:.3f}"


def _cell(mean: float, ci: float | None, ci_over: str, vs_best: str = "", style: str = "markdown") -> str:
    """'mean ± ci' (with † for a run's own interval); the best row in bold and a tie with it marked ≈
    when the table holds the paired comparison (``benchmarks.comparison``)."""
    latex = style == "latex"
    pm, dagger = (r" $\pm$ ", r"$^\dagger$") if latex else (" ± ", " †")
    half = None if ci is None or np.isnan(ci) else ci_text(ci)
    if latex and half is not None:
        half = half.replace("<", r"$<$")
    text = f"{mean:.3f}" if half is None else f"{mean:.3f}{pm}{half}{dagger if ci_over == 'within run' else ''}"
    if vs_best == "best":
        return rf"\textbf{{{text}}}" if latex else f"**{text}**"
    if vs_best == "tie":
        return text + (r" $\approx$" if latex else " ≈")
    return text


def wide(table: pd.DataFrame, dataset: str, protocol: str, style: str = "markdown") -> pd.DataFrame:
    """Methods as rows, metrics as columns, cells 'mean ± ci95' (``style`` "markdown" or "latex")."""
    part = table[(table["dataset"] == dataset) & (table["protocol"] == protocol)].copy()
    marks = part["vs_best"] if "vs_best" in part else pd.Series("", index=part.index)
    part["cell"] = [_cell(m, c, o, v, style) for m, c, o, v in zip(part["mean"], part["ci95"], part["ci_over"], marks)]
    methods = list(dict.fromkeys(part["method"]))
    metrics = list(dict.fromkeys(part["metric"]))
    grid = part.pivot(index="method", columns="metric", values="cell").reindex(index=methods, columns=metrics)
    seeds = part.groupby("method", sort=False)["n_seeds"].max().reindex(methods)
    grid.insert(0, "seeds", seeds.astype(int))
    labels = {m: (f"{m} (ref.)" if part[part["method"] == m]["reference_row"].iloc[0] else m) for m in methods}
    grid.index = [labels[m] for m in methods]
    grid.index.name = "method"
    return grid.fillna("—")


def _sections(table: pd.DataFrame):
    for dataset in dict.fromkeys(table["dataset"]):
        for protocol in dict.fromkeys(table[table["dataset"] == dataset]["protocol"]):
            yield dataset, protocol, table[(table["dataset"] == dataset) & (table["protocol"] == protocol)]


def _note(part: pd.DataFrame) -> str:
    note = "mean over training seeds ± 95% CI over seeds (Student t; symmetric, not clipped to [0, 1])"
    if (part["ci_over"] == "within run").any():
        note += ("; † the interval is the run's own (over episodes, queries, test samples, or held-out "
                 "classes for verification): one training seed was run, or the seed does not change this row")
    if (part["ci_over"] == "none").any():
        note += "; no interval: a single number per run and a single distinct value over seeds"
    arrows = ", ".join(sorted(set(part[part["lower_is_better"]]["metric"])))
    note += f"; lower is better: {arrows}" if arrows else ""
    if "vs_best" in part:
        over = sorted(set(part["diff_over"]) - {""})
        note += ("; **bold**: best mean; ≈: not shown to differ from the best (95% interval of the paired "
                 f"difference over the same {' / '.join(over) if over else 'units'} holds 0; paired bootstrap, "
                 "no multiple-comparison correction)")
        untested = sorted(set(part.loc[part["vs_best"].str.startswith("untested"), "metric"]))
        note += f"; not tested (no per-unit values): {', '.join(untested)}" if untested else ""
    return note


def markdown(table: pd.DataFrame) -> str:
    parts = []
    for dataset, protocol, part in _sections(table):
        parts.append(f"### {dataset} · {protocol}\n\n{_note(part)}\n\n{wide(table, dataset, protocol).to_markdown()}\n")
    return "\n".join(parts)


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text


def latex(table: pd.DataFrame) -> str:
    """One booktabs ``tabular`` per (dataset, protocol), each in a ``table`` float with a caption; needs
    ``\\usepackage{booktabs}`` in the preamble."""
    parts = ["% simbench leaderboard; needs \\usepackage{booktabs}"]
    for dataset, protocol, part in _sections(table):
        grid = wide(table, dataset, protocol, style="latex")
        columns = ["method", *grid.columns]
        head = " & ".join(_latex_escape(str(c)) for c in columns) + r" \\"
        rows = [" & ".join([_latex_escape(str(name)), *(str(v) for v in row)]) + r" \\"
                for name, row in zip(grid.index, grid.itertuples(index=False))]
        caption = _latex_escape(f"{dataset} · {protocol}: ").replace("·", "--") + _latex_escape(_note(part)) \
            .replace("**bold**", r"\textbf{bold}").replace("±", r"$\pm$").replace("≈", r"$\approx$") \
            .replace("†", r"$^\dagger$")
        parts.append("\n".join([r"\begin{table}[ht]", r"\centering\small",
                                 rf"\begin{{tabular}}{{l{'r' * (len(columns) - 1)}}}", r"\toprule", head, r"\midrule",
                                 *rows, r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}",
                                 r"\end{table}"]))
    return "\n\n".join(parts) + "\n"


def roc_frame(records: list[dict]) -> pd.DataFrame:
    """All stored ROC points, one row per (record, point)."""
    frames = []
    for rec in records:
        if rec["status"] == "ok" and "roc" in rec.get("curves", {}):
            curve = pd.read_csv(Path(rec["_dir"]) / rec["curves"]["roc"])
            frames.append(curve.assign(dataset=rec["dataset"], protocol=rec["protocol"], method=rec["method"],
                                       seed=rec["seed"]))
    return pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=["fpr", "tpr", "dataset", "protocol", "method", "seed"])
