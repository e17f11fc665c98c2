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
