"""Paper-style figures drawn from leaderboard tables only (never from records).

- every protocol's table (few-shot accuracy included): small multiples, one panel per metric, a dot per
  method with its 95% CI, every panel's axis of the same width (so a 0.97-vs-0.99 difference in P@1 is not
  flattened by NMI on the same axis, nor blown up beside a wide panel); chance marked on accuracy panels;
- verification: ROC curves per method on a log false-accept axis, the legend beside the axes, best first;
- set retrieval: mAP against the defining sets' outlier fraction, a line per method, 95% CI bands, one
  panel for one-class and one for polysemous concepts;
- a sweep over a size: methods named ``<family>_k<N>`` (e.g. divide and conquer with N learners) also get,
  per protocol, one panel per metric with the metric against N, a line per family and a 95% CI band.
Reference rows are marked "(ref.)"; a hollow marker or dashed line means a reference row. One style for
all of them (and for ``generation_figures``): ``STYLE`` below, set when this module is imported.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import protocol_base, protocol_tags  # noqa: E402
from benchmarks.leaderboard import ci_text  # noqa: E402

# The one look of every figure: small type for two-column papers, light grids, TrueType fonts in the PDFs
# (what publishers ask for; some refuse Type 3 fonts).
STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
         "legend.fontsize": 8, "grid.alpha": 0.3, "errorbar.capsize": 3, "lines.linewidth": 1.6,
         "pdf.fonttype": 42, "ps.fonttype": 42}
plt.rcParams.update(STYLE)

# Which metrics each protocol's panels show, in order; a protocol not listed gets all its metrics.
PANELS = {
    "retrieval": ["p_at_1", "map_at_r", "r_precision", "recall_at_4", "nmi"],
    "verification": ["auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3"],
}
PRETTY = {"p_at_1": "P@1", "map_at_r": "MAP@R", "r_precision": "R-precision", "nmi": "NMI", "auc": "AUC",
          "eer": "EER (lower is better)", "knn_error": "k-NN error (lower is better)",
          "tar_at_far_1e-2": "TAR @ FAR 1e-2", "tar_at_far_1e-3": "TAR @ FAR 1e-3"}


def pretty(metric: str) -> str:
    if metric in PRETTY:
        return PRETTY[metric]
    if m := re.fullmatch(r"acc_(\d+)w(\d+)s", metric):
        return f"{m[1]}-way {m[2]}-shot"
    if m := re.fullmatch(r"recall_at_(\d+)", metric):
        return f"Recall@{m[1]}"
    if m := NOISY.fullmatch(metric):
        return f"mAP, {'polysemous, ' if m['poly'] else ''}{int(m['rho'])}% outliers"
    return metric


def _save(fig, path: Path, dpi: int = 130) -> Path:
    """Write the figure as PNG at ``path`` and, for papers, as vector PDF beside it; returns the PNG path."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path


def _ci_note(part: pd.DataFrame) -> str:
    low, high = int(part["n_seeds"].min()), int(part["n_seeds"].max())
    seeds = f"{low}–{high}" if low != high else str(high)
    note = f"mean of {seeds} training seed{'s' if high > 1 else ''}, 95% CI over seeds"
    if (part["ci_over"] == "within run").any():
        note += "; † rows: one seed or seed-independent, CI over episodes/queries/held-out classes"
    if (part["ci_over"] == "none").any():
        note += "; no bar: one number per run, the same for every seed"
    return note + "; intervals cut at 0 and 1"


def _labels(part: pd.DataFrame, methods: list[str]) -> list[str]:
    refs = set(part[part["reference_row"]]["method"])
    within = set(part[part["ci_over"] == "within run"]["method"])
    return [f"{m}{' †' if m in within else ''}{chr(10) + '(ref.)' if m in refs else ''}" for m in methods]


def clipped_err(means, ci95s) -> np.ndarray:
    """(2, n) error-bar lengths for mean ± ci95, the bar cut at 0 and 1: every metric here is a rate, and a
    symmetric interval (normal or Student t) can reach past the ends of a rate near them."""
    mean = np.asarray(means, dtype=float)
    ci = np.nan_to_num(np.asarray(ci95s, dtype=float), nan=0.0)
    return np.vstack([mean - np.maximum(mean - ci, 0.0), np.minimum(mean + ci, 1.0) - mean]).clip(min=0.0)


