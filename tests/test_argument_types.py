"""A setting of the wrong kind, or one its target does not take, is refused before anything is built, naming the
setting the user would change (benchmarks.argument_types)."""
from __future__ import annotations

import json
from typing import Literal, Optional

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.argument_types import ArgumentTypeError, check_arguments
from benchmarks.run import execute


def toy(count: int, rate: float = 0.1, name: str = "a", flag: bool = False, limit: Optional[int] = None,
        mode: Literal["fast", "exact"] = "fast", size: int | torch.Tensor = 1, shape=(1, 2), margin=0.05,
        strict=True, anything=None):
    return count


def toy_more(count: int, **rest):
    return count


def _node(**settings):
    return OmegaConf.create({"_target_": f"{__name__}.toy", "count": 3} | settings)


@pytest.mark.parametrize("settings", [
    {}, {"rate": 2}, {"rate": 0.5}, {"name": "b"}, {"flag": True}, {"limit": None}, {"limit": 4},
    {"mode": "exact"}, {"size": 2}, {"shape": [3, 4]}, {"margin": 1}, {"margin": 0.2}, {"strict": False},
    {"anything": "x"}, {"anything": [1]},
])
def test_settings_that_fit_their_parameters_pass(settings):
    check_arguments(_node(**settings))


@pytest.mark.parametrize("settings,needle", [
    ({"count": "abc"}, "count is 'abc', but toy's count takes a whole number"),
    ({"count": 2.5}, "count is 2.5, but toy's count takes a whole number"),
    ({"count": True}, "count is true, but toy's count takes a whole number"),
    ({"count": None}, "count is null, but toy's count takes a whole number"),
    ({"count": [1, 2]}, "count is a list, but toy's count takes a whole number"),
    ({"count": {"a": 1}}, "count is a group of settings, but toy's count takes a whole number"),
    ({"rate": "fast"}, "rate is 'fast', but toy's rate takes a number"),
    ({"flag": 1}, "flag is 1, but toy's flag takes true or false"),
    ({"name": 3}, "name is 3, but toy's name takes a string"),
    ({"limit": "x"}, "limit is 'x', but toy's limit takes a whole number or null"),
    ({"mode": "slow"}, "mode is 'slow', but toy's mode takes one of 'fast', 'exact'"),
    ({"size": "big"}, "size is 'big', but toy's size takes a whole number"),  # the tensor half is not configurable
    ({"margin": "x"}, "margin is 'x', but toy's margin takes a number"),  # no annotation: the default's kind
    ({"strict": "yes"}, "strict is 'yes', but toy's strict takes true or false"),
    ({"cuont": 3}, "cuont is not a setting of toy (it takes: count, rate, name, flag, limit, mode, size, shape"),
])
def test_a_setting_of_the_wrong_kind_is_named_with_the_kind_it_takes(settings, needle):
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(_node(**settings))
    assert needle in str(info.value)


def test_a_target_that_takes_more_keywords_accepts_unknown_settings():
    check_arguments(OmegaConf.create({"_target_": f"{__name__}.toy_more", "count": 1, "extra": "x"}))
    with pytest.raises(ArgumentTypeError, match="count is 'x'"):
        check_arguments(OmegaConf.create({"_target_": f"{__name__}.toy_more", "count": "x"}))


def test_nested_targets_are_checked_and_a_reference_names_the_setting_it_reads():
    cfg = OmegaConf.create({"budget": {"steps": 2}, "inner": {"_target_": f"{__name__}.toy", "count": 1,
                                                                   "rate": "slow"},
                            "outer": {"_target_": f"{__name__}.toy_more", "count": "${budget.steps}",
                                      "part": "${inner}", "parts": [{"_target_": f"{__name__}.toy", "count": "x"}]}})
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(cfg.outer)
    assert str(info.value).startswith("inner.rate is 'slow'")  # checked inside ${inner}, named where it is set
    cfg.inner.rate = 0.5
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(cfg.outer)
    assert str(info.value).startswith("outer.parts[0].count is 'x'")  # a list of targets
    cfg.outer.parts[0].count = 2
    check_arguments(cfg.outer)
    cfg.budget.steps = "many"
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(cfg.outer)
    assert str(info.value).startswith("budget.steps is 'many', but toy_more's count takes a whole number: "
                                      "give budget.steps=")


@pytest.mark.parametrize("override,needle", [
    ("method.learner.n_way=abc", "method.learner.n_way is 'abc', but PrototypicalNetwork's n_way takes a whole number"),
    ("backbone.hidden=[64,32]", None),  # a sequence: fits
    ("+backbone.channels=8", "backbone.channels is not a setting of MLP (it takes: input_shape, hidden, out_features)"),
    ("method.learner.optimizer.lr=fast", "method.learner.optimizer.lr is 'fast', but Adam's lr takes a number"),
])
def test_a_run_refuses_a_wrong_setting_among_the_checks(compose_cfg, tmp_path, override, needle):
    """Every node the run builds is checked: the learner, its backbone (a ${backbone} reference) and its
    optimizer. The refusal is a failed record of the checks phase; nothing was trained."""
    cfg = compose_cfg("dataset=digits", "method=protonet", "protocol=fewshot", "budget.iterations=2",
                      "budget.episodes=5", "protocol.evaluator.shots=[1]", override, f"run_dir={tmp_path / 'run'}")
    if needle is None:
        assert execute(cfg)["status"] == "ok"
        return
    with pytest.raises(ArgumentTypeError) as info:
        execute(cfg)
    assert needle in str(info.value)
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["status"] == "failed" and record["error"]["phase"] == "checks"
    assert "fit_s" not in record["timings"]


def test_a_wrong_setting_is_refused_before_the_data_set_is_read(compose_cfg, tmp_path):
    """The data root holds nothing: the setting is named first, not the missing data."""
    cfg = compose_cfg("dataset=fashion_mnist", f"dataset.source.root={tmp_path / 'nothing'}", "method=protonet",
                      "backbone=conv4", "method.learner.k_shot=five", f"run_dir={tmp_path / 'run'}")
    with pytest.raises(ArgumentTypeError, match="method.learner.k_shot is 'five'"):
        execute(cfg)
