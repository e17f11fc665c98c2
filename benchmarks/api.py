"""The suite from Python, for notebooks: evaluate a learner object on a data set under a protocol.

    from functools import partial
    import torch
    from benchmarks.api import evaluate
    from methods.lmnn import LMNN
    metrics = evaluate(LMNN(iterations=100, optimizer=partial(torch.optim.Adam, lr=1e-2)), dataset="digits",
                       protocol="knn", seed=0)
    metrics["knn_error"]["mean"], metrics["knn_error"]["ci95"]

The data set, protocol and budget are the suite's config groups (``conf/dataset``, ``conf/protocol``,
``conf/budget``), composed as the runner composes them, and the run follows the runner's steps: the same
split (from ``data_seed``), standardisation, checks before training, seeding, fit and evaluation, so the
metrics are the ones a record of the same run holds (``{name: {"mean", "ci95", "n", ...}}``). Nothing is
written. ``learner`` may be a learner object, or a callable ``make(input_shape) -> learner`` called after the
run's seed is set, as the runner builds its learners (then a trained net starts from the runner's weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from hydra import compose, initialize_config_dir

from benchmarks.environment import pick_device, seed_everything, set_threads
from benchmarks.run import build, check_judge, fit_data, prepare_split
from methods.base import RunContext

CONF = Path(__file__).resolve().parent.parent / "conf"


def config(dataset: str = "digits", protocol: str = "fewshot", budget: str = "smoke", seed: int = 0,
           data_seed: int = 0, overrides: tuple[str, ...] | list[str] = ()):
    """The runner's config for these choices (any further Hydra ``overrides``, e.g. "budget.episodes=50")."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"dataset={dataset}", f"protocol={protocol}", f"budget={budget}",
                                            f"seed={seed}", f"data_seed={data_seed}", "progress=false",
                                            *overrides])


def evaluate(learner: Any | Callable, dataset: str = "digits", protocol: str = "fewshot", seed: int = 0,
             data_seed: int = 0, budget: str = "smoke", overrides: tuple[str, ...] | list[str] = (),
             progress: bool = False) -> dict[str, dict]:
    """Fit ``learner`` on the training split and evaluate it; returns the metrics as a record holds them."""
    cfg = config(dataset, protocol, budget, seed, data_seed, overrides)
    device = pick_device(cfg.device)
    set_threads(cfg.get("threads"))
    seed_everything(cfg.seed)
    evaluator = build(cfg.protocol.evaluator)
    split = prepare_split(cfg, evaluator)
    evaluator.check(split)
    if not hasattr(learner, "fit"):  # a factory, called where the runner builds its learner
        learner = learner(tuple(split.train.input_shape))
    evaluator.check_learner(learner)
    learner.check(split.train)
    train = fit_data(split.train, cfg)
    check_judge(cfg, evaluator)
    if cfg.protocol.get("judge") is not None:
        raise ValueError(f"the {evaluator.name} protocol judges with a second learner; run it through "
                         "benchmarks.run, which fits the judge")
    ctx = RunContext(device=device, seed=cfg.seed, progress=progress, precision=cfg.precision)
    learner.fit(train, ctx)
    result = evaluator.evaluate(learner, split, ctx, data_seed=cfg.data_seed)
    return {name: m.to_dict() for name, m in result.metrics.items()}

