"""Settings checked against the parameters they fill, before anything is built.

A config node with a ``_target_`` becomes a call of that class or function. A setting of the wrong kind
(``method.learner.n_way=abc``) or one the target does not take would otherwise fail deep inside training, or in
Hydra's instantiate with a message that names neither the setting nor the fix. ``check_arguments`` compares each
setting with the annotation of the parameter it fills and names the setting the user would change: for
``iterations: ${budget.iterations}`` that is ``budget.iterations``.

Judged: int, float, bool, str, Literal, lists (``Sequence``, ``Iterable``, ``list``, ``tuple``; their items too
where those are of the kinds above), groups (``dict``, ``Mapping``), and unions of these with None; a tensor in a
union is dropped (a config cannot hold one: torch's ``lr: float | Tensor``). Bounds written into an annotation
(``n_way: TwoOrMore``: methods/bounds.py) are judged too, so ``n_way=1`` is refused here rather than once the
episodes are drawn; torch's optimisers get theirs from ``_OPTIMISER_BOUNDS``. A parameter with no annotation (as
in pytorch-metric-learning) is judged by the kind of its default. A class whose constructor passes ``**kwargs``
on to its parents takes their parameters too (a loss's ``distance`` and ``reducer``, a distance's ``power``).
Annotations of any other kind (a module, a callable) are not judged. Every setting refused under a run's nodes
is named in one ArgumentTypeError, so a single try shows all there is to fix.
"""
from __future__ import annotations

import collections.abc
import functools
import inspect
import logging
import re
import types
import typing
from pathlib import Path

import torch
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from benchmarks.environment import device_name_problem
from methods.base import PRECISIONS
from methods.bounds import AtLeast, AtMost

_SCALARS = (bool, int, float, str, type(None))
_LISTS = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.MutableSequence,
          collections.abc.Collection)
_GROUPS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_KIND = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null",
         dict: "a group of settings"}
_CLOSED = (object, torch.nn.Module)  # constructors that take no settings of their own: a chain ends there


class ArgumentTypeError(ValueError):
    """A setting that does not fit the parameter it fills (or fills no parameter at all)."""


class _List(typing.NamedTuple):
    """A list, with the kinds its items take (None: not judged) and, for a fixed-size tuple such as Adam's
    ``betas: tuple[float, float]``, how many items it holds (None: any number)."""
    items: list | None
    length: int | None = None


class _Bounded(typing.NamedTuple):
    """Numbers of the given kinds within bounds (``Count``, ``Fraction``: methods/bounds.py)."""
    kinds: list
    bounds: tuple


