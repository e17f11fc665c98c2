"""The papers' presets: they compose to the published protocol, and run end to end on small files in the
published layout (the full data sets are not on this machine)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmarks.run import execute
from conftest import ROOT
from data_builders import fewshot_synsets, write_mini_imagenet_csv, write_omniglot_zip

EVALUATION_ALPHABETS = ["Angelic", "Atemayar_Qelisayer", "Atlantean", "Aurek-Besh", "Avesta", "Ge_ez", "Glagolitic",
                        "Gurmukhi", "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian",
                        "Old_Church_Slavonic_(Cyrillic)", "Oriya", "Sylheti", "Syriac_(Serto)", "Tengwar", "Tibetan",
                        "ULOG"]


def test_protonet_omniglot_preset_is_the_papers_protocol(compose_cfg):
    cfg = compose_cfg("experiment=paper_protonet_omniglot", "method.learner.k_shot=1",
                      "protocol=fewshot_alphabets_20way")
    assert cfg.method.name == "protonet_train1shot"
    assert (cfg.method.learner.n_way, cfg.method.learner.n_query) == (60, 5)
    assert cfg.backbone._target_.endswith("Conv4") and cfg.budget.iterations == 20000
    assert list(cfg.dataset.source.sets) == ["images_background", "images_evaluation"]
    assert list(cfg.dataset.source.rotations) == [0, 90, 180, 270]
    ev = cfg.protocol.evaluator
    assert (ev.n_way, list(ev.shots), ev.n_query, ev.n_episodes) == (20, [1, 5], 15, 1000)
    assert sorted(ev.split.held_out) == sorted(EVALUATION_ALPHABETS)
    sweep = OmegaConf.load(Path(__file__).parent.parent / "conf" / "experiment" / "paper_protonet_omniglot.yaml")
    params = sweep.hydra.sweeper.params
    assert params["method.learner.k_shot"] == "1,5"
    assert params.protocol == "fewshot_alphabets,fewshot_alphabets_20way"


@pytest.mark.parametrize("protocol", ["fewshot_alphabets", "fewshot_alphabets_20way"])
def test_protonet_omniglot_preset_runs_on_background_and_evaluation_zips(compose_cfg, tmp_path, protocol):
    root = tmp_path / "data" / "omniglot"
    # 2 background alphabets x 8 characters x 4 rotations = 64 training classes (60-way episodes need 60);
    # every evaluation alphabet with one character: 80 test classes
    write_omniglot_zip(root / "images_background.zip", {"Latin": list(range(1, 9)), "Greek": list(range(1, 9))},
                       drawers=20, size=28)
    write_omniglot_zip(root / "images_evaluation.zip", {a: [1] for a in EVALUATION_ALPHABETS}, drawers=20, size=28)
    record = execute(compose_cfg("experiment=paper_protonet_omniglot", f"data_root={tmp_path / 'data'}",
                                 "method.learner.k_shot=5", f"protocol={protocol}", "budget.iterations=3",
                                 "budget.episodes=20", "threads=1"))
    assert record["status"] == "ok" and record["method"] == "protonet_train5shot"
    assert record["fit"]["iterations"] == 3
    # train on every background class, test on every evaluation class (the 20 held-out alphabets)
    assert len(record["split"]["train_classes"]) == 64 and len(record["split"]["test_classes"]) == 80
    way = 20 if protocol.endswith("20way") else 5
    assert set(record["metrics"]) == {f"acc_{way}w1s", f"acc_{way}w5s"}
    assert record["metrics"][f"acc_{way}w1s"]["n"] == 20


@pytest.mark.parametrize("protocol, way", [("fewshot_alphabets", 5), ("fewshot_alphabets_20way", 20)])
def test_matching_omniglot_preset_trains_on_the_test_way_and_shot(compose_cfg, protocol, way):
    cfg = compose_cfg("experiment=paper_matching_omniglot", "method.learner.k_shot=1", f"protocol={protocol}")
    assert cfg.method.name == f"matching_train{way}w1s" and cfg.method.learner.n_way == way
    assert cfg.method.learner.fce is False and cfg.backbone._target_.endswith("Conv4")
    assert list(cfg.dataset.source.rotations) == [0, 90, 180, 270]
    ev = cfg.protocol.evaluator
    assert (ev.n_way, list(ev.shots), ev.n_episodes) == (way, [1, 5], 1000)
    assert sorted(ev.split.held_out) == sorted(EVALUATION_ALPHABETS)


def test_matching_omniglot_preset_runs_on_background_and_evaluation_zips(compose_cfg, tmp_path):
    root = tmp_path / "data" / "omniglot"
    write_omniglot_zip(root / "images_background.zip", {"Latin": list(range(1, 6)), "Greek": list(range(1, 6))},
                       drawers=20, size=28)
    write_omniglot_zip(root / "images_evaluation.zip", {a: [1] for a in EVALUATION_ALPHABETS}, drawers=20, size=28)
    record = execute(compose_cfg("experiment=paper_matching_omniglot", f"data_root={tmp_path / 'data'}",
                                 "method.learner.k_shot=1", "protocol=fewshot_alphabets_20way",
                                 "budget.iterations=3", "budget.episodes=20", "threads=1"))
    assert record["status"] == "ok" and record["method"] == "matching_train20w1s"
    assert len(record["split"]["train_classes"]) == 40 and len(record["split"]["test_classes"]) == 80
    assert set(record["metrics"]) == {"acc_20w1s", "acc_20w5s"} and record["metrics"]["acc_20w1s"]["n"] == 20


MINI_PRESET = Path(__file__).parent.parent / "conf" / "experiment" / "paper_protonet_mini_imagenet.yaml"
MATCHING_MINI_PRESET = Path(__file__).parent.parent / "conf" / "experiment" / "paper_matching_mini_imagenet.yaml"


def _sweep_choices(preset: Path, key: str) -> list[str]:
    """The values a preset's Hydra sweep gives ``key``, as Hydra's own override parser reads them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    value = OmegaConf.load(preset).hydra.sweeper.params[key]
    return list(OverridesParser.create().parse_override(f"{key}={value}").sweep_string_iterator())


