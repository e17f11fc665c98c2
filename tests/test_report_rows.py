"""A table row averages its seeds only where they were made with the same settings."""
from benchmarks.report import build
from benchmarks.run import execute

RUN = ["method=triplet", "protocol=knn", "study=mixed", "threads=1", "budget.iterations=3"]


def test_a_row_whose_seeds_were_made_with_different_settings_is_refused(compose_cfg, tmp_path, capsys):
    """Seeds typed with different budgets or learning rates into one study would be averaged as one learner's
    seeds; the report names the row, the settings that differ and each seed's value, and writes no table."""
    results = tmp_path / "results"
    execute(compose_cfg(*RUN, "seed=0"))
    execute(compose_cfg(*RUN, "seed=1", "threads=2"))  # placed differently: the same experiment
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