def _members(annotation) -> list | None:
    """The kinds an annotation allows: scalar types, Literal values (as a tuple), ``dict`` for a group, a
    ``_List``; None when it allows something this check does not judge."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [tuple(typing.get_args(annotation))]
    if origin is typing.Annotated:
        inner = _members(annotation.__origin__)
        bounds = tuple(m for m in annotation.__metadata__ if isinstance(m, (AtLeast, AtMost)))
        return [_Bounded(inner, bounds)] if inner is not None and bounds else inner
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            if arg is torch.Tensor:
                continue
            inner = _members(arg)
            if inner is None:
                return None
            out += inner
        return out or None
    if annotation in _LISTS or origin in _LISTS:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        fixed = origin is tuple and args and Ellipsis not in typing.get_args(annotation)  # tuple[float, float]
        items: list | None = []
        for arg in args:
            inner = _members(arg)
            if inner is None:
                items = None
                break
            items += inner
        return [_List(items or None, len(args) if fixed else None)]
    if annotation in _GROUPS or origin in _GROUPS:
        return [dict]
    return [annotation] if annotation in _SCALARS else None


def _from_default(default) -> list | None:
    """For a parameter with no annotation (pytorch-metric-learning's losses and miners have none): a number
    where the default is a number, true or false where it is a bool; anything where it is neither."""
    if isinstance(default, bool):
        return [bool]
    if isinstance(default, (int, float)):
        return [float]
    return None


def _fits(value, members: list) -> bool:
    for member in members:
        if isinstance(member, _Bounded):
            within = not isinstance(value, bool) and _fits(value, member.kinds)
            if within and all(b.holds(value) for b in member.bounds):
                return True
        elif isinstance(member, _List):
            if isinstance(value, ListConfig) and (member.length is None or len(value) == member.length) \
                    and (member.items is None or all(_fits(v, member.items) for v in value)):
                return True
        elif isinstance(member, tuple):
            if any(value == v and type(value) is type(v) for v in member):
                return True
        elif member is dict:
            if isinstance(value, DictConfig):
                return True
        elif isinstance(value, (DictConfig, ListConfig)):
            continue
        elif member is type(None):
            if value is None:
                return True
        elif isinstance(value, bool) or member is bool:
            if isinstance(value, bool) and member is bool:
                return True
        elif member is float and isinstance(value, (int, float)):
            return True
        elif isinstance(value, member):
            return True
    return False


_PLURAL = {bool: "true/false values", int: "whole numbers", float: "numbers", str: "strings", type(None): "nulls",
           dict: "groups of settings"}


def _wanted(members: list, plural: bool = False) -> str:
    """The kinds in words: "a whole number, a list of numbers or null"."""
    words = []
    for member in members:
        if isinstance(member, _Bounded):
            words.append(f"{_wanted(member.kinds, plural)} {' and '.join(b.words() for b in member.bounds)}")
        elif isinstance(member, _List):
            what = _wanted(member.items, plural=True) if member.items else "items"  # "a list of 2 numbers"
            count = "" if member.length is None else f"{member.length} "
            words.append(f"a list of {count}{what}" if member.items or count else "a list")
        elif isinstance(member, tuple):
            words.append(("values among " if plural else "one of ") + ", ".join(repr(v) for v in member))
        elif member is int and float in members:
            continue  # "a number" says it
        else:
            words.append((_PLURAL if plural else _KIND)[member])
    words = list(dict.fromkeys(words))
    last = ", or " if any(" or " in w for w in words) else " or "  # "true or false, or one of 'none', ..."
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + last + words[-1]


def _shown(value) -> str:
    """A value as it is written in a config: null, true, false, 'text', 5, a list, a group of settings."""
    if isinstance(value, DictConfig):
        return "a group of settings"
    if isinstance(value, ListConfig):
        return f"the list {OmegaConf.to_container(value)}"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


_SELECT = re.compile(r"^\$\{oc\.select:\s*([\w.]+)\s*,")


def _setting(node: DictConfig, key: str) -> str:
    """The name a user would override: the referenced setting for a ``${...}`` value, else the key itself."""
    child = node._get_node(key)
    if child is not None and child._is_interpolation():
        chosen = _SELECT.match(str(child._value()))
        if chosen is not None and OmegaConf.select(node._get_root(), chosen.group(1), default=None) is not None:
            return chosen.group(1)  # ${oc.select:episode_n_way,5}, with episode_n_way given
        source = child._dereference_node()
        name = source._get_full_key(None) if source is not None and source._get_parent() is not None else ""
        if name:
            return name
    return node._get_full_key(key)


def _takes_more(function) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


def _passes_on(init) -> bool:
    """Whether a constructor hands its ``**kwargs`` to its parent's (``super().__init__(..., **kwargs)``, as
    pytorch-metric-learning's do); one that keeps them, or whose source cannot be read, is taken not to."""
    name = next(p.name for p in inspect.signature(init).parameters.values() if p.kind is p.VAR_KEYWORD)
    try:
        source = inspect.getsource(init)
    except (OSError, TypeError):
        return False
    return re.search(r"super\(\)\.__init__\([^)]*\*\*" + re.escape(name) + r"\b", source) is not None


def _chain(target) -> tuple[list, bool]:
    """The functions whose parameters a call of ``target`` can fill, and whether it takes settings beyond
    them. A function: itself. A class: its constructor and, while a constructor passes its ``**kwargs`` on to
    its parent's (pytorch-metric-learning's losses, miners and distances), the parents' up to one that takes no
    ``**kwargs``. A constructor that keeps its ``**kwargs`` (or a chain that runs into torch's Module) takes any
    setting."""
    if not inspect.isclass(target):
        return [target], _takes_more(target)
    chain = []
    for cls in target.__mro__:
        if cls in _CLOSED:
            break
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        chain.append(init)
        if not _takes_more(init):
            return chain, False
        if not _passes_on(init):
            return chain, True
    return chain, True


def _parameters(target) -> tuple[dict, bool] | None:
    """The kinds each named parameter of the target accepts (None: not judged), and whether it takes
    settings beyond them; None when its signature cannot be read."""
    named: dict = {}
    try:
        chain, open_ended = _chain(target)
        for function in chain:
            hints = typing.get_type_hints(function, include_extras=True)
            params = list(inspect.signature(function).parameters.values())
            if inspect.isclass(target):
                params = params[1:]  # self
            for p in params:
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in named:
                    continue
                if p.name in hints:
                    kinds = _members(hints[p.name])
                    if kinds is not None and p.default is None and type(None) not in kinds:
                        kinds = [*kinds, type(None)]  # ``n_bins: int = None``: None is taken
                    named[p.name] = kinds
                else:
                    named[p.name] = None if p.default is p.empty else _from_default(p.default)
    except Exception:  # a signature or an annotation that does not evaluate here: judge nothing
        return None
    if inspect.isclass(target) and issubclass(target, torch.optim.Optimizer):
        for name, bounds in _OPTIMISER_BOUNDS.items():
            kinds = named.get(name)
            if kinds:
                numbers = [k for k in kinds if k in (int, float)]
                if numbers:  # Adafactor's eps is a pair: not a number to bound here
                    named[name] = [_Bounded(numbers, bounds), *(k for k in kinds if k not in numbers)]
        if named.get("betas"):  # Adam's: each in [0, 1)
            pair = next((k.length for k in named["betas"] if isinstance(k, _List)), None)
            named["betas"] = [_List([_Bounded([float], (AtLeast(0), AtMost(1, strict=True)))], pair)]
    return named, open_ended


# torch's optimisers carry no bounds in their annotations, but refuse a negative learning rate (and weight
# decay, momentum, eps, betas outside [0, 1)) when they are built, after the data is read and the net made:
# the same bounds, judged here with every other setting. A learning rate of 0 is refused too: the net would
# be scored untrained under the learner's name, as with 0 training steps.
_OPTIMISER_BOUNDS = {"lr": (AtLeast(0, strict=True),), "weight_decay": (AtLeast(0),), "momentum": (AtLeast(0),),
                     "eps": (AtLeast(0),)}


BUILT = ("dataset.source", "dataset.train_transform", "protocol.evaluator", "method.learner",
         "protocol.judge.learner")


# The runner's own settings that no class takes, with the kinds they take (the device's name is checked here
# too; the budget's values, the fit cache's folder and whether a GPU is there have checks of their own).
# Seeds go to numpy's generators too, which take 0 to 2**32 - 1.
_SEED = [_Bounded([int], (AtLeast(0), AtMost(2**32 - 1)))]
RUN_SETTINGS = {"seed": _SEED, "data_seed": _SEED, "episode_seed": _SEED, "threads": [int, type(None)],
                "validation": [bool], "progress": [bool], "skip_existing": [bool], "save_model": [bool],
                "dataset.standardize": [bool], "protocol.judge_seed": _SEED, "precision": [PRECISIONS],
                "device": [str], "fit_cache": [bool]}


def check_run_arguments(cfg: DictConfig, learner: bool = True) -> None:
    """Every node a run builds and the runner's own settings, checked before its data set is read
    (``learner=False``: not the learner's node, for a saved learner evaluated again)."""
    refuse(run_argument_problems(cfg, learner))


# Config groups of conf/ that other commands read: Hydra lists them in a run's --help, and +suite=... would
# add a node no run reads (one default run would go ahead under the leaderboard's name).
OTHER_COMMANDS = {"suite": "a leaderboard of conf/suite/ runs with python -m benchmarks.suite <name>",
                  "tune": "a tuning plan of conf/tune/ runs with python -m benchmarks.tune <name>",
                  "search_space": "a learner's search space (conf/search_space/) is read by python -m benchmarks.tune"}


_CONF = Path(__file__).resolve().parent.parent / "conf"


@functools.lru_cache(maxsize=1)
def _known_keys() -> dict[str, set[str]]:
    """The settings a run reads at the top level (conf/config.yaml's, the config groups, and those a preset of
    conf/experiment/ sets for its methods, such as tabular_knn's episode_n_way) and in its budget (those of
    conf/budget/*.yaml)."""
    import yaml

    top = set(yaml.safe_load((_CONF / "config.yaml").read_text())) | {p.name for p in _CONF.iterdir() if p.is_dir()}
    top |= {key for path in (_CONF / "experiment").glob("*.yaml") for key in yaml.safe_load(path.read_text()) or {}}
    budget = {key for path in (_CONF / "budget").glob("*.yaml") for key in yaml.safe_load(path.read_text()) or {}}
    return {"": top, "budget": budget}


def unread_settings(cfg: DictConfig) -> list[str]:
    """Settings added at the top level or to the budget (``+budget.iteration=20``, ``+protocl=retrieval``: what
    Hydra offers for a misspelled key) that no code and no ``${...}`` of the config reads: the run would ignore
    them. One message each, beginning with the setting's name, with the setting it may have meant."""
    import difflib

    text = "\n".join(_interpolations(OmegaConf.to_container(cfg, resolve=False)))
    problems = []
    for parent, known in _known_keys().items():
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig):
            continue
        for key in node:
            name = f"{parent}.{key}" if parent else str(key)
            if key in known or key in OTHER_COMMANDS or re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text):
                continue
            near = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.7)
            meant = f"{parent}.{near[0]}" if near and parent else (near[0] if near else None)
            problems.append(f"{name} is not a setting a run reads, and nothing in the config reads it, so it would be "
                            "ignored: " + (f"did you mean {meant}? (set it without the +: {meant}=...)" if meant else
                                           "drop it, or read it in a setting (e.g. method.name=<name>_${" + name + "})"))
    return problems


