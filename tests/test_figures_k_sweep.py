"""The sweep figure: methods named <family>_k<N> get their metrics drawn against N, one line per family."""
import matplotlib.pyplot as plt
import pandas as pd

from benchmarks import figures


def _table(methods):
    rows = []
    for i, method in enumerate(methods):
        for metric in ("p_at_1", "map_at_r", "nmi"):
            rows.append({"dataset": "fashion_mnist", "protocol": "retrieval", "method": method, "metric": metric,
                         "reference_row": False, "mean": 0.5 + 0.01 * i, "ci95": 0.02, "ci_over": "seeds",
                         "n_seeds": 3})
    return pd.DataFrame(rows)


def test_families_with_several_k_get_a_figure(tmp_path, monkeypatch):
    drawn = {}
    real_plot = plt.Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        drawn.setdefault(ax.get_title() or id(ax), []).append((list(x), list(y), kwargs.get("label")))
        return real_plot(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", spy)
    table = _table(["dc_k4", "dc_k1", "dc_k2", "dc_masks_k1", "dc_masks_k2", "protonet"])
    written = figures.k_sweeps(table, tmp_path)
    assert [p.name for p in written] == ["fashion_mnist_retrieval_vs_k.png"] and written[0].stat().st_size > 0
    lines = [line for group in drawn.values() for line in group]
    assert len(lines) == 2 * 3                              # two families x three metric panels
    by_label = {label: (x, y) for x, y, label in lines}
    assert by_label["dc"][0] == [1, 2, 4]                   # sorted by K, whatever the table's order
    assert by_label["dc"][1] == [0.51, 0.52, 0.50]          # dc_k1, dc_k2, dc_k4 means
    assert by_label["dc_masks"][0] == [1, 2]


def test_no_sweep_no_figure(tmp_path):
    assert figures.k_sweeps(_table(["dc_k4", "protonet", "triplet"]), tmp_path) == []


def test_reference_rows_are_drawn_as_horizontal_lines(tmp_path, monkeypatch):
    drawn = []
    real_axhline = plt.Axes.axhline

    def spy(ax, y, *args, **kwargs):
        drawn.append((ax.get_title(), y, kwargs.get("label")))
        return real_axhline(ax, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "axhline", spy)
    table = _table(["dc_k1", "dc_k2", "raw", "protonet"])
    table.loc[table["method"] == "raw", "reference_row"] = True
    table.loc[(table["method"] == "raw") & (table["metric"] == "nmi"), "mean"] = 0.9
    assert len(figures.k_sweeps(table, tmp_path)) == 1
    assert len(drawn) == 3 and {label for _, _, label in drawn} == {"raw (ref.)"}  # one per panel; not protonet
    assert sorted(y for _, y, _ in drawn) == [0.52, 0.52, 0.9]
