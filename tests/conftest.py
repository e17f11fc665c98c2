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


# The tests write only under pytest's temporary folders: a test that leaves or changes anything in the project's
# own results/ (a run, a Hydra log folder, a fit-cache file, a committed reference) fails the session.
# Checked once, by the process that runs the session (pytest-xdist's controller, or pytest alone).
_RESULTS = ROOT / "results"


def _results_state() -> dict[Path, int]:
    if not _RESULTS.is_dir():
        return {}
    return {p: (p.stat().st_mtime_ns if p.is_file() else 0) for p in _RESULTS.rglob("*")}


def pytest_sessionstart(session):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        session.config._results_before = _results_state()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_results_before", None)
    if before is not None:
        after = _results_state()
        session.config._results_written = touched = sorted(p for p, t in after.items() if before.get(p) != t)
        if touched:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)  # after pytest's own summary, so that it is the last thing one reads
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    touched = getattr(config, "_results_written", None)
    if touched:
        terminalreporter.write_sep("=", "tests wrote into the project's results/ folder", red=True)
        for path in touched[:10]:
            terminalreporter.write_line(f"  {path.relative_to(ROOT)}")
        if len(touched) > 10:
            terminalreporter.write_line(f"  ... {len(touched) - 10} more")
        terminalreporter.write_line("A test must write under its tmp_path: give its runs results_dir=<tmp_path>. "
                                    "(A run started in this checkout while the tests ran shows here too.)", red=True)
