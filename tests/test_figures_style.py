"""One style for every figure: few-shot accuracy drawn as the other protocols are (a dot per learner with its
interval, chance marked), and ROC legends beside the axes, best first, with the table's marks."""
import matplotlib.pyplot as plt
import pandas as pd

from benchmarks import figures
from benchmarks.leaderboard import aggregate, ci_text, latex, markdown, records_frame


def _fewshot_table():
    rows = []
    for method, one_shot, five_shot in (("raw", 0.15, 0.65), ("protonet", 0.45, 0.70), ("triplet", 0.50, 0.75)):
        for metric, mean in (("acc_5w1s", one_shot), ("acc_5w5s", five_shot)):
            rows.append({"dataset": "digits", "protocol": "fewshot", "method": method, "metric": metric,
                         "reference_row": method == "raw", "mean": mean, "ci95": 0.02,
                         "ci_over": "seeds", "n_seeds": 3})
    return pd.DataFrame(rows)


def test_fewshot_is_drawn_as_dots_with_chance_not_bars(tmp_path, monkeypatch):
    made = []
    real_subplots = plt.subplots

    def keep(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        made.append(fig)
        return fig, axes

    monkeypatch.setattr(plt, "subplots", keep)
    monkeypatch.setattr(plt, "close", lambda fig: None)  # keep the figure to look at it
    written = figures.draw_all(_fewshot_table(), pd.DataFrame(columns=["dataset", "protocol", "method", "seed", "fpr", "tpr"]),
                               tmp_path)
    assert [p.name for p in written] == ["digits_fewshot.png"]
    axes = made[0].axes
    assert [ax.get_title() for ax in axes] == ["5-way 1-shot", "5-way 5-shot"]
    assert not any(ax.patches for ax in axes)  # no bars
    dots = axes[0].lines
    assert sorted(round(float(line.get_xdata()[0]), 3) for line in dots if len(line.get_xdata()) == 1
                  and line.get_marker() == "o") == [0.15, 0.45, 0.5]
    chance = [[line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":"] for ax in axes]
    assert chance == [[0.2], []]  # 1/5 where the panel's axis reaches it, not widening the 5-shot panel to it
    lo, hi = axes[0].get_xlim()
    assert abs((hi - lo) - (axes[1].get_xlim()[1] - axes[1].get_xlim()[0])) < 1e-9  # panels of equal width


def test_roc_legend_best_first_beside_the_axes_with_the_tables_marks(tmp_path, monkeypatch):
    curve = pd.DataFrame({"fpr": [0.0, 0.01, 0.1, 1.0], "tpr": [0.0, 0.3, 0.7, 1.0]})
    roc = pd.concat([curve.assign(dataset="orl", protocol="verification", method=m, seed=s) for m in ("raw", "mmc_diag", "triplet")
                     for s in (0, 1)])
    table = pd.DataFrame([
        {"dataset": "orl", "protocol": "verification", "method": "raw", "metric": "auc", "reference_row": True,
         "mean": 0.922, "ci95": 0.061, "ci_over": "within run", "n_seeds": 3},
        {"dataset": "orl", "protocol": "verification", "method": "mmc_diag", "metric": "auc", "reference_row": False,
         "mean": 0.927, "ci95": 0.0002, "ci_over": "seeds", "n_seeds": 3},
        {"dataset": "orl", "protocol": "verification", "method": "triplet", "metric": "auc", "reference_row": False,
         "mean": 0.969, "ci95": 0.002, "ci_over": "seeds", "n_seeds": 3}])
    made = []
    real_subplots = plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: made.append(real_subplots(*a, **k)) or made[-1])
    monkeypatch.setattr(plt, "close", lambda fig: None)
    assert [p.name for p in figures.roc_curves(roc, table, tmp_path)] == ["orl_roc.png"]
    fig, ax = made[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "triplet: AUC 0.969 ± 0.002", "mmc_diag: AUC 0.927 ± <0.001", "raw (ref.): AUC 0.922 ± 0.061 †"]
    box, axes_box = legend.get_window_extent(fig.canvas.get_renderer()), ax.get_window_extent()
    assert box.x0 >= axes_box.x1  # right of the plotting area: it covers no curve
    assert "†: one seed or seed-independent" in " ".join(ax.get_title().split())


