"""Runs of one sweep that would write the same record folder.

A run's folder (``run_dir``) is named by its study, data set, protocol, method name and seed: a sweep over
any other setting (``method.learner.optimizer.lr=1e-4,3e-4,1e-3``, ``backbone=mlp,conv4``) would write every
value's run into one folder, each replacing the last, and the table would show one row holding the last
value alone. Before Hydra launches a sweep of its basic sweeper (the grid), each swept key's values are
composed with the others' first values and the folders compared; two values that share one are refused,
with the fix. Settings (keys that are not config groups) can also collide only together (a ``run_dir`` of
one's own that writes ``${seed}${data_seed}``: ``seed=1 data_seed=11`` and ``seed=11 data_seed=1`` share
``111``), so every combination of the swept settings is filled into the config composed once. A value
that cannot be composed is left to its own run to report, and a re-evaluation of saved runs (``from_run``:
the saved run gives its seed and method) is not judged here.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
from pathlib import Path
from typing import NamedTuple

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

_PARSER = OverridesParser.create()
CONF = Path(__file__).resolve().parent.parent / "conf"
_GRID = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def sweep_grid(config: DictConfig) -> tuple[list[str], dict[str, list[str]]]:
    """The overrides every job of the sweep shares, and each swept key's values as Hydra's grid takes them:
    the preset's ``hydra.sweeper.params``, with a key given on the command line replacing the preset's."""
    # as written: an override's ${...} is the job's to fill in (method.name=triplet_lr${...optimizer.lr})
    params = {str(k): str(v) for k, v in (OmegaConf.to_container(config.hydra.sweeper, resolve=False)
                                          .get("params") or {}).items()}
    shared = []
    for line in OmegaConf.to_container(config.hydra.overrides, resolve=False)["task"]:
        override = _PARSER.parse_override(line)
        key = override.get_key_element()
        params.pop(key, None)
        if override.is_sweep_override():
            params[key] = line.partition("=")[2]  # as written: Hydra's parser reads it again below
        else:
            shared.append(line)
    return shared, {key: sweep_values(key, value) for key, value in params.items()}


def sweep_values(key: str, value) -> list[str]:
    """The values a sweep of ``key`` takes, as Hydra reads them: ``raw,lmnn``, ``range(0,3)``,
    ``choice(1e-3,1e-2)``, groups of settings ``{n_way:30,k_shot:1},{n_way:20,k_shot:5}``; a single value alone,
    as written (a ``${...}`` in it is the job's to fill in)."""
    if value is None:
        return []
    override = _PARSER.parse_override(f"{key}={value}")
    return list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(value)]


@contextlib.contextmanager
def as_job(cfg: DictConfig):
    """Within: ``${hydra:...}`` in ``cfg`` (composed with Hydra's settings) reads ``cfg``'s own, as in its job
    (``${hydra:runtime.choices.method}``: the method this job chose); the Hydra settings before are restored."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)
    try:
        yield cfg
    finally:
        hydra_config.cfg = previous


def _composed(overrides: list[str], fill: bool = True) -> DictConfig | None:
    """A job's config with its run folder filled in (``fill``) as Hydra fills it in for the job; None where it
    cannot be composed."""
    try:
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        if cfg.get("from_run") is not None:  # the saved run gives the seed and method (checkpoints.adopt)
            return None
        if not fill:
            return cfg
        with as_job(cfg):
            cfg.run_dir = str(OmegaConf.select(cfg, "run_dir", throw_on_resolution_failure=True))
            cfg.method.name = str(cfg.method.name)  # both kept filled in once the sweep's Hydra settings are back
    except Exception:  # a bad value: its own run names it, as in any sweep
        return None
    return cfg


class Collision(NamedTuple):
    key: str
    first: str
    second: str
    folder: str
    config: DictConfig  # the second value's
    methods_swept: bool


def collisions(config: DictConfig) -> list[Collision]:
    """For each key the sweep of ``config`` (a multirun's, with Hydra's settings) sweeps, the first two of its
    values whose runs would share a folder."""
    if config.hydra.sweeper.get("_target_") != _GRID:  # Optuna's trials have their own folders
        return []
    return grid_collisions(*sweep_grid(config))


def grid_collisions(shared: list[str], grid: dict[str, list[str]]) -> list[Collision]:
    """The same for a grid given as the overrides its jobs share and each swept key's values (composed with
    Hydra's global config search path: inside a run, or ``initialize_config_dir``)."""
    firsts = {k: f"{k}={values[0]}" for k, values in grid.items()}
    found = []
    methods_swept = len(set(grid.get("method", []))) > 1
    for key, values in grid.items():
        if len(set(values)) < 2:
            continue
        others = [f for k, f in firsts.items() if k != key]
        seen: dict[str, str] = {}
        for value in dict.fromkeys(values):
            cfg = _composed([*shared, *others, f"{key}={value}"])
            if cfg is None:
                continue
            folder = str(cfg.run_dir)
            if folder in seen:
                found.append(Collision(key, seen[folder], value, folder, cfg, methods_swept))
                break
            seen[folder] = value
    settings = {k: list(dict.fromkeys(v)) for k, v in grid.items() if len(set(v)) > 1 and not _is_group(k)}
    if not found and len(settings) >= 2:
        found += _settings_together(shared, firsts, settings, methods_swept)
    return found


