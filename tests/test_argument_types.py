"""A setting of the wrong kind, or one its target does not take, is refused before anything is built, naming the
setting the user would change (benchmarks.argument_types)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional, Sequence

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmarks.argument_types import ArgumentTypeError, check_arguments, check_run_arguments
from benchmarks.run import check_run_settings, execute
from methods.bounds import (Count, CountOrZero, Fraction, FractionBelowOne, NonNegative, Positive,
                            PositiveFraction, TwoOrMore)


def toy(count: int, rate: float = 0.1, name: str = "a", flag: bool = False, limit: Optional[int] = None,
        mode: Literal["fast", "exact"] = "fast", size: int | torch.Tensor = 1, shape=(1, 2), margin=0.05,
        strict=True, anything=None, shots: Sequence[int] = (1,), crop: int | tuple[int, int] | None = None,
        options: dict | None = None, bins: int = None):
    return count


class Base:
    def __init__(self, power: float = 1.0, normalise: bool = True):
        self.power, self.normalise = power, normalise


class Middle(Base):
    def __init__(self, margin=0.2, **kwargs):  # passes the rest on, as pytorch-metric-learning's losses do
        super().__init__(**kwargs)


class KeepsTheRest(torch.nn.Module):
    def __init__(self, depth: int = 2, **rest):  # keeps what it is given: any setting goes
        super().__init__()
        self.rest = rest


class KeepsTheRestBelowAClass(Base):
    def __init__(self, depth: int = 2, **options):  # a subclass of a learner that keeps its options
        super().__init__(power=2.0)
        self.options = options


def toy_more(count: int, **rest):
    return count


def _node(**settings):
    return OmegaConf.create({"_target_": f"{__name__}.toy", "count": 3} | settings)


@pytest.mark.parametrize("settings", [
    {}, {"rate": 2}, {"rate": 0.5}, {"name": "b"}, {"flag": True}, {"limit": None}, {"limit": 4},
    {"mode": "exact"}, {"size": 2}, {"shape": [3, 4]}, {"margin": 1}, {"margin": 0.2}, {"strict": False},
    {"anything": "x"}, {"anything": [1]}, {"shots": [1, 5]}, {"shots": []}, {"crop": 84}, {"crop": [84, 84]},
    {"crop": None}, {"options": {"a": 1}}, {"options": None}, {"bins": None}, {"bins": 10},
])
def test_settings_that_fit_their_parameters_pass(settings):
    check_arguments(_node(**settings))


@pytest.mark.parametrize("settings,needle", [
    ({"count": "abc"}, "count is 'abc', but toy's count takes a whole number"),
    ({"count": 2.5}, "count is 2.5, but toy's count takes a whole number"),
    ({"count": True}, "count is true, but toy's count takes a whole number"),
    ({"count": None}, "count is null, but toy's count takes a whole number"),
    ({"count": [1, 2]}, "count is the list [1, 2], but toy's count takes a whole number"),
    ({"count": {"a": 1}}, "count is a group of settings, but toy's count takes a whole number"),
    ({"rate": "fast"}, "rate is 'fast', but toy's rate takes a number"),
    ({"flag": 1}, "flag is 1, but toy's flag takes true or false"),
    ({"limit": "x"}, "limit is 'x', but toy's limit takes a whole number or null"),
    ({"mode": "slow"}, "mode is 'slow', but toy's mode takes one of 'fast', 'exact'"),
    ({"size": "big"}, "size is 'big', but toy's size takes a whole number"),  # the tensor half is not configurable
    ({"margin": "x"}, "margin is 'x', but toy's margin takes a number"),  # no annotation: the default's kind
    ({"strict": "yes"}, "strict is 'yes', but toy's strict takes true or false"),
    ({"cuont": 3}, "cuont is not a setting of toy (it takes: count, rate, name, flag, limit, mode, size, shape"),
    ({"cuont": 3}, "check the spelling, or drop it (~cuont on the command line for one the yaml sets)"),
    ({"shots": 5}, "shots is 5, but toy's shots takes a list of whole numbers"),
    ({"shots": "15"}, "shots is '15', but toy's shots takes a list of whole numbers"),
    ({"shots": [1, "x"]}, "shots is the list [1, 'x'], but toy's shots takes a list of whole numbers"),
    ({"crop": "abc"}, "crop is 'abc', but toy's crop takes a whole number, a list of 2 whole numbers or null"),
    ({"options": 3}, "options is 3, but toy's options takes a group of settings or null"),
    ({"bins": "x"}, "bins is 'x', but toy's bins takes a whole number or null"),  # None is its default
    ({"name": 3}, "toy's name takes a string (quote a number meant as text: name=\"'3'\")"),
])
def test_a_setting_of_the_wrong_kind_is_named_with_the_kind_it_takes(settings, needle):
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(_node(**settings))
    assert needle in str(info.value)


def paired(pair: tuple[int, int] = (1, 2), mixed: tuple[float | None, float] = (None, 1.0),
           many: tuple[int, ...] = (1,), fractions: tuple[Fraction, Fraction] = (0.5, 0.5)):
    return pair


@pytest.mark.parametrize("settings", [
    {}, {"pair": [3, 4]}, {"mixed": [None, 2.0]}, {"mixed": [0.1, 2]}, {"many": []}, {"many": [1, 2, 3]},
    {"fractions": [0, 1]},
])
def test_a_list_of_the_size_a_fixed_tuple_holds_passes(settings):
    check_arguments(OmegaConf.create({"_target_": f"{__name__}.paired"} | settings))


@pytest.mark.parametrize("settings,needle", [
    ({"pair": [3]}, "pair is the list [3], but paired's pair takes a list of 2 whole numbers"),
    ({"pair": [3, 4, 5]}, "pair is the list [3, 4, 5], but paired's pair takes a list of 2 whole numbers"),
    ({"pair": []}, "pair is the list [], but paired's pair takes a list of 2 whole numbers"),
    ({"pair": [3, "x"]}, "pair is the list [3, 'x'], but paired's pair takes a list of 2 whole numbers"),
    ({"mixed": [None]}, "mixed is the list [None], but paired's mixed takes a list of 2 numbers or nulls"),
    ({"fractions": [0.5, 2]}, "fractions is the list [0.5, 2], but paired's fractions takes a list of 2 numbers of "
                              "at least 0 and at most 1"),
])
def test_a_fixed_tuple_refuses_a_list_of_another_size(settings, needle):
    """torch unpacks Adam's ``betas: tuple[float, float]`` into two names when it steps: a list of one or three
    would fail there, after the data set is read and the net built, so the size is judged with the kinds."""
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(OmegaConf.create({"_target_": f"{__name__}.paired"} | settings))
    assert needle in str(info.value)


def bounded(count: Count = 1, rate: Positive = 0.1, floor: NonNegative = 0.0, sizes: Sequence[Count] = (1,),
            limit: Count | None = None, repeats: CountOrZero = 0, share: Fraction = 0.5,
            outliers: FractionBelowOne = 0.0, far: PositiveFraction = 0.01, ways: TwoOrMore = 5):
    return count


@pytest.mark.parametrize("settings", [
    {}, {"count": 1}, {"count": 7}, {"rate": 1e-9}, {"rate": 3}, {"floor": 0}, {"floor": 0.0}, {"floor": 2.5},
    {"sizes": [1, 2, 8]}, {"sizes": []}, {"limit": None}, {"limit": 1}, {"repeats": 0}, {"share": 0},
    {"share": 1}, {"share": 0.3}, {"outliers": 0.0}, {"outliers": 0.99}, {"far": 1}, {"far": 1e-6}, {"ways": 2},
])
def test_values_within_their_bounds_pass(settings):
    check_arguments(OmegaConf.create({"_target_": f"{__name__}.bounded"} | settings))


@pytest.mark.parametrize("settings,needle", [
    ({"count": 0}, "count is 0, but bounded's count takes a whole number of at least 1"),
    ({"count": -3}, "count is -3, but bounded's count takes a whole number of at least 1"),
    ({"count": 2.0}, "count is 2.0, but bounded's count takes a whole number of at least 1"),  # the kind, still
    ({"count": True}, "count is true, but bounded's count takes a whole number of at least 1"),
    ({"rate": 0}, "rate is 0, but bounded's rate takes a number above 0"),
    ({"rate": -0.5}, "rate is -0.5, but bounded's rate takes a number above 0"),
    ({"floor": -1e-9}, "floor is -1e-09, but bounded's floor takes a number of at least 0"),
    ({"sizes": [1, 0]}, "sizes is the list [1, 0], but bounded's sizes takes a list of whole numbers of at least 1"),
    ({"limit": 0}, "limit is 0, but bounded's limit takes a whole number of at least 1 or null"),
    ({"repeats": -1}, "repeats is -1, but bounded's repeats takes a whole number of at least 0"),
    ({"share": 1.5}, "share is 1.5, but bounded's share takes a number of at least 0 and at most 1"),
    ({"share": -0.1}, "share is -0.1, but bounded's share takes a number of at least 0 and at most 1"),
    ({"outliers": 1}, "outliers is 1, but bounded's outliers takes a number of at least 0 and below 1"),
    ({"far": 0}, "far is 0, but bounded's far takes a number above 0 and at most 1"),
    ({"far": 1.01}, "far is 1.01, but bounded's far takes a number above 0 and at most 1"),
    ({"ways": 1}, "ways is 1, but bounded's ways takes a whole number of at least 2"),
])
def test_a_value_out_of_its_bounds_is_named_with_the_bound(settings, needle):
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(OmegaConf.create({"_target_": f"{__name__}.bounded"} | settings))
    assert needle in str(info.value)


def test_every_refused_setting_is_named_at_once(compose_cfg, tmp_path):
    """Two typos and wrong kinds, in the learner, its optimizer and the runner's settings (the device's name and
    the precision among them): one refusal lists them all, so a single try shows everything to fix."""
    cfg = compose_cfg("dataset=digits", "method=protonet", "method.learner.n_way=abc", "+method.learner.kshot=5",
                      "method.learner.optimizer.lr=fast", "seed=x", "precision=fp16", "device=gpu",
                      f"run_dir={tmp_path / 'run'}")
    with pytest.raises(ArgumentTypeError) as info:
        execute(cfg)
    assert str(info.value).splitlines() == [
        "6 settings are refused:",
        "  - seed is 'x', but it takes a whole number of at least 0 and at most 4294967295",
        "  - precision is 'fp16', but it takes one of 'fp32', 'bf16'",
        "  - device is 'gpu', but the suite runs on device=auto (a GPU when one is visible), device=cpu, device=cuda "
        "or device=cuda:N",
        "  - method.learner.n_way is 'abc', but PrototypicalNetwork's n_way takes a whole number of at least 2",
        "  - method.learner.optimizer.lr is 'fast', but Adam's lr takes a number above 0",
        "  - method.learner.kshot is not a setting of PrototypicalNetwork (it takes: backbone, optimizer, iterations, "
        "n_way, k_shot, n_query); check the spelling, or drop it (~method.learner.kshot on the command line for one "
        "the yaml sets)",
    ]


def test_a_target_that_takes_more_keywords_accepts_unknown_settings():
    check_arguments(OmegaConf.create({"_target_": f"{__name__}.toy_more", "count": 1, "extra": "x"}))
    with pytest.raises(ArgumentTypeError, match="count is 'x'"):
        check_arguments(OmegaConf.create({"_target_": f"{__name__}.toy_more", "count": "x"}))


def test_settings_passed_on_to_parent_constructors_are_checked_there():
    """``Middle(**kwargs)`` hands the rest to ``Base``: Base's parameters are judged, and a key neither takes is
    refused. A class that keeps its ``**kwargs`` itself (the chain reaches torch's Module still open) takes any."""
    middle = f"{__name__}.Middle"
    check_arguments(OmegaConf.create({"_target_": middle, "margin": 1, "power": 2, "normalise": False}))
    with pytest.raises(ArgumentTypeError, match="power is 'abc', but Middle's power takes a number"):
        check_arguments(OmegaConf.create({"_target_": middle, "power": "abc"}))
    with pytest.raises(ArgumentTypeError, match=r"pwer is not a setting of Middle \(it takes: margin, power, normalise\)"):
        check_arguments(OmegaConf.create({"_target_": middle, "pwer": 2}))
    check_arguments(OmegaConf.create({"_target_": f"{__name__}.KeepsTheRest", "depth": 3, "width": 8}))
    check_arguments(OmegaConf.create({"_target_": f"{__name__}.KeepsTheRestBelowAClass", "depth": 3, "whiten": True}))
    with pytest.raises(ArgumentTypeError, match="depth is 'x'"):
        check_arguments(OmegaConf.create({"_target_": f"{__name__}.KeepsTheRest", "depth": "x"}))


def test_nested_targets_are_checked_and_a_reference_names_the_setting_it_reads():
    cfg = OmegaConf.create({"budget": {"steps": 2}, "inner": {"_target_": f"{__name__}.toy", "count": 1,
                                                                   "rate": "slow"},
                            "outer": {"_target_": f"{__name__}.toy_more", "count": "${budget.steps}",
                                      "part": "${inner}", "parts": [{"_target_": f"{__name__}.toy", "count": "x"}]}})
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(cfg.outer)
    assert str(info.value).splitlines() == [  # both at once
        "2 settings are refused:",
        "  - inner.rate is 'slow', but toy's rate takes a number",  # checked inside ${inner}, named where it is set
        "  - outer.parts[0].count is 'x', but toy's count takes a whole number"]  # a list of targets
    cfg.inner.rate = 0.5
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(cfg.outer)
    assert str(info.value) == "outer.parts[0].count is 'x', but toy's count takes a whole number"
    cfg.outer.parts[0].count = 2
    check_arguments(cfg.outer)
    cfg.budget.steps = "many"
    with pytest.raises(ArgumentTypeError) as info:
        check_arguments(cfg.outer)
    assert str(info.value) == "budget.steps is 'many', but toy_more's count takes a whole number"


@pytest.mark.parametrize("override,needle", [
    ("method.learner.n_way=abc", "method.learner.n_way is 'abc', but PrototypicalNetwork's n_way takes a whole number"),
    ("backbone.hidden=[64,32]", None),  # a sequence: fits
    ("+backbone.channels=8", "backbone.channels is not a setting of MLP (it takes: input_shape, hidden, out_features)"),
    ("method.learner.optimizer.lr=fast", "method.learner.optimizer.lr is 'fast', but Adam's lr takes a number"),
    ("method=triplet method.learner.loss.distance.power=abc",  # pytorch-metric-learning: a parent's parameter
     "method.learner.loss.distance.power is 'abc', but LpDistance's power takes a number"),
    ("method=triplet +method.learner.miner.type_of_triplet=hard",
     "method.learner.miner.type_of_triplet is not a setting of TripletMarginMiner (it takes: margin, "
     "type_of_triplets, distance, collect_stats)"),
    ("protocol.evaluator.shots=5", "protocol.evaluator.shots is 5, but FewShotProtocol's shots takes a list of "
                                   "whole numbers"),
])
def test_a_run_refuses_a_wrong_setting_among_the_checks(compose_cfg, tmp_path, override, needle):
    """Every node the run builds is checked: the learner, its backbone (a ${backbone} reference) and its
    optimizer. The refusal is a failed record of the checks phase; nothing was trained."""
    cfg = compose_cfg("dataset=digits", "method=protonet", "protocol=fewshot", "budget.iterations=2",
                      "budget.episodes=5", "protocol.evaluator.shots=[1]", *override.split(),
                      f"run_dir={tmp_path / 'run'}")
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


@pytest.mark.parametrize("overrides,error,needle", [
    (["method=cosine", "method.learner.sampler=balancd"], ArgumentTypeError,
     "method.learner.sampler is 'balancd', but CosineClassifier's sampler takes one of 'shuffled', 'balanced'"),
    (["method=sdn", "method.learner.mode_seeking_space=input"], ArgumentTypeError,
     "method.learner.mode_seeking_space is 'input', but SetDistributionNetwork's mode_seeking_space takes one of "
     "'latent', 'inputs'"),
    (["method=set2model", "method.learner.set_model.gradient=unroll"], ArgumentTypeError,
     "method.learner.set_model.gradient is 'unroll', but DiagonalGMM's gradient takes one of 'implicit', 'unrolled'"),
    (["backbone=resnet18", "backbone.pooling=mean"], ArgumentTypeError,
     "backbone.pooling is 'mean', but ResNet's pooling takes one of 'avg', 'max', 'avg+max'"),
    (["backbone=resnet18", "backbone.depth=19"], ArgumentTypeError,
     "backbone.depth is 19, but ResNet's depth takes one of 18, 34, 50, 101, 152"),
    (["dataset=cub", "dataset.source.verify_images=full"], ArgumentTypeError,  # data sets' choices: before reading
     "dataset.source.verify_images is 'full', but cub's verify_images takes true or false, or one of 'none', "
     "'header', 'decode'"),
    (["dataset=tiered_imagenet", "dataset.source.layout=pickles"], ArgumentTypeError,
     "dataset.source.layout is 'pickles', but tiered_imagenet's layout takes one of 'auto', 'pickle', 'folders'"),
    (["dataset=mini_imagenet", "dataset.source.val_classes=dorp"], ArgumentTypeError,
     "dataset.source.val_classes is 'dorp', but mini_imagenet's val_classes takes one of 'drop', 'train', 'test'"),
    (["precision=fp16"], ArgumentTypeError, "precision is 'fp16', but it takes one of 'fp32', 'bf16'"),
    (["device=tpu"], ArgumentTypeError, "device is 'tpu', but the suite runs on device=auto"),
    (["device=mps"], ArgumentTypeError, "device is 'mps', but the suite runs on device=auto"),  # torch knows it
    # bounds in the annotations (methods/bounds.py): refused here, not once the episodes are drawn or training runs
    (["method=protonet", "method.learner.n_way=0"], ArgumentTypeError,
     "method.learner.n_way is 0, but PrototypicalNetwork's n_way takes a whole number of at least 2"),
    (["protocol=fewshot", "protocol.evaluator.shots=[1,0]"], ArgumentTypeError,
     "protocol.evaluator.shots is the list [1, 0], but FewShotProtocol's shots takes a list of whole numbers of at "
     "least 1"),
    (["method=cosine", "method.learner.scale=0"], ArgumentTypeError,
     "method.learner.scale is 0, but CosineClassifier's scale takes a number above 0 or null"),
    (["method=sdn", "method.learner.set_sizes=[1,-2]"], ArgumentTypeError,
     "method.learner.set_sizes is the list [1, -2], but SetDistributionNetwork's set_sizes takes a list of whole "
     "numbers of at least 1"),
    (["protocol=verification", "protocol.evaluator.fars=[0.01,2.0]"], ArgumentTypeError,
     "protocol.evaluator.fars is the list [0.01, 2.0], but VerificationProtocol's fars takes a list of numbers above "
     "0 and at most 1"),
    (["method=protonet", "method.learner.n_way=1"], ArgumentTypeError,  # 1-way episodes: nothing to learn
     "method.learner.n_way is 1, but PrototypicalNetwork's n_way takes a whole number of at least 2"),
    (["method=set2model", "method.learner.outlier_fraction=1.0"], ArgumentTypeError,
     "method.learner.outlier_fraction is 1.0, but Set2Model's outlier_fraction takes a number of at least 0 and "
     "below 1"),
    (["method=lmnn", "method.learner.mu=3"], ArgumentTypeError,
     "method.learner.mu is 3, but LMNN's mu takes a number of at least 0 and at most 1"),
    (["method=protonet", "method.learner.optimizer.lr=-0.1"], ArgumentTypeError,  # torch's, refused when built
     "method.learner.optimizer.lr is -0.1, but Adam's lr takes a number above 0"),
    (["method=triplet", "method.learner.optimizer.lr=0"], ArgumentTypeError,  # an untrained net, under its name
     "method.learner.optimizer.lr is 0, but Adam's lr takes a number above 0"),
    (["method=protonet", "method.learner.optimizer._target_=torch.optim.Adafactor", "+method.learner.optimizer.eps=-1"],
     ArgumentTypeError,  # an eps that is not a number (Adafactor's pair) keeps its own kinds, unbounded
     "method.learner.optimizer.eps is -1, but Adafactor's eps takes a list of 2 numbers or nulls"),
    (["method=protonet", "+method.learner.optimizer.betas=[2.0,0.999]"], ArgumentTypeError,
     "method.learner.optimizer.betas is the list [2.0, 0.999], but Adam's betas takes a list of 2 numbers of at "
     "least 0 and below 1"),
    (["method=protonet", "method.learner._target_=methods.protonet.PrototypicalNetworkk"], ArgumentTypeError,
     "method.learner._target_ is 'methods.protonet.PrototypicalNetworkk', which cannot be imported: Error loading "
     "'methods.protonet.PrototypicalNetworkk': ModuleNotFoundError("),  # once, named (Hydra logged it twice)
    (["method=protonet", "+method.learner.optimizer.betas=[0.9]"], ArgumentTypeError,  # torch unpacks a pair
     "method.learner.optimizer.betas is the list [0.9], but Adam's betas takes a list of 2 numbers of at least 0 "
     "and below 1"),
    (["method=protonet", "method.learner.optimizer._target_=torch.optim.Rprop", "+method.learner.optimizer.etas=[0.5]"],
     ArgumentTypeError, "method.learner.optimizer.etas is the list [0.5], but Rprop's etas takes a list of 2 numbers"),
])
def test_a_choice_is_refused_before_the_data_set_is_read(compose_cfg, tmp_path, overrides, error, needle):
    """Choices the learner, its backbone or the run context would refuse only once built (after the data set is
    read): the data root holds nothing, so a refusal that came later would name the missing data instead."""
    data = [f"data_root={tmp_path / 'nothing'}"] if overrides[0].startswith("dataset=") else \
        ["dataset=fashion_mnist", f"dataset.source.root={tmp_path / 'nothing'}"]
    cfg = compose_cfg(*data, "backbone=conv4", *overrides, f"run_dir={tmp_path / 'run'}")
    with pytest.raises(error) as info:
        execute(cfg)
    assert needle in str(info.value)


CONF = Path(__file__).resolve().parent.parent / "conf"
_NEEDS = {"arrays": ["dataset.path=/data/mine.npz"], "image_folder": ["dataset.root=/data/my_images"]}


def test_no_shipped_config_is_refused():
    """Every method on both backbones, every protocol (set_generation with its judge) and every data set, as
    composed: none is refused (the members of the shipped leaderboards are checked in test_suite)."""
    choices = [[f"method={m.stem}", f"backbone={b}"] for m in sorted((CONF / "method").glob("*.yaml"))
               for b in ("mlp", "conv4")]
    choices += [[f"protocol={p.stem}"] for p in sorted((CONF / "protocol").glob("*.yaml"))]
    choices += [[f"dataset={d.stem}", *_NEEDS.get(d.stem, [])] for d in sorted((CONF / "dataset").glob("*.yaml"))]
    assert len(choices) > 60
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for overrides in choices:
            check_run_settings(compose(config_name="config", overrides=overrides))  # kinds, bounds and the budget


@pytest.mark.parametrize("overrides,message", [
    (["dataset.standardize=maybe"], "dataset.standardize is 'maybe', but it takes true or false"),  # was taken as true
    (["seed=abc"], "seed is 'abc', but it takes a whole number of at least 0 and at most 4294967295"),
    (["seed=-1"], "seed is -1, but it takes a whole number of at least 0 and at most 4294967295"),  # numpy's generators refused it, naming no setting
    (["data_seed=1.5"], "data_seed is 1.5, but it takes a whole number of at least 0 and at most 4294967295"),
    (["episode_seed=-3"], "episode_seed is -3, but it takes a whole number of at least 0 and at most 4294967295"),
    (["protocol=set_generation", "method=sdn", "protocol.judge_seed=abc"],
     "protocol.judge_seed is 'abc', but it takes a whole number of at least 0 and at most 4294967295"),
    (["save_model=1"], "save_model is 1, but it takes true or false"),
    (["precision=fp16"], "precision is 'fp16', but it takes one of 'fp32', 'bf16'"),  # a suite's plan reads this
    (["threads=0"], "threads is 0, but it takes a whole number of at least 1, or null (torch's default: the number "
                    "of cores)"),
    (["+suite=leaderboard_smoke"], "suite is not a setting of a run: a leaderboard of conf/suite/ runs with python "
                                   "-m benchmarks.suite <name>"),  # it ran one default run, saying nothing
    (["+tune=tune_digits_knn"], "tune is not a setting of a run: a tuning plan of conf/tune/ runs with python -m "
                                "benchmarks.tune <name>"),
    (["device=mps"], "device is 'mps', but the suite runs on device=auto (a GPU when one is visible), device=cpu, "
                     "device=cuda or device=cuda:N"),
    # what Hydra offers for a misspelled key (append it with +): the run ran with its budget of 300 steps
    (["+budget.iteration=20"], "budget.iteration is not a setting a run reads, and nothing in the config reads it, "
                               "so it would be ignored: did you mean budget.iterations? (set it without the +: "
                               "budget.iterations=...)"),
    (["+protocl=retrieval"], "protocl is not a setting a run reads, and nothing in the config reads it, so it would "
                             "be ignored: did you mean protocol? (set it without the +: protocol=...)"),
    (["+tag=x"], "tag is not a setting a run reads, and nothing in the config reads it, so it would be ignored: drop "
                 "it, or read it in a setting (e.g. method.name=<name>_${tag})"),
])
def test_the_runner_s_own_settings_are_checked_too(overrides, message):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with pytest.raises(ArgumentTypeError) as info:
        check_run_arguments(cfg)
    assert str(info.value) == message


def test_a_setting_read_through_oc_select_is_named_where_it_is_given():
    cfg = OmegaConf.create({"inner": {"_target_": f"{__name__}.toy", "count": "${oc.select:ways,5}"}})
    check_arguments(cfg.inner)  # the default
    cfg.ways = "abc"
    with pytest.raises(ArgumentTypeError, match=r"^ways is 'abc', but toy's count takes a whole number$"):
        check_arguments(cfg.inner)


def test_skip_existing_and_a_re_evaluation_s_settings_are_checked(compose_cfg, tmp_path):
    """``skip_existing=no`` (a string, so true) no longer skips past the checks when a record exists, and a
    saved learner evaluated again (``from_run``) has the runner's settings checked too."""
    first = compose_cfg("dataset=iris", "method=raw", "protocol=knn", f"run_dir={tmp_path / 'run'}")
    assert execute(first)["status"] == "ok"
    again = compose_cfg("dataset=iris", "method=raw", "protocol=knn", f"run_dir={tmp_path / 'run'}",
                        "skip_existing=no")
    with pytest.raises(ArgumentTypeError, match="skip_existing is 'no', but it takes true or false"):
        execute(again)
    assert json.loads((tmp_path / "run" / "record.json").read_text())["status"] == "ok"  # the earlier record kept
    saved = compose_cfg("dataset=iris", "protocol=knn", f"from_run={tmp_path / 'run'}", "episode_seed=abc",
                        f"run_dir={tmp_path / 'again'}")
    with pytest.raises(ArgumentTypeError, match="episode_seed is 'abc', but it takes a whole number"):
        execute(saved)


def test_a_setting_of_ones_own_that_the_config_reads_is_kept():
    """+tag=x read by the method's name, and the presets' own top-level settings (train_episode), are not refused."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for overrides in (["+tag=x", "method.name=raw_${tag}"], ["+budget.note=x", "study=s_${budget.note}"],
                          ["experiment=paper_protonet_mini_imagenet", "dataset=digits", "backbone=mlp"]):
            check_run_arguments(compose(config_name="config", overrides=overrides))
