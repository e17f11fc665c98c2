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
