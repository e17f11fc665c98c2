"""Figures of the set-generation protocol, drawn by ``benchmarks.report`` from a study's records:

- ``<dataset>_<method>_set_generation_roc.png``: the judge's ROC of same-set vs different-set pairs for the
  real, reconstructed and prior-sampled sets (the paper's figure), curves of the first seed, AUC over seeds;
- ``<dataset>_identity_vs_n.png``: identity AUC of the reconstructions against the number n of input
  members, every generative method, with the real inputs' own AUC dashed (the ceiling at that n);
- ``<dataset>_<method>_set_generation_grid.png``: input sets and their reconstructions from n = 1, 2, 4, 8
  members (one set of each of the first five held-out classes), and ``..._samples.png``: sets sampled
  from the prior (first seed).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import protocol_base, protocol_tags  # noqa: E402
from benchmarks.figures import _save, legend_beside  # noqa: E402
from benchmarks.leaderboard import ci_text  # noqa: E402

PROTOCOL = "set_generation"
KIND_STYLE = {"real": ("black", "-"), "reconstructed": ("tab:blue", "--"), "sampled": ("tab:orange", "-.")}
GRID_SETS = 5  # sets drawn in the reconstruction grid (one per held-out class on digits and Fashion-MNIST)
IDENTITY = re.compile(r"identity_auc_(?P<real>real_)?n(?P<n>\d+)$")


def _generation(protocol) -> pd.Series | bool:
    """Whether a protocol name (or a column of them) is set generation, on any split or episode seed."""
    if isinstance(protocol, pd.Series):
        return protocol.map(protocol_base) == PROTOCOL
    return protocol_base(protocol) == PROTOCOL


def _first_seed(records: list[dict]) -> dict[tuple[str, str, str], dict]:
    """The ok set-generation record of the lowest seed for each (dataset, protocol, method)."""
    chosen: dict[tuple[str, str, str], dict] = {}
    for rec in records:
        if rec["status"] != "ok" or not _generation(rec["protocol"]):
            continue
        key = (rec["dataset"], rec["protocol"], rec["method"])
        if key not in chosen or rec["seed"] < chosen[key]["seed"]:
            chosen[key] = rec
    return chosen


def _stat(table: pd.DataFrame, dataset: str, protocol: str, method: str, metric: str) -> str:
    row = table[(table["dataset"] == dataset) & (table["method"] == method) & (table["protocol"] == protocol)
                & (table["metric"] == metric)]
    if row.empty:
        return ""
    mean, ci = float(row["mean"].iloc[0]), row["ci95"].iloc[0]
    return f"{mean:.3f}" + ("" if pd.isna(ci) else f" ± {ci_text(float(ci))}")


def generation_rocs(records: list[dict], table: pd.DataFrame, out: Path) -> list[Path]:
    written = []
    for (dataset, protocol, method), rec in _first_seed(records).items():
        fig, ax = plt.subplots(figsize=(7.6, 4.2))
        for kind, (color, ls) in KIND_STYLE.items():
            name = rec["curves"].get(f"roc_{kind}")
            if name is None:
                continue
            curve = pd.read_csv(Path(rec["_dir"]) / name)
            ax.plot(curve["fpr"].clip(lower=1e-4), curve["tpr"], color=color, ls=ls, lw=1.8,
                    label=f"{kind}: AUC {_stat(table, dataset, protocol, method, f'auc_{kind}')}")
        judge = rec.get("judge", {}).get("method", "?")
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false accept rate (pairs from sets of different identities)")
        ax.set_ylabel("true accept rate (pairs from one set)")
        ax.set_title(f"{dataset}{protocol_tags(protocol)} / {method}: same-set verification by the {judge} judge\n"
                     "(curves: first seed; AUC: mean over the seeds run, 95% CI)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        legend_beside(ax)
        written.append(_save(fig, out / f"{dataset}_{method}_{protocol}_roc.png"))
    return written


def identity_vs_n(table: pd.DataFrame, out: Path) -> list[Path]:
    part = table[_generation(table["protocol"]) & table["metric"].str.match(IDENTITY.pattern)]
    written = []
    for (dataset, protocol), rows in part.groupby(["dataset", "protocol"], sort=False):
        fig, ax = plt.subplots(figsize=(7.6, 4.0))
        for i, (method, m_rows) in enumerate(rows.groupby("method", sort=False)):
            color = plt.cm.tab10.colors[i % 10]
            for real in (False, True):
                pts = []
                for _, r in m_rows.iterrows():
                    match = IDENTITY.match(r["metric"])
                    if bool(match.group("real")) == real:
                        pts.append((int(match.group("n")), r["mean"], 0.0 if pd.isna(r["ci95"]) else r["ci95"]))
                if not pts:
                    continue
                n, mean, ci = map(np.array, zip(*sorted(pts)))
                shift = 1.0 + 0.03 * (2 * i + real)  # side by side, so that the intervals stay readable
                ax.errorbar(n * shift, mean, yerr=ci, color=color, ls="--" if real else "-", marker="s" if real else "o",
                            capsize=3, label=f"{method}: {'real inputs' if real else 'reconstructions'}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({int(IDENTITY.match(m).group("n")) for m in rows["metric"]}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("input members per set (n)")
        ax.set_ylabel("identity AUC against the held-out gallery")
        ax.set_title(f"{dataset}{protocol_tags(protocol)}: identity preservation of reconstructions\n(mean over the seeds run, 95% CI; 0.5 = chance)",
                     fontsize=9)
        ax.grid(alpha=0.3)
        legend_beside(ax, fontsize=7)
        written.append(_save(fig, out / f"{dataset}{protocol_tags(protocol)}_identity_vs_n.png"))
    return written


def as_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An input as something ``imshow`` draws: (C, H, W) images, or vectors of a square length as squares."""
    if x.ndim == 3:
        return (x[0], "gray") if x.shape[0] == 1 else (np.clip(np.transpose(x, (1, 2, 0)), 0, 1), None)
    side = math.isqrt(x.size)
    if x.ndim == 1 and side * side == x.size:
        return x.reshape(side, side), "gray"
    raise ValueError(f"cannot draw an input of shape {x.shape} as an image")


