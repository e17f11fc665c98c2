"""LMNN: the objectives equal brute-force loops over (i, j, l) and autograd; the impostor search, the starting
scale, L-BFGS; target neighbours; it learns, converges and says so; frozen features."""
import warnings

import pytest
import torch
from torch import nn

from benchmarks.protocols.knn import knn_predict
from helpers import blobs
from methods.base import RunContext, euclidean
from methods.lmnn import LMNN, lmnn_loss, target_neighbours


def brute_force_loss(z, y, targets, mu, margin):
    n = len(y)
    pull = push = 0.0
    for i in range(n):
        for j in targets[i].tolist():
            d_ij = float(((z[i] - z[j]) ** 2).sum())
            pull += d_ij
            for l in range(n):
                if y[l] != y[i]:
                    push += max(0.0, margin + d_ij - float(((z[i] - z[l]) ** 2).sum()))
    return ((1 - mu) * pull + mu * push) / n


@pytest.mark.parametrize("mu,margin", [(0.5, 1.0), (0.2, 2.0)])
def test_loss_equals_brute_force(mu, margin):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=gen, dtype=torch.float64)
    y = torch.arange(3).repeat_interleave(8)
    L = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    targets = target_neighbours(x, y, k=3)
    z = x @ L.T
    ours = lmnn_loss(z, y, targets, torch.arange(24), mu, margin)
    assert float(ours) == pytest.approx(brute_force_loss(z, y, targets, mu, margin), rel=1e-10)


def test_target_neighbours_brute_force():
    data = blobs(n_classes=3, per_class=10, dim=4)
    targets = target_neighbours(data.x.double(), data.y, k=3)
    for i in range(len(data.y)):
        same = [j for j in range(len(data.y)) if j != i and data.y[j] == data.y[i]]
        ranked = sorted(same, key=lambda j: float(((data.x[i].double() - data.x[j].double()) ** 2).sum()))
        assert sorted(targets[i].tolist()) == sorted(ranked[:3])


def _optimizer(params):
    return torch.optim.Adam(params, lr=0.05)


def _stretched_noise():
    """One informative dimension drowned by large noise dimensions: Euclidean k-NN fails on it."""
    gen = torch.Generator().manual_seed(1)
    y = torch.arange(2).repeat_interleave(60)
    x = torch.cat([y[:, None].float() * 2.0 + 0.3 * torch.randn(120, 1, generator=gen),
                   8 * torch.randn(120, 5, generator=gen)], 1)
    return x, y, torch.arange(0, 120, 2), torch.arange(1, 120, 2)


def _knn_errors_before_after(learner, x, y, train, test):
    from datasets.labeled import LabeledData
    report = learner.fit(LabeledData(x=x[train], y=y[train], classes=["a", "b"]), RunContext(progress=False))
    before = (knn_predict(x[test], x[train], y[train], euclidean(), 3) != y[test]).float().mean()
    with torch.no_grad():
        after = (knn_predict(learner.embed(x[test]), learner.embed(x[train]), y[train], euclidean(), 3)
                 != y[test]).float().mean()
    return report, before, after


def test_lmnn_lowers_knn_error_on_stretched_noise():
    report, before, after = _knn_errors_before_after(LMNN(optimizer=_optimizer, iterations=150), *_stretched_noise())
    assert report.loss_curve[-1][1] < report.loss_curve[0][1]
    assert report.notes["impostor_search"] == "exact"
    assert before > 0.2 and after < before / 2


@pytest.mark.filterwarnings("ignore:LMNN stopped at max_iter")
def test_frozen_features_are_not_trained_and_shapes():
    data = blobs(n_classes=3, per_class=10, dim=6)
    features = nn.Sequential(nn.Linear(6, 4))
    w = features[0].weight.detach().clone()
    learner = LMNN(optimizer=_optimizer, iterations=5, features=features, out_features=2)
    learner.fit(data, RunContext(progress=False))
    assert torch.equal(features[0].weight, w)
    assert learner.embed(data.x).shape == (30, 2)


def test_too_few_samples_per_class_is_a_clear_error():
    data = blobs(n_classes=3, per_class=3, dim=2)
    with pytest.raises(ValueError, match="Lower method.learner.k"):
        LMNN(optimizer=_optimizer, iterations=1, k=3).check(data)