def metric_panels(table: pd.DataFrame, protocol: str, out: Path) -> list[Path]:
    written = []
    for dataset, part in table[table["protocol"] == protocol].groupby("dataset", sort=False):
        names = [m for m in PANELS.get(protocol_base(protocol), list(dict.fromkeys(part["metric"])))
                 if m in set(part["metric"])]
        methods = list(dict.fromkeys(part["method"]))
        refs = set(part[part["reference_row"]]["method"])
        # a row per method, and room for the wrapped title (4-5 lines) however few the methods
        fig, axes = plt.subplots(1, len(names), figsize=(0.6 + 2.3 * len(names), max(2.6, 0.9 + 0.38 * len(methods))),
                                 squeeze=False, sharey=True)
        y = np.arange(len(methods))[::-1]
        for ax, metric in zip(axes[0], names):
            rows = part[part["metric"] == metric].set_index("method").reindex(methods)
            for yi, m in zip(y, methods):
                r = rows.loc[m]
                ax.errorbar(r["mean"], yi, xerr=clipped_err([r["mean"]], [r["ci95"]]), fmt="o",
                            mfc="white" if m in refs else "C0", color="C0", capsize=3)
            ax.set_title(pretty(metric), fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=8)
        span = same_width(axes[0], [part[part["metric"] == metric] for metric in names])
        for ax, metric in zip(axes[0], names):
            _chance(ax, metric)
        axes[0][0].set_yticks(y, [lab.replace("\n", " ") for lab in _labels(part, methods)])
        title = (f"{dataset}: {protocol} on {'held-out classes' if protocol_base(protocol) != 'knn' else 'held-out samples'} "
                 f"({_ci_note(part)}" + (f"; every panel's axis spans {span:.2f}, so equal gaps are equal differences)"
                                         if len(names) > 1 else ")"))
        width_chars = max(40, int(fig.get_figwidth() * 13))
        fig.suptitle("\n".join(textwrap.wrap(title, width_chars)), fontsize=9)
        written.append(_save(fig, out / f"{dataset}_{protocol}.png"))
    return written


def _chance(ax, metric: str) -> None:
    """A dotted line at chance (1/N) on an N-way accuracy panel, where the panel's axis reaches it."""
    if (m := re.fullmatch(r"acc_(\d+)w\d+s", metric)) is None:
        return
    level = 1 / int(m[1])
    lo, hi = ax.get_xlim()
    if lo <= level <= hi:
        ax.axvline(level, color="grey", ls=":", lw=1)
        ax.text(level, 1.0, " chance", transform=ax.get_xaxis_transform(), fontsize=7, color="grey", va="top")


def same_width(axes, parts: list[pd.DataFrame], least: float = 0.05) -> float:
    """Give every panel's x axis the same width: the widest panel's range of means and intervals (within
    [0, 1]) plus 10%, at least ``least``, each centred on its own points and kept inside [0, 1] where it fits.
    Without it each panel zooms to its own points and a 0.01 gap in one looks like a 0.1 gap in another."""
    bounds = []
    for rows in parts:
        ci = rows["ci95"].fillna(0.0)
        bounds.append((float((rows["mean"] - ci).clip(lower=0).min()), float((rows["mean"] + ci).clip(upper=1).max())))
    span = max([least] + [1.1 * (hi - lo) for lo, hi in bounds])
    pad = 0.03 * span  # a point at 0 or 1 is drawn whole
    for ax, (lo, hi) in zip(axes, bounds):
        left = (lo + hi - span) / 2
        if span <= 1:
            left = min(max(left, 0.0), 1.0 - span)
        ax.set_xlim(left - pad, left + span + pad)
    return span


def auc_label(name: str, row: pd.Series) -> str:
    """``name: AUC mean ± 95% CI`` for a legend, with the table's marks: † where the interval is over
    episodes/pairs/queries of one run (one seed, or a seed-independent learner), "<0.001" where it rounds to 0."""
    ci = "" if pd.isna(row["ci95"]) else f" ± {ci_text(row['ci95'])}"
    return f"{name}: AUC {row['mean']:.3f}{ci}{' †' if row.get('ci_over') == 'within run' else ''}"


def palette(n: int) -> list[tuple]:
    """``n`` colours, no two alike: matplotlib's ten for up to ten lines, then its twenty (the ten dark ones
    first, then their light partners), then evenly spaced hues."""
    if n <= 10:
        return list(plt.cm.tab10.colors[:n])
    if n <= 20:
        twenty = plt.cm.tab20.colors
        return [twenty[i] for i in (*range(0, 20, 2), *range(1, 20, 2))][:n]
    return [plt.cm.turbo(x) for x in np.linspace(0.05, 0.95, n)]