def _draw_rows(rows: list[tuple[str, np.ndarray]], title: str, path: Path) -> Path:
    width = max(len(r) for _, r in rows)
    height = 0.62 * len(rows) + 0.8
    fig, axes = plt.subplots(len(rows), width, figsize=(0.62 * width + 1.2, height), squeeze=False)
    low = min(float(r.min()) for _, r in rows)
    high = max(float(r.max()) for _, r in rows)
    for (label, members), line in zip(rows, axes):
        for j, ax in enumerate(line):
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(members):
                image, cmap = as_image(members[j])
                ax.imshow(image, cmap=cmap, vmin=low if cmap else None, vmax=high if cmap else None)
        line[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / height))  # room for the two-line title
    fig.savefig(path, dpi=60 if len(rows) > 8 else 110)  # many rows: a lower resolution keeps the file small
    plt.close(fig)
    return path


def image_grids(records: list[dict], out: Path) -> list[Path]:
    written = []
    for (dataset, protocol, method), rec in _first_seed(records).items():
        entry = rec.get("artifacts", {}).get("grid")
        if entry is None:
            continue
        grid = np.load(Path(rec["_dir"]) / entry["file"])
        sizes = [int(n) for n in grid["set_sizes"]]
        rows = []
        for s in range(min(GRID_SETS, len(grid["inputs"]))):
            rows.append((f"set {s + 1}: input", grid["inputs"][s]))
            rows += [(f"from n={n}", grid[f"reconstructed_n{n}"][s]) for n in sizes]
        written.append(_draw_rows(rows, f"{dataset}{protocol_tags(protocol)} / {method}: held-out sets (input row) and\nmembers generated "
                                        "from the code of its first n",
                                  out / f"{dataset}_{method}_{protocol}_grid.png"))
        samples = [(f"sampled set {s + 1}", grid["samples"][s]) for s in range(len(grid["samples"]))]
        written.append(_draw_rows(samples, f"{dataset}{protocol_tags(protocol)} / {method}: sets sampled from the prior (one row per code)",
                                  out / f"{dataset}_{method}_{protocol}_samples.png"))
    return written


def draw_generation(records: list[dict], table: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure above for the set-generation records among ``records`` (none when there are none)."""
    if not _generation(table["protocol"]).any():
        return []
    out.mkdir(parents=True, exist_ok=True)
    return generation_rocs(records, table, out) + identity_vs_n(table, out) + image_grids(records, out)
