"""validation=true: tuning runs train and score inside the training side, never on the test classes."""
from pathlib import Path

import pytest
import torch

from benchmarks.records import read_record
from benchmarks.run import execute
from datasets.sklearn_sources import digits
from datasets.splits import ClassDisjointSplit, SplitError, WithinClassSplit, validation_split

SMALL = ["budget.iterations=5", "budget.episodes=20", "study=val"]


@pytest.mark.parametrize("make", [ClassDisjointSplit(0.5), WithinClassSplit(0.3)])
def test_validation_split_stays_inside_the_training_side(make):
    data = digits()
    outer = make(data, seed=0)
    inner = validation_split(outer, make, seed=0)
    assert inner.kind.startswith("validation")
    outer_train = set(outer.train_index.tolist())
    assert set(inner.train_index.tolist()) | set(inner.test_index.tolist()) == outer_train
    assert not set(inner.train_index.tolist()) & set(inner.test_index.tolist())
    assert torch.equal(data.y[inner.test_index], inner.test.y) and torch.equal(data.y[inner.train_index], inner.train.y)
    if isinstance(make, ClassDisjointSplit):  # held-out classes of the validation side: training classes only
        val_classes = set(inner.test.present_classes.tolist())
        assert val_classes <= set(outer.train.present_classes.tolist())
        assert not val_classes & set(outer.test.present_classes.tolist())
        assert not val_classes & set(inner.train.present_classes.tolist())


def test_validation_run_has_its_own_protocol_name_and_folder(compose_cfg):
    test = execute(compose_cfg("method=raw", "protocol=retrieval", *SMALL))
    cfg = compose_cfg("method=raw", "protocol=retrieval", "validation=true", *SMALL)
    val = execute(cfg)
    assert val["protocol"] == "retrieval@validation" and "retrieval@validation" in cfg.run_dir
    assert set(val["split"]["test_classes"]) <= set(test["split"]["train_classes"])
    assert not set(val["split"]["test_classes"]) & set(test["split"]["test_classes"])
    assert val["metrics"]["p_at_1"]["mean"] != test["metrics"]["p_at_1"]["mean"]


def test_validation_that_cannot_hold_the_episodes_fails_before_training(compose_cfg):
    # digits: 5 training classes, of which the validation side holds 2 or 3; 5-way episodes cannot be drawn
    cfg = compose_cfg("method=protonet", "protocol=fewshot", "validation=true", *SMALL)
    with pytest.raises(SplitError, match=r"validation=true.*Lower protocol\.evaluator\.n_way to at most [23], or use "
                                         r"data with more training classes \(validation=true scores on classes held "
                                         r"out of the training side\)\.$"):
        execute(cfg)
    record = read_record(Path(cfg.run_dir) / "record.json")
    assert record["status"] == "failed" and "fit" not in record  # nothing was trained