def _interpolations(node) -> list[str]:
    """Every string with a ``${...}`` in a plain (unresolved) config."""
    if isinstance(node, dict):
        return [s for v in node.values() for s in _interpolations(v)]
    if isinstance(node, list):
        return [s for v in node for s in _interpolations(v)]
    return [node] if isinstance(node, str) and "${" in node else []


def run_argument_problems(cfg: DictConfig, learner: bool = True) -> list[str]:
    """What ``check_run_arguments`` refuses, one message per setting (each begins with the setting's name)."""
    problems = [f"{key} is not a setting of a run: {what}" for key, what in OTHER_COMMANDS.items() if key in cfg]
    problems += unread_settings(cfg)
    reported: set = set()
    for name, kinds in RUN_SETTINGS.items():
        if OmegaConf.select(cfg, name, default="<absent>") == "<absent>":
            continue
        value = OmegaConf.select(cfg, name)
        if not _fits(value, kinds):
            parent, _, key = name.rpartition(".")
            named = _setting(OmegaConf.select(cfg, parent) if parent else cfg, key)  # episode_seed: ${data_seed}
            if named != name and named in RUN_SETTINGS and named in reported:
                continue  # said once, for the setting it reads
            reported.add(named)
            problems.append(f"{named} is {_shown(value)}, but {'it' if named == name else name} takes {_wanted(kinds)}")
    threads = OmegaConf.select(cfg, "threads", default=None)
    if isinstance(threads, int) and not isinstance(threads, bool) and threads < 1:
        problems.append(f"threads is {threads}, but it takes a whole number of at least 1, or null (torch's default: "
                        "the number of cores)")
    device = OmegaConf.select(cfg, "device", default=None)
    if isinstance(device, str) and device_name_problem(device) is not None:
        problems.append(device_name_problem(device))
    for name in BUILT if learner else [b for b in BUILT if b != "method.learner"]:
        node = OmegaConf.select(cfg, name, default=None)
        if node is not None:
            problems += _problems(node)
    return problems