def _is_group(key: str) -> bool:
    """A config group (method, backbone, hydra/launcher), which only composing can fill in."""
    name = key.lstrip("+~").split("@")[0]
    return "/" in name or ("." not in name and (CONF / name).is_dir())


def _settings_together(shared: list[str], firsts: dict[str, str], settings: dict[str, list[str]],
                       methods_swept: bool, limit: int = 4096) -> list[Collision]:
    """Every combination of the swept settings (up to ``limit``), filled into the config composed once with
    the groups at their first values; the first two combinations that share a folder."""
    base = _composed([*shared, *firsts.values()], fill=False)
    if base is None:
        return []
    keys = list(settings)
    seen: dict[str, tuple] = {}
    for combo in itertools.islice(itertools.product(*settings.values()), limit):
        cfg = copy.deepcopy(base)
        try:
            for key, value in zip(keys, combo):
                OmegaConf.update(cfg, key.lstrip("+"), _PARSER.parse_override(f"{key}={value}").value(),
                                 force_add=True)
            with as_job(cfg):
                folder = str(OmegaConf.select(cfg, "run_dir", throw_on_resolution_failure=True))
                cfg.method.name = str(cfg.method.name)
        except Exception:  # noqa: BLE001 - a value its own run will refuse
            continue
        if folder in seen:
            shown = [" ".join(f"{k}={v}" for k, v in zip(keys, c)) for c in (seen[folder], combo)]
            return [Collision(" and ".join(keys), *shown, folder, cfg, methods_swept)]
        seen[folder] = combo
    return []


def _fix(collision: Collision) -> str:
    """Where the swept value can go: the method's name (a setting, or a group with a name), else the study."""
    cfg, key = collision.config, collision.key.lstrip("+")
    if key == "method":  # method.name was given one value for every method
        return ("To sweep method, leave method.name to each method's config, or build it from the job's choice: "
                "'method.name=${hydra:runtime.choices.method}_<what else differs>'")
    if " and " in key:  # settings that collide together: the folder names neither
        return (f"To sweep {key} together, run the combinations that share a folder as studies of their own "
                f"(e.g. {collision.second} study={cfg.study}_2), or put one of the values in the method's name")
    named = OmegaConf.select(cfg, f"{key}.name", default=None) if "." not in key else None
    if "." in key or isinstance(named, str):
        value = f"{key.rsplit('.', 1)[-1]}${{{key}}}" if "." in key else f"${{{key}.name}}"
        # where the sweep also sweeps the method, each job's name comes from its own choice of method
        name = "${hydra:runtime.choices.method}" if collision.methods_swept else cfg.method.name
        return f"To sweep {key}, put its value in the method's name: 'method.name={name}_{value}'"
    return (f"To sweep {key}, run each value as its own study: {key}={collision.first} "
            f"study={cfg.study}_{collision.first}, then {key}={collision.second} study={cfg.study}_{collision.second}")


def _shown(collision: Collision, value: str) -> str:
    return value if " and " in collision.key else f"{collision.key}={value}"


def refusal(found: list[Collision]) -> str | None:
    """The message that refuses a sweep whose runs would share a folder, naming the fix; None when none would."""
    if not found:
        return None
    return ("this sweep would write several runs into one record folder, each replacing the last: "
            + "; ".join(f"{_shown(c, c.first)} and {_shown(c, c.second)} would both write {c.folder}"
                        for c in found)
            + ". A run's folder is named by its study, data set, protocol, method name and seed. "
            + " ".join(f"{_fix(c)}." for c in found))