def test_raw_image_inputs_warn_before_fitting_and_narrow_ones_do_not():
    wide = blobs(n_classes=3, per_class=5, dim=3 * 32 * 32)  # a 32 x 32 colour image, flattened
    with pytest.warns(RuntimeWarning, match="LMNN on 3,072 raw input features .* method=lmnn_backbone"):
        LMNN(optimizer=_optimizer, iterations=1, k=3).check(wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 64 features (digits): no warning
        LMNN(optimizer=_optimizer, iterations=1, k=3).check(blobs(n_classes=3, per_class=5, dim=64))


def test_sampled_impostor_pool_still_learns():
    learner = LMNN(optimizer=_optimizer, iterations=200, impostor_pool=24)
    report, before, after = _knn_errors_before_after(learner, *_stretched_noise())
    assert report.notes["impostor_search"] == "sampled impostors" and report.notes["impostor_pool"] == 24
    assert after < before / 2


def test_pool_of_every_point_equals_the_exact_loss():
    from methods.lmnn import lmnn_terms
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    y = torch.arange(3).repeat_interleave(10)
    targets = target_neighbours(z, y, 3)
    anchors = torch.tensor([0, 5, 12, 29])
    exact = lmnn_loss(z, y, targets, anchors, 0.5)
    assert torch.allclose(lmnn_terms(z[anchors], z[targets[anchors]], y[anchors], z, y, 0.5, 1.0), exact)


# ---------------------------------------------------------------- the full-batch solver (closed form)

def _tiny_problem(seed=3, n_per_class=8, classes=3, dim=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_per_class * classes, dim, generator=gen, dtype=torch.float64)
    y = torch.arange(classes).repeat_interleave(n_per_class)[torch.randperm(n_per_class * classes, generator=gen)]
    L = torch.randn(2, dim, generator=gen, dtype=torch.float64)
    return x, y, L, target_neighbours(x, y, k=3)


def _all_terms(x, y, targets):
    """u and anchors of the objective with every differently-labelled pair in the working set."""
    i, l = torch.nonzero(y[:, None] != y[None, :], as_tuple=True)
    return torch.cat([(x[:, None, :] - x[targets]).reshape(-1, x.shape[1]), x[i] - x[l]]), i


@pytest.mark.parametrize("mu,margin", [(0.5, 1.0), (0.2, 3.0)])
def test_closed_form_objective_and_gradient_equal_autograd_and_brute_force(mu, margin):
    from methods.lmnn import objective_and_gradient
    x, y, L, targets = _tiny_problem()
    n = len(y)
    u, anchor = _all_terms(x, y, targets)
    loss, grad, active = objective_and_gradient(L, u, anchor, n, 3, mu, margin)
    L_auto = L.clone().requires_grad_(True)
    reference = lmnn_loss(x @ L_auto.T, y, targets, torch.arange(n), mu, margin)
    reference.backward()
    assert float(loss) == pytest.approx(float(reference.detach()), rel=1e-12)
    assert float(loss) == pytest.approx(brute_force_loss(x @ L.T, y, targets, mu, margin), rel=1e-10)
    assert torch.allclose(grad, L_auto.grad, rtol=1e-10, atol=1e-12)
    z = x @ L.T
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    assert active == sum(int(margin + d[i, j] - d[i, l] > 0) for i in range(n) for j in targets[i].tolist()
                         for l in range(n) if y[l] != y[i])


def test_closed_form_gradient_matches_finite_differences():
    from methods.lmnn import objective_and_gradient
    x, y, L, targets = _tiny_problem(seed=5)
    u, anchor = _all_terms(x, y, targets)
    f = lambda M: float(objective_and_gradient(M, u, anchor, len(y), 3, 0.5, 1.0)[0])
    grad = objective_and_gradient(L, u, anchor, len(y), 3, 0.5, 1.0)[1]
    eps = 1e-6
    for a, b in [(0, 0), (1, 2), (0, 1)]:
        step = torch.zeros_like(L)
        step[a, b] = eps
        assert (f(L + step) - f(L - step)) / (2 * eps) == pytest.approx(float(grad[a, b]), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("block_rows", [1, 5, 256])
def test_impostor_search_equals_brute_force(block_rows):
    from methods.lmnn import impostor_pairs
    for seed in range(6):
        gen = torch.Generator().manual_seed(seed)
        n = 7 + 11 * seed
        z = torch.randn(n, 3, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 1 + seed % 4 + 1, (n,), generator=gen)  # classes interleaved, unequal sizes
        radius = 5 * torch.rand(n, generator=gen, dtype=torch.float64)
        i, l = impostor_pairs(z, y, radius, block_rows)
        d = ((z[:, None] - z[None]) ** 2).sum(-1)
        expected = {(a, b) for a in range(n) for b in range(n) if y[a] != y[b] and d[a, b] < radius[a]}
        assert len(i) == len(expected) and set(zip(i.tolist(), l.tolist())) == expected


def test_working_set_objective_is_the_full_objective_where_it_was_built():
    from methods.lmnn import WorkingSet, objective_and_gradient
    x, y, L, targets = _tiny_problem(seed=7, n_per_class=12)
    n = len(y)
    work = WorkingSet(x, y, x[:, None, :] - x[targets], margin=1.0, slack=0.0, max_triples=10**7)
    work.rebuild(L)
    full_u, full_anchor = _all_terms(x, y, targets)
    loss, grad, active = objective_and_gradient(L, work.u, work.anchor, n, 3, 0.5, 1.0)
    full_loss, full_grad, full_active = objective_and_gradient(L, full_u, full_anchor, n, 3, 0.5, 1.0)
    assert len(work.anchor) < len(full_anchor)  # a real subset
    assert active == full_active and float(loss) == pytest.approx(float(full_loss), rel=1e-12)
    assert torch.allclose(grad, full_grad, rtol=1e-10, atol=1e-12)


def test_isotropic_scale_minimises_the_objective_along_the_ray():
    from methods.lmnn import isotropic_scale
    x, y, L, targets = _tiny_problem(seed=11, n_per_class=15, dim=4)
    anchors = torch.arange(0, len(y), 3)
    c = isotropic_scale(x @ L.T, y, targets, anchors, 0.5, 1.0)
    f = lambda s: float(lmnn_loss(x @ (s * L).T, y, targets, anchors, 0.5, 1.0))
    grid = torch.logspace(-3, 3, 2001, dtype=torch.float64)
    best = min(f(float(s)) for s in grid)
    assert f(c) <= best * (1 + 1e-3)
    assert f(c) < f(1.0)


def test_lbfgs_direction_is_newton_on_a_quadratic():
    from methods.lmnn import _LBFGS
    A = torch.diag(torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64))
    opt = _LBFGS(history=5)
    for s in torch.eye(3, dtype=torch.float64):  # curvature pairs y = A s along every axis
        opt.update(s, A @ s)
    g = torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)
    assert torch.allclose(opt.direction(g, first_step=1.0), -torch.linalg.solve(A, g))
    opt.reset()
    assert torch.allclose(opt.direction(g, first_step=0.5).norm(), torch.tensor(0.5, dtype=torch.float64))


