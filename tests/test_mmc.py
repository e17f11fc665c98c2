"""MMC: objective and gradient pieces against brute-force loops; projections give a feasible PSD matrix;
a diagonal Newton step decreases g; pairs from labels; it learns where Euclidean k-NN fails; it reports
convergence, and says when it stopped at max_iter."""
import math

import pytest
import torch
from torch import nn

from benchmarks.protocols.knn import knn_predict
from datasets.labeled import LabeledData
from helpers import blobs
from methods.base import RunContext, euclidean
from methods.mmc import (MMC, Pairs, components_from_psd, diag_derivatives, diag_objective, diag_terms,
                         dissimilar_gradient, dissimilar_objective, label_pairs, newton_step,
                         project_feasible, similar_scatter)


def _tiny(seed=0, n=9, d=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2][:n])
    B = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return x, y, B @ B.T  # a random PSD A


def _brute_pairs(y):
    n = len(y)
    similar = [(i, j) for i in range(n) for j in range(i + 1, n) if y[i] == y[j]]
    dissimilar = [(i, j) for i in range(n) for j in range(i + 1, n) if y[i] != y[j]]
    return similar, dissimilar


def _as_pairs(lst):
    return Pairs(torch.tensor([p[0] for p in lst]), torch.tensor([p[1] for p in lst]))


def test_all_pairs_from_labels_equal_brute_force():
    _, y, _ = _tiny()
    similar, dissimilar = label_pairs(y, None, torch.Generator().manual_seed(0))
    want_s, want_d = _brute_pairs(y)
    assert sorted(zip(similar.first.tolist(), similar.second.tolist())) == want_s
    assert sorted(zip(dissimilar.first.tolist(), dissimilar.second.tolist())) == want_d


def test_sampled_pairs_are_valid_and_seeded():
    y = torch.arange(5).repeat_interleave(20)
    s1, d1 = label_pairs(y, 100, torch.Generator().manual_seed(3))
    s2, d2 = label_pairs(y, 100, torch.Generator().manual_seed(3))
    assert len(s1) == len(d1) == 100
    assert torch.equal(s1.first, s2.first) and torch.equal(d1.second, d2.second)
    assert bool((y[s1.first] == y[s1.second]).all()) and bool((y[d1.first] != y[d1.second]).all())
    assert len(set(zip(s1.first.tolist(), s1.second.tolist()))) == 100  # without replacement


def test_objective_and_gradient_pieces_equal_brute_force():
    x, y, A = _tiny()
    want_s, want_d = _brute_pairs(y)
    similar, dissimilar = _as_pairs(want_s), _as_pairs(want_d)
    W = sum(torch.outer(x[i] - x[j], x[i] - x[j]) for i, j in want_s)
    assert torch.allclose(similar_scatter(x, similar), W)
    sim_sum = sum(float((x[i] - x[j]) @ A @ (x[i] - x[j])) for i, j in want_s)
    assert float((similar_scatter(x, similar) * A).sum()) == pytest.approx(sim_sum, rel=1e-12)
    obj = sum(math.sqrt(float((x[i] - x[j]) @ A @ (x[i] - x[j]))) for i, j in want_d)
    assert float(dissimilar_objective(x, dissimilar, A)) == pytest.approx(obj, rel=1e-12)
    grad = sum(torch.outer(x[i] - x[j], x[i] - x[j]) / (2 * math.sqrt(float((x[i] - x[j]) @ A @ (x[i] - x[j]))))
               for i, j in want_d)
    assert torch.allclose(dissimilar_gradient(x, dissimilar, A), grad, rtol=1e-10)
    # and the analytic gradient is autograd's
    A_var = A.clone().requires_grad_(True)
    dissimilar_objective(x, dissimilar, A_var).backward()
    assert torch.allclose(dissimilar_gradient(x, dissimilar, A), A_var.grad, rtol=1e-8)


def test_projection_gives_psd_matrix_satisfying_the_constraint():
    x, y, _ = _tiny(seed=1)
    similar, _ = label_pairs(y, None, torch.Generator())
    W = similar_scatter(x, similar)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        M = torch.randn(3, 3, generator=gen, dtype=torch.float64) * 5
        A, rounds = project_feasible((M + M.T) / 2, W)
        assert rounds >= 1
        assert float(torch.linalg.eigvalsh(A).min()) >= -1e-12
        assert float((W * A).sum()) <= 1 + 1e-12
        L = components_from_psd(A)
        assert torch.allclose(L.T @ L, A, atol=1e-12)


