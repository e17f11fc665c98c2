"""Swept values that their runs would refuse, found before a grid sweep launches anything.

A run refuses a setting of the wrong kind or out of its bounds (``seed=abc``, ``budget.iterations=0``) in its
checks, before it reads data; in a sweep that is after every job before it has trained. So before Hydra
launches a sweep of its basic sweeper (the grid), each swept key's values are composed with the others' first
values, as the job's config is composed, and checked as a run checks them; the sweep is refused, naming each
refused setting once and why, while nothing has run and nothing is written. A value that cannot be composed at all is
left to its own run to report (as ``benchmarks.sweep_collisions`` leaves it), and so is a re-evaluation of
saved runs (``from_run``).
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from benchmarks.sweep_collisions import _GRID, _composed, as_job, sweep_grid


def _problems(cfg: DictConfig) -> list[str]:
    """What a run of ``cfg`` (a job's config, with Hydra's settings) refuses in its settings, one message per
    setting, each beginning with the setting's name."""
    from benchmarks.run import run_setting_problems  # the runner imports this module's caller

    with as_job(cfg):
        return run_setting_problems(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))


def refused_values(config: DictConfig) -> list[str]:
    """Each problem a job of the sweep of ``config`` (a multirun's, with Hydra's settings) would refuse, once:
    every swept value is composed with the other keys' first values."""
    if config.hydra.sweeper.get("_target_") != _GRID:  # Optuna's trials are checked one by one
        return []
    shared, grid = sweep_grid(config)
    firsts = {k: f"{k}={values[0]}" for k, values in grid.items() if values}
    found: dict[str, None] = {}
    for key, values in grid.items():
        others = [f for k, f in firsts.items() if k != key]
        for value in dict.fromkeys(values):
            cfg = _composed([*shared, *others, f"{key}={value}"])
            found |= dict.fromkeys(_problems(cfg) if cfg is not None else [])
    return list(found)


def refusal(problems: list[str]) -> str | None:
    """The message refusing a sweep with ``problems`` (None where there are none)."""
    if not problems:
        return None
    return (f"this sweep has {'a setting' if len(problems) == 1 else f'{len(problems)} settings'} its runs would "
            f"refuse, so nothing was launched: {' | '.join(problems)}. Fix or drop "
            f"{'it' if len(problems) == 1 else 'them'} and run the sweep again")
