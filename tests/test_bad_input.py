"""Bad input: a clear error that names the problem and the fix, raised before any training; records stay whole."""
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException

from benchmarks.run import check_budget, execute
from datasets.episodes import EpisodeError
from datasets.errors import DatasetNotFoundError
from methods.training import NonFiniteLossError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("override,needle", [("dataset=imagenet", "dataset/imagenet"),
                                             ("method=svm", "method/svm")])
def test_unknown_names_list_the_options(compose_cfg, override, needle):
    with pytest.raises(MissingConfigException) as info:
        compose_cfg(override)
    assert needle in str(info.value) and "Available options" in str(info.value)


def test_unknown_method_on_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "method=svm", f"results_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Could not find 'method/svm'" in done.stderr and "protonet" in done.stderr


def _cli(*overrides):
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *overrides], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_a_bad_input_on_the_command_line_is_one_clear_line_not_a_traceback(tmp_path):
    done = _cli("dataset=digits", "method=protonet", "protocol=fewshot", "protocol.evaluator.n_way=50",
                f"results_dir={tmp_path / 'results'}", f"run_dir={tmp_path}")
    assert done.returncode == 1
    assert "[failed] digits / protonet / fewshot / seed 0: EpisodeError: 50-way episodes need 50 classes" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and "Error executing job" not in done.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["error"]["phase"] == "checks" and "check_episode_shape" in record["error"]["traceback"]
    assert f"its traceback is in {tmp_path / 'record.json'}" in done.stdout


def test_a_single_value_where_a_preset_keeps_a_group_is_one_clear_line(tmp_path):
    """``train_episode=30w1s`` on a preset whose learner reads ``train_episode.n_way``: refused before any data
    is read, naming the setting, its value and the form it takes, without OmegaConf's traceback."""
    done = _cli("experiment=paper_protonet_mini_imagenet", "train_episode=30w1s",
                f"data_root={tmp_path / 'no_data'}", f"results_dir={tmp_path / 'results'}")
    assert done.returncode == 1
    assert ("[failed] the configuration cannot be filled in at method.name: Error trying to access "
            "train_episode.n_way") in done.stderr
    assert "train_episode is '30w1s', but method.name reads settings from inside it: give it as a group, " \
           "e.g. 'train_episode={key:value,...}'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not list((tmp_path / "results").rglob("record*.json"))


@pytest.mark.parametrize("multirun", [False, True])
def test_a_results_dir_that_cannot_be_filled_in_is_one_clear_line(tmp_path, multirun):
    """Hydra fills in its output folder (under results_dir) before the run's code starts; an unset environment
    variable there is one [failed] line naming results_dir and the fix, not OmegaConf's traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SIMBENCH_NO_SUCH_VAR", None)
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", *(["-m", "seed=0,1"] if multirun else []),
                           "results_dir=${oc.env:SIMBENCH_NO_SUCH_VAR}/results"],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert ("[failed] Hydra's output folder cannot be filled in (\"Environment variable 'SIMBENCH_NO_SUCH_VAR' not "
            f"found\"): hydra.{'sweep' if multirun else 'run'}.dir is ") in done.stderr
    assert "results_dir is '${oc.env:SIMBENCH_NO_SUCH_VAR}/results'. Give results_dir a folder" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "[ok]" not in done.stdout
    assert not list(tmp_path.iterdir())  # nothing was made


def test_a_hydra_output_folder_that_cannot_be_filled_in_is_named_itself(tmp_path):
    """results_dir is fine here: the fix names the folder setting that is not."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SIMBENCH_NO_SUCH_VAR", None)
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "hydra.run.dir=${oc.env:SIMBENCH_NO_SUCH_VAR}/x"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "results_dir is 'results'. Give hydra.run.dir a folder" in done.stderr


@pytest.mark.parametrize("multirun", [False, True])
def test_a_results_dir_that_cannot_be_made_is_one_clear_line(tmp_path, multirun):
    """A file where results_dir's folder should be: Hydra's mkdir raised an OSError traceback."""
    (tmp_path / "a_file").write_text("")
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", *(["-m", "seed=0,1"] if multirun else []),
                           f"results_dir={tmp_path / 'a_file' / 'results'}", "method=raw", "protocol=knn"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.startswith(f"[failed] Hydra's output folder {tmp_path / 'a_file' / 'results'}/hydra/")
    assert (f"(hydra.{'sweep' if multirun else 'run'}.dir, under results_dir='{tmp_path / 'a_file' / 'results'}') "
            "cannot be made: Not a directory. Give results_dir a folder you can write to") in done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "[ok]" not in done.stdout


