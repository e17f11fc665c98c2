"""Large-margin nearest neighbours (Weinberger & Saul 2009), in this project's own torch code.

Learns a linear map L (M = LᵀL) directly (no PSD projection needed) by minimising

    f(L) = (1/n) [ (1-μ) Σ_{i, j→i} d(i,j) + μ Σ_{i, j→i, l: y_l≠y_i} [margin + d(i,j) - d(i,l)]_+ ]

with d(a,b) = ||L x_a - L x_b||², target neighbours j→i the k nearest same-class points under the
Euclidean metric, fixed at the start. The sum is that of the paper; dividing by the number of points
only rescales it. Works on raw (standardised) inputs, or on the features of a frozen backbone, on
whatever device the run uses. Two solvers, chosen by the number n of training points:

**n ≤ impostor_pool: full batch, exact.** L-BFGS on f itself with its gradient in closed form. Each term
of f is a pair's squared distance ||L u||² (u = x_a - x_b) times a coefficient that stays constant while
no hinge switches on or off, so ∂f/∂L = (2/n) Σ_pairs w_ab L u uᵀ = (2/n) L Xᵀ C X, C the Laplacian of
the pair weights: a target pair (i,j) weighs (1-μ) + μ·#{l: (i,j,l) active}, an impostor pair (i,l)
-μ·#{j: (i,j,l) active}. Two matmuls over the pairs give f and the gradient; no autograd, no (n, k, n)
tensor. As in the paper's solver, f is evaluated on a working set of impostor pairs: every
differently-labelled (i,l) with d(i,l) < (1 + ``slack``)·(margin + max_j d(i,j)), the active pairs and
those near it. An exhaustive search over all n² pairs (matmul blocks of the Gram matrix, in class
order) rebuilds the set when the evaluations since the last search have cost about twice a search,
after ``search_every`` iterations at the latest, and whenever an iteration changes f by less than
``tol``. Between searches the working-set objective is a lower bound of f, equal to f wherever no pair
outside the set is active.

- Start: L = c·I (its first ``out_features`` rows when those are fewer), c the scale minimising f along
  that ray, estimated on 32 anchors spread evenly over the training order (f(cL) is convex and piecewise
  linear in c², its minimum found by bisection): the margin fixes the scale, not the units of the
  inputs, and starting at it spares L-BFGS iterations.
- L-BFGS: ``history`` curvature pairs; backtracking (Armijo) line search from the unit step; the first
  step (and the first after a restart) 3% of ||L||_F along -∇f; restarted from steepest descent when the
  direction is not a descent direction or no step along it lowers f, and after a search that raised the
  objective by more than 1% (the curvature then described another function).
- Converged: an iteration lowered the objective by less than ``tol`` relative to its value (or no step
  along -∇f lowers it: the bottom of a kink), and the search at that L found no active triple outside
  the working set, so the objective there is f itself. ``iterations`` is the most L-BFGS iterations; a
  run that reaches it without converging says so in its notes (``converged: false``, ``warning``) and
  with a ``RuntimeWarning``. The notes also give ``iterations_used``, ``last_change``, the number of
  evaluations and searches, and the working set's size. The loss curve samples the working-set
  objective over the iterations (f itself right after a search, so at convergence its last point is
  f). This path is deterministic: the seed does not change it.

**n > impostor_pool: sampled.** Stochastic steps of ``optimizer`` (Adam in the yamls) with autograd on
a sampled objective: each step takes ``anchors_per_step`` anchors and searches a fresh random pool of
``impostor_pool`` points for their impostors (the push term rescaled by n / pool, so it stays unbiased),
so the cost of a step does not grow with n; it runs exactly ``iterations`` steps.

``max_triples`` bounds memory: on the sampled path, anchors × k × pool per step; on the full-batch path
the working set holds at most max(n·k, max_triples / (2d + k)) impostor pairs (d the input features),
the ones deepest inside their anchor's radius kept when more are found (such a run cannot report
convergence, and its notes say ``working_set_truncated``).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from datasets.labeled import LabeledData
from methods.base import FitReport, RunContext
from methods.bounds import Count, Fraction, NonNegative, Positive, Steps
from methods.frozen import WIDE_RAW_INPUT, LinearMetricOnFeatures
from methods.training import NonFiniteLossError, optimise

SEARCH_BLOCK = 256  # rows per matmul block of the impostor search (cache-sized)
SEARCH_EVERY_COST = 2.0  # search once the evaluations since the last search cost this many searches
SCALE_ANCHORS = 32  # anchors the starting scale is estimated on
SCALE_BISECTIONS = 10  # bisection steps on log(c²) over [1e-6, 1e6]: c² to within 3%
FIRST_STEP = 0.03  # length of a step without curvature information, relative to ||L||_F
ARMIJO = 1e-4  # sufficient decrease of the line search
MAX_HALVINGS = 40
RESTART_RISE = 0.01  # a search raising the objective by more than this fraction restarts L-BFGS


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) squared Euclidean distances, differentiable everywhere (no sqrt)."""
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)


