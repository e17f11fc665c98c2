"""Hydra callbacks of the runner (registered under ``hydra.callbacks`` in ``conf/config.yaml``).

Hydra fills in its own output folder (``hydra.run.dir``, or ``hydra.sweep.dir`` for ``-m``; both under
``results_dir``) before the run's code starts. A ``results_dir`` that cannot be filled in
(``results_dir=${oc.env:SCRATCH}/results`` where SCRATCH is not set) would stop it there with OmegaConf's
traceback and Hydra's "error during exception formatting". ``OutputFolderCheck`` reads the folder first and,
when it cannot, prints one ``[failed]`` line naming the setting and exits with status 1; nothing is written.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def _problem(config: DictConfig, key: str) -> str | None:
    """Why ``key`` cannot be filled in (OmegaConf's first line, without its "while resolving" preamble), or
    None when it can."""
    try:
        OmegaConf.select(config, key)
    except OmegaConfBaseException as exc:
        cause = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        return re.split(r" (?:raised )?while resolving interpolation: ", cause, maxsplit=1)[-1]
    return None


def _check(config: DictConfig, key: str) -> None:
    problem = _problem(config, key)
    if problem is None:
        return
    written = OmegaConf.to_container(config, resolve=False)
    folder, results_dir = written["hydra"][key.split(".")[1]]["dir"], written.get("results_dir")
    # Each setting is blamed for its own fault: results_dir as written, and the folder with results_dir
    # replaced by a plain folder (the folder is usually ${results_dir}/..., broken only through it).
    results_problem = _problem(config, "results_dir")
    probe = OmegaConf.create(written)
    probe.results_dir = "results"
    folder_problem = _problem(probe, key)
    advice = {"results_dir": "an environment variable that may be unset needs a default: "
                             "results_dir='${oc.env:SCRATCH,results}'",
              key: f"its default (a folder under results_dir) needs no override, and an environment variable "
                   f"that may be unset needs a default: "
                   f"{key}='${{oc.env:SCRATCH,results}}/hydra/${{now:%Y-%m-%d_%H-%M-%S}}'"}
    if results_problem is not None and folder_problem is not None:
        message = (f": results_dir is {results_dir!r} ({results_problem}) and {key} is {folder!r} "
                   f"({folder_problem}). Give both a folder; " + advice["results_dir"] + "; for " + key + ", "
                   + advice[key])
    else:
        culprit = "results_dir" if results_problem is not None else key
        message = (f" ({results_problem or folder_problem or problem}): {key} is {folder!r} and results_dir is "
                   f"{results_dir!r}. Give {culprit} a folder; " + advice[culprit])
    print(f"[failed] Hydra's output folder cannot be filled in{message}", file=sys.stderr)
    raise SystemExit(1) from None


def _make(config: DictConfig, key: str) -> None:
    """Make the output folder now (Hydra makes it next): one that cannot be made (a read-only place, a file in
    the way) is one [failed] line naming results_dir, not an OSError traceback from inside Hydra."""
    folder = OmegaConf.select(config, key)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"[failed] Hydra's output folder {folder} ({key}, under results_dir={config.get('results_dir')!r}) "
              f"cannot be made: {exc.strerror or exc}. Give results_dir a folder you can write to",
              file=sys.stderr)
        raise SystemExit(1) from None


class OutputFolderCheck(Callback):
    """Refuse a run or sweep whose output folder cannot be filled in or made, before Hydra makes it."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check(config, "hydra.run.dir")
        _make(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check(config, "hydra.sweep.dir")
        _make(config, "hydra.sweep.dir")


class SweepCollisionCheck(Callback):
    """Refuse a grid sweep with a value its runs would refuse (benchmarks/sweep_settings.py), or two of whose
    runs would write one record folder (benchmarks/sweep_collisions.py), before any of them runs."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from benchmarks import sweep_settings
        from benchmarks.sweep_collisions import collisions, refusal

        problem = sweep_settings.refusal(sweep_settings.refused_values(config)) or refusal(collisions(config))
        if problem is not None:
            print(f"[failed] {problem}", file=sys.stderr)
            raise SystemExit(1) from None