def setting_name(cfg: DictConfig, path: str, key: str) -> str | None:
    """The name a user would set for ``path.key`` (the setting a ``${...}`` there reads), or None where the
    config has no such key."""
    node = OmegaConf.select(cfg, path, default=None)
    if not isinstance(node, DictConfig) or key not in node:
        return None
    return _setting(node, key)


def check_arguments(node) -> None:
    """Raise ArgumentTypeError naming every setting under ``node`` (a config node, nested ``_target_`` nodes
    included) that its target's parameter does not accept."""
    refuse(_problems(node))


def refuse(problems: list[str]) -> None:
    """One problem is the message; several are listed, so that one try shows them all."""
    problems = list(dict.fromkeys(problems))  # a node reached twice (through a ${...} reference) says it once
    if len(problems) == 1:
        raise ArgumentTypeError(problems[0])
    if problems:
        raise ArgumentTypeError(f"{len(problems)} settings are refused:\n" + "\n".join(f"  - {p}" for p in problems))


def _imported(path: str) -> tuple[object | None, str | None]:
    """The object a ``_target_`` names, or None and why it cannot be imported, in one line (Hydra's
    ``get_object`` also logs the failure; it is said once, here, with the setting's name)."""
    logger = logging.getLogger("hydra.utils")
    quiet, logger.disabled = logger.disabled, True
    try:
        return get_object(path), None
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        return None, " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    finally:
        logger.disabled = quiet