def test_diagonal_derivatives_equal_autograd_and_newton_step_decreases_g():
    x, y, _ = _tiny(seed=4, d=4)
    similar, dissimilar = label_pairs(y, None, torch.Generator())
    s, q = diag_terms(x, similar, dissimilar)
    want_s = sum((x[i] - x[j]) ** 2 for i, j in zip(similar.first.tolist(), similar.second.tolist()))
    assert torch.allclose(s, want_s)
    a = torch.tensor([0.3, 1.2, 0.05, 0.7], dtype=torch.float64)
    brute = float(want_s @ a) - math.log(sum(math.sqrt(float(((x[i] - x[j]) ** 2) @ a))
                                             for i, j in zip(dissimilar.first.tolist(), dissimilar.second.tolist())))
    value, grad, hess = diag_derivatives(a, s, q)
    assert float(value) == pytest.approx(brute, rel=1e-12)
    g = lambda v: diag_objective(v, s, q)  # noqa: E731
    assert torch.allclose(grad, torch.autograd.functional.jacobian(g, a), rtol=1e-8)
    assert torch.allclose(hess, torch.autograd.functional.hessian(g, a), rtol=1e-8)
    assert float(torch.linalg.eigvalsh(hess).min()) >= -1e-10  # g is convex
    new, before, after, improved = newton_step(a, s, q)
    assert improved and after < before
    assert after == pytest.approx(float(diag_objective(new, s, q)))
    assert bool((new >= 0).all())
    for _ in range(5):  # later steps improve, or say that they cannot and keep a (the clamped step can stall)
        again, before, after, improved = newton_step(new, s, q)
        assert (improved and after < before) or (not improved and torch.equal(again, new) and after == before)
        new = again


def _line_search_of_every_length(a, s, q, ridge=1e-6, max_halvings=60):
    """The paper's clamped Newton step with its line search written plainly: g evaluated at every length."""
    import methods.mmc as mmc
    value, grad, hess = diag_derivatives(a, s, q)
    direction = -torch.linalg.solve(hess + ridge * torch.eye(len(a), dtype=a.dtype), grad)
    best, best_value, t = None, float(value), 1.0
    for _ in range(max_halvings):
        candidate = (a + t * direction).clamp_min(0)
        after = float(mmc.diag_objective(candidate, s, q))  # looked up here, so a test can count the calls
        if best is not None and not after < best_value:
            break
        if after < best_value:
            best, best_value = candidate, after
        t /= 2
    return (a, float(value)) if best is None else (best, best_value)


@pytest.mark.parametrize("scale", [1.0, 30.0])  # 30: g nearly linear in a, as on image data, so bounds skip most
def test_newton_step_skips_only_lengths_that_cannot_win(monkeypatch, scale):
    """The step with the convexity bound equals, bit for bit, the step that evaluates g at every length, over
    steps that improve and a final one that stalls; and it evaluates g fewer times."""
    import methods.mmc as mmc
    gen = torch.Generator().manual_seed(7)
    y = torch.arange(4).repeat_interleave(12)
    shift = torch.tensor([1.0, 0, 0, 0, 0, 0.5], dtype=torch.float64)
    x = scale * (torch.randn(48, 6, generator=gen, dtype=torch.float64) + y[:, None] * shift)
    similar, dissimilar = label_pairs(y, None, torch.Generator())
    s, q = diag_terms(x, similar, dissimilar)
    calls = {"n": 0}
    plain = mmc.diag_objective

    def counted(*args):
        calls["n"] += 1
        return plain(*args)

    monkeypatch.setattr(mmc, "diag_objective", counted)
    a, evaluated, every = torch.ones(6, dtype=torch.float64), 0, 0
    for _ in range(8):
        want, want_value = _line_search_of_every_length(a, s, q)
        every, calls["n"] = every + calls["n"], 0
        got, _, got_value, improved = newton_step(a, s, q)
        evaluated, calls["n"] = evaluated + calls["n"], 0
        assert torch.equal(got, want) and got_value == want_value
        a = got
    assert bool((a == 0).any())  # the steps reached the bound: the clamped path was exercised
    assert evaluated < every


def test_a_length_is_skipped_only_when_its_bound_clears_the_best_by_the_margin():
    """The skip rule itself: the bound g(a) + sum(terms) must exceed the best g by more than 1e-9 of the size of
    the numbers summed; at or within that margin the length is evaluated."""
    from methods.mmc import _cannot_lower
    terms = torch.tensor([3.0, -1.0], dtype=torch.float64)  # bound = 100 + 2, size = 100 + 4
    assert _cannot_lower(terms, before=100.0, best_value=100.0)
    assert _cannot_lower(terms, before=100.0, best_value=102.0 - 2e-7)  # clears by 2e-7 > 1.04e-7
    assert not _cannot_lower(terms, before=100.0, best_value=102.0 - 5e-8)  # within the margin: evaluate
    assert not _cannot_lower(terms, before=100.0, best_value=102.0)
    assert not _cannot_lower(-terms, before=100.0, best_value=100.0)  # the bound allows a lower g


