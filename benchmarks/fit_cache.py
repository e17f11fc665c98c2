"""Train once, evaluate under every protocol: fitted learners kept between runs.

A study runs each (method, seed) under several protocols. When two of those runs train on the very same
data (same dataset config, same training indices after the split) with the same learner config, budget,
seed, device kind, CPU thread count and code, the second one loads the learner the first one fitted
instead of training it again. A four-protocol study trains each learner about twice instead of four
times (``knn`` has its own split), and every protocol that shares a split judges the same trained model.

The key is a hash of everything the fit depends on, including a digest of the fit's code
(``benchmarks.code_identity``: the modules its learner, backbone and data set name, what they import, and
``datasets/``): editing a learner's code, or a module it imports, invalidates its cached fits; adding another
learner does not. A fit is written
atomically (a killed run leaves no half file); an unreadable cache file is ignored and refitted.
``fit_cache=false`` turns the cache off; ``fit_cache_dir`` says where it lives.

Runs of a parallel sweep (joblib, submitit) often start two protocols of the same (method, seed) at once.
``FitCache.fit_once`` holds an exclusive lock per key (``filelock`` on ``<key>.lock`` beside the fit; it locks
on Windows too, though only Linux is tested here) from the cache lookup to the store, so the second run waits
for the first one's fit and loads it instead of training the same learner a second time. The lock goes with
its holder: a run that crashes or is killed releases it, and the waiting run then looks again (and fits, if
nothing was stored).
"""
from __future__ import annotations

import io
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from filelock import FileLock, Timeout

from benchmarks.code_identity import code_digest, targets
from benchmarks.records import atomic_write, config_hash

def fit_key(*, method: dict, backbone: dict | None, budget: dict, dataset: dict, seed: int,
            train_index_sha: str, device_kind: str, threads: int | None = None, precision: str = "fp32") -> str:
    """The cache key of one fit: everything that decides what ``learner.fit`` produces. The CPU thread
    count is part of it (default: torch's current one): parallel float sums round differently with
    another number of threads, and after a few hundred steps the trained nets differ measurably."""
    threads = torch.get_num_threads() if threads is None else threads
    code = code_digest(targets([method, backbone, dataset]))  # a user's own learner module outside the project too
    return config_hash({"method": method, "backbone": backbone, "budget": budget, "dataset": dataset,
                        "seed": seed, "train_index_sha": train_index_sha, "device": device_kind,
                        "threads": threads, "code": code} | ({} if precision == "fp32" else {"precision": precision}))


@dataclass
class Fitted:
    """What ``FitCache.fit_once`` gives back: the learner, its fit report and fit time (the original fit's
    when it was loaded), whether it was loaded, and how long this run waited for another run's fit."""
    learner: object
    fit: dict
    fit_s: float
    loaded: bool
    waited_s: float = 0.0


class FitCache:
    """Fitted learners (whole objects, pickled by ``torch.save``) with their fit reports, under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str, device: torch.device, warn: bool = True):
        """``(learner, fit_report_dict, fit_seconds)`` stored under ``key``, or None (an unreadable file too:
        with a warning unless ``warn`` is false)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            blob = torch.load(path, map_location=device, weights_only=False)
            return blob["learner"], blob["fit"], blob["fit_s"]
        except Exception as exc:  # a file from an older torch, or damaged: fit again and overwrite it
            if warn:
                warnings.warn(f"fit cache: could not read {path} ({type(exc).__name__}: {exc}); fitting again")
            return None

    def store(self, key: str, learner, fit: dict, fit_s: float) -> Path:
        buffer = io.BytesIO()
        torch.save({"learner": learner, "fit": fit, "fit_s": fit_s}, buffer)
        data = buffer.getvalue()
        path = self.path(key)
        atomic_write(path, lambda fh: fh.write(data))
        return path

    def check_folder(self) -> None:
        """Create the cache folder, or fail with what to do (run among a run's checks, before any data)."""
        if self.root.exists() and not self.root.is_dir():
            raise OSError(f"fit cache: {self.root} is a file, not a folder: set fit_cache_dir to a folder, or "
                          "fit_cache=false")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"fit cache: cannot create the folder {self.root} ({exc.strerror or exc}): set "
                          "fit_cache_dir to a writable folder, or fit_cache=false") from exc

    @contextmanager
    def lock(self, key: str, label: str = "this run",
             on_wait: Callable[[float | None], None] | None = None) -> Iterator[float]:
        """Hold the exclusive lock of ``key`` (blocking while another process holds it); yields the seconds
        spent waiting for it (0.0 when it was free). When it has to wait, ``on_wait(None)`` is called as the
        wait begins and ``on_wait(seconds)`` when the lock is granted. The lock is ``filelock``'s on
        ``<key>.lock``; a lock that cannot be taken (a read-only cache with no lock file yet, a file system
        that refuses locks) is a warning, and the run goes on without it. It is released whatever
        interrupts the run, and by the operating system if the run is killed."""
        self.check_folder()
        path = self.root / f"{key}.lock"
        # no soft (marker-file) lock where the file system has no flock: a marker left by a run killed on
        # another node would block every later run of the key; without a lock the run only repeats work
        file_lock, waited_s, busy = FileLock(str(path), fallback_to_soft=False), 0.0, False
        try:
            try:
                try:
                    file_lock.acquire(timeout=0)
                except Timeout:
                    busy = True
                if busy:  # waited for outside the handler: an interrupt then is not chained to the Timeout
                    if on_wait is not None:
                        on_wait(None)
                    print(f"fit cache: {label} waits for another run fitting the same learner (key {key})",
                          file=sys.stderr, flush=True)
                    t0 = time.perf_counter()
                    file_lock.acquire()
                    waited_s = time.perf_counter() - t0
                    if on_wait is not None:
                        on_wait(waited_s)
            except OSError as exc:
                warnings.warn(f"fit cache: cannot lock {path} ({exc.strerror or exc}); runs of this learner "
                              "in parallel will not wait for each other's fit")
            yield waited_s
        finally:
            if file_lock.is_locked:
                file_lock.release()

    def fit_once(self, key: str, device: torch.device, fit: Callable[[], tuple[object, dict, float]],
                 label: str = "this run", on_wait: Callable[[float | None], None] | None = None) -> Fitted:
        """The learner stored under ``key``, or the one ``fit()`` returns as ``(learner, fit_dict, fit_s)``,
        then stored. A stored fit is loaded without the lock (it was written whole); otherwise under the
        key's lock: runs of one key in parallel fit it once, the others wait and load. A fit that cannot be
        stored (a read-only cache) is a warning: the run keeps its learner. ``on_wait``: see ``lock``."""
        stored = self.load(key, device, warn=False)
        if stored is not None:
            return Fitted(*stored, loaded=True)
        with self.lock(key, label, on_wait) as waited_s:
            loaded = self.load(key, device)
            if loaded is not None:
                return Fitted(*loaded, loaded=True, waited_s=waited_s)
            learner, report, fit_s = fit()
            try:
                self.store(key, learner, report, fit_s)
            except OSError as exc:
                warnings.warn(f"fit cache: could not store the fit in {self.path(key)} ({exc.strerror or exc}); "
                              "the run goes on, other runs will fit it again")
            return Fitted(learner, report, fit_s, loaded=False, waited_s=waited_s)
