"""The Hydra entry point: one run = one (dataset, method, protocol, seed).

    python -m benchmarks.run dataset=digits method=protonet protocol=fewshot seed=0
    python -m benchmarks.run -m experiment=smoke_digits          # a sweep, as the preset lists it

Flow: load data -> split (from the data seed) -> standardise with training statistics -> check the
protocol and the learner against the split (clear errors before any training) -> fit -> evaluate ->
write the record atomically. A failed run writes a record that says so, then raises.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import re
import signal
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmarks import VALIDATION_TAG, checkpoints, episode_tag
from benchmarks.argument_types import check_arguments, refuse, run_argument_problems, setting_name
from benchmarks.checkpoints import CHECKPOINT_TAG
from benchmarks.code_identity import run_code
from benchmarks.environment import (describe_device, git_revision, kept_random_state, library_versions, pick_device,
                                    seed_everything, set_threads)
from benchmarks.fit_cache import FitCache, fit_key
from benchmarks.leaderboard import ci_text
from benchmarks.records import (RECORD_NAME, REPLICATE, SCHEMA_VERSION, UNIT, UNITS_NAME, config_hash, read_record,
                                store_record, write_csv_atomic, write_npz_atomic)
from datasets.episodes import EpisodeError
from datasets.labeled import LabeledData, Standardizer
from datasets.splits import ClassDisjointSplit, PublishedSplit, Split, SplitError, validation_split
from methods.base import RunContext, check_interface, checked_report
from methods.training import NonFiniteLossError

# Keys that change how a run is shown or where it is written, not what it computes.
_NOT_HASHED = ("progress", "skip_existing", "results_dir", "run_dir", "study", "fit_cache", "fit_cache_dir",
               "objective", "save_model")


def _identity(cfg: DictConfig) -> dict:
    resolved = resolved_config(cfg)
    if resolved.get("precision") == "fp32":  # the default, left out: run ids from before the option stay valid
        del resolved["precision"]
    if resolved.get("episode_seed", resolved.get("data_seed")) == resolved.get("data_seed"):
        resolved.pop("episode_seed", None)  # the default (the split's seed), left out for the same reason
    if resolved.get("from_run") is None:
        resolved.pop("from_run", None)
    return {k: v for k, v in resolved.items() if k not in _NOT_HASHED}


def build(node: DictConfig):
    """``instantiate``, but a project error raised inside a constructor reaches the user as itself (with its
    message naming the fix) rather than wrapped in Hydra's InstantiationException. The node's settings are
    checked against the parameters they fill first (``argument_types``): one of the wrong kind is named here,
    not found deep inside training."""
    check_arguments(node)
    try:
        return instantiate(node)
    except InstantiationException as exc:
        if exc.__cause__ is not None and not isinstance(exc.__cause__, InstantiationException):
            raise exc.__cause__ from None
        raise


def more_classes(cfg: DictConfig, side: str, classes_in_all: int | None = None) -> str:
    """How the ``side`` ("test", "train" or "validation") of the run's split gets more classes;
    ``classes_in_all``, the data set's number of classes where known, is told beside a larger share (which
    cannot give more than that)."""
    share = "protocol.evaluator.split.test_classes"
    held_out = OmegaConf.select(cfg, share, default=None) is not None  # a split that holds classes out by a share
    if side == "test":
        in_all = "" if classes_in_all is None else f"; {cfg.dataset.name} has {classes_in_all} classes in all"
        return f"hold out more classes for testing (a larger {share}{in_all})" if held_out else \
            "use data with more test classes"
    if side == "validation":
        return ("use data with more training classes (validation=true scores on classes held out of the training "
                "side)")
    return f"keep more classes for training (a smaller {share})" if held_out else "use data with more training classes"


@contextlib.contextmanager
def episodes_named(cfg: DictConfig, path: str, shots: str = "k_shot", side: str = "train",
                   classes_in_all: int | None = None):
    """An episode the split cannot give, raised inside, names the settings of the node at ``path`` as a user
    sets them (``protocol.evaluator.n_query``; ``train_episode.k_shot`` where the learner's k_shot reads it),
    and how the ``side`` of the split it draws from gets more classes (``more_classes``): learners and
    protocols know only their own parameters' names."""
    try:
        yield
    except EpisodeError as exc:
        names = {generic: setting_name(cfg, path, key)
                 for generic, key in (("n_way", "n_way"), ("k_shot", shots), ("n_query", "n_query"))}
        names["more_classes"] = more_classes(cfg, side, classes_in_all)
        named = exc.naming({k: v for k, v in names.items() if v is not None})
        raise named.with_traceback(exc.__traceback__) from None  # the record's traceback still shows the check


def prepare_split(cfg: DictConfig, protocol, transform=None) -> Split:
    """The protocol's split of the data set (from ``data_seed``; under ``validation``, of its training side),
    standardised with statistics of the training side, or with ``transform`` when one is given (a saved
    learner's own standardisation, fitted on the side it trained on)."""
    data = build(cfg.dataset.source)
    split = protocol.split(data, seed=cfg.data_seed)
    if cfg.get("validation", False):  # tuning: train and score inside the training side only
        split = validation_split(split, validation_maker(protocol.split), seed=cfg.data_seed)
        try:
            with episodes_named(cfg, "protocol.evaluator", shots="shots", side="validation"):
                protocol.check(split)
        except ValueError as exc:  # an episode's message says what to change; another's gets the general advice
            advice = "" if isinstance(exc, EpisodeError) else \
                " Use data with more training classes, or ask for fewer (e.g. a smaller n_way)"
            raise SplitError(f"validation=true scores on part of the training side ({len(split.test)} samples of "
                             f"{len(split.test.present_classes)} classes), and the protocol cannot run there: "
                             f"{str(exc).rstrip('.')}.{advice}") from None
    if cfg.dataset.standardize:
        scale = Standardizer.fit(split.train.x) if transform is None else transform
        split = dataclasses.replace(split, train=scale(split.train), test=scale(split.test), transform=scale)
    return split


def protocol_label(cfg: DictConfig) -> str:
    """The protocol as records and leaderboards name it: ``@validation`` for a validation run, ``@episodes<k>``
    when the evaluation draws its episodes / queries with another seed than the split's."""
    label = cfg.protocol.name + (VALIDATION_TAG if cfg.get("validation", False) else "")
    return label + episode_tag(cfg.get("episode_seed", cfg.data_seed), cfg.data_seed)


PUBLISHED_VALIDATION_CLASSES = 0.25  # of the published training classes (miniImageNet: 16 of 64, as its own val)


def validation_maker(make_split):
    """The split a validation run applies to the training side: the protocol's own, except for a published
    split, which says nothing about the training side; then a seeded quarter of the training classes is held
    out (class-disjoint, as the published test classes are)."""
    if isinstance(make_split, PublishedSplit):
        return ClassDisjointSplit(test_classes=PUBLISHED_VALIDATION_CLASSES)
    return make_split


def fit_data(train: LabeledData, cfg: DictConfig, seed: int | None = None) -> LabeledData:
    """The training side as the learner's ``fit`` sees it: decoded through ``dataset.train_transform``
    (a random training augmentation, seeded by ``seed``, the run's by default) when one is set. Only ``fit`` sees it: the
    protocols (e.g. the k-NN protocol's reference set) and the split keep the evaluation transform."""
    if cfg.dataset.get("train_transform") is None:
        return train
    augmented = getattr(train.x, "augmented", None)
    if not callable(augmented):
        raise ValueError(f"dataset.train_transform is set but the inputs of {cfg.dataset.name} are a "
                         f"{type(train.x).__name__}, not image files; a training augmentation applies to the image "
                         "data sets read from files (cub, cars196, sop, inshop): set dataset.train_transform=null")
    return train.with_inputs(augmented(build(cfg.dataset.train_transform), seed=cfg.seed if seed is None else seed))


_DATA_FILES = (("path", "content_sha256"), ("root", "listing_sha256"))  # a user's file / folder and its digest


def _check_same_data_set(previous: dict | None, identity: dict, run_dir: Path) -> None:
    """Refuse, before any work, to write over a record of another file that has the same name: a data set read
    from a file or folder is named after it (mine.npz and mine.csv are both "mine"), so two files of one name
    would share a run folder and table rows. The same file changed, or moved with the same bytes, is the same
    data set (its record is replaced as for any changed config)."""
    if not isinstance(previous, dict):
        return
    before = (previous.get("config") or {}).get("dataset") or {}
    now = identity.get("dataset") or {}
    for where, digest in _DATA_FILES:
        if before.get(where) is None or now.get(where) is None or before.get(digest) is None:
            continue
        moved_or_same = Path(str(before[where])).resolve() == Path(str(now[where])).resolve()
        if not moved_or_same and before[digest] != now.get(digest):
            raise ValueError(
                f"{run_dir} holds a run of data set {now.get('name')!r} read from {before[where]}, and this run's "
                f"{now[where]} is another {'file' if where == 'path' else 'folder'} of the same name; give this one "
                f"its own name (dataset.name=...) so that neither replaces the other's records")


class ConfigResolutionError(ValueError):
    """A configuration whose ``${...}`` references cannot be filled in (found before any data set is loaded)."""


_NOT_A_GROUP = re.compile(r"node `([^`]+)` is not a container")
_MISSING = re.compile(r"Missing mandatory value: ([\w.\[\]]+)")


def resolved_config(cfg: DictConfig) -> dict:
    """``cfg`` with every ``${...}`` reference filled in, as plain containers. An override that breaks a
    reference (a single value where a preset keeps a group of settings, ``train_episode=30w1s`` for
    ``{n_way: 30, k_shot: 1}``; a setting with no default) is a ConfigResolutionError: one line that names the
    setting and the form it takes, not OmegaConf's traceback."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        where = getattr(exc, "full_key", None) or "?"
        cause = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        cause = re.split(r" (?:raised )?while resolving interpolation: ", cause, maxsplit=1)[-1]
        hint = "check the overrides that set what it refers to"
        group, missing = _NOT_A_GROUP.search(cause), _MISSING.search(cause)
        if group is not None:
            name = group.group(1)
            value = OmegaConf.select(cfg, name, default=None, throw_on_resolution_failure=False)
            shown = "null" if value is None else repr(value)
            hint = (f"{name} is {shown}, but {where} reads settings from inside it: give it as a group, "
                    f"e.g. '{name}={{key:value,...}}' (the preset shows its keys)")
        elif missing is not None:
            hint = f"{missing.group(1)} has no default: give it on the command line ({missing.group(1)}=...)"
        raise ConfigResolutionError(f"the configuration cannot be filled in at {where}: {cause}; {hint}") from None


def budget_problems(cfg: DictConfig) -> list[str]:
    """The budget's training steps and test episodes are whole numbers of at least 1, and the learner's own
    steps a whole number, 0 only for a method marked ``untrained_baseline`` (0 steps would otherwise put an
    untrained net in the table under the learner's name: its untrained row is ``method=untrained``). One
    message per setting, each beginning with the setting's name."""
    problems = []
    for key, what in (("iterations", "training steps"), ("episodes", "test episodes")):
        value = cfg.budget.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(f"budget.{key} is {value!r}: it is the number of {what}, a whole number of at least 1"
                            + (" (for a net that is never trained, use method=untrained)" if key == "iterations"
                               else ""))
    for where in ("method", "protocol.judge"):  # the learner, and the judge a protocol trains (set_generation)
        node = OmegaConf.select(cfg, where, default=None)
        steps = node.get("learner", {}).get("iterations") if isinstance(node, DictConfig) else None
        if any(p.startswith(f"{setting_name(cfg, f'{where}.learner', 'iterations')} is ") for p in problems):
            continue  # it reads budget.iterations, refused above
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            problems.append(f"{where}.learner.iterations is {steps!r}: it is the learner's number of training steps "
                            "(or solver iterations), a whole number of at least 0")
        elif steps == 0 and not node.get("untrained_baseline", False) and where == "method":
            problems.append(f"method.learner.iterations is 0: {node.name} would be scored untrained under its own "
                            "name. Give it training steps; for an untrained row use method=raw (the inputs "
                            "themselves) or method=untrained (the backbone at its initialisation), or name a "
                            "method of its own with untrained_baseline: true (as set2model_untrained_mean.yaml "
                            "does)")
        elif steps == 0 and not node.get("untrained_baseline", False):
            problems.append(f"{where}.learner.iterations is 0: the judge ({node.name}) would score the sets "
                            f"untrained; give it training steps (its default is the budget's: "
                            f"{where}.learner.iterations=${{budget.iterations}})")
    return problems


def check_budget(cfg: DictConfig) -> None:
    """Refuse the budget problems (``budget_problems``) in one error."""
    refuse(budget_problems(cfg))


def run_setting_problems(cfg: DictConfig, learner: bool = True) -> list[str]:
    """Everything about a run's settings that can be told before its data is read: each budget problem
    (``budget_problems``) and each setting of the wrong kind or out of its bounds (``run_argument_problems``),
    one message each, beginning with the setting's name; a setting is named once, by the budget's more
    specific message."""
    problems = budget_problems(cfg)
    named = {problem.split(" is ", 1)[0] for problem in problems}
    return problems + [p for p in run_argument_problems(cfg, learner) if p.split(" is ", 1)[0] not in named]


def check_run_settings(cfg: DictConfig, learner: bool = True) -> None:
    """Refuse the ``run_setting_problems`` of a run in one error."""
    refuse(run_setting_problems(cfg, learner))


def check_fit_cache_settings(cfg: DictConfig) -> None:
    """``fit_cache`` is true or false, and when true ``fit_cache_dir`` is a folder that can be made."""
    enabled = cfg.get("fit_cache", False)
    if not isinstance(enabled, bool):
        raise ValueError(f"fit_cache is {enabled!r}: give fit_cache=true or fit_cache=false")
    if not enabled:
        return
    folder = cfg.get("fit_cache_dir")
    if folder is None or not str(folder).strip():
        raise ValueError("fit_cache_dir is empty: give the folder that keeps the fitted learners "
                         "(fit_cache_dir=PATH; the default is ${results_dir}/fits), or fit_cache=false")
    FitCache(folder).check_folder()


def execute(cfg: DictConfig) -> dict:
    """Run one configuration and return its record (also written to ``cfg.run_dir``)."""
    cfg = copy.deepcopy(cfg)  # sizes known only at run time are filled in below; leave the caller's config alone
    saved = None
    if cfg.get("from_run") is not None:  # evaluate a saved learner: what it was trained with comes from its run
        saved = checkpoints.load(cfg.from_run, device=pick_device(cfg.device))
        cfg = checkpoints.adopt(cfg, saved)
    identity = _identity(cfg)  # the whole config resolved: a reference that cannot be filled in stops here
    run_dir = Path(cfg.run_dir)
    if saved is not None:  # a re-trained saved run is another model: its re-evaluation is another run
        identity["from_run_model_sha256"] = saved.sha256
    run_id = config_hash(identity)
    previous = read_record(run_dir / RECORD_NAME)
    _check_same_data_set(previous, identity, run_dir)
    code = run_code(identity)  # the project modules the run's learner, backbone, data and protocol import
    if cfg.skip_existing is True and previous and previous.get("status") == "ok" and previous.get("run_id") == run_id:
        if previous.get("code") == code:
            print(f"[skip] {run_dir} already holds this run's record")
            return previous
        print(f"[rerun] {run_dir} holds this run's record, " + (
            "made by other code (its learner's, protocol's or data set's modules, a module they import, or the "
            "runner's have changed since)" if previous.get("code") else
            "written before records named the code that made them") + ": running it again")

    record: dict = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "code": code, "status": "running", "error": None,
        "study": cfg.study + (CHECKPOINT_TAG if saved is not None else ""), "dataset": cfg.dataset.name,
        "method": cfg.method.name, "reference_row": bool(cfg.method.get("reference", False)),
        "protocol": protocol_label(cfg), "seed": cfg.seed, "data_seed": cfg.data_seed,
        "episode_seed": cfg.get("episode_seed", cfg.data_seed), "budget": cfg.budget.name,
        "config": identity, "metrics": {}, "curves": {}, "artifacts": {},
        "timings": {}, "device": None, "versions": library_versions(), "git": git_revision(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    t_start = time.perf_counter()
    phase = "checks"  # until training starts, a failure is about the input: the config, the data, the split
    failure: BaseException | None = None
    try:
        check_run_settings(cfg, learner=saved is None)  # first: every setting refused, in one error
        device = pick_device(cfg.device)
        record["device"] = describe_device(device)
        record["threads"] = set_threads(cfg.get("threads"))
        ctx = RunContext(device=device, seed=cfg.seed, progress=cfg.progress, precision=cfg.precision)
        check_fit_cache_settings(cfg)
        seed_everything(cfg.seed)
        protocol = build(cfg.protocol.evaluator)
        check_objective_name(cfg.get("objective"), protocol, record["protocol"])
        split = prepare_split(cfg, protocol, transform=saved.transform if saved is not None else None)
        record["split"] = split.describe() | {"test_index_sha": config_hash({"i": split.test_index.tolist()})}
        classes_in_all = len(set(split.train.present_classes.tolist()) | set(split.test.present_classes.tolist()))
        with episodes_named(cfg, "protocol.evaluator", shots="shots", side="test", classes_in_all=classes_in_all):
            protocol.check(split)
        if saved is not None:
            same_split = checkpoints.check_unseen(saved, split.train_index, split.test_index, protocol.name)
        if "backbone" in cfg:
            cfg.backbone.input_shape = list(split.train.input_shape)
        learner = build(cfg.method.learner) if saved is None else saved.learner
        check_interface(learner)
        protocol.check_learner(learner)
        with episodes_named(cfg, "method.learner"):
            learner.check(split.train)
        train = fit_data(split.train, cfg) if saved is None else None  # built now: a bad train_transform fails early
        check_judge(cfg, protocol, split)

        phase = "fit"  # from here on a failure is in training (the set-generation judge's included): traceback kept
        judge = fit_judge(cfg, split, device, record)  # leaves the random state as it found it
        if judge is not None:
            protocol = dataclasses.replace(protocol, judge=judge)
        if saved is None:
            learner = fit_or_load(cfg, learner, split, train, ctx, record)
            _fit_throughput(record)
            if cfg.get("save_model", True):
                record["model"] = checkpoints.save(run_dir, learner, cfg, run_id, split.train_index, split.transform,
                                                   record["fit"], record["timings"]["fit_s"])
        else:
            record["fit"], record["timings"]["fit_s"] = saved.fit, 0.0
            record["from_run"] = {"dir": str(saved.path.parent), "run_id": saved.run_id, "model_sha256": saved.sha256,
                                  "trained_s": saved.fit_s, "same_split": same_split}

        phase = "evaluate"
        t_eval = time.perf_counter()
        result = protocol.evaluate(learner, split, ctx, data_seed=cfg.get("episode_seed", cfg.data_seed))
        record["timings"]["eval_s"] = time.perf_counter() - t_eval
        rates = record.setdefault("throughput", {})
        if len(split.test):  # a protocol that scores data of its own (omniglot_oneshot's official runs) has no rate here
            rates["eval_test_samples_per_s"] = len(split.test) / record["timings"]["eval_s"]

        record["metrics"] = {name: m.to_dict() for name, m in result.metrics.items()}
        for name, frame in result.curves.items():
            write_csv_atomic(run_dir / f"{name}.csv", frame)
            record["curves"][name] = f"{name}.csv"
        for name, arrays in result.artifacts.items():
            digest = write_npz_atomic(run_dir / f"{name}.npz", arrays)
            record["artifacts"][name] = {"file": f"{name}.npz", "sha256": digest}
        if result.units or result.replicates:  # per-unit values, for paired comparisons (benchmarks.comparison)
            arrays = {f"{UNIT}{k}": v for k, v in result.units.items()} | \
                     {f"{REPLICATE}{k}": v for k, v in result.replicates.items()}
            record["units"] = {"file": UNITS_NAME, "sha256": write_npz_atomic(run_dir / UNITS_NAME, arrays)}
        record["status"] = "ok"
    except BaseException as exc:  # an interrupted run (Ctrl-C) is recorded as failed too
        failure = exc
        record["status"] = "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "phase": phase,
                           "traceback": traceback.format_exc(limit=8)}
        exc.simbench_phase = phase  # read by main(): a bad input is reported without Hydra's traceback
        raise
    finally:
        record["timings"]["total_s"] = time.perf_counter() - t_start
        record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        where = store_record(run_dir, record, previous)
        if failure is not None:
            failure.simbench_record = where  # main() points at it
        print(summary_line(record) + ("" if where.name == RECORD_NAME else
                                      f"\n  (kept the earlier ok record; this attempt is in {where})"))
    return record


def fit_or_load(cfg: DictConfig, learner, split: Split, train: LabeledData, ctx: RunContext, record: dict,
                method: str = "method"):
    """Fit ``learner`` on ``train`` (the training split as ``fit_data`` gives it), or load the learner an
    earlier run fitted with the very same data, config, seed and code (see ``benchmarks.fit_cache``).
    ``method`` is the config key of the learner's method node (``protocol.judge`` for a judge). Fills
    ``record``'s fit, fit_cache and timings.fit_s entries either way; returns the fitted learner."""
    def fit() -> tuple[object, dict, float]:
        t_fit = time.perf_counter()
        report = checked_report(learner, learner.fit(train, ctx))
        return learner, report.to_dict(), time.perf_counter() - t_fit

    timings = record.setdefault("timings", {})
    if not cfg.get("fit_cache", False):
        fitted, record["fit"], timings["fit_s"] = fit()
        return fitted

    def part(name: str):
        node = OmegaConf.select(cfg, name)
        return OmegaConf.to_container(node, resolve=True) if node is not None else None
    key = fit_key(method=part(method), backbone=part("backbone"), budget=part("budget"),
                  dataset=part("dataset"), seed=ctx.seed,
                  train_index_sha=config_hash({"i": split.train_index.tolist()}), device_kind=ctx.device.type,
                  precision=ctx.precision)
    label = f"{cfg.dataset.name} / {cfg.method.name} / {cfg.protocol.name} / seed {cfg.seed}" + \
        ("" if method == "method" else f", its judge ({OmegaConf.select(cfg, method).name}, seed {ctx.seed})")
    # A run that fails or is stopped before the fit is in hand names the key in its record, and says whether
    # it was waiting for another run's fit of it (waiting_since) or had waited before fitting it (waited_s).
    pending = record["fit_cache"] = {"key": key}

    def waiting(waited_s: float | None) -> None:
        if waited_s is None:
            pending["waiting_since"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        else:
            del pending["waiting_since"]
            pending["waited_s"] = round(waited_s, 3)
    got = FitCache(cfg.fit_cache_dir).fit_once(key, ctx.device, fit, label, on_wait=waiting)
    record["fit"], timings["fit_s"] = got.fit, got.fit_s
    record["fit_cache"] = {"key": key, "loaded": got.loaded} | \
        ({"waited_s": round(got.waited_s, 3)} if got.waited_s > 0 else {})  # it waited for another run's fit
    return got.learner


def check_judge(cfg: DictConfig, protocol, split: Split | None = None) -> None:
    """A protocol that judges with a second learner (it has a ``judge`` field) needs ``protocol.judge`` in the
    config, a judge in the config needs such a protocol, and the judge's method must suit the training split
    (when given): clear errors before any training (a throwaway judge is built for that check; the random
    state is kept)."""
    wants, named = hasattr(protocol, "judge"), cfg.protocol.get("judge") is not None
    if wants and not named:
        raise ValueError(f"the {protocol.name} protocol judges with a second learner, but the config names none: "
                         "give protocol.judge a method (e.g. method@protocol.judge=triplet)")
    if named and not wants:
        raise ValueError(f"protocol.judge is set, but the {protocol.name} protocol takes no judge: drop it "
                         "(~protocol.judge) or use a protocol that judges, e.g. protocol=set_generation")
    if named and split is not None:
        with kept_random_state(), episodes_named(cfg, "protocol.judge.learner"):
            build(cfg.protocol.judge.learner).check(split.train)


def fit_judge(cfg: DictConfig, split: Split, device, record: dict):
    """The judge of a protocol that names one in ``protocol.judge`` (a method config, e.g. the triplet
    net; the set-generation protocol judges generated inputs with it): built with the run's backbone and
    budget, fitted on the training split with the seed ``protocol.judge_seed`` (so every method and seed is
    judged by the same net), through the fit cache (a study's own run of that method and seed is loaded).
    None when the protocol names no judge. The record's ``judge`` entry says which it was and how it fitted."""
    if cfg.protocol.get("judge") is None:
        return None
    ctx = RunContext(device=device, seed=int(cfg.protocol.get("judge_seed", 0)), progress=cfg.progress,
                     precision=cfg.precision)
    with kept_random_state():  # the learner's fit then draws what it would in a run without a judge
        seed_everything(ctx.seed)  # as a run of the judge's method with that seed starts, so the cache can serve it
        judge = build(cfg.protocol.judge.learner)
        with episodes_named(cfg, "protocol.judge.learner"):
            judge.check(split.train)
        entry = record["judge"] = {"method": cfg.protocol.judge.name, "seed": ctx.seed}  # filled in place
        train = fit_data(split.train, cfg, seed=ctx.seed)  # augmented (if at all) as the judge's own run would be
        try:
            return fit_or_load(cfg, judge, split, train, ctx, entry, method="protocol.judge")
        except NonFiniteLossError as exc:  # the learning rate to lower is the judge's
            raise exc.naming("protocol.judge.learner") from exc


def _fit_throughput(record: dict) -> None:
    if record["fit"].get("iterations"):
        record["throughput"] = {"fit_steps_per_s": record["fit"]["iterations"] / record["timings"]["fit_s"]}


def summary_line(record: dict) -> str:
    head = f"[{record['status']}] {record['dataset']} / {record['method']} / {record['protocol']} / seed {record['seed']}"
    if record["status"] != "ok":
        return f"{head}: {record['error']['type']}: {record['error']['message']}"
    shown = []
    for name, m in record["metrics"].items():
        ci = f" ± {ci_text(m['ci95'])}" if m["ci95"] is not None else ""
        shown.append(f"{name}={m['mean']:.3f}{ci}")
    return f"{head} ({record['timings']['total_s']:.1f}s): " + ", ".join(shown)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit or preemption, ``kill``): the run in progress records itself as
    failed, as after Ctrl-C; the sweep stops, and a re-run redoes that run only."""


def _on_sigterm(signum, frame):
    raise Terminated("terminated by SIGTERM (a time limit, a preemption or kill): re-run the sweep to finish it")


class ObjectiveError(ValueError):
    """``objective`` names no metric the run's protocol reports."""


def check_objective_name(objective: str | None, protocol, label: str) -> None:
    """Before any training: an ``objective`` the protocol cannot report (its ``metric_names``, where it knows them
    from its settings alone) raises ObjectiveError, listing those it reports."""
    names = getattr(protocol, "metric_names", None)
    if objective is None or names is None or objective in names():
        return
    raise ObjectiveError(f"objective={objective} is not a metric of the {label} protocol; it reports "
                         f"{', '.join(sorted(names()))}")


def objective_value(record: dict, objective: str | None) -> float | None:
    """The mean of the metric ``objective`` in ``record`` (what a Hydra sweeper such as Optuna's optimises), or
    None without an objective. A name the protocol does not report raises, listing those it does."""
    if objective is None:
        return None
    if objective not in record["metrics"]:
        raise KeyError(f"objective={objective} is not a metric of the {record['protocol']} protocol; it reports "
                       f"{', '.join(sorted(record['metrics']))}")
    return float(record["metrics"][objective]["mean"])


def _optuna_direction() -> str | None:
    """The direction of the Optuna sweep this run is a trial of, or None when it is not one."""
    try:
        from hydra.core.hydra_config import HydraConfig

        sweeper = HydraConfig.get().sweeper
    except (ImportError, ValueError):  # no Hydra run (execute called directly)
        return None
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return None
    return str(sweeper.get("direction", "minimize")).lower()


def _single_run() -> bool:
    """True in a plain ``python -m benchmarks.run ...`` (not ``-m``): a sweep keeps Hydra's own handling of a
    failed job, so that the launcher and sweeper see it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.RUN
    except ValueError:
        return False


def _said_enough(exc: BaseException) -> bool:
    """Whether the one-line ``[failed]`` summary is the whole story: a failure in the checks before training
    (an episode larger than the split, a missing data file, a bad option: each message names the fix), or a
    non-finite loss (the message names the step and what to lower). A failure inside fitting or evaluation
    otherwise is likely a bug, and keeps Hydra's traceback."""
    return getattr(exc, "simbench_phase", None) == "checks" or isinstance(exc, NonFiniteLossError)


def _refuse_adopted_overrides() -> None:
    """With ``from_run``, the learner and what it was trained on come from the saved run: a command line that
    also sets them (``method=``, ``dataset.path=``, a preset sweeping methods) would be silently ignored."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0].split("@")[0] in checkpoints.ADOPTED:
            raise checkpoints.CheckpointError(
                f"from_run evaluates the saved learner as it was trained: its {', '.join(checkpoints.ADOPTED)} come "
                f"from the saved run, so the override {item!r} would be ignored. Drop it (to compare another learner "
                "or budget, train it: leave from_run out)")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
        signal.signal(signal.SIGTERM, _on_sigterm)
    objective = cfg.get("objective")
    if cfg.get("from_run") is not None:
        _refuse_adopted_overrides()
    try:
        record = execute(cfg)
    except Exception as exc:  # noqa: BLE001 - the record says failed; an Optuna trial then fails alone
        # found before any record was written (a config that cannot be filled in, a from_run folder that holds
        # no saved run): none to point at
        if isinstance(exc, ConfigResolutionError) or (isinstance(exc, checkpoints.CheckpointError)
                                                      and not hasattr(exc, "simbench_phase")):
            if _single_run():
                print(f"[failed] {exc}", file=sys.stderr)
                raise SystemExit(1) from None
            raise  # every trial of a search would fail alike: the sweep stops instead of scoring it the worst
        direction = _optuna_direction()
        if isinstance(exc, ObjectiveError) and direction is not None:
            raise  # every trial would fail alike: the search stops instead of scoring each the worst
        if objective is None or direction is None:
            if _single_run() and _said_enough(exc):
                print(f"  (its traceback is in {getattr(exc, 'simbench_record', cfg.run_dir)}, under error.traceback)")
                raise SystemExit(1) from None  # the [failed] line above names the problem and the fix
            raise
        # Optuna's sweeper cannot mark a trial failed from its value, so it gets the worst value there is
        worst = float("-inf") if "max" in direction else float("inf")
        print(f"[trial failed] {type(exc).__name__}: {exc} (scored {worst}, the worst value; the search goes on)")
        return worst
    return objective_value(record, objective)


git_revision()  # the commit of the code this process imported, asked once before any run


if __name__ == "__main__":
    main()  # exit status 0, or 1 with Hydra's error report (the return value is the objective, for sweepers)