def target_neighbours(x: Tensor, y: Tensor, k: int) -> Tensor:
    """(n, k) indices of each point's k nearest same-class points (Euclidean, the point itself excluded)."""
    targets = torch.empty(len(y), k, dtype=torch.long, device=x.device)
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        d = squared_distances(x[members], x[members])
        d.fill_diagonal_(float("inf"))
        targets[members] = members[d.topk(k, dim=1, largest=False).indices]
    return targets


# ------------------------------------------------------------------- the sampled (autograd) objective

def lmnn_terms(za: Tensor, zt: Tensor, ya: Tensor, zp: Tensor, yp: Tensor, mu: float, margin: float,
               impostor_weight: float = 1.0) -> Tensor:
    """The LMNN objective of a batch of anchors, divided by the number of anchors.

    za: (B, d) mapped anchors; zt: (B, k, d) their mapped target neighbours; zp: (P, d) the mapped points
    searched for impostors (labels yp). ``impostor_weight`` rescales the push term when ``zp`` is a random
    sample of the data (n / P keeps the estimate unbiased)."""
    d_target = ((za[:, None, :] - zt) ** 2).sum(-1)  # (B, k)
    d_pool = squared_distances(za, zp)  # (B, P)
    differ = (ya[:, None] != yp[None, :]).to(za.dtype)  # candidate impostors
    hinge = torch.relu(margin + d_target[:, :, None] - d_pool[:, None, :]) * differ[:, None, :]
    return ((1 - mu) * d_target.sum() + mu * impostor_weight * hinge.sum()) / len(za)


def lmnn_loss(z: Tensor, y: Tensor, targets: Tensor, anchors: Tensor, mu: float, margin: float = 1.0) -> Tensor:
    """The exact LMNN objective over ``anchors`` (every point searched for impostors), divided by the number
    of anchors. ``z`` holds the already-mapped points L x."""
    return lmnn_terms(z[anchors], z[targets[anchors]], y[anchors], z, y, mu, margin)


# ------------------------------------------------------------ the full-batch objective in closed form

