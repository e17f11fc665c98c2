"""Contrastive and triplet losses on fixed embeddings and mined tuples equal brute-force loops over the
tuples; the semi-hard miner's output equals a brute-force enumeration; the random pair sampler."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import ContrastiveLoss, TripletMarginLoss
from pytorch_metric_learning.miners import TripletMarginMiner

from methods.contrastive import random_pairs


def _fixed_embeddings(seed=0, n_classes=3, per_class=5, dim=4):
    gen = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(n_classes * per_class, dim, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return emb, labels


def _dist(u, v, power):
    return float(((u - v) ** 2).sum().sqrt()) ** power


def brute_force_semihard(emb, labels, margin, power):
    found = set()
    n = len(labels)
    for a, p, neg in itertools.product(range(n), repeat=3):
        if a == p or labels[a] != labels[p] or labels[neg] == labels[a]:
            continue
        gap = _dist(emb[a], emb[neg], power) - _dist(emb[a], emb[p], power)
        if 0 < gap <= margin:  # d(a,p) < d(a,n) <= d(a,p) + margin (FaceNet's semi-hard, closed at the top)
            found.add((a, p, neg))
    return found


def _mined_set(triplets):
    return set(zip(*(t.tolist() for t in triplets)))


def _mean_nonzero(values):
    nonzero = [v for v in values if v > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


@pytest.mark.parametrize("power,margin", [(1, 0.2), (2, 0.2), (1, 0.5)])
def test_semihard_miner_equals_brute_force(power, margin):
    emb, labels = _fixed_embeddings()
    miner = TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=LpDistance(power=power))
    mined = _mined_set(miner(emb, labels))
    assert mined == brute_force_semihard(emb, labels, margin, power)
    assert mined  # the fixture does hold semi-hard triplets


@pytest.mark.parametrize("neg_margin", [1.0, 0.6])
def test_contrastive_loss_on_mined_triplets_equals_brute_force(neg_margin):
    emb, labels = _fixed_embeddings(seed=1)
    triplets = TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=LpDistance())(emb, labels)
    assert len(triplets[0]) > 1
    ours = ContrastiveLoss(pos_margin=0, neg_margin=neg_margin, distance=LpDistance())(emb, labels, triplets)
    # each triplet (a, p, n) gives the positive pair (a, p) and the negative pair (a, n)
    pos = [max(0.0, _dist(emb[a], emb[p], 1)) for a, p, _ in zip(*(t.tolist() for t in triplets))]
    neg = [max(0.0, neg_margin - _dist(emb[a], emb[n], 1)) for a, _, n in zip(*(t.tolist() for t in triplets))]
    expected = _mean_nonzero(pos) + _mean_nonzero(neg)
    assert float(ours) == pytest.approx(expected, rel=1e-10)


def test_contrastive_loss_on_random_pairs_equals_brute_force():
    emb, labels = _fixed_embeddings(seed=2)
    a1, p, a2, n = random_pairs(labels, 12, torch.Generator().manual_seed(0))
    ours = ContrastiveLoss(pos_margin=0, neg_margin=1.0, distance=LpDistance())(emb, labels, (a1, p, a2, n))
    pos = [_dist(emb[i], emb[j], 1) for i, j in zip(a1.tolist(), p.tolist())]
    neg = [max(0.0, 1.0 - _dist(emb[i], emb[j], 1)) for i, j in zip(a2.tolist(), n.tolist())]
    assert float(ours) == pytest.approx(_mean_nonzero(pos) + _mean_nonzero(neg), rel=1e-10)


@pytest.mark.parametrize("margin", [0.2, 0.5])
def test_triplet_loss_on_mined_triplets_equals_brute_force(margin):
    emb, labels = _fixed_embeddings(seed=3)
    distance = LpDistance(power=2)  # as conf/method/triplet.yaml: squared distances (FaceNet)
    triplets = TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=distance)(emb, labels)
    assert len(triplets[0]) > 0
    ours = TripletMarginLoss(margin=margin, distance=LpDistance(power=2))(emb, labels, triplets)
    terms = [max(0.0, _dist(emb[a], emb[p], 2) - _dist(emb[a], emb[n], 2) + margin)
             for a, p, n in zip(*(t.tolist() for t in triplets))]
    assert float(ours) == pytest.approx(_mean_nonzero(terms), rel=1e-10)


def test_random_pairs_are_valid_balanced_and_seeded():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    a1, p, a2, n = random_pairs(labels, 50, torch.Generator().manual_seed(5))
    assert len(a1) == len(a2) == 50
    assert bool((labels[a1] == labels[p]).all()) and bool((a1 != p).all())
    assert bool((labels[a2] != labels[n]).all())
    again = random_pairs(labels, 50, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip((a1, p, a2, n), again))
    # every positive pair of the batch can be drawn (uniform over pairs, not over anchors)
    many = random_pairs(labels, 2000, torch.Generator().manual_seed(6))
    assert len(set(zip(many[0].tolist(), many[1].tolist()))) == 3 + 1 + 3


def test_contrastive_with_random_pairs_trains(compose_cfg):
    from hydra.utils import instantiate

    from helpers import blobs
    from methods.base import RunContext

    cfg = compose_cfg("method=contrastive", "backbone=mlp", "budget.iterations=30", "method.learner.miner=null")
    data = blobs(n_classes=4, per_class=16, dim=8)
    cfg.backbone.input_shape = list(data.input_shape)
    learner = instantiate(cfg.method.learner)
    assert learner.miner is None
    torch.manual_seed(0)
    report = learner.fit(data, RunContext(progress=False))
    assert report.notes["pairs"] == "random" and report.notes["steps_without_pairs"] == 0
    assert report.notes["mean_mined_pairs"] == 64
    assert report.loss_curve[-1][1] < report.loss_curve[0][1]


def test_triplet_without_a_miner_uses_every_triplet_of_the_batch(compose_cfg):
    """``method.learner.miner=null``: every (anchor, positive, negative) of the batch, counted by brute force."""
    from hydra.utils import instantiate

    from helpers import blobs
    from methods.base import RunContext

    cfg = compose_cfg("method=triplet", "backbone=mlp", "budget.iterations=5", "method.learner.miner=null",
                      "method.learner.m_per_class=4", "method.learner.classes_per_batch=3")
    data = blobs(n_classes=3, per_class=8, dim=8)
    cfg.backbone.input_shape = list(data.input_shape)
    learner = instantiate(cfg.method.learner)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    a, p, n = learner.tuples(torch.zeros(12, 2), labels, 0)
    brute = {(i, j, k) for i in range(12) for j in range(12) for k in range(12)
             if i != j and labels[i] == labels[j] and labels[k] != labels[i]}
    assert set(zip(a.tolist(), p.tolist(), n.tolist())) == brute  # 12 anchors x 3 positives x 8 negatives
    report = learner.fit(data, RunContext(progress=False))
    assert report.notes["mean_mined_triplets"] == len(brute) == 288
