"""The paired comparison with the best learner: the bootstrap against brute force, and the tables."""
import numpy as np
import pandas as pd
import pytest

from benchmarks.comparison import compare_with_best, load_units, paired_bootstrap
from benchmarks.leaderboard import aggregate, latex, markdown, records_frame
from benchmarks.records import load_records
from benchmarks.run import execute


def test_identical_learners_tie_and_a_constant_gap_does_not():
    rng = np.random.default_rng(0)
    a = rng.random((3, 200))
    same = paired_bootstrap(a, a.copy(), "unit")
    assert same.mean == same.low == same.high == 0.0 and same.tie
    gap = paired_bootstrap(a + 0.01, a, "unit")  # better on every unit by 0.01: no resample can hide it
    assert gap.low == pytest.approx(0.01) and gap.high == pytest.approx(0.01) and not gap.tie


def test_unit_bootstrap_matches_a_brute_force_loop():
    rng = np.random.default_rng(1)
    best, other = rng.normal(0.6, 0.2, (3, 50)), rng.normal(0.55, 0.2, (3, 50))
    got = paired_bootstrap(best, other, "unit", n_boot=4000, seed=0)
    d = best - other
    draws = []
    loop = np.random.default_rng(7)
    for _ in range(4000):  # resample seeds, then units, the same for both learners
        s = loop.integers(0, 3, 3)
        u = loop.integers(0, 50, 50)
        draws.append(d[s][:, u].mean())
    low, high = np.quantile(draws, [0.025, 0.975])
    assert got.mean == pytest.approx(d.mean())
    assert got.low == pytest.approx(low, abs=0.01) and got.high == pytest.approx(high, abs=0.01)


def test_replicate_bootstrap_takes_paired_replicates():
    # one seed: the interval is the percentile interval of the replicate-by-replicate differences
    rng = np.random.default_rng(2)
    best = rng.normal(0.9, 0.02, (1, 500))
    other = best - rng.normal(0.03, 0.01, (1, 500))
    got = paired_bootstrap(best, other, "replicate", n_boot=20000)
    low, high = np.quantile((best - other)[0], [0.025, 0.975])
    assert got.low == pytest.approx(low, abs=0.002) and got.high == pytest.approx(high, abs=0.002)
    assert not got.tie
    with pytest.raises(ValueError, match="unknown kind"):
        paired_bootstrap(best, other, "episodes")


SMALL = ["budget.iterations=20", "budget.episodes=60", "study=cmp"]


def test_report_marks_best_and_ties_from_the_same_episodes(compose_cfg, tmp_path):
    for method in ("raw", "untrained", "protonet"):
        for protocol in ("fewshot", "verification", "knn"):
            for seed in (0, 1):
                execute(compose_cfg(f"method={method}", f"protocol={protocol}", f"seed={seed}", *SMALL))
    records, _ = load_records(tmp_path / "results" / "runs" / "cmp")
    units = load_units(records)
    for rec in records:  # every stored unit is what the metric is the mean of
        for name, m in rec["metrics"].items():
            values = units[(rec["dataset"], rec["protocol"], rec["method"], rec["seed"])].get("unit." + name)
            if values is not None:
                assert values.mean() == pytest.approx(m["mean"]) and len(values) == m["n"]
    assert all(f"replicate.{m}" in units[("digits", "verification", "raw", 0)] for m in ("auc", "eer"))
    long = records_frame(records)
    table = compare_with_best(aggregate(long), long, units)
    for (protocol, metric), g in table.groupby(["protocol", "metric"]):
        assert (g["vs_best"] == "best").sum() >= 1
        best = g[g["vs_best"] == "best"]["mean"]
        target = g["mean"].min() if g["lower_is_better"].iloc[0] else g["mean"].max()
        assert np.allclose(best, target)  # the best rows hold the best mean
        others = g[g["vs_best"] != "best"]
        assert set(others["vs_best"]) <= {"tie", "worse"}
        assert (others["diff_mean"] > 0).all()  # best minus other, signed: the best is better on average
        assert (others["diff_over"] == "units+seeds").all() if protocol != "verification" else \
            (others["diff_over"].isin(["replicates+seeds", "replicates"])).all()
        # a tie is exactly an interval holding 0
        assert ((others["vs_best"] == "tie") == ((others["diff_low"] <= 0) & (others["diff_high"] >= 0))).all()
    text, tex = markdown(table), latex(table)
    n_best = int((table["vs_best"] == "best").sum())
    assert text.count("**") // 2 - text.count("**bold**") == n_best  # one bold cell per best row
    assert tex.count(r"\textbf{") - tex.count(r"\textbf{bold}") == n_best
    assert tex.count(r"$\approx$ \\") + tex.count(r"$\approx$ &") == int((table["vs_best"] == "tie").sum())
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and "acc\\_5w1s" in tex


def test_rows_without_units_are_left_untested():
    long = pd.DataFrame([{"dataset": "d", "protocol": "p", "method": m, "metric": "nmi", "seed": 0, "status": "ok",
                          "value": v, "run_ci95": np.nan, "reference_row": False, "fit_s": 0.0, "n": 1}
                         for m, v in (("a", 0.5), ("b", 0.4))])
    table = compare_with_best(aggregate(long), long, units={})
    assert list(table["vs_best"]) == ["best", "untested"]
    assert "not tested (no per-unit values): nmi" in markdown(table)
