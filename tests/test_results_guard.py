"""The session guard of tests/conftest.py: tests that touch the project's results/ fail the session."""
import os

import pytest

from conftest import guarded_exit_status, results_changes, results_state


def test_added_changed_and_deleted_paths_are_found_and_untouched_ones_are_not(tmp_path):
    (tmp_path / "runs").mkdir()
    kept, changed, deleted = tmp_path / "kept.csv", tmp_path / "changed.csv", tmp_path / "runs" / "deleted.json"
    for path in (kept, changed, deleted):
        path.write_text("x")
    before = results_state(tmp_path)
    assert results_changes(before, results_state(tmp_path)) == []
    mtime = changed.stat().st_mtime_ns
    changed.write_text("y")
    os.utime(changed, ns=(mtime + 10**9, mtime + 10**9))  # a later modification time, whatever the clock's grain
    deleted.unlink()
    added = tmp_path / "hydra" / "run.log"
    added.parent.mkdir()
    added.write_text("")
    assert results_changes(before, results_state(tmp_path)) == sorted([changed, deleted, added.parent, added])
    assert results_state(tmp_path / "missing") == {}


@pytest.mark.parametrize("status, touched, expected", [
    (pytest.ExitCode.OK, True, pytest.ExitCode.TESTS_FAILED),
    (pytest.ExitCode.NO_TESTS_COLLECTED, True, pytest.ExitCode.TESTS_FAILED),
    (pytest.ExitCode.OK, False, pytest.ExitCode.OK),
    (pytest.ExitCode.TESTS_FAILED, True, pytest.ExitCode.TESTS_FAILED),
    (pytest.ExitCode.INTERRUPTED, True, pytest.ExitCode.INTERRUPTED),  # Ctrl-C stays Ctrl-C
    (pytest.ExitCode.USAGE_ERROR, True, pytest.ExitCode.USAGE_ERROR)])
def test_only_a_passing_session_is_turned_into_a_failing_one(tmp_path, status, touched, expected):
    assert guarded_exit_status(status, [tmp_path / "x"] if touched else []) == expected


def _pytest_session_in(project, test_source: str):
    """pytest run on ``project``/tests with this project's conftest.py, as its own session (not a worker)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    tests = project / "tests"
    tests.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    (tests / "test_probe.py").write_text(test_source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not an xdist worker
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], cwd=project,
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_session_whose_test_writes_into_results_fails_and_its_count_line_says_so(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "reference.csv").write_text("kept")
    done = _pytest_session_in(tmp_path, (
        "from pathlib import Path\n"
        "def test_writes():\n"
        "    (Path(__file__).resolve().parents[1] / 'results' / 'leaked.json').write_text('{}')\n"
        "def test_passes():\n"
        "    pass\n"))
    assert done.returncode == 1, done.stdout
    assert "results/leaked.json" in done.stdout and "results/reference.csv" not in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("2 passed, 1 written under results/ in ")


def test_a_session_that_leaves_results_alone_passes_with_pytest_s_own_count_line(tmp_path):
    (tmp_path / "results").mkdir()
    done = _pytest_session_in(tmp_path, "def test_passes():\n    pass\n")
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("1 passed in ")