def _flat_nonzero(mask: Tensor) -> Tensor:
    """Flat indices of the True entries of a contiguous boolean tensor (numpy's is several times faster on
    CPU than torch's)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask.view(-1)).view(-1)


def impostor_pairs(z: Tensor, y: Tensor, radius: Tensor, block_rows: int = SEARCH_BLOCK) -> tuple[Tensor, Tensor]:
    """Every ordered pair (i, l), y_i ≠ y_l, with ||z_i - z_l||² < radius_i: anchors i and their impostors l.

    Exhaustive. The points are taken in class order and the upper triangle of their squared-distance
    matrix is computed ``block_rows`` rows at a time (one matmul each); each entry (a, b) is compared with
    radius_a (pair (a, b)) and, right of the diagonal block, with radius_b (pair (b, a)). Same-class
    entries are blanked one slice per class."""
    n = len(z)
    order = torch.argsort(y, stable=True)
    z, radius = z[order], radius[order]
    z = z - z.mean(0)  # distances are unchanged; centred, the Gram-matrix form loses less to rounding
    sq = (z * z).sum(1)
    left, right = -2 * z, z.T.contiguous()
    counts = torch.unique_consecutive(y[order], return_counts=True)[1].tolist()
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    rows = min(n, block_rows)
    buffer = z.new_empty(rows * n)
    hits = torch.empty(rows * n, dtype=torch.bool, device=z.device)
    anchors, impostors = [], []
    cls = 0  # the first class that still has rows at or after ``start``
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        height, width = stop - start, n - start
        block = buffer[:height * width].view(height, width)  # columns start..n-1
        torch.mm(left[start:stop], right[:, start:], out=block)
        block.add_(sq[start:stop, None]).add_(sq[None, start:])
        c = cls
        while c < len(counts) and bounds[c] < stop:  # classes with rows in this block
            lo, hi = max(bounds[c], start), min(bounds[c + 1], stop)
            block[lo - start:hi - start, lo - start:bounds[c + 1] - start] = float("inf")
            c += 1
        while cls < len(counts) and bounds[cls + 1] <= stop:
            cls += 1
        mask = hits[:height * width].view(height, width)
        torch.lt(block, radius[start:stop, None], out=mask)  # anchor: the row
        flat = _flat_nonzero(mask).to(z.device)
        anchors.append(torch.div(flat, width, rounding_mode="floor") + start)
        impostors.append(flat % width + start)
        if stop < n:  # anchor: the column, right of the diagonal block (whose rows are all searched)
            right_width = n - stop
            mask = hits[:height * right_width].view(height, right_width)
            torch.lt(block[:, height:], radius[None, stop:], out=mask)
            flat = _flat_nonzero(mask).to(z.device)
            impostors.append(torch.div(flat, right_width, rounding_mode="floor") + start)
            anchors.append(flat % right_width + stop)
    return order[torch.cat(anchors)], order[torch.cat(impostors)]


def objective_and_gradient(L: Tensor, u: Tensor, anchor: Tensor, n: int, k: int, mu: float,
                           margin: float) -> tuple[Tensor, Tensor, int]:
    """f(L) over the given terms, its gradient ∂f/∂L in closed form, and the number of active triples.

    u: (n·k + m, d), first the differences x_i - x_j from each point to its k target neighbours (row
    i·k + r: the r-th target of i), then those x_i - x_l of the m impostor pairs (i, l) considered, pair p
    anchored at i = anchor[p]. Each pair (i, l) makes k triples (i, j, l), one per target j of i; pairs
    left out count as inactive. Every term of f is a weighted squared distance w ||L u||², whose gradient
    is 2 w (L u) uᵀ: the gradient sums those, with the weights of the module docstring."""
    pulls = n * k
    v = u @ L.T  # L (x_a - x_b) for every pair
    dist = (v * v).sum(1)
    d_pull = dist[:pulls]
    hinge = margin + d_pull.view(n, k)[anchor] - dist[pulls:, None]  # (m, k): triple (i, j, l)
    active = (hinge > 0).to(L.dtype)
    loss = ((1 - mu) * d_pull.sum() + mu * (hinge * active).sum()) / n
    # a target pair weighs (1-μ) plus μ per active triple it leads; an impostor pair -μ per active triple
    led = torch.zeros(n, k, dtype=L.dtype, device=L.device).index_add_(0, anchor, active)
    weight = torch.cat([(1 - mu) + mu * led.view(-1), -mu * active.sum(1)])
    grad = (2 / n) * ((v * weight[:, None]).T @ u)
    return loss, grad, int(active.sum())


def isotropic_scale(z: Tensor, y: Tensor, targets: Tensor, anchors: Tensor, mu: float, margin: float) -> float:
    """The c > 0 minimising f(c L) for the current map (z = x Lᵀ), f restricted to the triples of ``anchors``.

    With u = c², f(c L) ∝ (1-μ) u P + μ Σ_t [margin + u δ_t]_+ (P the anchors' pull sum, δ_t = d(i,j) - d(i,l)
    over their triples), convex and piecewise linear in u. Its slope, (1-μ) P + μ Σ_{t active at u} δ_t,
    grows with u: triples with δ_t ≥ 0 are always active, one with δ_t < 0 while u < margin / |δ_t|. The
    slope's sign change is found by bisection on log u over [1e-6, 1e6] (the ends if it has none)."""
    za = z[anchors]
    d_pull = ((za[:, None, :] - z[targets[anchors]]) ** 2).sum(-1)  # (a, k)
    d_all = squared_distances(za, z)  # (a, n)
    differ = (y[anchors, None] != y[None, :])[:, None, :].expand(-1, d_pull.shape[1], -1)
    delta = (d_pull[:, :, None] - d_all[:, None, :])[differ]
    base = (1 - mu) * float(d_pull.sum()) + mu * float(delta.clamp_min(0).sum())
    gap = -delta[delta < 0]  # |δ_t| of the triples that switch off as u grows

    def slope(log_u: float) -> float:
        return base - mu * float((gap * (gap < margin * math.exp(-log_u))).sum())

    lo, hi = math.log(1e-6), math.log(1e6)
    if slope(hi) <= 0:
        return math.exp(hi / 2)
    if slope(lo) >= 0:
        return math.exp(lo / 2)
    for _ in range(SCALE_BISECTIONS):
        mid = (lo + hi) / 2
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
    return math.exp((lo + hi) / 4)  # c = sqrt(u)


