"""LMNN: the loss equals a brute-force loop over (i, j, l); target neighbours; it learns; frozen features."""
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