@pytest.mark.parametrize("overrides, message", [
    (["dataset=digits", "+method.learner.note=${nowhere}"],
     r"cannot be filled in at method\.learner\.note: Interpolation key 'nowhere' not found; check the overrides"),
    (["dataset=arrays"], r"cannot be filled in at dataset\.name: Missing mandatory value: dataset\.path; "
                         r"dataset\.path has no default: give it on the command line \(dataset\.path=\.\.\.\)"),
    (["experiment=paper_protonet_mini_imagenet", "train_episode=null"],
     r"train_episode is null, but method\.name reads settings from inside it")])
def test_a_reference_that_cannot_be_filled_in_names_the_setting_and_what_to_give(compose_cfg, overrides, message):
    from benchmarks.run import ConfigResolutionError
    cfg = compose_cfg("method=protonet", "protocol=fewshot", *overrides)
    with pytest.raises(ConfigResolutionError, match=message):
        execute(cfg)


def test_a_failure_inside_training_keeps_the_traceback(tmp_path):
    """An error raised inside fitting (here a learner's bug: tests/helpers.py) may be a bug: Hydra's report
    with the traceback stays, so that one sees where it came from."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "dataset=digits", "method=protonet",
                           "protocol=fewshot", "method.learner._target_=helpers.BrokenPrototypicalNetwork",
                           "budget.episodes=5", f"results_dir={tmp_path / 'results'}", f"run_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}"))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'a key fit expects'" in done.stderr
    assert json.loads((tmp_path / "record.json").read_text())["error"]["phase"] == "fit"


def test_a_bad_input_in_a_sweep_keeps_hydra_s_report(tmp_path):
    """In a -m sweep the failing job is named by Hydra's own report (with its overrides and traceback), since
    other jobs of the sweep may have run: the one-line form is for single runs only."""
    done = _cli("-m", "dataset=digits", "method=protonet", "protocol=fewshot", "protocol.evaluator.n_way=50",
                "study=badsweep", f"results_dir={tmp_path}", "hydra.sweep.dir=" + str(tmp_path / "sweep"))
    assert done.returncode == 1
    assert "50-way episodes need 50 classes" in done.stdout
    assert "Traceback" in done.stderr and "its traceback is in" not in done.stdout


def _failed(cfg, exc_type, match):
    with pytest.raises(exc_type, match=match):
        execute(cfg)
    record = json.loads((Path(cfg.run_dir) / "record.json").read_text())
    assert record["status"] == "failed" and record["error"]["type"] == exc_type.__name__
    return record


@pytest.mark.parametrize("override,match", [
    # a larger share of test classes is offered, with how many the data set has (12-way cannot fit digits)
    ("protocol.evaluator.n_way=9", r"9-way episodes need 9 classes but the split has 5\. Lower protocol\.evaluator"
                                   r"\.n_way to at most 5, or hold out more classes for testing \(a larger protocol"
                                   r"\.evaluator\.split\.test_classes; digits has 10 classes in all\)\."),
    ("protocol.evaluator.n_way=12", r"12-way episodes need 12 classes .*digits has 10 classes in all\)"),
    ("protocol.evaluator.shots=[500]", r"Lower protocol.evaluator.shots or protocol.evaluator.n_query "
                                       r"\(protocol.evaluator.shots up to 164 fits\)\."),
])
def test_impossible_episodes_fail_before_training(compose_cfg, override, match):
    record = _failed(compose_cfg("method=protonet", override), EpisodeError, match)
    assert "fit_s" not in record["timings"]  # nothing was trained


def test_too_many_queries_name_the_setting_and_a_value_that_fits(compose_cfg, tmp_path):
    record = _failed(compose_cfg("method=raw", "protocol.evaluator.n_query=400"), EpisodeError,
                     "Lower protocol.evaluator.shots or protocol.evaluator.n_query")
    fits = re.search(r"\(protocol\.evaluator\.n_query=(\d+) fits\)", record["error"]["message"])
    assert fits is not None, record["error"]["message"]
    ok = execute(compose_cfg("method=raw", f"protocol.evaluator.n_query={fits.group(1)}", "budget.episodes=2",
                             f"run_dir={tmp_path / 'fits'}"))
    assert ok["status"] == "ok"  # the value the message offers does fit
    bigger = compose_cfg("method=raw", f"protocol.evaluator.n_query={int(fits.group(1)) + 1}", "budget.episodes=2",
                         f"run_dir={tmp_path / 'more'}")
    with pytest.raises(EpisodeError):  # and it is the largest that does
        execute(bigger)


def test_impossible_training_episodes_fail_before_training(compose_cfg):
    record = _failed(compose_cfg("method=protonet", "method.learner.n_way=8"), EpisodeError, "8-way")
    assert "fit_s" not in record["timings"]


@pytest.mark.parametrize("overrides,message", [
    (["method=protonet", "method.learner.n_query=500"],
     "Lower method.learner.k_shot or method.learner.n_query (method.learner.n_query=169 fits)."),
    # the judge's own settings, not the evaluated method's
    (["method=sdn", "protocol=set_generation", "method@protocol.judge=protonet", "protocol.judge.learner.n_query=500"],
     "Lower protocol.judge.learner.k_shot or protocol.judge.learner.n_query (protocol.judge.learner.n_query=169 "
     "fits)."),
    # a learner whose episode reads the preset's train_episode: the setting it reads is named
    (["experiment=paper_protonet_mini_imagenet", "dataset=digits", "backbone=mlp", "protocol=fewshot"],
     "30-way episodes need 30 classes but the split has 5. Lower train_episode.n_way to at most 5"),
    (["experiment=paper_protonet_mini_imagenet", "dataset=digits", "backbone=mlp", "protocol=fewshot",
      "train_episode.n_way=5", "train_episode.k_shot=170"],
     "Lower train_episode.k_shot or method.learner.n_query (method.learner.n_query=4 fits)."),
])
def test_an_episode_a_learner_cannot_train_on_names_the_settings_a_user_sets(compose_cfg, tmp_path, overrides, message):
    record = _failed(compose_cfg(*overrides, "budget.episodes=2", "fit_cache=false", f"run_dir={tmp_path / 'run'}"),
                     EpisodeError, re.escape(message))
    assert "fit_s" not in record["timings"]


@pytest.mark.parametrize("override, message", [
    ("budget.iterations=0", r"budget\.iterations is 0: it is the number of training steps, a whole number of at "
                            r"least 1 \(for a net that is never trained, use method=untrained\)"),
    ("budget.iterations=-1", r"budget\.iterations is -1"),
    ("budget.iterations=abc", r"budget\.iterations is 'abc'"),
    ("budget.episodes=0", r"budget\.episodes is 0: it is the number of test episodes"),
    ("method.learner.iterations=-1", r"method\.learner\.iterations is -1: it is the learner's number of training "
                                     r"steps \(or solver iterations\), a whole number of at least 0"),
    ("method.learner.iterations=0", r"method\.learner\.iterations is 0: protonet would be scored untrained under "
                                    r"its own name\. Give it training steps; for an untrained row use method=raw "
                                    r"\(the inputs themselves\) or method=untrained")])
def test_a_budget_of_no_steps_or_no_episodes_is_refused_before_training(compose_cfg, override, message):
    """0 steps put an untrained net in the table under the learner's name; 0 episodes failed after training."""
    cfg = compose_cfg("method=protonet", "protocol=fewshot", override)
    with pytest.raises(ValueError, match=message) as caught:
        execute(cfg)
    assert caught.value.simbench_phase == "checks"
    assert not (Path(cfg.run_dir) / "model.pt").exists()