def test_twelve_roc_curves_get_twelve_colours(tmp_path, monkeypatch):
    """The smoke leaderboard's ROC has 12 curves: with ten colours two of them shared one (raw and sdn)."""
    from matplotlib.colors import to_hex
    methods = [f"m{i:02d}" for i in range(12)]
    curve = pd.DataFrame({"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.5, 1.0]})
    roc = pd.concat([curve.assign(dataset="digits", protocol="verification", method=m, seed=0) for m in methods])
    table = pd.DataFrame([{"dataset": "digits", "protocol": "verification", "method": m, "metric": "auc",
                           "reference_row": i == 0, "mean": 0.9 - 0.01 * i, "ci95": 0.01, "ci_over": "seeds",
                           "n_seeds": 3} for i, m in enumerate(methods)])
    made = []
    real_subplots = plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: made.append(real_subplots(*a, **k)) or made[-1])
    monkeypatch.setattr(plt, "close", lambda fig: None)
    figures.roc_curves(roc, table, tmp_path)
    colours = [to_hex(line.get_color()) for line in made[0][1].lines]
    assert len(colours) == 12 and len(set(colours)) == 12
    for n in (3, 10, 14, 20, 25):
        assert len({to_hex(c) for c in figures.palette(n)}) == n


def _three_seed_records(values: dict[str, list[float]]) -> list[dict]:
    return [{"study": "s", "dataset": "digits", "protocol": "verification", "method": method, "seed": seed,
             "status": "ok", "timings": {"fit_s": 1.0}, "metrics": {"auc": {"mean": v, "ci95": 0.01, "n": 100}}}
            for method, vs in values.items() for seed, v in enumerate(vs)]


def test_a_tiny_interval_reads_below_precision_in_tables_and_figures_alike():
    # seeds that differ by 1e-5: the 95% CI over seeds is positive but rounds to 0.000 at three decimals
    table = aggregate(records_frame(_three_seed_records({"mmc_diag": [0.92741, 0.92742, 0.92743],
                                                         "triplet": [0.95, 0.97, 0.99]})))
    tiny = table[table["method"] == "mmc_diag"].iloc[0]
    assert tiny["ci_over"] == "seeds" and 0 < tiny["ci95"] < 5e-4
    md, tex = markdown(table), latex(table)
    assert "0.927 ± <0.001" in md and "0.927 ± 0.000" not in md
    assert r"0.927 $\pm$ $<$0.001" in tex
    assert "0.970 ± 0.050" in md  # an ordinary interval is unchanged (t(2) x s.d. 0.02 / sqrt 3 = 0.0497)
    assert figures.auc_label("mmc_diag", tiny) == "mmc_diag: AUC 0.927 ± <0.001"


def test_an_interval_of_exactly_zero_stays_zero():
    # every episode scored 1.0: the run's own interval is 0, and "<0.001" would be false
    assert ci_text(0.0) == "0.000" and ci_text(4e-4) == "<0.001" and ci_text(0.0123) == "0.012"


def test_a_table_of_one_learner_still_has_room_for_its_title(tmp_path):
    """Few-shot figures are sized by their rows; with one learner the wrapped title must still fit (matplotlib
    warns "Tight layout not applied" when it cannot place the axes under it)."""
    import warnings
    one = _fewshot_table().query("method == 'protonet'")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout warning fails the test
        written = figures.metric_panels(one, "fewshot", tmp_path)
    assert [p.name for p in written] == ["digits_fewshot.png"]
