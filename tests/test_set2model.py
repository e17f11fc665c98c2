"""Set2Model: the histogram loss against a brute-force loop, the per-class scorer, meta-training, and the
learner under the suite's protocols' calls."""
import pytest
import torch
import torch.nn.functional as F

from helpers import blobs
from methods.backbones import MLP
from methods.base import RunContext
from methods.set2model import Set2Model, fit_per_class, histogram_loss, to_unit_interval
from methods.set_models import DiagonalGaussian, DiagonalGMM, MeanModel


def brute_force_histogram_loss(positive, negative, bins):
    scores = [float(s) for s in torch.cat([positive, negative])]
    low, high = min(scores), max(scores)
    mapped = [min(2 * (s - low) / (high - low) - 1, 1 - 1e-6) for s in scores]
    pos, neg = mapped[:len(positive)], mapped[len(positive):]
    delta = 2 / bins
    nodes = [-1 + r * delta for r in range(bins + 1)]

    def hist(values):
        return [sum(max(0.0, 1 - abs(v - t) / delta) for v in values) / len(values) for t in nodes]

    h_pos, h_neg = hist(pos), hist(neg)
    total = 0.0
    for r in range(bins + 1):
        total += h_neg[r] * sum(h_pos[q] for q in range(r + 1))
    return total


@pytest.mark.parametrize("bins", [5, 20, 100])
def test_histogram_loss_equals_a_loop(bins):
    gen = torch.Generator().manual_seed(bins)
    positive = torch.randn(9, generator=gen, dtype=torch.float64) * 30 - 200   # log-likelihood-like scales
    negative = torch.randn(13, generator=gen, dtype=torch.float64) * 30 - 230
    got = float(histogram_loss(positive, negative, bins))
    # pytorch-metric-learning places the scores in their bins in float32: agreement to ~1e-7
    assert got == pytest.approx(brute_force_histogram_loss(positive, negative, bins), rel=1e-6, abs=1e-9)


def test_histogram_loss_reads_as_the_chance_a_negative_wins():
    apart = histogram_loss(torch.tensor([10.0, 11.0, 12.0]), torch.tensor([0.0, 1.0, 2.0]), bins=50)
    reversed_ = histogram_loss(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([10.0, 11.0, 12.0]), bins=50)
    assert float(apart) == pytest.approx(0.0, abs=1e-9)
    assert float(reversed_) == pytest.approx(1.0, abs=1e-6)
    # and it is differentiable in the scores: raising a positive lowers it
    pos = torch.tensor([0.0, 5.0, 9.0], requires_grad=True)
    histogram_loss(pos, torch.tensor([4.0, 6.0, 10.0]), bins=10).backward()
    assert pos.grad is not None and float(pos.grad.abs().sum()) > 0


def test_unit_interval_map():
    mapped = to_unit_interval(torch.tensor([3.0, -1.0, 7.0]))
    torch.testing.assert_close(mapped, torch.tensor([0.0, -1.0, 1.0 - 1e-6]))


@pytest.mark.parametrize("set_model", [MeanModel(), DiagonalGaussian(0.01), DiagonalGMM(2, 0.01)])
def test_per_class_scorer_fits_one_model_per_label(set_model):
    gen = torch.Generator().manual_seed(0)
    support = F.normalize(torch.randn(15, 6, generator=gen), dim=1)
    labels = torch.arange(3).repeat(5)                         # interleaved, not sorted
    queries = F.normalize(torch.randn(4, 6, generator=gen), dim=1)
    scores = fit_per_class(set_model, support, labels).score(queries)
    assert scores.shape == (4, 3)
    for c in range(3):
        alone = set_model.score(set_model.fit(support[labels == c][None]), queries[None])[0]
        torch.testing.assert_close(scores[:, c], alone)
    ragged = fit_per_class(set_model, support[:14], labels[:14])   # label 1 has one sample fewer
    assert ragged.score(queries).shape == (4, 3)
    torch.testing.assert_close(ragged.score(queries)[:, 0], scores[:, 0])


def make_learner(set_model, iterations=30, **kw):
    torch.manual_seed(0)
    opts = dict(embedding_dim=8, problems_per_step=2, set_size=6, outlier_fraction=0.3, polysemous_fraction=0.5,
                n_positives=4, n_negatives=8, bins=20)
    opts.update(kw)
    return Set2Model(MLP(input_shape=(6,), hidden=(16,), out_features=16), lambda p: torch.optim.Adam(p, lr=1e-2),
                     iterations, set_model, **opts)


@torch.no_grad()
def held_out_loss(learner, data, n=40):
    sampler = learner.sampler(data.y, seed=12345)
    problems = [sampler.draw() for _ in range(n)]
    index = torch.cat([torch.cat([q.defining, q.positives, q.negatives]) for q in problems])
    was = learner.training
    learner.eval()
    loss = float(learner.problem_loss(learner.embed(data.x[index]), n))
    learner.train(was)
    return loss


@pytest.mark.parametrize("set_model", [MeanModel(), DiagonalGaussian(0.01), DiagonalGMM(2, 0.01),
                                       DiagonalGMM(2, 0.01, iterations=10, gradient="unrolled")],
                         ids=["mean", "gaussian", "gmm_implicit", "gmm_unrolled"])
def test_meta_training_lowers_the_loss_and_trains_the_network(set_model):
    data = blobs(n_classes=6, per_class=20, dim=6, spread=1.0)
    learner = make_learner(set_model, iterations=200)
    start = {k: v.clone() for k, v in learner.state_dict().items()}
    before = held_out_loss(learner, data)
    report = learner.fit(data, RunContext(progress=False))
    assert all(torch.isfinite(torch.tensor(v)) for _, v in report.loss_curve)
    assert any(not torch.equal(start[k], v) for k, v in learner.state_dict().items())
    assert held_out_loss(learner, data) < 0.8 * before          # on 40 problems the training never drew
    assert report.notes["set_model"] == type(set_model).__name__
    assert 0.2 < report.notes["mean_outliers_seen"] < 0.4      # 2 of 6 in each defining set
    emb = learner.embed(data.x[:5])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))


def test_the_same_seed_gives_the_same_fit():
    data = blobs(n_classes=6, per_class=20, dim=6)
    a, b = make_learner(DiagonalGMM(2, 0.01), iterations=8), make_learner(DiagonalGMM(2, 0.01), iterations=8)
    a.fit(data, RunContext(progress=False, seed=3))
    b.fit(data, RunContext(progress=False, seed=3))
    for (name, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), name


def test_a_split_too_small_for_the_problems_is_a_clear_error():
    learner = make_learner(MeanModel(), set_size=30)
    with pytest.raises(ValueError, match="set_size"):
        learner.check(blobs(n_classes=4, per_class=10, dim=6))
