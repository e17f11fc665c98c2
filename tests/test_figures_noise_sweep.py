"""The set-retrieval figure: mAP against the outlier fraction, a line per method, a panel per concept kind."""
import matplotlib.pyplot as plt
import pandas as pd

from benchmarks import figures


def _table(methods, rhos=(0, 25, 50), poly=True):
    rows = []
    for i, method in enumerate(methods):
        for kind in ("", "poly_") if poly else ("",):
            for rho in rhos:
                rows.append({"dataset": "digits", "protocol": "set_retrieval", "method": method,
                             "metric": f"map_{kind}rho{rho}", "reference_row": method == "raw",
                             "mean": 0.9 - rho / 100 - (0.1 if kind else 0) + 0.01 * i, "ci95": 0.02,
                             "ci_over": "seeds", "n_seeds": 3})
    return pd.DataFrame(rows)


def test_one_line_per_method_and_panel(tmp_path, monkeypatch):
    drawn = []
    real_plot = plt.Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        drawn.append((ax.get_title(), list(x), [round(v, 6) for v in y], kwargs.get("label")))
        return real_plot(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", spy)
    written = figures.noise_sweeps(_table(["s2m_gmm", "protonet", "raw"]), tmp_path)
    assert [p.name for p in written] == ["digits_set_retrieval_vs_noise.png"] and written[0].stat().st_size > 0
    assert len(drawn) == 3 * 2                                   # three methods x two concept kinds
    one = {label: (x, y) for _, x, y, label in drawn[:3]}          # the one-class panel is drawn first
    assert one["s2m_gmm"] == ([0.0, 0.25, 0.5], [0.9, 0.65, 0.4])
    assert "raw (ref.)" in one
    poly = {label: (x, y) for _, x, y, label in drawn[3:]}
    assert poly["s2m_gmm"] == ([0.0, 0.25, 0.5], [0.8, 0.55, 0.3])


def test_a_single_noise_level_draws_nothing(tmp_path):
    assert figures.noise_sweeps(_table(["s2m_gmm"], rhos=(25,)), tmp_path) == []
    assert figures.pretty("map_poly_rho25") == "mAP, polysemous, 25% outliers"


def test_many_learners_colour_the_best_and_grey_the_rest(tmp_path, monkeypatch):
    drawn = []
    real_plot = plt.Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        drawn.append((ax, kwargs.get("label"), (str(kwargs.get("color")), kwargs.get("ls"), kwargs.get("marker"))))
        return real_plot(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", spy)
    methods = ["raw", *[f"learner{i}" for i in range(18)]]  # a learner's mean rises with its number
    written = figures.noise_sweeps(_table(methods), tmp_path)
    panel = [d for d in drawn if d[0] is drawn[0][0]]
    assert len(panel) == 19 and panel[-1][1] == "raw (ref.)" and panel[-1][2][1] == "--"  # reference on top
    coloured = {label: look for _, label, look in panel if label not in (None, figures.OTHERS, "raw (ref.)")}
    assert sorted(coloured) == sorted(f"learner{i}" for i in range(12, 18))  # the six best
    assert len(set(coloured.values())) == 6                                   # each its own look
    greyed = [d for d in panel if d[1] in (None, figures.OTHERS)]
    assert len(greyed) == 12 and sum(d[1] == figures.OTHERS for d in greyed) == 1 and {d[2][0] for d in greyed} == {"0.78"}
    assert written[0].stat().st_size > 0


def test_few_learners_are_all_coloured_and_distinct(tmp_path, monkeypatch):
    looks = {}
    real_plot = plt.Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        looks[kwargs.get("label")] = (str(kwargs.get("color")), kwargs.get("ls"), kwargs.get("marker"))
        return real_plot(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", spy)
    methods = ["raw", *[f"learner{i}" for i in range(8)]]
    figures.noise_sweeps(_table(methods), tmp_path)
    assert len(looks) == 9 and len(set(looks.values())) == 9 and figures.OTHERS not in looks
