"""Sweeps through Hydra's launchers (joblib, submitit's local executor, the Slurm preset), and sweeps that
are killed midway and resumed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.records import load_records, read_record

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["protocol=knn", "progress=false", "budget.iterations=2", "hydra/job_logging=none",
         "hydra/hydra_logging=none"]


def _sweep(tmp_path: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks.run", "-m", f"results_dir={tmp_path}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _methods(tmp_path: Path, study: str) -> list[tuple[str, str]]:
    records, unreadable = load_records(tmp_path / "runs" / study)
    assert not unreadable
    return sorted((r["method"], r["status"]) for r in records)


def _launcher(tmp_path: Path) -> str:
    """The launcher the sweep used, as Hydra saved the sweep's config."""
    (saved,) = (tmp_path / "hydra" / "multirun").glob("*/multirun.yaml")
    return yaml.safe_load(saved.read_text())["hydra"]["launcher"]["_target_"]


def test_two_job_multirun_through_submitit_local(tmp_path):
    # the cluster path on real submitit code: each run is pickled, launched as its own process, and awaited
    done = _sweep(tmp_path, "method=raw,untrained", "study=submitit", "hydra/launcher=submitit_local",
                  "hydra.launcher.timeout_min=5", *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _methods(tmp_path, "submitit") == [("raw", "ok"), ("untrained", "ok")]
    logs = list((tmp_path / "hydra" / "multirun").rglob("*_log.out"))
    assert len(logs) == 2  # one submitit job per run, each with its own log
    assert _launcher(tmp_path).endswith("LocalLauncher")


def test_two_job_multirun_through_joblib(tmp_path):
    done = _sweep(tmp_path, "method=raw,untrained", "study=joblib", "hydra/launcher=local_parallel", "threads=1",
                  *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _launcher(tmp_path).endswith("JoblibLauncher")
    assert _methods(tmp_path, "joblib") == [("raw", "ok"), ("untrained", "ok")]


def test_slurm_preset_composes_with_the_cluster_settings():
    cmd = [sys.executable, "-m", "benchmarks.run", "hydra/launcher=slurm", "hydra.launcher.partition=a100",
           "--cfg", "hydra", "-p", "hydra.launcher"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    launcher = yaml.safe_load(done.stdout.split("\n", 1)[1])  # the first line is "# @package hydra.launcher"
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["partition"] == "a100" and launcher["gpus_per_node"] == 1
    assert launcher["timeout_min"] > 0 and launcher["array_parallelism"] > 0


def _start_and_kill_after_first_record(tmp_path: Path, study: str, sig: int, overrides: list[str]) -> None:
    """Start a two-run sweep (raw, then a long triplet fit) and send ``sig`` once raw's record exists."""
    cmd = [sys.executable, "-m", "benchmarks.run", "-m", f"results_dir={tmp_path}", f"study={study}", *overrides]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    first = tmp_path / "runs" / study / "digits" / "knn" / "raw" / "seed0" / "record.json"
    deadline = time.time() + 240
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert first.is_file(), "the first run wrote no record:\n" + proc.stdout.read()[-3000:]
    time.sleep(2.0)  # the second run (about 10 s of training) is now fitting
    assert proc.poll() is None, "the sweep ended before it could be interrupted:\n" + proc.stdout.read()[-3000:]
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0


SWEEP = ["method=raw,triplet", "protocol=knn", "progress=false", "budget.iterations=4000", "fit_cache=false", "threads=1",
         "hydra/job_logging=none", "hydra/hydra_logging=none"]


def test_sweep_killed_midway_loses_nothing_and_resumes(tmp_path):
    _start_and_kill_after_first_record(tmp_path, "killed", signal.SIGKILL, SWEEP)
    run_root = tmp_path / "runs" / "killed" / "digits" / "knn"
    raw = read_record(run_root / "raw" / "seed0" / "record.json")
    assert raw["status"] == "ok" and raw["metrics"]["knn_error"]["mean"] >= 0
    leftovers = sorted(p.name for p in (run_root / "triplet" / "seed0").iterdir()) \
        if (run_root / "triplet" / "seed0").exists() else []
    assert "record.json" not in leftovers  # killed mid-fit: no record at all, never half of one
    resumed = _sweep(tmp_path, "study=killed", *SWEEP)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "raw/seed0 already holds this run's record" in resumed.stdout
    assert read_record(run_root / "raw" / "seed0" / "record.json")["started"] == raw["started"]  # not redone
    assert _methods(tmp_path, "killed") == [("raw", "ok"), ("triplet", "ok")]


def test_sweep_terminated_records_the_run_in_progress_as_failed(tmp_path):
    _start_and_kill_after_first_record(tmp_path, "terminated", signal.SIGTERM, SWEEP)
    run_root = tmp_path / "runs" / "terminated" / "digits" / "knn"
    stopped = read_record(run_root / "triplet" / "seed0" / "record.json")
    assert stopped["status"] == "failed" and stopped["error"]["type"] == "Terminated"
    assert "SIGTERM" in stopped["error"]["message"]
    assert read_record(run_root / "raw" / "seed0" / "record.json")["status"] == "ok"
    resumed = _sweep(tmp_path, "study=terminated", *SWEEP, timeout=900)  # a 4,000-step fit on a loaded machine
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _methods(tmp_path, "terminated") == [("raw", "ok"), ("triplet", "ok")]


def test_shipped_sweeps_launch_every_learner_under_one_protocol_before_the_next():
    """Runs of one (method, seed) under two protocols share a fit (benchmarks.fit_cache): launched side by side
    in a parallel sweep, the second waits for the first one's fit. The presets sweep ``protocol`` outermost, so
    Hydra's job list holds each protocol's runs together and later protocols find their fits made."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    checked = 0
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        params = ((yaml.safe_load(path.read_text()).get("hydra") or {}).get("sweeper") or {}).get("params") or {}
        if "," not in str(params.get("protocol", "")) or len(params) < 2:
            continue
        overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        jobs = BasicSweeper.split_arguments(overrides, None)[0]
        protocols = [next(o for o in job if o.startswith("protocol=")) for job in jobs]
        switches = sum(a != b for a, b in zip(protocols, protocols[1:]))
        assert switches == len(set(protocols)) - 1, f"{path.name}: put protocol first in hydra.sweeper.params"
        checked += 1
    assert checked >= 10


def test_a_sweep_whose_runs_would_share_a_record_folder_is_refused_before_any_runs(tmp_path):
    """A run's folder is named by study, data set, protocol, method name and seed: a sweep over a learning rate
    would write each value's run into one folder, each replacing the last (the table would hold the last value
    alone). It is refused before Hydra launches anything; with the value in the method's name, it runs."""
    lr = "method.learner.optimizer.lr=1e-4,1e-3"
    done = _sweep(tmp_path, "study=lrs", "method=triplet", lr, "threads=1", *SMALL)
    assert done.returncode == 1, done.stderr[-3000:]
    assert ("[failed] this sweep would write several runs into one record folder, each replacing the last: "
            f"method.learner.optimizer.lr=0.0001 and method.learner.optimizer.lr=0.001 would both write "
            f"{tmp_path}/runs/lrs/digits/knn/triplet/seed0") in done.stderr
    assert "To sweep method.learner.optimizer.lr, put its value in the method's name: " \
           "'method.name=triplet_lr${method.learner.optimizer.lr}'" in done.stderr
    assert not (tmp_path / "runs").exists() and "Launching" not in done.stdout + done.stderr
    # a config group with no name of its own (backbone) is told to run as a study per value
    done = _sweep(tmp_path, "study=nets", "method=triplet", "backbone=mlp,conv4", "threads=1", *SMALL)
    assert done.returncode == 1 and "To sweep backbone, run each value as its own study: backbone=mlp " \
                                    "study=nets_mlp, then backbone=conv4 study=nets_conv4" in done.stderr
    # the fix the message gives: one row per value
    done = _sweep(tmp_path, "study=lrs", "method=triplet", lr, "method.name=triplet_lr${method.learner.optimizer.lr}",
                  "threads=1", *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _methods(tmp_path, "lrs") == [("triplet_lr0.0001", "ok"), ("triplet_lr0.001", "ok")]


def test_settings_that_collide_only_together_are_found():
    """Each setting alone changes the folder, and yet two combinations can share one: a run_dir of one's own
    that writes the training and data seeds side by side gives seed=1 data_seed=11 and seed=11 data_seed=1 the
    same folder. Every combination of swept settings is checked (the groups at their first values); the
    shipped run_dir keeps every combination of training, split and episode seeds apart."""
    from hydra import initialize_config_dir

    from benchmarks.sweep_collisions import grid_collisions, refusal

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        shared = ["method=raw", "protocol=knn", "study=ds"]
        own = [*shared, "run_dir=out/${seed}${data_seed}"]
        found = grid_collisions(own, {"seed": ["1", "11"], "data_seed": ["11", "1"]})
        assert [(c.key, c.first, c.second) for c in found] == [
            ("seed and data_seed", "seed=1 data_seed=11", "seed=11 data_seed=1")]
        assert refusal(found).startswith("this sweep would write several runs into one record folder, each "
                                         "replacing the last: seed=1 data_seed=11 and seed=11 data_seed=1 "
                                         "would both write out/111.")
        assert grid_collisions(shared, {"seed": ["1", "11"], "data_seed": ["11", "1"]}) == []
        assert grid_collisions(shared, {"data_seed": ["0", "1"], "episode_seed": ["0", "1"], "seed": ["0", "1"]}) \
            == []
        assert grid_collisions(shared, {"episode_seed": ["1", "2"], "seed": ["0", "1"]}) == []


def test_a_sweep_over_data_seeds_keeps_each_split_apart(tmp_path):
    """A split drawn with another data seed is written to its own folder and named <protocol>@split<k>, so a
    sweep over data seeds keeps every split's run and the table shows each split as its own row (never an
    average over two splits, whose test classes differ); the default split's names are unchanged."""
    done = _sweep(tmp_path, "study=splits", "method=raw", "data_seed=0,1", "threads=1", *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    records, unreadable = load_records(tmp_path / "runs" / "splits")
    assert not unreadable
    found = sorted((r["protocol"], r["data_seed"], Path(r["_dir"]).relative_to(tmp_path).as_posix()) for r in records)
    assert found == [("knn", 0, "runs/splits/digits/knn/raw/seed0"),
                     ("knn@split1", 1, "runs/splits/digits/knn@split1/raw/seed0")]
    by_split = {r["data_seed"]: r["metrics"]["knn_error"]["mean"] for r in records}
    assert by_split[0] != by_split[1]  # another split of digits' samples: another error


def test_a_sweep_with_a_value_its_runs_would_refuse_is_refused_before_any_runs(tmp_path):
    """seed=0,abc: the runs before the bad one would train first, and the bad one leave a seedabc folder; the
    sweep is refused before Hydra launches anything, naming each refused value once and why."""
    done = _sweep(tmp_path, "study=bad", "method=raw,protonet", "seed=0,abc", "budget.iterations=0,5",
                  *(o for o in SMALL if not o.startswith("budget.")))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "[failed] this sweep has 2 settings its runs would refuse, so nothing was launched: budget.iterations " \
           "is 0: it is the number of training steps, a whole number of at least 1" in done.stderr
    assert " | seed is 'abc', but it takes a whole number of at least 0" in done.stderr
    assert not (tmp_path / "runs").exists() and "Launching" not in done.stdout + done.stderr
