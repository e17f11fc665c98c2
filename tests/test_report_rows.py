"""A table row averages its seeds only where they were made with the same settings."""
from benchmarks.report import build
from benchmarks.run import execute

RUN = ["method=triplet", "protocol=knn", "study=mixed", "threads=1", "budget.iterations=3"]


def test_a_row_whose_seeds_were_made_with_different_settings_is_refused(compose_cfg, tmp_path, capsys):
    """Seeds typed with different budgets or learning rates into one study would be averaged as one learner's
    seeds; the report names the row, the settings that differ and each seed's value, and writes no table."""
    results = tmp_path / "results"
    execute(compose_cfg(*RUN, "seed=0"))
    execute(compose_cfg(*RUN, "seed=1", "threads=2", f"data_root={tmp_path / 'elsewhere'}"))  # placed differently:
    assert build("mixed", results) == 0
    execute(compose_cfg(*RUN, "seed=2", "budget.iterations=4", "method.learner.optimizer.lr=0.01"))
    (results / "mixed" / "leaderboard.md").unlink()
    capsys.readouterr()
    try:
        build("mixed", results)
    except ValueError as exc:
        message = str(exc)
    else:
        raise AssertionError("a row of mixed settings was built")
    assert message.startswith("mixed: 1 row(s) would average seeds made with different settings: digits / knn / "
                              "triplet: budget.iterations: 3 (seed 0), 3 (seed 1), 4 (seed 2); ")
    assert "method.learner.optimizer.lr: 0.001 (seed 0), 0.001 (seed 1), 0.01 (seed 2)" in message
    assert "threads" not in message and "method.name=<name>_<setting>" in message
    assert not (results / "mixed" / "leaderboard.md").exists()


def test_what_differs_by_machine_or_saved_run_is_not_a_setting_of_the_row():
    """Where each machine keeps and fetches the data, and the saved run a re-evaluation loads, differ per seed by
    nature; a learning rate does not."""
    from benchmarks.report import _mixed_settings

    def record(seed, **config):
        return {"dataset": "fashion_mnist", "protocol": "knn", "method": "raw", "seed": seed,
                "config": {"seed": seed, "budget": {"iterations": 3}} | config}

    same = [record(0, data_root="/a", dataset={"source": {"root": "/a/f", "download_root": "/a/d", "download": True}},
                   from_run="/r/seed0", from_run_model_sha256="x", device="cpu", threads=1),
            record(1, data_root="/b", dataset={"source": {"root": "/b/f", "download_root": "/b/d", "download": False}},
                   from_run="/r/seed1", from_run_model_sha256="y", device="cuda", threads=2)]
    assert _mixed_settings(same) == []
    same[1]["config"]["budget"]["iterations"] = 4
    assert _mixed_settings(same) == ["fashion_mnist / knn / raw: budget.iterations: 3 (seed 0), 4 (seed 1)"]


def test_a_seeded_learners_cells_are_all_over_seeds_and_a_seed_free_one_keeps_its_runs_own():
    """A trained net whose two seeds happen to agree on one metric (P@1 0.963 twice) is still a seeded learner:
    that cell's interval is over seeds (0 here) like the row's others, not the run's own (†); raw features,
    the same for every seed on every metric, keep the run's own interval."""
    import pandas as pd

    from benchmarks.leaderboard import aggregate

    def row(method, seed, metric, value):
        return {"study": "s", "dataset": "digits", "protocol": "retrieval", "method": method, "seed": seed,
                "status": "ok", "metric": metric, "value": value, "run_ci95": 0.01, "n": 100,
                "reference_row": method == "raw", "fit_s": 1.0}
    rows = [row("triplet", 0, "p_at_1", 0.963), row("triplet", 1, "p_at_1", 0.963),
            row("triplet", 0, "map_at_r", 0.80), row("triplet", 1, "map_at_r", 0.82),
            row("raw", 0, "p_at_1", 0.95), row("raw", 1, "p_at_1", 0.95),
            row("raw", 0, "map_at_r", 0.70), row("raw", 1, "map_at_r", 0.70)]
    table = aggregate(pd.DataFrame(rows)).set_index(["method", "metric"])
    assert table.loc[("triplet", "p_at_1"), "ci_over"] == "seeds" and table.loc[("triplet", "p_at_1"), "ci95"] == 0
    assert table.loc[("triplet", "map_at_r"), "ci_over"] == "seeds"
    assert (table.loc["raw", "ci_over"] == "within run").all() and (table.loc["raw", "ci95"] == 0.01).all()