def legend_beside(ax, **kwargs) -> None:
    """The legend right of the axes, where it covers no curve."""
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), **kwargs)


def roc_curves(roc: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    """One ROC per method (its lowest seed), log false-accept axis; the legend, beside the axes, lists the
    methods by AUC over all seeds, best first (reference rows dashed)."""
    written = []
    styles = ["-", "-.", ":"]  # dashed is kept for the reference rows
    for (dataset, protocol), part in roc.groupby(["dataset", "protocol"], sort=False):  # a split, its own ROC
        fig, ax = plt.subplots(figsize=(8.4, 4.4))
        stats = table[(table["dataset"] == dataset) & (table["protocol"] == protocol)
                      & (table["metric"] == "auc")].set_index("method")
        order = [m for m in stats.index if m in set(part["method"])]
        colours = dict(zip(order, palette(len(order))))  # fixed by the table's order
        best_first = stats.loc[order, "mean"].sort_values(ascending=False, kind="stable", na_position="last").index
        for method in best_first:
            curves = part[part["method"] == method]
            first = curves[curves["seed"] == curves["seed"].min()]
            s = stats.loc[method]
            ref = " (ref.)" if s["reference_row"] else ""
            ax.plot(first["fpr"].clip(lower=1e-5), first["tpr"], color=colours[method],
                    ls="--" if s["reference_row"] else styles[order.index(method) % len(styles)],
                    label=auc_label(f"{method}{ref}", s))
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false accept rate (different-class pairs accepted)")
        ax.set_ylabel("true accept rate")
        within = (stats.loc[order, "ci_over"] == "within run").any()  # of the methods drawn
        dagger = "; †: one seed or seed-independent, CI over pairs" if within else ""
        note = f"(curve of the first seed; AUC mean over seeds, 95% CI{dagger}; legend: best first)"
        ax.set_title(f"{dataset}: {protocol} on held-out classes\n" + "\n".join(textwrap.wrap(note, 80, break_on_hyphens=False)))
        ax.grid(which="both")
        legend_beside(ax)
        written.append(_save(fig, out / f"{dataset}{protocol_tags(protocol)}_roc.png"))
    return written


SWEPT = re.compile(r"(?P<family>.+)_k(?P<k>\d+)")


def k_sweeps(table: pd.DataFrame, out: Path) -> list[Path]:
    """Metric against N for every family of methods named ``<family>_k<N>`` with two or more N; the
    reference rows of the same data and protocol as dashed horizontal lines."""
    written = []
    parsed = table["method"].str.extract(SWEPT.pattern)
    swept = table.assign(family=parsed["family"], k=pd.to_numeric(parsed["k"])).dropna(subset=["family"])
    references = table[table["reference_row"].astype(bool) & parsed["family"].isna()]
    for (dataset, protocol), part in swept.groupby(["dataset", "protocol"], sort=False):
        refs = references[(references["dataset"] == dataset) & (references["protocol"] == protocol)]
        if part.groupby("family")["k"].nunique().max() < 2:
            continue
        names = [m for m in PANELS.get(protocol_base(protocol), list(dict.fromkeys(part["metric"])))
                 if m in set(part["metric"])]
        fig, axes = plt.subplots(1, len(names), figsize=(0.8 + 2.6 * len(names), 3.2), squeeze=False)
        ks = sorted(part["k"].unique())
        for ax, metric in zip(axes[0], names):
            families = list(part[part["metric"] == metric].groupby("family", sort=False))
            lines = palette(len(families) + len(refs[refs["metric"] == metric]))
            for i, (family, rows) in enumerate(families):
                rows = rows.sort_values("k")
                ci = rows["ci95"].fillna(0.0)
                colour = lines[i]
                ax.plot(rows["k"], rows["mean"], "o-", color=colour, label=family)
                ax.fill_between(rows["k"], (rows["mean"] - ci).clip(lower=0), (rows["mean"] + ci).clip(upper=1),
                                color=colour, alpha=0.2)
            for j, (_, ref) in enumerate(refs[refs["metric"] == metric].iterrows()):
                ax.axhline(ref["mean"], color=lines[len(families) + j], ls="--", lw=1.2,
                           label=f"{ref['method']} (ref.)")
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(int(k)) for k in ks])
            ax.set_xlabel("K")
            ax.set_title(pretty(metric), fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))  # one legend for all panels
        title = f"{dataset}: {protocol} against K ({_ci_note(part).replace('; intervals cut at 0 and 1', '')}; " \
                "bands: 95% CI, cut at 0 and 1; each panel has its own y-axis)"
        fig.suptitle("\n".join(textwrap.wrap(title, max(40, int(fig.get_figwidth() * 13)))), fontsize=9)
        written.append(_save(fig, out / f"{dataset}_{protocol}_vs_k.png"))
    return written


