"""Accuracy against shots: the fewshot_shots protocol measures 1-20 shots, and the report draws one line
per learner with its band."""
import matplotlib.pyplot as plt
import pandas as pd

from benchmarks import figures
from benchmarks.run import execute


def _table(shots, methods=("raw", "protonet")):
    rows = []
    for i, method in enumerate(methods):
        for k in shots:
            rows.append({"dataset": "digits", "protocol": "fewshot_shots", "method": method, "metric": f"acc_5w{k}s",
                         "reference_row": method == "raw", "mean": 0.4 + 0.02 * k + 0.01 * i, "ci95": 0.03,
                         "ci_over": "seeds", "n_seeds": 3})
    return pd.DataFrame(rows)


def test_one_line_per_learner_against_shots(tmp_path, monkeypatch):
    drawn = []
    real_plot = plt.Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        drawn.append((list(x), list(y), kwargs.get("label")))
        return real_plot(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "plot", spy)
    written = figures.shot_curves(_table([1, 2, 5, 10, 20]), tmp_path)
    assert [p.name for p in written] == ["digits_fewshot_shots_vs_shots.png"]
    assert (tmp_path / "digits_fewshot_shots_vs_shots.pdf").is_file()
    assert [label for *_, label in drawn] == ["protonet", "raw (ref.)"]  # the reference row on top, never hidden
    assert drawn[0][0] == [1, 2, 5, 10, 20] and drawn[0][1] == [0.4 + 0.02 * k + 0.01 for k in (1, 2, 5, 10, 20)]


def test_no_shot_figure_for_two_shot_counts(tmp_path):
    assert figures.shot_curves(_table([1, 5]), tmp_path) == []


def test_fewshot_shots_protocol_measures_every_shot_count(compose_cfg):
    record = execute(compose_cfg("method=raw", "protocol=fewshot_shots", "budget.episodes=20", "study=shots"))
    assert set(record["metrics"]) == {f"acc_5w{k}s" for k in (1, 2, 5, 10, 20)}
    means = [record["metrics"][f"acc_5w{k}s"]["mean"] for k in (1, 5, 20)]
    assert means[0] < means[2]  # nearest class mean on raw digits: more shots, better prototypes