def test_the_bound_is_not_used_where_g_has_no_slope():
    """A pair whose differences all lie on zero weights is at distance 0: sqrt has no finite slope there, so
    the gradient's bound does not hold and every length is evaluated."""
    from methods.mmc import _diag_derivatives
    q = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    s = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert _diag_derivatives(torch.tensor([1.0, 1.0], dtype=torch.float64), s, q, 1e-12)[3]
    assert not _diag_derivatives(torch.tensor([0.0, 1.0], dtype=torch.float64), s, q, 1e-12)[3]
    q_same = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)  # identical inputs: no slope to miss
    assert _diag_derivatives(torch.tensor([0.0, 1.0], dtype=torch.float64), s, q_same, 1e-12)[3]


def _stretched_noise():
    # one informative dimension drowned by large noise dimensions: Euclidean k-NN fails
    gen = torch.Generator().manual_seed(1)
    y = torch.arange(2).repeat_interleave(60)
    x = torch.cat([y[:, None].float() * 2.0 + 0.3 * torch.randn(120, 1, generator=gen),
                   8 * torch.randn(120, 5, generator=gen)], 1)
    train, test = torch.arange(0, 120, 2), torch.arange(1, 120, 2)
    return x, y, train, test


@pytest.mark.parametrize("options", [dict(diagonal=False), dict(diagonal=False, whiten=True), dict(diagonal=True)])
def test_mmc_lowers_knn_error_on_stretched_noise(options):
    x, y, train, test = _stretched_noise()
    data = LabeledData(x=x[train], y=y[train], classes=["a", "b"])
    learner = MMC(iterations=500, n_pairs=None, **options)
    report = learner.fit(data, RunContext(progress=False))
    assert report.notes["converged"] is True and report.iterations == report.notes["iterations_used"] < 500
    assert math.isfinite(report.notes["final_objective"])
    if not options["diagonal"]:
        assert report.notes["similar_constraint"] == pytest.approx(1.0, rel=1e-3)
    before = (knn_predict(x[test], x[train], y[train], euclidean(), 3) != y[test]).float().mean()
    with torch.no_grad():
        after = (knn_predict(learner.embed(x[test]), learner.embed(x[train]), y[train], euclidean(), 3)
                 != y[test]).float().mean()
    assert before > 0.2
    # the paper's raw-coordinate ascent stalls on these badly scaled inputs (error 0.42, metric-learn's 0.18);
    # whitened, it reaches a 3.7x higher objective and error 0
    assert after < (before if options == dict(diagonal=False) else before / 2)


def test_embedding_distance_is_the_mahalanobis_distance():
    data = blobs(n_classes=3, per_class=10, dim=4)
    learner = MMC(iterations=20, n_pairs=None)
    with pytest.warns(RuntimeWarning):
        learner.fit(data, RunContext(progress=False))
    A = (learner.L.T @ learner.L).double()
    d = (data.x[0] - data.x[5]).double()
    with torch.no_grad():
        z = learner.embed(data.x[[0, 5]]).double()
    assert float(((z[0] - z[1]) ** 2).sum()) == pytest.approx(float(d @ A @ d), rel=1e-4)


@pytest.mark.parametrize("diagonal", [False, True])
def test_stopping_at_max_iter_is_reported(diagonal):
    data = blobs(n_classes=4, per_class=15, dim=5)
    learner = MMC(iterations=1, diagonal=diagonal, tol=1e-12)
    with pytest.warns(RuntimeWarning, match="without converging"):
        report = learner.fit(data, RunContext(progress=False))
    assert report.iterations == 1 and report.notes["converged"] is False
    assert "max_iter=1" in report.notes["warning"]


def test_frozen_features_are_not_trained():
    data = blobs(n_classes=3, per_class=10, dim=6)
    features = nn.Sequential(nn.Linear(6, 4))
    w = features[0].weight.detach().clone()
    learner = MMC(iterations=5, diagonal=False, features=features)
    with pytest.warns(RuntimeWarning):
        learner.fit(data, RunContext(progress=False))
    assert torch.equal(features[0].weight, w)
    assert learner.embed(data.x).shape == (30, 4)


def test_one_class_is_a_clear_error():
    data = LabeledData(x=torch.randn(5, 2), y=torch.zeros(5, dtype=torch.long), classes=["a"])
    with pytest.raises(ValueError, match="two classes"):
        MMC(iterations=1).check(data)


def test_pairs_per_class_pair_sets_the_number_of_pairs():
    data = blobs(n_classes=3, per_class=20, dim=4)  # 570 similar and 1,200 dissimilar pairs in all
    report = MMC(iterations=50, diagonal=True, n_pairs=None, pairs_per_class_pair=20).fit(
        data, RunContext(progress=False))
    assert report.notes["n_similar_pairs"] == report.notes["n_dissimilar_pairs"] == 20 * 3 ** 2


def test_full_mmc_on_wide_raw_inputs_warns_before_fitting():
    wide = LabeledData(x=torch.randn(20, 1, 40, 40), y=torch.arange(2).repeat_interleave(10), classes=["a", "b"])
    with pytest.warns(RuntimeWarning, match="1,600 raw input features.*mmc_backbone"):
        MMC(iterations=1).check(wide)
