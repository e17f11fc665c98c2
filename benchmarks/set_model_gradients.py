"""Implicit against unrolled EM gradients for the Set2Model mixture: time per forward+backward and how far
each unrolled gradient is from the implicit one, on sets of the size Set2Model trains on.

    python -m benchmarks.set_model_gradients                  # P = 20, d = 128, K = 2, 2 sets a step
    python -m benchmarks.set_model_gradients --dim 32 --components 4

Descriptors are unit vectors drawn around ``components`` random centres (a noisy, multi-modal set);
queries likewise. It prints, per gradient kind, the median time of ``repeats`` forward+backward passes,
the EM iterations the forward pass ran, and the relative difference max|g - g_implicit| / max|g_implicit|
(on the first timed pass), with the share of soft responsibilities at the fit,
in float32 and in float64 (where the implicit gradient itself is checked against finite differences by
``tests/test_set_models.py``). It measures; it never fails on a number.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from methods.set_models import DiagonalGMM, responsibilities


def noisy_sets(batch: int, size: int, dim: int, modes: int, noise: float, dtype: torch.dtype,
               seed: int) -> torch.Tensor:
    """Unit vectors around ``modes`` random unit centres, noise of norm about ``noise`` before normalising."""
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(batch, modes, dim, generator=gen, dtype=dtype), dim=-1)
    pick = torch.randint(modes, (batch, size), generator=gen)
    points = centres[torch.arange(batch)[:, None], pick] + noise / dim ** 0.5 * torch.randn(batch, size, dim,
                                                                                            generator=gen, dtype=dtype)
    return F.normalize(points, dim=-1)


def soft_fraction(model: DiagonalGMM, x: torch.Tensor) -> float:
    """Share of (point, component) responsibilities strictly between 0.01 and 0.99 at the fitted mixture."""
    with torch.no_grad():
        fitted = model.fit(x)
        resp = responsibilities(x, fitted.log_weight.exp(), fitted.mean, fitted.var)
    return float(((resp > 0.01) & (resp < 0.99)).double().mean())


def gradient(model: DiagonalGMM, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    xg = x.clone().requires_grad_()
    start = time.perf_counter()
    fitted = model.fit(xg)
    (model.score(fitted, y) * w).sum().backward()
    return xg.grad, time.perf_counter() - start, fitted.iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--components", type=int, default=2)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--floor", type=float, default=1e-3)
    parser.add_argument("--noise", type=float, default=0.5, help="noise norm around the modes (overlap grows with it)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.sets} sets of {args.size} x {args.dim}, K = {args.components}, {args.queries} queries per set, "
          f"variance floor {args.floor}, noise {args.noise}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    kinds = [("implicit", dict(gradient="implicit", iterations=200, tol=1e-6))] + [
        (f"unrolled {n}", dict(gradient="unrolled", iterations=n)) for n in (1, 3, 10, 30)]
    for dtype in (torch.float32, torch.float64):
        print(f"\n{str(dtype).replace('torch.', '')}")
        print(f"{'gradient':<14}{'ms / step':>11}{'EM iters':>10}{'rel. diff to implicit':>24}")
        reference = None
        for label, options in kinds:
            model = DiagonalGMM(args.components, args.floor, **options)
            times, grads, iters = [], None, 0
            for r in range(args.repeats + 1):  # the first pass warms up and is not timed
                x = noisy_sets(args.sets, args.size, args.dim, args.components, args.noise, dtype, seed=r)
                y = noisy_sets(args.sets, args.queries, args.dim, args.components, args.noise, dtype, seed=1000 + r)
                w = torch.randn(args.sets, args.queries, generator=torch.Generator().manual_seed(r), dtype=dtype)
                g, seconds, iters = gradient(model, x, y, w)
                if r == 1:
                    grads = g
                if r:
                    times.append(seconds)
            if reference is None:
                reference = grads
                x = noisy_sets(args.sets, args.size, args.dim, args.components, args.noise, dtype, seed=1)
                print(f"(soft responsibilities at the fit: {soft_fraction(model, x):.1%}; near 0: EM's step is "
                      "locally constant, and every gradient below is the same)")
            diff = float((grads - reference).abs().max() / reference.abs().max())
            print(f"{label:<14}{1000 * statistics.median(times):>11.2f}{iters:>10}{diff:>24.2e}")


if __name__ == "__main__":
    main()
