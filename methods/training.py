"""The one optimisation loop the learners share: progress bar, loss curve, and a stop on a NaN loss."""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from methods.base import FitReport, RunContext


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stops and its record says failed. Its message names
    the learning rate to lower as the learner's, ``method.learner.optimizer.lr``; the runner, which knows where
    the learner's settings are, gives it again with ``naming`` (a set-generation judge's are under
    ``protocol.judge.learner``)."""

    def naming(self, node: str) -> "NonFiniteLossError":
        return NonFiniteLossError(str(self).replace("method.learner.", f"{node}."))


def build_optimizer(optimizer: Callable[..., torch.optim.Optimizer],
                    parameters: Iterable[torch.nn.Parameter] | Iterable[dict]) -> torch.optim.Optimizer:
    """The optimiser over the trainable ones of ``parameters``: plain parameters, or groups given as
    ``{"params": [...], "lr_multiplier": m}`` whose learning rate is m times the one the optimiser was
    configured with (so a yaml names one learning rate and a learner can scale it for a part of itself,
    e.g. its masks)."""
    items = list(parameters)
    if not items or not isinstance(items[0], dict):
        return optimizer([p for p in items if p.requires_grad])
    groups, multipliers = [], []
    for group in items:
        params = [p for p in group["params"] if p.requires_grad]
        if params:
            groups.append({"params": params})
            multipliers.append(float(group.get("lr_multiplier", 1.0)))
    opt = optimizer(groups)
    for group, multiplier in zip(opt.param_groups, multipliers):
        group["lr"] = group["lr"] * multiplier
    return opt


def optimise(loss_at: Callable[[int], Tensor], parameters: Iterable[torch.nn.Parameter],
             optimizer: Callable[..., torch.optim.Optimizer], iterations: int, ctx: RunContext,
             name: str, curve_points: int = 100) -> FitReport:
    """Run ``iterations`` optimiser steps on ``loss_at(step)``.

    ``optimizer`` is a partial optimiser class (``_partial_: true`` in the yaml); ``parameters`` are
    parameters or groups (see ``build_optimizer``). A step whose loss has no gradient (a miner that found
    no tuples) is counted but takes no update.
    """
    opt = build_optimizer(optimizer, parameters)
    every = max(1, iterations // curve_points)
    report = FitReport()
    bar = tqdm(range(iterations), desc=f"fit {name}", disable=not ctx.progress, leave=False, mininterval=1.0)
    for step in bar:
        with ctx.autocast():  # bf16 mixed precision when the run asks for it
            loss = loss_at(step)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"{name}: the training loss became {value} at step {step} of {iterations}. "
                "Lower the learning rate (method.learner.optimizer.lr=...) or check the inputs for NaNs; "
                "the run was stopped and its record marked failed."
            )
        if loss.requires_grad:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if step % every == 0 or step == iterations - 1:
            report.loss_curve.append((step, value))
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        report.final_loss = value
    report.iterations = iterations
    return report
