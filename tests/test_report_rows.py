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
