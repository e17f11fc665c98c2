"""Generative models fitted to a set of descriptors, differentiable in every descriptor (Set2Model).

A set X = {x_1 .. x_n} in R^d is mapped to a model; a query y is scored by ``score(model, y)``, higher =
more likely a member. Everything works on batches of sets of equal size, ``x`` of shape (B, n, d), and
scores queries (B, m, d) -> (B, m). Three models (Vakhitov, Kuzmin & Lempitsky, CVIU 2018):

- ``MeanModel``: the baseline; score = -||y - mean(X)||.
- ``DiagonalGaussian``: mean and per-dimension variance (the 1/n maximum-likelihood one) plus a floor
  ``variance_floor``, in closed form, so autograd differentiates it exactly; score = log N(y; mu, diag s2).
- ``DiagonalGMM``: K diagonal Gaussians fitted by EM; score = log sum_k pi_k N(y; mu_k, diag s2_k).

The mixture's gradient. EM stops at a fixed point theta* = T(theta*, X) of its update map T (one E-step
then one M-step). By the implicit function theorem, d theta*/dX = (I - dT/dtheta)^-1 dT/dX at that
point, the derivative of the fixed point itself, whatever iterations led there; this is the same
derivative the paper obtains from the Hessian of the log-likelihood's Lagrangian (theta* is the stationary
point both equations define). ``gradient="implicit"`` (the default) computes it: for an upstream gradient
g, solve (I - dT/dtheta)^T u = g by the fixed-point iteration u <- g + (dT/dtheta)^T u (one
vector-Jacobian product of T per iteration; it converges at EM's own rate, and stops when u moves by no
more than ``tol`` times max |g|, or after ``iterations``), then dL/dX = u^T dT/dX. ``gradient="unrolled"``
instead back-propagates through the EM iterations themselves (``iterations`` of them, no early stop);
with enough iterations the two agree (``tests/test_set_models.py`` compares them, and both against finite
differences in double precision).

Choices the paper leaves open, each tested:
- EM starts from the set itself, deterministically: the first mean is the point farthest from the set's
  mean, each next one the point farthest from the means chosen so far; every component starts with the
  set's own per-dimension variance (plus the floor) and weight 1/K. A set with fewer points than
  components gets one component per point.
- The E-step's responsibilities are floored at ``1e-8`` of a point's mass per component before the
  M-step, so a component that lost every point keeps a defined mean and variance.
- EM stops when no parameter moves by more than ``tol`` in an iteration, or after ``iterations``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from methods.bounds import Count, NonNegative, Positive

Gradient = Literal["implicit", "unrolled"]  # how a GMM fit is differentiated in its set

LOG_2PI = math.log(2 * math.pi)
RESPONSIBILITY_FLOOR = 1e-8


def _check_sets(x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"sets must be (B, n, d) tensors, got shape {tuple(x.shape)}")
    if x.shape[1] < 1:
        raise ValueError("a set model needs at least one descriptor in each set")


def diagonal_log_density(y: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """log N(y; mean, diag var), summed over the last dimension; broadcasts."""
    return -0.5 * (LOG_2PI * y.shape[-1] + var.log().sum(-1) + ((y - mean) ** 2 / var).sum(-1))


# ------------------------------------------------------------------------------------------- mean, Gaussian

class MeanModel:
    """The set's mean; a query scores minus its Euclidean distance to it."""

    name = "mean"

    def fit(self, x: Tensor) -> Tensor:
        _check_sets(x)
        return x.mean(1)

    def score(self, model: Tensor, y: Tensor) -> Tensor:
        return -(y - model[:, None, :]).norm(dim=-1)


@dataclass(frozen=True)
class Gaussian:
    mean: Tensor  # (B, d)
    var: Tensor   # (B, d)


