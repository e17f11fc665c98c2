"""Cosine classifier / Baseline++: imprinting against a brute-force loop, the scale rule, the head, the
batches, and learning on a toy problem."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from datasets.labeled import LabeledData
from helpers import blobs
from methods.backbones import MLP
from methods.base import RunContext, embed_all
from methods.cosine_classifier import CosineClassifier, CosineHead, default_scale, imprint


def _learner(iterations=0, **kw) -> CosineClassifier:
    torch.manual_seed(0)
    return CosineClassifier(MLP((8,), hidden=(16,), out_features=6), partial(torch.optim.Adam, lr=1e-2),
                            iterations, **kw)


def test_imprinting_equals_class_means_of_normalised_features():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(9, 5, generator=gen) * 3
    y = torch.tensor([2, 0, 1, 1, 0, 2, 2, 1, 0])
    weights = imprint(emb, y)
    for c in range(3):
        rows = [emb[i] / math.sqrt(float((emb[i] ** 2).sum())) for i in range(len(y)) if int(y[i]) == c]
        torch.testing.assert_close(weights[c], sum(rows) / len(rows))


def test_scores_are_cosines_to_the_imprinted_weights():
    learner = _learner()
    gen = torch.Generator().manual_seed(1)
    support, query = torch.randn(6, 6, generator=gen), torch.randn(4, 6, generator=gen)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    scorer = learner.adapt(support, y)
    torch.testing.assert_close(scorer.prototypes, imprint(support, y))
    scores = scorer.score(query)
    for q in range(4):
        for c in range(3):
            w = scorer.prototypes[c]
            expected = float(query[q] @ w) / (float(query[q].norm()) * float(w.norm()))
            assert abs(float(scores[q, c]) - expected) < 1e-5
    # a larger norm of a support sample does not change the imprinted direction's weight in the mean
    scaled = support.clone()
    scaled[0] *= 100
    torch.testing.assert_close(learner.adapt(scaled, y).score(query), scores)


def test_scale_rule_and_override():
    assert default_scale(5) == 2 and default_scale(200) == 2 and default_scale(201) == 10
    assert default_scale(50, threshold=10) == 10
    data = blobs(n_classes=4, per_class=10, dim=8)
    assert _learner(iterations=1).fit(data, RunContext(progress=False)).notes["scale"] == 2
    assert _learner(iterations=1, scale_class_threshold=3).fit(data, RunContext(progress=False)).notes["scale"] == 10
    learner = _learner(iterations=1, scale=4.5)
    assert learner.fit(data, RunContext(progress=False)).notes["scale"] == 4.5 and learner.head.scale == 4.5


@pytest.mark.parametrize("learn_norms", [True, False])
def test_head_is_scaled_cosine_with_class_norms(learn_norms):
    head = CosineHead(5, 3, scale=2.0, learn_norms=learn_norms, generator=torch.Generator().manual_seed(0))
    assert isinstance(head.norm, torch.nn.Parameter) is learn_norms
    if learn_norms:  # initialised to the norms of the initial weights, as weight normalisation does
        torch.testing.assert_close(head.norm.detach(), head.direction.detach().norm(dim=1))
        with torch.no_grad():
            head.norm.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(4, 5)
    out = head(x).detach()
    norms = head.norm.detach()
    for i in range(4):
        for c in range(3):
            v = head.direction.detach()[c]
            cos = float(x[i] @ v) / (float(x[i].norm()) * float(v.norm()))
            assert abs(float(out[i, c]) - 2.0 * float(norms[c]) * cos) < 1e-5


def test_shuffled_batches_are_seeded_epochs():
    learner = _learner(iterations=7, batch_size=8)
    y = torch.arange(4).repeat_interleave(5)  # 20 samples: 2 batches of 8 per epoch
    a = learner._batches(y, RunContext(seed=3))
    assert a.shape == (7, 8) and torch.equal(a, learner._batches(y, RunContext(seed=3)))
    assert not torch.equal(a, learner._batches(y, RunContext(seed=4)))
    assert len(torch.unique(a[:2].flatten())) == 16  # no sample twice within an epoch


def test_balanced_batches():
    learner = _learner(iterations=5, batch_size=8, sampler="balanced", m_per_class=2)
    y = torch.arange(4).repeat_interleave(5)
    batches = learner._batches(y, RunContext(seed=0))
    assert batches.shape == (5, 8)
    for b in batches:
        assert sorted(torch.bincount(y[b], minlength=4).tolist()) == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="sampler"):
        _learner(sampler="weird")


def test_learns_on_a_toy_problem_with_sparse_labels():
    data = blobs(n_classes=5, per_class=20, dim=8, spread=1.0)
    # class ids with gaps, as a class-disjoint training split has them
    data = LabeledData(x=data.x, y=data.y * 2, classes=[f"c{i}" for i in range(10)], name="gappy")
    learner = _learner(iterations=150, batch_size=20)
    x, y = data.x, data.y // 2

    def head_loss():
        learner.eval()
        with torch.no_grad():
            return float(F.cross_entropy(learner.head(learner.encoder(x)), y))

    report = learner.fit(data, RunContext(progress=False, seed=0))
    assert report.notes["n_classes"] == 5 and learner.head.direction.shape == (5, 6)
    first = report.loss_curve[0][1]
    assert head_loss() < 0.5 * first, (first, head_loss())
    # imprinted prototypes from 2 shots classify the other samples well
    emb = embed_all(learner, x)
    support = torch.cat([torch.nonzero(y == c).flatten()[:2] for c in range(5)])
    query = torch.cat([torch.nonzero(y == c).flatten()[2:] for c in range(5)])
    scores = learner.adapt(emb[support], y[support]).score(emb[query])
    assert (scores.argmax(1) == y[query]).float().mean() > 0.8