def test_budget_problems_and_settings_of_the_wrong_kind_are_refused_together(compose_cfg):
    """One try names them all: the budget's values and the settings' kinds are checked in one refusal, and a
    learner setting of the wrong kind is named once (by the kind check, not again by the budget check)."""
    cfg = compose_cfg("method=protonet", "protocol=fewshot", "budget.iterations=0", "budget.episodes=-2",
                      "seed=abc", "method.learner.optimizer.lr=fast", "method.learner.iterations=many")
    with pytest.raises(ValueError) as caught:
        execute(cfg)
    message = str(caught.value)
    assert message.startswith("5 settings are refused:\n"), message
    for part in ("seed is 'abc'", "method.learner.optimizer.lr is 'fast'", "method.learner.iterations is 'many'",
                 "budget.iterations is 0: it is the number of training steps",
                 "budget.episodes is -2: it is the number of test episodes"):
        assert message.count(part) == 1, (part, message)
    assert caught.value.simbench_phase == "checks"


def test_learner_steps_that_read_the_budget_are_refused_once_as_the_budget(compose_cfg):
    """protonet's and the judge's steps read ${budget.iterations}: budget.iterations=0 is one problem, named as
    the setting the user gave."""
    from benchmarks.run import check_run_settings
    cfg = compose_cfg("method=sdn", "protocol=set_generation", "budget.iterations=0")
    with pytest.raises(ValueError) as caught:
        check_run_settings(cfg)
    assert str(caught.value).startswith("budget.iterations is 0: it is the number of training steps")
    assert "learner.iterations" not in str(caught.value)


