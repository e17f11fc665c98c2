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