NOISY = re.compile(r"map_(?P<poly>poly_)?rho(?P<rho>\d+)")


HIGHLIGHTED = 6  # learners drawn in colour when a panel has more than HIGHLIGHTED + 2 of them
OTHERS = "other learners (in the table)"


def _line_looks(part: pd.DataFrame) -> tuple[list[str], list[str], dict]:
    """Reference rows and learners in order, and each method's (colour, line style, marker, shown): reference
    rows in greys, dashed; with up to HIGHLIGHTED + 2 learners each in its own colour; with more, the
    HIGHLIGHTED best (highest mean over the figure's points) in distinct colours and the rest as thin light
    grey lines without bands (``shown`` False), so that twenty lines do not hide each other."""
    is_ref = set(part[part["reference_row"].astype(bool)]["method"])
    learners = [m for m in dict.fromkeys(part["method"]) if m not in is_ref]
    refs = [m for m in dict.fromkeys(part["method"]) if m in is_ref]
    best = set(learners)
    if len(learners) > HIGHLIGHTED + 2:
        score = part.groupby("method")["mean"].mean()
        best = set(sorted(learners, key=lambda m: -score.get(m, -np.inf))[:HIGHLIGHTED])
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    shown = [m for m in learners if m in best]
    look = {m: (plt.cm.tab10.colors[i % 10], *styles[(i // 10) % len(styles)], True) for i, m in enumerate(shown)}
    look |= {m: ("0.78", "-", None, False) for m in learners if m not in best}
    look |= {m: (str(0.1 + 0.3 * j), "--", "x", True) for j, m in enumerate(refs)}
    return refs, learners, look


def _method_lines(ax, part: pd.DataFrame, x: str, refs: list[str], learners: list[str], look: dict) -> None:
    """One line per method of ``part`` (mean against column ``x``) with its 95% band, cut at 0 and 1: the
    greyed learners first, then the highlighted ones, the reference rows last (on top, never hidden)."""
    order = [m for m in learners if not look[m][3]] + [m for m in learners if look[m][3]] + refs
    others_labelled = False
    for layer, method in enumerate(order):
        rows = part[part["method"] == method].sort_values(x)
        if rows.empty:
            continue
        colour, ls, marker, shown = look[method]
        if not shown:
            ax.plot(rows[x], rows["mean"], color=colour, lw=0.9, ls=ls, zorder=1,
                    label=None if others_labelled else OTHERS)
            others_labelled = True
            continue
        ax.plot(rows[x], rows["mean"], marker=marker, ms=4, color=colour, lw=1.4, ls=ls, zorder=2 + layer,
                label=f"{method}{' (ref.)' if method in refs else ''}")
        ci = rows["ci95"].fillna(0.0)
        ax.fill_between(rows[x], (rows["mean"] - ci).clip(lower=0), (rows["mean"] + ci).clip(upper=1),
                        color=colour, alpha=0.08, zorder=1)


def _legend(ax, look: dict) -> str:
    """The legend right of ``ax`` (reference rows, the coloured learners, then the greyed ones as one entry);
    returns the sentence for the title that says how the coloured learners were chosen ("" if none greyed)."""
    handles, labels = ax.get_legend_handles_labels()
    rank = {label: (0 if label.endswith("(ref.)") else 2 if label == OTHERS else 1) for label in labels}
    pairs = sorted(zip(handles, labels), key=lambda p: rank[p[1]])
    ax.legend([h for h, _ in pairs], [lbl for _, lbl in pairs], fontsize=7, loc="center left",
              bbox_to_anchor=(1.02, 0.5))
    greyed = sum(1 for v in look.values() if not v[3])
    return f"; coloured: the {HIGHLIGHTED} learners with the highest mean over the points, grey: the {greyed} others" \
        if greyed else ""


SHOTS = re.compile(r"^acc_(?P<way>\d+)w(?P<shot>\d+)s$")


def shot_curves(table: pd.DataFrame, out: Path) -> list[Path]:
    """Few-shot accuracy against the number of shots (log axis), one line per method with its 95% CI
    band, one panel per way; for every (dataset, protocol) that measured three or more shot counts."""
    written = []
    parsed = table["metric"].str.extract(SHOTS.pattern)
    shots = table.assign(way=pd.to_numeric(parsed["way"]), shot=pd.to_numeric(parsed["shot"])).dropna(subset=["shot"])
    for (dataset, protocol), part in shots.groupby(["dataset", "protocol"], sort=False):
        ways = sorted(w for w, g in part.groupby("way") if g["shot"].nunique() >= 3)
        if not ways:
            continue
        refs, learners, look = _line_looks(part)
        fig, axes = plt.subplots(1, len(ways), figsize=(1.0 + 4.6 * len(ways), 4.4), squeeze=False)
        for ax, way in zip(axes[0], ways):
            rows_w = part[part["way"] == way]
            _method_lines(ax, rows_w, "shot", refs, learners, look)
            ax.axhline(1 / way, color="grey", ls=":", lw=1)
            ax.set_xscale("log")
            ticks = sorted(rows_w["shot"].unique())
            ax.set_xticks(ticks, [str(int(t)) for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("shots per class (log scale)")
            ax.set_title(f"{int(way)}-way (dotted: chance)", fontsize=9)
            ax.set_ylim(0, 1.0)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("accuracy on held-out classes")
        chosen = _legend(axes[0][-1], look)
        note = _ci_note(part).replace("; intervals cut at 0 and 1", "")
        title = f"{dataset} · {protocol}: accuracy against shots ({note}; bands: 95% CI, cut at 0 and 1{chosen})"
        fig.suptitle("\n".join(textwrap.wrap(title, max(40, int(fig.get_figwidth() * 13)))), fontsize=9)
        written.append(_save(fig, out / f"{dataset}_{protocol}_vs_shots.png"))
    return written


def noise_sweeps(table: pd.DataFrame, out: Path) -> list[Path]:
    """Set retrieval: mAP against the outlier fraction of the defining sets, one line per method with its
    95% CI band; a panel for one-class concepts and one for polysemous (two-class) concepts."""
    written = []
    parsed = table["metric"].str.extract(NOISY.pattern)
    noisy = table.assign(poly=parsed["poly"].notna() & parsed["rho"].notna(),
                         rho=pd.to_numeric(parsed["rho"]) / 100).dropna(subset=["rho"])
    for (dataset, protocol), part in noisy.groupby(["dataset", "protocol"], sort=False):
        kinds = [k for k in (False, True) if (part["poly"] == k).any()]
        if part.groupby("poly")["rho"].nunique().max() < 2:
            continue
        fig, axes = plt.subplots(1, len(kinds), figsize=(1.0 + 4.6 * len(kinds), 4.4), squeeze=False, sharey=True)
        refs, learners, look = _line_looks(part)
        for ax, poly in zip(axes[0], kinds):
            rows_k = part[part["poly"] == poly]
            _method_lines(ax, rows_k, "rho", refs, learners, look)
            ax.set_xlabel("outlier fraction of the defining set (ρ)")
            ax.set_title("polysemous concepts (two classes)" if poly else "one-class concepts", fontsize=9)
            ax.set_xticks(sorted(rows_k["rho"].unique()))
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("mAP over defining sets")
        chosen = _legend(axes[0][-1], look)
        title = f"{dataset}: {protocol_base(protocol).replace('_', ' ')}{protocol_tags(protocol)} from noisy concept sets ({_ci_note(part).replace('; intervals cut at 0 and 1', '')}; " \
                f"bands: 95% CI, cut at 0 and 1{chosen})"
        fig.suptitle("\n".join(textwrap.wrap(title, max(40, int(fig.get_figwidth() * 13)))), fontsize=9)
        written.append(_save(fig, out / f"{dataset}{protocol_tags(protocol)}_set_retrieval_vs_noise.png"))
    return written


def draw_all(table: pd.DataFrame, roc: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for protocol in dict.fromkeys(table["protocol"]):
        if protocol_base(protocol) != "set_generation":  # set generation: benchmarks/generation_figures.py
            written += metric_panels(table, protocol, out)
    return written + k_sweeps(table, out) + noise_sweeps(table, out) + shot_curves(table, out) + \
        roc_curves(roc, table, out)


if __name__ == "__main__":  # a library: the report draws the figures, with the tables they come from
    import sys

    print("the figures are drawn by the report: python -m benchmarks.report <study> writes "
          "results/<study>/figures/*.png and *.pdf beside the tables (see python -m benchmarks.report --help)",
          file=sys.stderr)
    sys.exit(2)
