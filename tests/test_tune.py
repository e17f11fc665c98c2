"""Tune-then-test (benchmarks.tune): Optuna trials on the validation classes, the chosen values re-run over
seeds on the test side; resumable; bad plans, spaces and objectives fail before any training."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.records import load_records
from benchmarks.run import objective_value
from benchmarks.tune import CONF, TuneError, check_objective, check_space, load_plan, search_space

ROOT = Path(__file__).resolve().parent.parent
BASE = ["dataset=digits", "backbone=mlp", "protocol=knn", "budget=smoke", "budget.iterations=20", "progress=false",
        "threads=1"]


def _plan(tmp_path: Path, **changes) -> Path:
    plan = {"study": "tiny_tune", "base": BASE, "objective": "knn_error", "direction": "minimize", "n_trials": 3,
            "sampler_seed": 0, "tune_seed": 0, "test_seeds": [0, 1], "methods": ["raw", "triplet"]} | changes
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _tune(plan: Path, results: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.tune", str(plan), "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_tune_then_test_chooses_on_validation_and_tests_the_choice(tmp_path):
    results = tmp_path / "results"
    done = _tune(_plan(tmp_path), results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    chosen = yaml.safe_load((results / "tiny_tune" / "chosen.yaml").read_text())["methods"]
    assert set(chosen["triplet"]["best_params"]) == set(search_space("triplet"))
    assert chosen["triplet"]["n_trials"] == 3 and chosen["raw"]["best_params"] == {}

    trials, bad = load_records(results / "runs" / "tiny_tune@validation" / "triplet")
    assert not bad and len(trials) == 3
    assert {r["protocol"] for r in trials} == {"knn@validation"}
    lrs = {r["config"]["method"]["learner"]["optimizer"]["lr"] for r in trials}
    assert len(lrs) == 3  # three different trials, not one run three times
    best = min(trials, key=lambda r: r["metrics"]["knn_error"]["mean"])  # minimise: the best trial by the records
    assert chosen["triplet"]["best_value"] == pytest.approx(best["metrics"]["knn_error"]["mean"])

    tests, bad = load_records(results / "runs" / "tiny_tune")
    triplet_tests = [r for r in tests if r["method"] == "triplet"]
    assert not bad and sorted(r["seed"] for r in triplet_tests) == [0, 1]
    for rec in triplet_tests:
        assert rec["protocol"] == "knn"
        learner = rec["config"]["method"]["learner"]
        assert learner["optimizer"]["lr"] == pytest.approx(chosen["triplet"]["best_params"]["method.learner.optimizer.lr"])
        assert learner["loss"]["margin"] == pytest.approx(chosen["triplet"]["best_params"]["method.learner.loss.margin"])
        # the test scores on the held-out samples, tuning on part of the training side: never the same samples
        assert rec["split"]["test_index_sha"] != best["split"]["test_index_sha"]
        assert rec["split"]["n_train"] > best["split"]["n_train"]
    assert "| triplet" in (results / "tiny_tune" / "leaderboard.md").read_text()
    assert "triplet" in (results / "tiny_tune" / "chosen.md").read_text()

    # run again: every trial and test run is found in its record; nothing trains, the choice is the same
    stamps = {p: p.stat().st_mtime_ns for p in (results / "runs").rglob("record.json")}
    again = _tune(_plan(tmp_path), results)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (results / "runs").rglob("record.json")} == stamps
    assert yaml.safe_load((results / "tiny_tune" / "chosen.yaml").read_text())["methods"] == chosen


def test_an_unknown_objective_fails_before_any_training(tmp_path):
    results = tmp_path / "results"
    done = _tune(_plan(tmp_path, objective="nope", direction="maximize"), results)
    assert done.returncode == 1
    assert "objective=nope is not a metric of the knn@validation protocol" in done.stderr
    assert "knn_error" in done.stderr  # the message lists the metrics it does report
    assert not (results / "runs" / "tiny_tune@validation" / "triplet").exists()


def test_objective_value_reads_the_record_or_names_the_metrics():
    record = {"protocol": "retrieval", "metrics": {"map_at_r": {"mean": 0.5}, "p_at_1": {"mean": 0.9}}}
    assert objective_value(record, "map_at_r") == 0.5
    assert objective_value(record, None) is None
    with pytest.raises(KeyError, match="map_at_r, p_at_1"):
        objective_value(record, "map")


def test_bad_plans_and_search_spaces_are_refused(tmp_path):
    with pytest.raises(TuneError, match="does not exist"):
        load_plan("no_such_plan")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"study": "s", "base": [], "objective": "x", "direction": "up", "n_trials": 2,
                                    "methods": ["raw"]}))
    with pytest.raises(TuneError, match="maximize or minimize"):
        load_plan(str(path))
    path.write_text(yaml.safe_dump({"study": "s", "base": []}))
    with pytest.raises(TuneError, match="lacks objective, direction, n_trials, methods"):
        load_plan(str(path))
    with pytest.raises(TuneError, match="unknown method 'nope'"):
        search_space("nope")
    plan = {"path": path, "base": BASE}
    with pytest.raises(TuneError, match="method.learner.optimizer.lrr is not a key of the triplet config"):
        check_space(plan, "triplet", {"method.learner.optimizer.lrr": "interval(0.1, 1)"})


@pytest.mark.parametrize("space,needle", [
    ({"method.learner.k_shot": "interval(1, 10)"},  # Optuna would sample k_shot=3.7
     "conf/search_space/protonet.yaml: method.learner.k_shot: interval(1, 10) gives 1.0: method.learner.k_shot is "
     "1.0, but PrototypicalNetwork's k_shot takes a whole number of at least 1 (int(interval(a, b)) samples whole "
     "numbers)"),
    ({"backbone": "choice(mlp, conv5)"},  # an option that does not exist: Hydra's message, in one line
     "conf/search_space/protonet.yaml: backbone: choice(mlp, conv5) gives conv5: In 'config': Could not find "
     "'backbone/conv5'; available options in 'backbone': conv4, mlp, resnet18, resnet50"),
    ({"method.learner.k_shot": "choice(1, ${nowhere})"},  # shown as written, not as Hydra escapes it
     "method.learner.k_shot: choice(1, ${nowhere}) gives ${nowhere}: the configuration cannot be filled in at "
     "method.learner.k_shot: Interpolation key 'nowhere' not found"),
    ({"budget.iterations": "choice(0, 10)"}, "gives 0: budget.iterations is 0: it is the number of training steps"),
    ({"backbone.depth": "int(interval(18, 152))"},  # on resnet18 (below): the ends fit, most values inside do not
     "backbone.depth: int(interval(18, 152)) gives 85: backbone.depth is 85, but ResNet's depth takes one of 18, 34, "
     "50, 101, 152"),
    ({"method.learner.optimizer.lr": "choice(0.001, fast)"},
     "method.learner.optimizer.lr: choice(0.001, fast) gives fast: method.learner.optimizer.lr is 'fast', but "
     "Adam's lr takes a number"),
    ({"method.learner.n_way": "range(0, 3)"},  # a bound in the annotation (methods/bounds.py): no data read
     "method.learner.n_way: range(0, 3) gives 0: method.learner.n_way is 0, but PrototypicalNetwork's n_way takes a "
     "whole number of at least 2"),
    ({"method.learner.k_shot": "int(interval(0, 10))"},  # already whole numbers: no hint to make them so
     "method.learner.k_shot: int(interval(0, 10)) gives 0: method.learner.k_shot is 0, but PrototypicalNetwork's "
     "k_shot takes a whole number of at least 1"),
    ({"method.learner.n_way": "interval(1.0, 5.0)"},  # whole numbers would not fit either: no hint
     "method.learner.n_way: interval(1.0, 5.0) gives 1.0: method.learner.n_way is 1.0, but PrototypicalNetwork's "
     "n_way takes a whole number of at least 2"),
    ({"method.learner.optimizer.lr": "interval(-0.01, 0.01)"},  # torch's bound on lr, judged as ours are
     "method.learner.optimizer.lr: interval(-0.01, 0.01) gives -0.01: method.learner.optimizer.lr is -0.01, but "
     "Adam's lr takes a number above 0"),
    ({"method.learner.k_shot": "choice(1, 5)", "method.learner.n_way": "range(2, 6)"}, None),
    ({"method.learner.k_shot": "int(interval(1, 10))"}, None),
])
def test_each_value_a_search_space_spans_is_checked_against_the_setting_it_fills(space, needle):
    plan = {"path": "plan.yaml", "base": [*BASE, *(["backbone=resnet18"] if "backbone.depth" in space else [])]}
    if needle is None:
        check_space(plan, "protonet", space)
        return
    with pytest.raises(TuneError) as info:
        check_space(plan, "protonet", space)
    assert needle in str(info.value)
    assert ("samples whole numbers" in str(info.value)) == ("samples whole numbers" in needle)  # only where it helps


def test_a_space_given_in_the_plan_is_named_as_the_plan_s():
    space = {"method.learner.kshot": "choice(1, 5)"}
    with pytest.raises(TuneError, match=r"^plan.yaml: spaces.protonet: method.learner.kshot is not a key"):
        check_space({"path": "plan.yaml", "base": BASE, "spaces": {"protonet": space}}, "protonet", space)


def test_the_dry_run_checks_the_base_as_a_run_checks_it(tmp_path):
    """A setting of the wrong kind, or a budget of 0 steps, fails the dry run (exit 2) before any trial."""
    for extra, needle in [("method.learner.n_way=abc", "method.learner.n_way is 'abc', but PrototypicalNetwork's "
                                                        "n_way takes a whole number"),
                          ("budget.iterations=0", "budget.iterations is 0: it is the number of training steps")]:
        plan = _plan(tmp_path, methods=["protonet"], base=[*BASE, extra])
        done = subprocess.run([sys.executable, "-m", "benchmarks.tune", str(plan), "--dry-run"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and needle in done.stderr, done.stderr


def test_a_base_whose_references_cannot_be_filled_in_is_refused_by_the_dry_run(tmp_path):
    plan = {"path": tmp_path / "p.yaml", "base": [*BASE, "+method.learner.note=${nowhere}"]}
    with pytest.raises(TuneError, match=r"with method=triplet: the configuration cannot be filled in at "
                                        r"method\.learner\.note: Interpolation key 'nowhere' not found"):
        check_space(plan, "triplet", {})


def test_an_objective_no_trial_can_report_stops_an_optuna_search(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "-m", "hydra/sweeper=optuna", *BASE, "method=raw",
                           "objective=knn_eror", "hydra.sweeper.direction=minimize", "hydra.sweeper.n_trials=2",
                           f"results_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "objective=knn_eror is not a metric of the knn protocol" in done.stderr
    assert "[trial failed]" not in done.stdout and not (tmp_path / "sweep" / "optimization_results.yaml").exists()


def test_a_configuration_error_stops_an_optuna_search_instead_of_scoring_every_trial_the_worst(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "-m", "hydra/sweeper=optuna", *BASE, "method=raw",
                           "objective=knn_error", "hydra.sweeper.direction=minimize", "hydra.sweeper.n_trials=2",
                           "+method.learner.note=${nowhere}", f"results_dir={tmp_path}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "cannot be filled in at method.learner.note" in done.stderr
    assert "[trial failed]" not in done.stdout and not (tmp_path / "sweep" / "optimization_results.yaml").exists()


@pytest.mark.parametrize("space", sorted(p.stem for p in (CONF / "search_space").glob("*.yaml")))
def test_every_shipped_search_space_names_keys_of_its_method(space):
    keys = search_space(space)
    assert keys
    check_space({"path": "conf/search_space", "base": BASE}, space, keys)  # raises on a key the config lacks


def test_the_shipped_plan_is_valid():
    done = subprocess.run([sys.executable, "-m", "benchmarks.tune", "tune_digits_knn", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "tune 8 learners x 12 trials on the validation split (knn_error, minimize)" in done.stdout


def test_a_failing_trial_fails_alone_and_the_search_goes_on(tmp_path):
    results = tmp_path / "results"
    plan = _plan(tmp_path, methods=["triplet"], n_trials=4,
                 spaces={"triplet": {"method.learner.optimizer.lr": "choice(0.001, 1e30)"}})  # 1e30 diverges
    done = _tune(plan, results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    trials, _ = load_records(results / "runs" / "tiny_tune@validation" / "triplet")
    statuses = {r["config"]["method"]["learner"]["optimizer"]["lr"]: r["status"] for r in trials}
    assert statuses == {0.001: "ok", 1e30: "failed"}  # both values were tried; the bad one failed alone
    chosen = yaml.safe_load((results / "tiny_tune" / "chosen.yaml").read_text())["methods"]
    assert chosen["triplet"]["best_params"] == {"method.learner.optimizer.lr": 0.001}


def test_a_direction_against_the_metric_is_refused(tmp_path):
    plan = load_plan(str(_plan(tmp_path, direction="maximize")))
    record = {"protocol": "knn@validation", "metrics": {"knn_error": {"mean": 0.1}}}
    with pytest.raises(TuneError, match="knn_error is lower-is-better in the leaderboard, so direction must be minimize"):
        check_objective(plan, record)
    assert check_objective(load_plan(str(_plan(tmp_path))), record) == 0.1


def test_an_unknown_objective_is_named_before_the_direction(tmp_path):
    """A typo in the objective is not taken for a higher-is-better metric whose direction is wrong."""
    plan = load_plan(str(_plan(tmp_path, objective="knn_eror", direction="minimize")))
    record = {"protocol": "knn@validation", "metrics": {"knn_error": {"mean": 0.1}}}
    with pytest.raises(TuneError, match=r"objective=knn_eror is not a metric of the knn@validation protocol; it "
                                        r"reports knn_error: give one of those"):
        check_objective(plan, record)


@pytest.mark.parametrize("changes,needle", [
    ({"objective": "map_at_r", "direction": "maximize"},
     "objective=map_at_r is not a metric of the knn@validation protocol; it reports knn_error"),
    ({"base": ["dataset=digits", "protocol=fewshot", "budget.iterations=20", "progress=false", "threads=1"],
      "objective": "acc_5w1s", "direction": "maximize"},  # digits' 5 training classes: 2 or 3 validation ones
     "the probe (raw features on the validation side, before any training) failed: SplitError: validation=true "
     "scores on part of the training side"),
])
def test_the_dry_run_runs_the_probe_and_keeps_nothing(tmp_path, changes, needle):
    """What only a run of the protocol shows (its metrics' names, a validation side too small for its episodes)
    fails the dry run, as it would fail the tuning, and the dry run writes nothing under --results."""
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "benchmarks.tune", str(_plan(tmp_path, **changes)), "--dry-run",
                           "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and needle in done.stderr, done.stdout[-2000:] + done.stderr[-3000:]
    assert not results.exists()
    done = subprocess.run([sys.executable, "-m", "benchmarks.tune", str(_plan(tmp_path)), "--dry-run", "--results",
                           str(results)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "probe: raw scores knn_error=" in done.stdout, done.stderr[-3000:]
    assert not results.exists()
