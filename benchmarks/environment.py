"""Seeding, device choice and the provenance a record keeps (library versions, git revision)."""
from __future__ import annotations

import contextlib
import os
import platform
import random
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def kept_random_state():
    """Run a block and then put Python's, NumPy's and torch's (CPU and CUDA) random states back as they were."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


DEVICE_TYPES = ("cpu", "cuda")  # where the suite runs: torch's other device types are not supported


def device_name_problem(name) -> str | None:
    """What is wrong with a ``device`` setting as written (no GPU needed to tell), or None: ``auto``, ``cpu``,
    ``cuda`` and ``cuda:N`` are taken."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        return (f"device is {name!r}, but the suite runs on device=auto (a GPU when one is visible), device=cpu, "
                "device=cuda or device=cuda:N")
    return None


def pick_device(name: str) -> torch.device:
    problem = device_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cpu":
        return torch.device("cpu")  # cpu:0 is the one CPU device; saved fits name it "cpu", which loads back
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise RuntimeError(f"device={name} was asked for but no GPU is visible; use device=auto or device=cpu")
        if device.index is not None and device.index >= visible:
            raise RuntimeError(f"device={name} was asked for but {visible} GPU(s) are visible "
                               f"(cuda:0 to cuda:{visible - 1}); use one of them, or device=cuda")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_model()} x{os.cpu_count()}"


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows: trained nets depend on it
    (the order of floating-point sums), so every record names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads for torch's operators (None: leave torch's default, the number of
    cores) and return the number in use. The thread count changes the order of floating-point reductions,
    so training for a few hundred steps at 1 and at 2 threads gives measurably different nets: presets with
    a committed reference pin the count they were made at."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, or null for torch's default (the number of "
                             f"cores), got {threads!r}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "pytorch-metric-learning", "hydra-core", "numpy", "pandas", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


@lru_cache(maxsize=1)
def git_revision() -> str:
    """The commit (with ``-dirty`` for uncommitted changes) when this process first asked: a long sweep runs
    the code it imported at its start, whatever is checked out later, so later records must not name a
    later commit."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