@pytest.mark.parametrize("episode, way, shot", [("{n_way:30,k_shot:1}", 30, 1), ("{n_way:20,k_shot:5}", 20, 5)])
def test_protonet_mini_imagenet_preset_is_the_papers_protocol(compose_cfg, episode, way, shot):
    cfg = compose_cfg("experiment=paper_protonet_mini_imagenet", f"train_episode={episode}")
    assert cfg.method.name == f"protonet_train{way}w{shot}s"
    learner = cfg.method.learner
    assert (learner.n_way, learner.k_shot, learner.n_query) == (way, shot, 15)
    assert cfg.backbone._target_.endswith("Conv4") and cfg.budget.iterations == 20000
    assert cfg.dataset.name == "mini_imagenet" and cfg.dataset.source.val_classes == "drop"
    assert cfg.dataset.train_transform is None and cfg.dataset.source.transform.crop == 84
    ev = cfg.protocol.evaluator
    assert cfg.protocol.name == "fewshot_published" and ev.split._target_.endswith("PublishedSplit")
    assert (ev.n_way, list(ev.shots), ev.n_query, ev.n_episodes) == (5, [1, 5], 15, 600)
    # the sweep pairs each training way with its shot: two models, not the four of a product of the two
    assert _sweep_choices(MINI_PRESET, "train_episode") == ["{n_way:30,k_shot:1}", "{n_way:20,k_shot:5}"]


@pytest.mark.parametrize("shot", [1, 5])
def test_matching_mini_imagenet_preset_is_the_papers_protocol(compose_cfg, shot):
    cfg = compose_cfg("experiment=paper_matching_mini_imagenet", f"method.learner.k_shot={shot}")
    learner = cfg.method.learner
    assert cfg.method.name == f"matching_fce_train5w{shot}s" and learner.fce is True and learner.scale == 1.0
    assert (learner.n_way, learner.k_shot, learner.n_query) == (5, shot, 15)
    assert cfg.backbone._target_.endswith("Conv4") and cfg.budget.iterations == 20000
    assert cfg.dataset.name == "mini_imagenet" and cfg.dataset.source.val_classes == "drop"
    ev = cfg.protocol.evaluator
    assert cfg.protocol.name == "fewshot_published" and (ev.n_way, list(ev.shots), ev.n_query, ev.n_episodes) == \
        (5, [1, 5], 15, 600)
    assert _sweep_choices(MATCHING_MINI_PRESET, "method.learner.k_shot") == ["1", "5"]


@pytest.mark.parametrize("preset, models", [
    ("paper_protonet_mini_imagenet", {"protonet_train30w1s": (30, 1), "protonet_train20w5s": (20, 5)}),
    ("paper_matching_mini_imagenet", {"matching_fce_train5w1s": (5, 1), "matching_fce_train5w5s": (5, 5)})])
def test_mini_imagenet_paper_sweeps_run_on_files_in_the_published_layout(tmp_path, preset, models):
    # 30 training classes (30-way episodes need 30) of 20 images, 2 validation and 5 test classes
    synsets = fewshot_synsets(n_train=30, n_val=2, n_test=5)
    write_mini_imagenet_csv(tmp_path / "data" / "mini-imagenet", synsets=synsets, per_class=20)
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "-m", f"experiment={preset}",
                           f"data_root={tmp_path / 'data'}", f"results_dir={tmp_path / 'results'}",
                           "budget.iterations=3", "budget.episodes=10", "threads=1", "progress=false",
                           # smaller than the paper's, for a quick test: 28x28 images, 2 training queries
                           "dataset.source.transform.resize=28", "dataset.source.transform.crop=28",
                           "method.learner.n_query=2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").rglob("record.json")]
    assert sorted(r["method"] for r in records) == sorted(models)  # one model per (way, shot) pair
    for record in records:
        learner = record["config"]["method"]["learner"]
        assert record["status"] == "ok" and (learner["n_way"], learner["k_shot"]) == models[record["method"]]
        assert record["study"] == preset and record["fit"]["iterations"] == 3
        # trained on the 30 training classes, tested on the 5 test classes; the validation classes are left out
        assert len(record["split"]["train_classes"]) == 30 and len(record["split"]["test_classes"]) == 5
        assert set(record["metrics"]) == {"acc_5w1s", "acc_5w5s"} and record["metrics"]["acc_5w1s"]["n"] == 10
