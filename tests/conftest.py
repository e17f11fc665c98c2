import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: N worker processes share the cores, one thread each
    os.environ["OMP_NUM_THREADS"] = "1"  # and the runs the tests start as subprocesses inherit it
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


@pytest.fixture
def compose_cfg(tmp_path):
    """Compose the project's config with overrides; results go to a temporary folder, no progress bars."""

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config",
                           overrides=[f"results_dir={tmp_path / 'results'}", "progress=false", *overrides])

    return _compose


def require_real_data() -> bool:
    """CI sets SIMBENCH_REQUIRE_REAL_DATA=1: there a missing real data set fails instead of skipping."""
    return os.environ.get("SIMBENCH_REQUIRE_REAL_DATA") == "1"


# The tests write only under pytest's temporary folders: a test that adds, changes or deletes anything in the
# project's own results/ (a run, a Hydra log folder, a fit-cache file, a committed reference) fails the session.
# Checked once, by the process that runs the session (pytest-xdist's controller, or pytest alone).
_RESULTS = ROOT / "results"
TOUCHED = "written under results/"


def results_state(folder: Path) -> dict[Path, int]:
    """Every path under ``folder`` with its modification time in ns (0 for a folder)."""
    if not folder.is_dir():
        return {}
    return {p: (p.stat().st_mtime_ns if p.is_file() else 0) for p in folder.rglob("*")}


def results_changes(before: dict[Path, int], after: dict[Path, int]) -> list[Path]:
    """The paths added, changed or deleted between two ``results_state``s."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def guarded_exit_status(status: int, changes: list[Path]) -> int:
    """A session that passed (or collected nothing) fails when the tests touched results/; any other status
    (failed tests, an interrupt, a usage error) is kept."""
    if changes and status in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return pytest.ExitCode.TESTS_FAILED
    return status


def pytest_sessionstart(session):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        session.config._results_before = results_state(_RESULTS)


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_results_before", None)
    if before is not None:
        session.config._results_touched = changes = results_changes(before, results_state(_RESULTS))
        session.exitstatus = guarded_exit_status(session.exitstatus, changes)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if changes and reporter is not None:  # pytest's closing count line then ends "..., N written under results/"
            reporter.stats.setdefault(TOUCHED, []).extend(changes)


@pytest.hookimpl(trylast=True)  # after the other summary sections (pytest's pass/fail count line comes after it)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    changes = getattr(config, "_results_touched", None)
    if changes:
        terminalreporter.write_sep("=", "the tests added, changed or deleted files in the project's results/ "
                                        "folder: the session fails", red=True)
        for path in changes[:10]:
            terminalreporter.write_line(f"  {path.relative_to(ROOT)}{'' if path.exists() else ' (deleted)'}")
        if len(changes) > 10:
            terminalreporter.write_line(f"  ... {len(changes) - 10} more")
        terminalreporter.write_line("A test must write under its tmp_path: give its runs results_dir=<tmp_path>. "
                                    "(A run started in this checkout while the tests ran shows here too.)", red=True)
