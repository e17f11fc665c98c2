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

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def _check(config: DictConfig, key: str) -> None:
    try:
        OmegaConf.select(config, key)
    except OmegaConfBaseException as exc:
        cause = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        cause = re.split(r" (?:raised )?while resolving interpolation: ", cause, maxsplit=1)[-1]
        written = OmegaConf.to_container(config, resolve=False)
        folder, results_dir = written["hydra"][key.split(".")[1]]["dir"], written.get("results_dir")
        try:
            OmegaConf.select(config, "results_dir")
            culprit = key  # results_dir is fine: the folder's own setting is not
        except OmegaConfBaseException:
            culprit = "results_dir"
        print(f"[failed] Hydra's output folder cannot be filled in ({cause}): {key} is {folder!r} and results_dir "
              f"is {results_dir!r}. Give {culprit} a folder; an environment variable that may be unset needs a "
              f"default: {culprit}='${{oc.env:SCRATCH,results}}'", file=sys.stderr)
        raise SystemExit(1) from None


class OutputFolderCheck(Callback):
    """Refuse a run or sweep whose output folder cannot be filled in, before Hydra makes it."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _check(config, "hydra.sweep.dir")
