"""Settings checked against the parameters they fill, before anything is built.

A config node with a ``_target_`` becomes a call of that class or function. A setting of the wrong kind
(``method.learner.n_way=abc``) or one the target does not take would otherwise fail deep inside training, or in
Hydra's instantiate with a message that names neither the setting nor the fix. ``check_arguments`` compares each
scalar setting with the annotation of the parameter it fills (int, float, bool, str, Literal, and unions of them
with None) and names the setting the user would change: for ``iterations: ${budget.iterations}`` that is
``budget.iterations``. Annotations of any other kind (a module, a tensor, a sequence) are not judged.
"""
from __future__ import annotations

import inspect
import types
import typing

import torch
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

_SCALARS = (bool, int, float, str, type(None))
_KIND = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null"}


class ArgumentTypeError(ValueError):
    """A setting that does not fit the parameter it fills (or fills no parameter at all)."""


def _members(annotation) -> list | None:
    """The scalar types (or Literal values, as a tuple) an annotation allows; None when it allows something
    this check does not judge. A tensor in a union is dropped: a config cannot hold one (torch's ``lr: float |
    Tensor``)."""
    if typing.get_origin(annotation) is typing.Literal:
        return [tuple(typing.get_args(annotation))]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            if arg is torch.Tensor:
                continue
            inner = _members(arg)
            if inner is None:
                return None
            out += inner
        return out or None
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
        if isinstance(member, tuple):
            if any(value == v and type(value) is type(v) for v in member):
                return True
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


def _wanted(members: list) -> str:
    words = []
    for member in members:
        if isinstance(member, tuple):
            words.append("one of " + ", ".join(repr(v) for v in member))
        else:
            words.append(_KIND[member])
    return " or ".join(dict.fromkeys(words))


def _shown(value) -> str:
    """A value as it is written in a config: null, true, false, 'text', 5."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _setting(node: DictConfig, key: str) -> str:
    """The name a user would override: the referenced setting for a ``${...}`` value, else the key itself."""
    child = node._get_node(key)
    if child is not None and child._is_interpolation():
        source = child._dereference_node()
        name = source._get_full_key(None) if source is not None and source._get_parent() is not None else ""
        if name:
            return name
    return node._get_full_key(key)


def _parameters(target) -> tuple[dict, bool] | None:
    """The scalar kinds each named parameter of the target accepts (None: not judged), and whether it takes
    **kwargs; None when its signature cannot be read."""
    function = target.__init__ if inspect.isclass(target) else target
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not evaluate here: judge none of them
        return None
    named = {}
    for name, p in signature.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in hints:
            named[name] = _members(hints[name])
        else:
            named[name] = None if p.default is p.empty else _from_default(p.default)
    takes_more = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    return named, takes_more


BUILT = ("dataset.source", "dataset.train_transform", "protocol.evaluator", "method.learner",
         "protocol.judge.learner")


def check_run_arguments(cfg: DictConfig) -> None:
    """Every node a run builds, checked before its data set is read."""
    for name in BUILT:
        node = OmegaConf.select(cfg, name, default=None)
        if node is not None:
            check_arguments(node)


def check_arguments(node) -> None:
    """Raise ArgumentTypeError for the first setting under ``node`` (a config node, nested ``_target_`` nodes
    included) that its target's parameter does not accept."""
    if isinstance(node, ListConfig):
        for item in node:
            check_arguments(item)
        return
    if not isinstance(node, DictConfig):
        return
    target_path = node.get("_target_")
    parameters = None
    if isinstance(target_path, str):
        try:
            target = get_object(target_path)
        except Exception:
            target = None  # Hydra names a target it cannot import when it builds the node
        parameters = _parameters(target) if target is not None else None
    for key in node:
        if not isinstance(key, str) or key.startswith("_"):
            continue
        if OmegaConf.is_missing(node, key):  # filled in at run time (a backbone's input_shape)
            continue
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            check_arguments(value)
        if parameters is None:
            continue
        named, takes_more = parameters
        owner = target_path.rsplit(".", 1)[-1]
        if key not in named:
            if not takes_more:
                raise ArgumentTypeError(
                    f"{_setting(node, key)} is not a setting of {owner} (it takes: {', '.join(named) or 'nothing'}); "
                    "check the spelling, or drop it")
            continue
        members = named[key]
        if members is None:
            continue
        if isinstance(value, (DictConfig, ListConfig)) or not _fits(value, members):
            shown = "a group of settings" if isinstance(value, DictConfig) else (
                "a list" if isinstance(value, ListConfig) else _shown(value))
            raise ArgumentTypeError(f"{_setting(node, key)} is {shown}, but {owner}'s {key} takes "
                                    f"{_wanted(members)}: give {_setting(node, key)}=<{_wanted(members)}>")
