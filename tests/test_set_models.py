"""Set models (Set2Model): the closed forms against loops and torch.distributions, EM against
scikit-learn's diagonal GaussianMixture started from the same point, and the gradients of the scores
with respect to every descriptor of the set against central finite differences in double precision."""
import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from methods.set_models import DiagonalGaussian, DiagonalGMM, MeanModel, farthest_point_init, unpack


def two_clusters(n_per=4, d=3, gap=4.0, seed=0, batch=1):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.zeros(2, d, dtype=torch.float64)
    centres[1, 0] = gap
    x = torch.cat([centres[0] + 0.7 * torch.randn(batch, n_per, d, generator=gen, dtype=torch.float64),
                   centres[1] + 0.7 * torch.randn(batch, n_per, d, generator=gen, dtype=torch.float64)], dim=1)
    return x


def test_mean_and_gaussian_are_their_closed_forms():
    x = two_clusters(batch=2)
    y = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mean = MeanModel()
    for b in range(2):
        centre = x[b].mean(0)
        torch.testing.assert_close(mean.score(mean.fit(x), y)[b], -torch.stack([(q - centre).norm() for q in y[b]]))
    gauss = DiagonalGaussian(variance_floor=0.01)
    model = gauss.fit(x)
    for b in range(2):
        mu = x[b].sum(0) / x.shape[1]
        var = torch.stack([sum((x[b, i, j] - mu[j]) ** 2 for i in range(x.shape[1])) / x.shape[1]
                           for j in range(3)]) + 0.01
        peer = torch.distributions.Independent(torch.distributions.Normal(mu, var.sqrt()), 1)
        torch.testing.assert_close(gauss.score(model, y)[b], peer.log_prob(y[b]))


def test_farthest_point_init_picks_spread_points():
    x = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 3.0]]])
    # mean (1.275, 0.75): farthest is (5, 0); farthest from it is (0, 3)
    assert farthest_point_init(x, 2).tolist() == [[2, 3]]
    assert farthest_point_init(x, 3).tolist() == [[2, 3, 1]]  # (0.1, 0) is 3.0017 from (0, 3), (0, 0) is 3


@pytest.mark.parametrize("k", [1, 2, 3])
def test_em_matches_sklearn_from_the_same_start(k):
    x = two_clusters(n_per=15, d=4, gap=3.0, seed=k)
    gmm = DiagonalGMM(n_components=k, variance_floor=1e-3, iterations=500, tol=1e-12)
    start_w, start_mu, start_var = unpack(gmm.initial(x, k), k, 4)
    model = gmm.fit(x)
    assert model.converged
    peer = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-3, tol=1e-12, max_iter=500,
                           weights_init=start_w[0].numpy(), means_init=start_mu[0].numpy(),
                           precisions_init=1.0 / start_var[0].numpy()).fit(x[0].numpy())
    np.testing.assert_allclose(model.mean[0].numpy(), peer.means_, atol=1e-6)
    np.testing.assert_allclose(model.var[0].numpy(), peer.covariances_, atol=1e-6)
    np.testing.assert_allclose(model.log_weight[0].exp().numpy(), peer.weights_, atol=1e-6)
    queries = torch.randn(1, 7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    np.testing.assert_allclose(gmm.score(model, queries)[0].numpy(), peer.score_samples(queries[0].numpy()),
                               rtol=1e-6, atol=1e-6)


def test_one_component_mixture_is_the_gaussian():
    x = two_clusters(batch=3)
    y = torch.randn(3, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    gmm, gauss = DiagonalGMM(n_components=1, variance_floor=0.05), DiagonalGaussian(variance_floor=0.05)
    torch.testing.assert_close(gmm.score(gmm.fit(x), y), gauss.score(gauss.fit(x), y))


def test_fewer_points_than_components():
    x = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    gmm = DiagonalGMM(n_components=4)
    model = gmm.fit(x)
    assert model.mean.shape == (2, 2, 3)
    assert torch.isfinite(gmm.score(model, x)).all()
    one = gmm.fit(x[:, :1])
    assert one.mean.shape == (2, 1, 3)


def _objective(model_kind, x, y, w):
    return (model_kind.score(model_kind.fit(x), y) * w).sum()


def _finite_difference(model_kind, x, y, w, h=1e-6):
    grad = torch.zeros_like(x)
    flat = x.reshape(-1)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += h
        down[i] -= h
        grad.view(-1)[i] = (_objective(model_kind, up.view_as(x), y, w)
                            - _objective(model_kind, down.view_as(x), y, w)) / (2 * h)
    return grad


@pytest.mark.parametrize("model_kind", [
    MeanModel(), DiagonalGaussian(variance_floor=0.01),
    DiagonalGMM(n_components=2, variance_floor=0.01, iterations=5000, tol=1e-14),
    DiagonalGMM(n_components=3, variance_floor=0.01, iterations=5000, tol=1e-14),
], ids=["mean", "gaussian", "gmm2_implicit", "gmm3_implicit"])
def test_score_gradients_match_finite_differences(model_kind):
    x = two_clusters(n_per=3, d=2, gap=3.0, seed=4, batch=2)
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(2, 4, 2, dtype=torch.float64, generator=gen) * 2
    w = torch.randn(2, 4, dtype=torch.float64, generator=gen)
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(_objective(model_kind, xg, y, w), xg)
    want = _finite_difference(model_kind, x, y, w)
    assert float(want.abs().max()) > 1e-2                      # the set really moves the scores
    torch.testing.assert_close(grad, want, rtol=1e-5, atol=1e-6)


def test_unrolled_em_gradient_approaches_the_implicit_one():
    x = two_clusters(n_per=4, d=3, gap=3.0, seed=6, batch=2)
    gen = torch.Generator().manual_seed(7)
    y = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen) * 2
    w = torch.randn(2, 5, dtype=torch.float64, generator=gen)

    def gradient(model_kind):
        xg = x.clone().requires_grad_()
        return torch.autograd.grad(_objective(model_kind, xg, y, w), xg)[0]

    implicit = gradient(DiagonalGMM(n_components=2, variance_floor=0.01, iterations=5000, tol=1e-14))
    errors = [float((gradient(DiagonalGMM(n_components=2, variance_floor=0.01, iterations=steps,
                                           gradient="unrolled")) - implicit).abs().max())
              for steps in (1, 5, 200)]
    assert errors[2] < 1e-8                                    # long unrolls differentiate the same fixed point
    assert errors[0] > errors[2]                               # a one-step unroll does not


def test_unrolled_em_reports_whether_it_converged():
    x = two_clusters(n_per=4, d=3, gap=1.0, seed=6, batch=2)
    short = DiagonalGMM(n_components=2, variance_floor=0.01, iterations=1, gradient="unrolled", tol=1e-6).fit(x)
    long = DiagonalGMM(n_components=2, variance_floor=0.01, iterations=500, gradient="unrolled", tol=1e-6).fit(x)
    assert (short.iterations, short.converged) == (1, False)
    assert (long.iterations, long.converged) == (500, True)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="gradient"):
        DiagonalGMM(gradient="backprop")
    with pytest.raises(ValueError, match="variance_floor"):
        DiagonalGaussian(variance_floor=0.0)
    with pytest.raises(ValueError, match="n_components"):
        DiagonalGMM(n_components=0)
    with pytest.raises(ValueError, match=r"\(B, n, d\)"):
        DiagonalGaussian().fit(torch.zeros(4, 3))
