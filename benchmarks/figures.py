"""Paper-style figures drawn from leaderboard tables only (never from records)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def metric_bars(table: pd.DataFrame, protocol: str, metrics: list[str] | None, ylabel: str, out: Path) -> list[Path]:
    """Grouped bars: one group per method, one bar per metric, 95% CI error bars; a file per dataset."""
    written = []
    for dataset, part in table[table["protocol"] == protocol].groupby("dataset", sort=False):
        names = metrics or list(dict.fromkeys(part["metric"]))
        part = part[part["metric"].isin(names)]
        if part.empty:
            continue
        methods = list(dict.fromkeys(part["method"]))
        width = 0.8 / len(names)
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(methods) * max(1, len(names) / 2), 3.6))
        for i, metric in enumerate(names):
            rows = part[part["metric"] == metric].set_index("method").reindex(methods)
            err = rows["ci95"].astype(float).fillna(0).to_numpy()
            x = np.arange(len(methods)) + (i - (len(names) - 1) / 2) * width
            ax.bar(x, rows["mean"], width, yerr=err, capsize=3, label=metric)
        refs = set(part[part["reference_row"]]["method"])
        ax.set_xticks(np.arange(len(methods)), [f"{m}\n(ref.)" if m in refs else m for m in methods])
        ax.set_ylabel(ylabel)
        seeds = int(part["n_seeds"].max())
        ax.set_title(f"{dataset}: {protocol} (mean, 95% CI, {seeds} seed{'s' if seeds > 1 else ''})")
        ax.legend(fontsize=8, ncols=min(4, len(names)), loc="lower left", framealpha=0.9)
        ax.grid(axis="y", alpha=0.3)
        written.append(_save(fig, out / f"{dataset}_{protocol}.png"))
    return written


def roc_curves(roc: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[Path]:
    """ROC curves per method on a log false-accept axis (every seed drawn, one colour per method)."""
    written = []
    for dataset, part in roc.groupby("dataset", sort=False):
        fig, ax = plt.subplots(figsize=(5.2, 4.2))
        for colour, (method, curves) in zip(plt.cm.tab10.colors, part.groupby("method", sort=False)):
            auc = table[(table["dataset"] == dataset) & (table["method"] == method) & (table["metric"] == "auc")]
            label = f"{method} (AUC {auc['mean'].iloc[0]:.3f})" if len(auc) else method
            for j, (_, c) in enumerate(curves.groupby("seed")):
                ax.plot(c["fpr"].clip(lower=1e-5), c["tpr"], color=colour, lw=1.2, alpha=0.8,
                        label=label if j == 0 else None)
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false accept rate (different-class pairs accepted)")
        ax.set_ylabel("true accept rate")
        ax.set_title(f"{dataset}: verification ROC on held-out classes")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
        written.append(_save(fig, out / f"{dataset}_roc.png"))
    return written


def draw_all(table: pd.DataFrame, roc: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    fewshot = sorted(m for m in set(table["metric"]) if m.startswith("acc_"))
    return (metric_bars(table, "fewshot", fewshot, "accuracy", out)
            + metric_bars(table, "retrieval", ["p_at_1", "r_precision", "map_at_r", "nmi"], "score", out)
            + metric_bars(table, "knn", ["knn_error"], "k-NN error (lower is better)", out)
            + roc_curves(roc, table, out))
