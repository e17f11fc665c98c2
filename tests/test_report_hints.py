"""A report of a study with no records says which command makes them: the suite, the preset, or a sweep."""
import pytest

from benchmarks.report import build


@pytest.mark.parametrize("study,command", [
    ("leaderboard_smoke", "python -m benchmarks.suite leaderboard_smoke"),   # a suite, not an experiment preset
    ("smoke_digits", "python -m benchmarks.run -m experiment=smoke_digits"),
    ("mine", "python -m benchmarks.run -m study=mine "),                     # no preset of that name
])
def test_no_records_names_the_command_that_makes_them(tmp_path, capsys, study, command):
    assert build(study, tmp_path) == 2
    err = capsys.readouterr().err
    assert f"No records under {tmp_path / 'runs' / study}" in err and command in err
    assert ("experiment=" + study in err) == (study == "smoke_digits")  # never a preset that does not exist


def test_a_misspelled_study_is_told_the_studies_that_have_records(tmp_path, capsys):
    for name in ("splits", "mine"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    assert build("spltis", tmp_path) == 2
    err = capsys.readouterr().err
    assert f"No records under {tmp_path / 'runs' / 'spltis'}. Did you mean splits? The studies with records in " \
           f"{tmp_path / 'runs'}: mine, splits." in err
    assert build("other", tmp_path) == 2  # nothing near: the studies alone
    assert f"No records under {tmp_path / 'runs' / 'other'}. The studies with records in" in capsys.readouterr().err


def test_the_figures_module_run_alone_points_at_the_report():
    """``python -m benchmarks.figures`` (a library) exits 2 naming the command that draws the figures, rather
    than exiting 0 having drawn nothing."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-m", "benchmarks.figures", "smoke_digits"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 2 and "python -m benchmarks.report <study> writes results/<study>/figures/" in done.stderr