def _problems(node) -> list[str]:
    """What is wrong with the settings under ``node``, one message each."""
    if isinstance(node, ListConfig):
        return [problem for item in node for problem in _problems(item)]
    if not isinstance(node, DictConfig):
        return []
    problems = []
    target_path = node.get("_target_")
    parameters = None
    if isinstance(target_path, str):
        target, cause = _imported(target_path)
        if cause is not None:
            problems.append(f"{node._get_full_key('_target_')} is {target_path!r}, which cannot be imported: {cause}")
        parameters = _parameters(target) if target is not None else None
    for key in node:
        if not isinstance(key, str) or key.startswith("_"):
            continue
        if OmegaConf.is_missing(node, key):  # filled in at run time (a backbone's input_shape)
            continue
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            problems += _problems(value)
        if parameters is None:
            continue
        named, takes_more = parameters
        owner = target_path.rsplit(".", 1)[-1]
        if key not in named:
            if not takes_more:
                problems.append(
                    f"{_setting(node, key)} is not a setting of {owner} (it takes: {', '.join(named) or 'nothing'}); "
                    f"check the spelling, or drop it (~{_setting(node, key)} on the command line for one the yaml sets)")
            continue
        members = named[key]
        if members is None or _fits(value, members):
            continue
        name = _setting(node, key)
        hint = ""
        if str in members and isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = f" (quote a number meant as text: {name}=\"'{value}'\")"
        problems.append(f"{name} is {_shown(value)}, but {owner}'s {key} takes {_wanted(members)}{hint}")
    return problems