class WorkingSet:
    """The impostor pairs the objective is evaluated on between two searches (module docstring)."""

    def __init__(self, x: Tensor, y: Tensor, u_pull: Tensor, margin: float, slack: float, max_triples: int) -> None:
        n, k, d = u_pull.shape
        self.x, self.y, self.margin, self.slack = x, y, margin, slack
        self.u_pull = u_pull.reshape(n * k, d)
        self.n, self.k = n, k
        self.max_pairs = max(n * k, max_triples // (2 * d + k))  # u, its image and the (m, k) hinges
        self.searches, self.truncated, self.ever_truncated = 0, False, False
        self.anchor = torch.empty(0, dtype=torch.long, device=x.device)
        self.u = self.u_pull  # the pull differences, then the working set's impostor pairs'

    def rebuild(self, L: Tensor) -> None:
        """Every differently-labelled pair (i, l) with d(i,l) < (1 + slack) (margin + max_j d(i,j)) at L."""
        self.searches += 1
        v = self.u_pull @ L.T
        reach = self.margin + (v * v).sum(1).view(self.n, self.k).max(1).values
        radius = (1 + self.slack) * reach
        z = self.x @ L.T
        i, l = impostor_pairs(z, self.y, radius)
        self.truncated = len(i) > self.max_pairs
        if self.truncated:  # memory: keep the pairs deepest inside their anchor's radius
            self.ever_truncated = True
            depth = ((z[i] - z[l]) ** 2).sum(1) / radius[i]
            keep = torch.topk(depth, self.max_pairs, largest=False).indices
            i, l = i[keep], l[keep]
        self.anchor = i
        self.u = torch.cat([self.u_pull, self.x[i] - self.x[l]])


class _LBFGS:
    """The two-loop recursion of limited-memory BFGS (Nocedal & Wright, algorithm 7.4) on a matrix variable."""

    def __init__(self, history: int) -> None:
        self.history = history
        self.pairs: list[tuple[Tensor, Tensor, float]] = []  # (s, y, 1 / sᵀy) flattened, oldest first

    def reset(self) -> None:
        self.pairs.clear()

    def update(self, s: Tensor, y: Tensor) -> None:
        s, y = s.reshape(-1), y.reshape(-1)
        sy = float(torch.dot(s, y))
        if sy > 1e-10 * float(s.norm()) * float(y.norm()):  # keeps the inverse-Hessian estimate positive
            self.pairs.append((s, y, 1.0 / sy))
            if len(self.pairs) > self.history:
                self.pairs.pop(0)

    def direction(self, g: Tensor, first_step: float) -> Tensor:
        """-H g, H the inverse-Hessian estimate; without curvature pairs, a step of length ``first_step``
        along -g."""
        if not self.pairs:
            return g * (-first_step / max(float(g.norm()), 1e-30))
        q = g.reshape(-1).clone()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(torch.dot(s, q))
            q.add_(y, alpha=-a)
            alphas.append(a)
        s, y, rho = self.pairs[-1]
        q.mul_(1.0 / (rho * float(torch.dot(y, y))))  # initial estimate sᵀy / yᵀy
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            q.add_(s, alpha=a - rho * float(torch.dot(y, q)))
        return -q.view_as(g)


class LMNN(LinearMetricOnFeatures):
    def __init__(self, optimizer: Callable, iterations: Steps, k: Count = 3, mu: Fraction = 0.5,
                 margin: Positive = 1.0, out_features: Count | None = None, anchors_per_step: Count = 2048,
                 max_triples: Count = 30_000_000, impostor_pool: Count = 4096, tol: NonNegative = 1e-3,
                 slack: NonNegative = 0.1, search_every: Count = 10, history: Count = 10,
                 features: nn.Module | None = None) -> None:
        super().__init__(features)
        self.optimizer = optimizer  # the sampled path's (n > impostor_pool)
        self.iterations = iterations  # L-BFGS iterations at most (full batch), steps (sampled)
        self.k, self.mu, self.margin = k, mu, margin
        self.out_features = out_features
        self.anchors_per_step = anchors_per_step
        self.max_triples = max_triples
        self.impostor_pool = impostor_pool
        self.tol, self.slack, self.search_every, self.history = tol, slack, search_every, history

    def check(self, train: LabeledData) -> None:
        counts = train.counts()
        small = [train.classes[c] for c in torch.nonzero((counts > 0) & (counts <= self.k)).flatten().tolist()]
        if small:
            raise ValueError(
                f"LMNN with k={self.k} target neighbours needs more than {self.k} samples in every training class; "
                f"classes {small[:5]} have fewer. Lower method.learner.k."
            )
        d = math.prod(train.x.shape[1:])
        if isinstance(self.features, nn.Flatten) and d > WIDE_RAW_INPUT:
            warnings.warn(f"LMNN on {d:,} raw input features learns a {d:,}x{d:,} matrix (its L-BFGS steps take "
                          "minutes each on a CPU for image inputs); use method=lmnn_backbone (LMNN on a frozen "
                          "backbone's features), or smaller images (dataset.source.transform.resize, crop, grey=true)",
                          RuntimeWarning, stacklevel=2)

    def fit(self, train: LabeledData, ctx: RunContext) -> FitReport:
        self.check(train)
        self.to(ctx.device)
        feats = self.frozen_train_features(train.x).to(ctx.device)
        y = train.y.to(ctx.device)
        d = feats.shape[1]
        out = self.out_features or d
        targets = target_neighbours(feats, y, self.k)
        n = len(y)
        L0 = torch.eye(out, d, device=ctx.device, dtype=feats.dtype)
        if n <= self.impostor_pool:
            L, report = self._fit_full_batch(feats, y, targets, L0)
            self.L = nn.Parameter(L)
            pool_size, per_step, mode = n, n, "exact"
        else:
            self.L = nn.Parameter(L0)
            report, pool_size, per_step = self._fit_sampled(feats, y, targets, ctx)
            mode = "sampled impostors"
        report.notes.update(k=self.k, mu=self.mu, input_features=d, out_features=out, anchors_per_step=per_step,
                            impostor_search=mode, impostor_pool=pool_size)
        return report

    # ------------------------------------------------------------------------------ full batch, exact

    def _fit_full_batch(self, x: Tensor, y: Tensor, targets: Tensor, L: Tensor) -> tuple[Tensor, FitReport]:
        n, d = x.shape
        k, mu, margin = self.k, self.mu, self.margin
        spread = torch.linspace(0, n - 1, min(n, SCALE_ANCHORS), device=x.device).round().long()
        L = L * isotropic_scale(x @ L.T, y, targets, spread, mu, margin)
        work = WorkingSet(x, y, x[:, None, :] - x[targets], margin, self.slack, self.max_triples)
        search_cost = 1.5 * n * n  # multiply-adds per output feature of a search (its matmul and passes)
        spent = 0.0  # the same for the evaluations since the last search: 2 d per row of u
        used = evaluations = 0

        def evaluate(L: Tensor) -> tuple[float, Tensor, int]:
            nonlocal evaluations, spent
            evaluations += 1
            spent += 2 * d * len(work.u)
            loss, grad, active = objective_and_gradient(L, work.u, work.anchor, n, k, mu, margin)
            value = float(loss)
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"lmnn: the objective became {value} after {used} iterations. Check the inputs for NaNs or "
                    "infinities (features of a frozen backbone included); the run was stopped and its record "
                    "marked failed.")
            return value, grad, active

        work.rebuild(L)
        value, grad, active = evaluate(L)
        lbfgs = _LBFGS(self.history)
        report = FitReport()
        every = max(1, self.iterations // 100)
        converged, change, since_search = False, float("inf"), 0
        for it in range(1, self.iterations + 1):
            used = it
            direction = lbfgs.direction(grad, FIRST_STEP * float(L.norm()))
            slope = float((grad * direction).sum())
            if slope >= 0:  # not a descent direction: restart from steepest descent
                lbfgs.reset()
                direction = lbfgs.direction(grad, FIRST_STEP * float(L.norm()))
                slope = float((grad * direction).sum())
            step, accepted = 1.0, False
            for _ in range(MAX_HALVINGS):  # backtracking line search (Armijo)
                candidate = L + step * direction
                new_value, new_grad, new_active = evaluate(candidate)
                if new_value <= value + ARMIJO * step * slope:
                    accepted = True
                    break
                step /= 2
            if accepted:
                lbfgs.update(candidate - L, new_grad - grad)
                change = (value - new_value) / max(abs(new_value), 1e-30)
                L, value, grad, active = candidate, new_value, new_grad, new_active
            elif lbfgs.pairs:  # the curvature estimate misleads: retry along the gradient
                lbfgs.reset()
                change = float("inf")
            else:  # no step along the gradient lowers the objective: the bottom of a kink
                change = 0.0
            since_search += 1
            if change < self.tol or since_search >= self.search_every or spent >= SEARCH_EVERY_COST * search_cost:
                since_search, spent = 0, 0.0
                before, old_value = active, value
                work.rebuild(L)
                value, grad, active = evaluate(L)
                if value > old_value * (1 + RESTART_RISE):
                    lbfgs.reset()
                # converged: the last iteration barely changed the objective, and the search found no active
                # triple outside the working set (the working-set objective is f itself at L)
                converged = change < self.tol and active <= before and not work.truncated
            if it % every == 0 or it == self.iterations or converged:
                report.loss_curve.append((it, value))
            if converged:
                break
        report.iterations = used
        report.final_loss = value
        notes = report.notes
        notes.update(solver="L-BFGS (full batch, closed-form gradient, impostor working set)", converged=converged,
                     iterations_used=used, max_iter=self.iterations, last_change=change, tol=self.tol,
                     evaluations=evaluations, impostor_searches=work.searches, working_set_pairs=len(work.anchor),
                     active_triples=active)
        if work.ever_truncated:
            notes["working_set_truncated"] = (f"more than {work.max_pairs} impostor pairs near their anchors; "
                                              "the deepest were kept (raise max_triples)")
        if not converged:
            notes["warning"] = (f"LMNN stopped at max_iter={self.iterations} without converging (last relative "
                                f"change {change:.3g}, tol {self.tol:g})")
            warnings.warn(notes["warning"], RuntimeWarning, stacklevel=3)
        return L.detach(), report

    # ------------------------------------------------------------------- large data, sampled impostors

    def _fit_sampled(self, feats: Tensor, y: Tensor, targets: Tensor, ctx: RunContext) -> tuple[FitReport, int, int]:
        """Each step searches a fresh random pool of points for impostors, so the cost of a step no longer
        grows with n (mapping all n points through L each step is what dominates)."""
        n = len(y)
        gen = ctx.generator(offset=17)
        pool_size = self.impostor_pool
        per_step = max(1, min(self.anchors_per_step, pool_size // 8, self.max_triples // (self.k * pool_size)))

        def loss_at(step: int) -> Tensor:
            anchors = torch.randperm(n, generator=gen)[:per_step].to(ctx.device)
            pool = torch.randperm(n, generator=gen)[:pool_size].to(ctx.device)
            return lmnn_terms(feats[anchors] @ self.L.T, feats[targets[anchors]] @ self.L.T, y[anchors],
                              feats[pool] @ self.L.T, y[pool], self.mu, self.margin, impostor_weight=n / pool_size)

        report = optimise(loss_at, [self.L], self.optimizer, self.iterations, ctx, "lmnn")
        return report, pool_size, min(n, per_step)