def test_a_judge_of_no_training_steps_is_refused_before_training(compose_cfg):
    cfg = compose_cfg("method=sdn", "protocol=set_generation", "protocol.judge.learner.iterations=0")
    with pytest.raises(ValueError, match=r"protocol\.judge\.learner\.iterations is 0: the judge \(triplet\) would "
                                         r"score the sets untrained") as caught:
        execute(cfg)
    assert caught.value.simbench_phase == "checks"
    assert "fit_s" not in json.loads((Path(cfg.run_dir) / "record.json").read_text())["timings"]


@pytest.mark.parametrize("method", ["set2model_untrained_mean", "set2model_untrained_gaussian",
                                    "set2model_untrained_gmm"])
def test_the_untrained_set2model_baselines_keep_their_zero_steps(compose_cfg, method):
    """They are marked ``untrained_baseline``; without the mark the same 0 steps are refused."""
    cfg = compose_cfg(f"method={method}", "protocol=set_retrieval")
    assert cfg.method.learner.iterations == 0
    check_budget(cfg)
    cfg.method.untrained_baseline = False
    with pytest.raises(ValueError, match="method.learner.iterations is 0"):
        check_budget(cfg)


def test_missing_data_directory(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=fashion_mnist", f"dataset.source.root={tmp_path / 'nowhere'}", "backbone=conv4")
    record = _failed(cfg, DatasetNotFoundError, "does not hold the four IDX files")
    assert "fit_s" not in record["timings"]


def test_nan_loss_stops_the_run_and_the_record_says_failed(compose_cfg):
    cfg = compose_cfg("method=protonet", "dataset.source._target_=helpers.nan_digits")
    record = _failed(cfg, NonFiniteLossError, "loss became nan at step 0")
    assert "lower the learning rate" in record["error"]["message"].lower()
    assert record["metrics"] == {}


def test_failed_reruns_never_replace_an_ok_record(compose_cfg):
    ok = execute(compose_cfg("method=raw", "budget.episodes=10"))
    run_dir = Path(compose_cfg("method=raw").run_dir)
    for n_way in (9, 10):  # two failed attempts in a row
        with pytest.raises(EpisodeError):
            execute(compose_cfg("method=raw", "budget.episodes=10", f"protocol.evaluator.n_way={n_way}"))
    kept = json.loads((run_dir / "record.json").read_text())
    assert kept["status"] == "ok" and kept["metrics"] == ok["metrics"]
    attempt = json.loads((run_dir / "record.failed.json").read_text())
    assert attempt["status"] == "failed" and "10-way" in attempt["error"]["message"]
    assert not list(run_dir.glob("*.tmp"))
    # a later ok run of another config replaces record.json, keeps the old ok one, and clears the failure
    newer = execute(compose_cfg("method=raw", "budget.episodes=12"))
    assert json.loads((run_dir / "record.json").read_text())["run_id"] == newer["run_id"]
    assert json.loads((run_dir / "record.previous.json").read_text())["metrics"] == ok["metrics"]
    assert not (run_dir / "record.failed.json").exists()


def test_corrupt_record_is_reported_not_silently_dropped(compose_cfg, tmp_path, capsys):
    from benchmarks.report import build
    execute(compose_cfg("method=raw", "budget.episodes=10", "study=corrupt"))
    execute(compose_cfg("method=raw", "budget.episodes=10", "study=corrupt", "seed=1"))
    record = Path(compose_cfg("method=raw", "study=corrupt", "seed=1").run_dir) / "record.json"
    record.write_text(record.read_text()[:100])
    assert build("corrupt", tmp_path / "results") == 0
    err = capsys.readouterr().err
    assert f"cannot read {record}" in err
    failed = (tmp_path / "results" / "corrupt" / "failed.csv").read_text()
    assert "unreadable record" in failed


def test_conv4_on_vector_data_says_which_backbone(compose_cfg):
    _failed(compose_cfg("method=protonet", "backbone=conv4"), ValueError, "use backbone=mlp")


class _EmbedOnly:
    """A learner that embeds but cannot adapt to an episode."""

    def __init__(self):
        from methods.base import euclidean
        self.distance = euclidean()

    def embed(self, x):
        return x


@pytest.mark.parametrize("protocol", ["fewshot"])
def test_learner_without_adapt_is_refused_by_fewshot(compose_cfg, protocol):
    from hydra.utils import instantiate

    from benchmarks.protocols.base import UnsupportedProtocolError
    evaluator = instantiate(compose_cfg(f"protocol={protocol}").protocol.evaluator)
    with pytest.raises(UnsupportedProtocolError, match="cannot serve the fewshot protocol: it has no adapt"):
        evaluator.check_learner(_EmbedOnly())
    instantiate(compose_cfg("protocol=retrieval").protocol.evaluator).check_learner(_EmbedOnly())


def test_a_non_finite_loss_is_reported_in_one_line_too():
    from benchmarks.run import _said_enough

    assert _said_enough(NonFiniteLossError("loss became nan at step 3; lower the learning rate"))
    assert not _said_enough(RuntimeError("shape mismatch"))  # raised inside fit or evaluate: a traceback


def test_a_run_inside_a_callers_except_block_leaves_that_exception_alone(compose_cfg):
    """Only the run's own failure is tagged with its record's path: a caller handling an exception of its
    own when it calls execute (a retry loop) must not find it tagged as the run's failure."""
    try:
        raise RuntimeError("the caller's own")
    except RuntimeError as outer:
        assert execute(compose_cfg("method=raw", "budget.episodes=10"))["status"] == "ok"
        assert not hasattr(outer, "simbench_record") and not hasattr(outer, "simbench_phase")


def test_when_results_dir_and_the_output_folder_are_both_broken_each_is_named_with_its_cause(tmp_path):
    """Each setting is blamed for its own fault (before, results_dir was blamed with the folder's cause)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SIMBENCH_NO_SUCH_VAR", None)
    env.pop("SIMBENCH_NO_SUCH_DIR", None)
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "results_dir=${oc.env:SIMBENCH_NO_SUCH_VAR}",
                           "hydra.run.dir=${oc.env:SIMBENCH_NO_SUCH_DIR}/x"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert ("[failed] Hydra's output folder cannot be filled in: results_dir is '${oc.env:SIMBENCH_NO_SUCH_VAR}' "
            "(\"Environment variable 'SIMBENCH_NO_SUCH_VAR' not found\") and hydra.run.dir is "
            "'${oc.env:SIMBENCH_NO_SUCH_DIR}/x' (\"Environment variable 'SIMBENCH_NO_SUCH_DIR' not found\"). "
            "Give both a folder") in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("overrides,message", [
    # wine's 3 classes: 1 left for training once half are held out
    (["dataset=wine", "protocol=retrieval", "method=triplet"],
     "triplet training needs at least two classes with two or more samples each; the training split has 1: keep "
     "more classes for training (a smaller protocol.evaluator.split.test_classes"),
    (["dataset=wine", "protocol=set_retrieval", "method=raw"],
     "polysemous concepts need 3 classes in the test split (after max_per_class), it has 2: "
     "protocol.evaluator.polysemous=false scores one-class concepts alone (they need 2), or use data with more "
     "classes there"),
    (["dataset=iris", "protocol=set_generation", "method=sdn"],  # smaller sets cannot make a second class
     "the training split has 1. Keep more classes for training"),
])
def test_too_few_classes_on_a_side_names_what_gives_it_more(compose_cfg, overrides, message):
    record = _failed(compose_cfg(*overrides), ValueError, None)
    assert message in record["error"]["message"] and record["error"]["phase"] == "checks"
    assert "fit_s" not in record["timings"]


def test_an_objective_the_protocol_does_not_report_fails_before_training(compose_cfg):
    """A typo in objective= used to be found after training and evaluation (a KeyError, with a traceback)."""
    from benchmarks.run import ObjectiveError

    record = _failed(compose_cfg("method=triplet", "protocol=knn", "objective=knn_eror"), ObjectiveError,
                     r"^objective=knn_eror is not a metric of the knn protocol; it reports knn_error$")
    assert "fit_s" not in record["timings"] and record["error"]["phase"] == "checks"


@pytest.mark.parametrize("shape,advice", [
    ((1, 8, 8), "set backbone.depth=3 or lower, the most these images allow, or use larger images"),
    ((3, 1, 5), "these images are too small for it; use backbone=mlp")])
def test_a_conv4_too_deep_for_the_images_names_the_depth_that_fits(shape, advice):
    from methods.backbones import Conv4

    with pytest.raises(ValueError, match=re.escape(f"Conv4 with depth 4 shrinks {shape} to nothing (each block "
                                                   f"halves height and width): {advice}")):
        Conv4(shape)
    if shape == (1, 8, 8):
        assert Conv4(shape, depth=3).out_features == 64  # the depth offered does fit: 8 -> 1 pixel