class DiagonalGaussian:
    """Closed-form maximum-likelihood diagonal Gaussian (variance + ``variance_floor``)."""

    name = "gaussian"

    def __init__(self, variance_floor: Positive = 1e-3) -> None:
        if variance_floor <= 0:
            raise ValueError(f"variance_floor must be positive (a one-point set has zero variance), got {variance_floor}")
        self.variance_floor = float(variance_floor)

    def fit(self, x: Tensor) -> Gaussian:
        _check_sets(x)
        mean = x.mean(1)
        var = ((x - mean[:, None, :]) ** 2).mean(1) + self.variance_floor
        return Gaussian(mean, var)

    def score(self, model: Gaussian, y: Tensor) -> Tensor:
        return diagonal_log_density(y, model.mean[:, None, :], model.var[:, None, :])


# -------------------------------------------------------------------------------------------------- mixture

@dataclass(frozen=True)
class Mixture:
    log_weight: Tensor  # (B, K)
    mean: Tensor        # (B, K, d)
    var: Tensor         # (B, K, d)
    iterations: int = 0  # EM iterations run
    converged: bool = True


def pack(weight: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """(B, K (2d + 1)) flat parameters: weights, means, variances."""
    b = weight.shape[0]
    return torch.cat([weight, mean.reshape(b, -1), var.reshape(b, -1)], dim=1)


def unpack(theta: Tensor, k: int, d: int) -> tuple[Tensor, Tensor, Tensor]:
    b = theta.shape[0]
    weight = theta[:, :k]
    mean = theta[:, k:k + k * d].reshape(b, k, d)
    var = theta[:, k + k * d:].reshape(b, k, d)
    return weight, mean, var


def responsibilities(x: Tensor, weight: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """(B, n, K) posterior of each component for each point (the E-step)."""
    log_joint = weight.log()[:, None, :] + diagonal_log_density(x[:, :, None, :], mean[:, None], var[:, None])
    return torch.softmax(log_joint, dim=2)


def em_step(theta: Tensor, x: Tensor, k: int, variance_floor: float) -> Tensor:
    """T(theta, X): one E-step and one M-step on flat parameters (B, K (2d + 1))."""
    d = x.shape[-1]
    weight, mean, var = unpack(theta, k, d)
    resp = responsibilities(x, weight, mean, var).clamp_min(RESPONSIBILITY_FLOOR)
    mass = resp.sum(1)                                                   # (B, K)
    new_weight = mass / mass.sum(1, keepdim=True)
    new_mean = torch.einsum("bnk,bnd->bkd", resp, x) / mass[..., None]
    spread = torch.einsum("bnk,bnkd->bkd", resp, (x[:, :, None, :] - new_mean[:, None]) ** 2)
    new_var = spread / mass[..., None] + variance_floor
    return pack(new_weight, new_mean, new_var)


def farthest_point_init(x: Tensor, k: int) -> Tensor:
    """(B, K) indices of the initial means: the point farthest from the set mean, then each next point
    farthest from the means chosen so far."""
    with torch.no_grad():
        b = x.shape[0]
        rows = torch.arange(b, device=x.device)
        far = (x - x.mean(1, keepdim=True)).norm(dim=-1)                # (B, n)
        chosen = [far.argmax(1)]
        nearest = (x - x[rows, chosen[0]][:, None]).norm(dim=-1)
        for _ in range(1, k):
            nxt = nearest.argmax(1)
            chosen.append(nxt)
            nearest = torch.minimum(nearest, (x - x[rows, nxt][:, None]).norm(dim=-1))
        return torch.stack(chosen, dim=1)


class _ImplicitFixedPoint(torch.autograd.Function):
    """theta* = EM fixed point of ``x``; backward by the implicit function theorem (see the module doc)."""

    @staticmethod
    def forward(ctx, x: Tensor, theta: Tensor, k: int, variance_floor: float, iterations: int,
                tol: float) -> Tensor:
        ctx.save_for_backward(x, theta)
        ctx.settings = (k, variance_floor, iterations, tol)
        return theta.clone()

    @staticmethod
    def backward(ctx, grad_theta: Tensor):
        x, theta = ctx.saved_tensors
        k, floor, iterations, tol = ctx.settings
        with torch.enable_grad():
            th = theta.detach().requires_grad_()
            xs = x.detach().requires_grad_()
            out = em_step(th, xs, k, floor)
        # u = g + J^T u, J = dT/dtheta at the fixed point: the Neumann series of (I - J^T)^-1 g, which
        # converges at EM's own rate (J's spectral radius is EM's rate of convergence)
        u = grad_theta
        scale = float(grad_theta.abs().max()) or 1.0
        for _ in range(iterations):
            (pulled,) = torch.autograd.grad(out, th, u, retain_graph=True)
            new = grad_theta + pulled
            moved = float((new - u).abs().max())
            u = new
            if moved <= tol * scale:
                break
        (grad_x,) = torch.autograd.grad(out, xs, u)
        return grad_x, None, None, None, None, None


class DiagonalGMM:
    """K diagonal Gaussians fitted to each set by EM, differentiable in the set (``gradient``: "implicit"
    at the fixed point, or "unrolled" through ``iterations`` EM steps)."""

    name = "gmm"
    GRADIENTS = get_args(Gradient)

    def __init__(self, n_components: Count = 2, variance_floor: Positive = 1e-3, iterations: Count = 100,
                 tol: NonNegative = 1e-6, gradient: Gradient = "implicit") -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}")
        if variance_floor <= 0:
            raise ValueError(f"variance_floor must be positive, got {variance_floor}")
        if gradient not in self.GRADIENTS:
            raise ValueError(f"gradient={gradient!r}: use one of {self.GRADIENTS}")
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        self.n_components = int(n_components)
        self.variance_floor = float(variance_floor)
        self.iterations = int(iterations)
        self.tol = float(tol)
        self.gradient = gradient

    def components_for(self, n: int) -> int:
        return min(self.n_components, n)

    def initial(self, x: Tensor, k: int) -> Tensor:
        b, n, d = x.shape
        rows = torch.arange(b, device=x.device)[:, None]
        mean = x[rows, farthest_point_init(x, k)]                          # (B, K, d)
        spread = ((x - x.mean(1, keepdim=True)) ** 2).mean(1) + self.variance_floor
        var = spread[:, None, :].expand(b, k, d)
        weight = torch.full((b, k), 1.0 / k, dtype=x.dtype, device=x.device)
        return pack(weight, mean, var)

    def fit(self, x: Tensor) -> Mixture:
        _check_sets(x)
        k, d = self.components_for(x.shape[1]), x.shape[-1]
        if self.gradient == "unrolled":
            theta, moved = self.initial(x, k), float("inf")
            for _ in range(self.iterations):
                new = em_step(theta, x, k, self.variance_floor)
                moved = float((new - theta).detach().abs().max())
                theta = new
            # a fixed number of steps, differentiated through; converged: the last one moved less than tol
            done, converged = self.iterations, self.iterations == 0 or moved <= self.tol
        else:
            with torch.no_grad():
                theta, done, converged = self._iterate(x.detach(), self.initial(x.detach(), k), k)
            if x.requires_grad:
                theta = _ImplicitFixedPoint.apply(x, theta, k, self.variance_floor, self.iterations, self.tol)
        weight, mean, var = unpack(theta, k, d)
        return Mixture(weight.log(), mean, var, done, converged)

    def _iterate(self, x: Tensor, theta: Tensor, k: int) -> tuple[Tensor, int, bool]:
        for i in range(1, self.iterations + 1):
            new = em_step(theta, x, k, self.variance_floor)
            moved = float((new - theta).abs().max())
            theta = new
            if moved <= self.tol:
                return theta, i, True
        return theta, self.iterations, False

    def score(self, model: Mixture, y: Tensor) -> Tensor:
        per_component = diagonal_log_density(y[:, :, None, :], model.mean[:, None], model.var[:, None])
        return torch.logsumexp(model.log_weight[:, None, :] + per_component, dim=2)