def test_full_batch_fit_converges_reports_it_and_ends_on_the_exact_objective():
    x, y, train, test = _stretched_noise()
    learner = LMNN(optimizer=_optimizer, iterations=300)
    report, before, after = _knn_errors_before_after(learner, x, y, train, test)
    notes = report.notes
    assert notes["converged"] and notes["iterations_used"] == report.iterations < 300
    assert notes["last_change"] < notes["tol"] == 1e-3 and "warning" not in notes
    assert notes["impostor_searches"] >= 1 and notes["evaluations"] >= notes["iterations_used"]
    assert report.loss_curve[-1] == (report.iterations, report.final_loss)
    with torch.no_grad():  # converged: the working-set objective is the objective over every pair
        exact = lmnn_loss(learner.embed(x[train]), y[train], target_neighbours(x[train], y[train], 3),
                          torch.arange(len(train)), 0.5, 1.0)
    assert report.final_loss == pytest.approx(float(exact), rel=1e-4)
    assert after < before / 2


def test_stopping_at_max_iter_is_reported_and_warned():
    x, y, train, test = _stretched_noise()
    from datasets.labeled import LabeledData
    data = LabeledData(x=x[train], y=y[train], classes=["a", "b"])
    with pytest.warns(RuntimeWarning, match="without converging"):
        report = LMNN(optimizer=_optimizer, iterations=2).fit(data, RunContext(progress=False))
    assert report.iterations == 2 and not report.notes["converged"]
    assert "max_iter=2" in report.notes["warning"]


def test_full_batch_fit_is_deterministic():
    data = blobs(n_classes=3, per_class=15, dim=5)
    fits = [LMNN(optimizer=_optimizer, iterations=100) for _ in range(2)]
    fits[0].fit(data, RunContext(progress=False, seed=0))
    fits[1].fit(data, RunContext(progress=False, seed=1))
    assert torch.equal(fits[0].L, fits[1].L)


def test_working_set_over_its_memory_bound_is_truncated_and_cannot_converge():
    gen = torch.Generator().manual_seed(4)
    data = blobs(n_classes=3, per_class=20, dim=4)
    data = type(data)(x=data.x, y=data.y[torch.randperm(60, generator=gen)], classes=data.classes)  # overlapping
    learner = LMNN(optimizer=_optimizer, iterations=20, max_triples=100)
    with pytest.warns(RuntimeWarning, match="without converging"):
        report = learner.fit(data, RunContext(progress=False))
    assert "raise max_triples" in report.notes["working_set_truncated"]
    assert report.notes["working_set_pairs"] <= 60 * 3 and not report.notes["converged"]


def test_nan_inputs_fail_clearly():
    from methods.training import NonFiniteLossError
    data = blobs(n_classes=3, per_class=10, dim=4)
    x = data.x.clone()
    x[4, 2] = float("nan")
    with pytest.raises(NonFiniteLossError, match="NaNs"):
        LMNN(optimizer=_optimizer, iterations=10).fit(data.with_inputs(x), RunContext(progress=False))
