"""Divide and conquer: the orthogonality loss, slices and masks, the schedule, the cluster matching, and
K = 1 being the plain margin-loss network."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import MarginLoss
from pytorch_metric_learning.miners import DistanceWeightedMiner

from helpers import blobs
from methods.backbones import MLP
from methods.base import RunContext
from methods.divide_conquer import DivideAndConquer, match_clusters, schedule, split_clusters
from methods.pair_losses import TupleLossNetwork
from methods.subspaces import FixedSlices, LearnableMasks, orthogonality_loss
from methods.training import build_optimizer


def adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def test_orthogonality_loss_equals_a_loop():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 7, generator=gen)
    total, pairs = 0.0, 0
    for i, j in itertools.permutations(range(4), 2):
        a, b = masks[i].double(), masks[j].double()
        total += float((a * b).sum() / (a.norm() * b.norm()))
        pairs += 1
    assert pairs == 12
    assert float(orthogonality_loss(masks)) == pytest.approx(total / pairs, rel=1e-6)
    # orthogonal masks cost nothing, equal ones cost 1
    assert float(orthogonality_loss(torch.eye(3))) == pytest.approx(0.0, abs=1e-7)
    assert float(orthogonality_loss(torch.ones(3, 5))) == pytest.approx(1.0, rel=1e-6)


def test_equal_masks_are_a_stationary_point_of_the_penalty():
    # why the masks need their own learning rate: at equal masks the penalty has no gradient at all
    equal = torch.ones(3, 5, requires_grad=True)
    orthogonality_loss(equal).backward()
    assert float(equal.grad.abs().max()) < 1e-6
    # once apart, its gradient pushes them further apart
    gen = torch.Generator().manual_seed(1)
    apart = (torch.ones(2, 5) + 0.1 * torch.randn(2, 5, generator=gen)).requires_grad_()
    before = orthogonality_loss(apart)
    before.backward()
    assert float(apart.grad.abs().max()) > 1e-3
    with torch.no_grad():
        assert float(orthogonality_loss(apart - 0.05 * apart.grad)) < float(before)


def test_masks_train_at_their_own_learning_rate():
    learner = DivideAndConquer(MLP(input_shape=(4,), out_features=8), adam, 5, MarginLoss(), None,
                               LearnableMasks(lr_multiplier=50), n_learners=2, embedding_dim=6)
    opt = build_optimizer(learner.optimizer, learner.parameter_groups())
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-3), pytest.approx(5e-2)]
    assert opt.param_groups[1]["params"] == [learner.subspaces.masks]
    grouped = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in learner.parameters() if p.requires_grad)  # each once
    # fixed slices add no group; one learner's mask is not trained
    slices = DivideAndConquer(MLP(input_shape=(4,), out_features=8), adam, 5, MarginLoss(), None, FixedSlices(),
                              n_learners=2, embedding_dim=6)
    assert len(build_optimizer(slices.optimizer, slices.parameter_groups()).param_groups) == 1
    single = LearnableMasks()
    single.reset(1, 6)
    emb = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    assert not single.masks.requires_grad
    torch.testing.assert_close(single.view(emb, 0, 1), F.normalize(emb, dim=1))
    with pytest.raises(ValueError, match="lr_multiplier"):
        LearnableMasks(lr_multiplier=0)


@pytest.mark.parametrize("multiplier", [1.0, 100.0])
def test_masks_part_during_training(multiplier):
    data = blobs(n_classes=8, per_class=15, dim=6)
    torch.manual_seed(0)
    learner = DivideAndConquer(MLP(input_shape=(6,), hidden=(16,), out_features=16), adam, 60, MarginLoss(),
                               DistanceWeightedMiner(), LearnableMasks(lr_multiplier=multiplier), n_learners=2,
                               embedding_dim=16, hierarchical=True, m_per_class=4, classes_per_batch=4)
    notes = learner.fit(data, RunContext(progress=False)).notes["subspaces"]
    cosine = notes["mask_cosine"][0][1]
    if multiplier == 1.0:
        assert cosine > 0.99            # at the plain learning rate they hardly move off each other
    else:
        assert cosine < 0.95            # at the authors' 100x they part
    assert notes["lr_multiplier"] == multiplier


def test_masks_penalty_is_weighted_and_absent_for_one_learner():
    masks = LearnableMasks(orthogonality_weight=0.5)
    masks.reset(4, 6)
    with torch.no_grad():
        masks.masks.copy_(torch.rand(4, 6, generator=torch.Generator().manual_seed(4)) - 0.2)  # some negative entries: the ReLU must cut them
    expected = 0.5 * orthogonality_loss(F.relu(masks.masks))
    torch.testing.assert_close(masks.penalty(4), expected)
    # two active learners: the masks of final learners 0 and 2 (the first of each block)
    torch.testing.assert_close(masks.penalty(2), 0.5 * orthogonality_loss(F.relu(masks.masks[[0, 2]])))
    assert masks.penalty(1) is None


@pytest.mark.parametrize("dim,k", [(8, 4), (10, 4), (7, 2), (5, 1)])
def test_slices_partition_the_embedding(dim, k):
    slices = FixedSlices()
    slices.reset(k, dim)
    weights = torch.stack([slices.weights(j, k) for j in range(k)])
    assert torch.equal(weights.sum(0), torch.ones(dim))          # every coordinate in exactly one slice
    for row in weights:                                          # each slice contiguous and non-empty
        idx = torch.nonzero(row).flatten()
        assert len(idx) >= 1 and torch.equal(idx, torch.arange(int(idx[0]), int(idx[-1]) + 1))
    assert max(len(torch.nonzero(r)) for r in weights) - min(len(torch.nonzero(r)) for r in weights) <= 1
    emb = torch.randn(5, dim)
    for j in range(k):
        start, stop = slices.span(j, k)
        torch.testing.assert_close(slices.view(emb, j, k), emb[:, start:stop] / emb[:, start:stop].norm(dim=1,
                                                                                                      keepdim=True))


def test_slices_of_a_parent_are_the_union_of_its_childrens():
    slices = FixedSlices()
    slices.reset(8, 20)
    for n in (1, 2, 4):
        for j in range(n):
            torch.testing.assert_close(slices.weights(j, n), slices.weights(2 * j, 2 * n) + slices.weights(2 * j + 1, 2 * n))
    torch.testing.assert_close(slices.weights(0, 1), torch.ones(20))


def test_too_many_slices_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot be cut into 8 slices"):
        FixedSlices().reset(8, 5)


def test_masks_weight_the_embedding_and_children_inherit():
    masks = LearnableMasks()
    masks.reset(4, 6)
    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(3, 6, generator=gen)
    torch.testing.assert_close(masks.view(emb, 0, 1), F.normalize(emb, dim=1))  # ones at the start
    with torch.no_grad():
        masks.masks.copy_(torch.randn(4, 6, generator=gen))
    assert (masks.masks < 0).any() and (F.relu(masks.masks).sum(1) > 0).all()
    for k in range(4):
        expected = F.relu(masks.masks[k]) * emb
        torch.testing.assert_close(masks.view(emb, k, 4), expected / expected.norm(dim=1, keepdim=True))
        torch.testing.assert_close(masks.weights(k, 4), F.relu(masks.masks[k]).detach())
    before = masks.masks.detach().clone()
    masks.split(1)                       # 1 -> 2: row 2 (learner 1 of 2) starts as row 0 (learner 0 of 1)
    assert torch.equal(masks.masks[2], before[0]) and torch.equal(masks.masks[0], before[0])
    assert torch.equal(masks.masks[[1, 3]], before[[1, 3]])
    masks.split(2)                       # 2 -> 4: row 1 copies row 0, row 3 copies row 2
    assert torch.equal(masks.masks[1], masks.masks[0]) and torch.equal(masks.masks[3], masks.masks[2])


def test_matching_keeps_learner_identities():
    gen = torch.Generator().manual_seed(1)
    previous = torch.randint(0, 4, (200,), generator=gen)
    relabel = torch.tensor([2, 0, 3, 1])          # k-means numbers the same clusters differently
    new = relabel[previous]
    moved = torch.randperm(200, generator=gen)[:30]  # and a few samples change cluster
    new[moved] = torch.randint(0, 4, (30,), generator=gen)
    matched = match_clusters(previous, new, 4)
    # every new cluster id maps back to the old learner it mostly came from
    for old in range(4):
        assert torch.all(matched[new == relabel[old]] == old)
    unchanged = torch.ones(200, dtype=torch.bool)
    unchanged[moved] = False
    assert torch.equal(matched[unchanged], previous[unchanged])


def test_split_clusters_gives_children_inside_their_parent():
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(60, 3, generator=gen)
    parent = torch.randint(0, 2, (60,), generator=gen)
    child = split_clusters(parent, features, 2, seed=0)
    assert torch.equal(child // 2, parent)
    assert set(child.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("hierarchical,k", [(False, 4), (True, 4), (True, 8), (False, 1), (True, 1)])
def test_schedule_covers_every_step_once(hierarchical, k):
    phases = schedule(1000, k, hierarchical, final_stage=0.2, period=70)
    assert phases[0].start == 0 and phases[-1].stop == 1000
    assert all(a.stop == b.start for a, b in zip(phases, phases[1:]))
    assert all(p.stop > p.start for p in phases)
    if k == 1:
        assert len(phases) == 1 and not phases[0].final   # main and final stage are the same training
        return
    assert phases[-1].final and phases[-1].stop - phases[-1].start == 200
    main = [p for p in phases if not p.final]
    assert all(p.stop - p.start <= 70 for p in main if p.n_active > 1)
    levels = sorted({p.n_active for p in main})
    assert levels == ([2 ** i for i in range(int(np.log2(k)) + 1)] if hierarchical else [k])
    starts = [p for p in main if p.level_start]
    assert [p.n_active for p in starts] == levels[1:]


def _fit_state(learner, data, steps):
    torch.manual_seed(0)
    np.random.seed(0)
    learner.fit(data, RunContext(seed=3, progress=False))
    return {k: v.clone() for k, v in learner.encoder.state_dict().items()}


@pytest.mark.parametrize("subspaces", [FixedSlices, LearnableMasks])
def test_one_learner_is_the_plain_network(subspaces):
    data = blobs(n_classes=5, per_class=20, dim=8)
    torch.manual_seed(5)
    backbone = MLP(input_shape=(8,), hidden=(16,), out_features=12)
    plain_backbone = MLP(input_shape=(8,), hidden=(16,), out_features=12)
    plain_backbone.load_state_dict(backbone.state_dict())
    steps = 25
    dc = DivideAndConquer(backbone, adam, steps, MarginLoss(margin=0.2, beta=1.2), DistanceWeightedMiner(),
                          subspaces(), n_learners=1, embedding_dim=None, m_per_class=4, classes_per_batch=5,
                          hierarchical=subspaces is LearnableMasks)
    plain = TupleLossNetwork(plain_backbone, adam, steps, MarginLoss(margin=0.2, beta=1.2), DistanceWeightedMiner(),
                             m_per_class=4, classes_per_batch=5)
    start = {k: v.clone() for k, v in backbone.state_dict().items()}
    got, want = _fit_state(dc, data, steps), _fit_state(plain, data, steps)
    assert any(not torch.equal(got[k], start[k]) for k in got)  # it did train
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    x = data.x[:7]
    dc.eval(), plain.eval()
    torch.testing.assert_close(dc.embed(x), plain.embed(x))


@pytest.mark.parametrize("subspaces,hierarchical", [(FixedSlices, False), (LearnableMasks, True)])
def test_fit_records_its_clusters(subspaces, hierarchical):
    data = blobs(n_classes=8, per_class=15, dim=6)
    torch.manual_seed(0)
    learner = DivideAndConquer(MLP(input_shape=(6,), hidden=(16,), out_features=16), adam, 40,
                               MarginLoss(), DistanceWeightedMiner(), subspaces(), n_learners=2, embedding_dim=8,
                               recluster_every=0.5, hierarchical=hierarchical, m_per_class=4, classes_per_batch=4)
    report = learner.fit(data, RunContext(progress=False))
    phases = report.notes["phases"]
    assert phases[-1]["final"] and all(sum(p["cluster_sizes"]) == len(data) for p in phases)
    two = [p for p in phases if p["learners"] == 2]
    assert len(two) >= 2                                  # re-clustered at least once
    assert two[1]["kept_fraction"] is not None and 0.0 <= two[1]["kept_fraction"] <= 1.0
    emb = learner.embed(data.x)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(data)))


def test_bad_settings_are_clear_errors():
    backbone = MLP(input_shape=(4,), out_features=8)
    with pytest.raises(ValueError, match="power of two"):
        DivideAndConquer(backbone, adam, 5, MarginLoss(), None, LearnableMasks(), n_learners=3, hierarchical=True)
    with pytest.raises(ValueError, match="final_stage"):
        DivideAndConquer(backbone, adam, 5, MarginLoss(), None, FixedSlices(), final_stage=1.0)
    learner = DivideAndConquer(backbone, adam, 5, MarginLoss(), None, FixedSlices(), n_learners=8, embedding_dim=8)
    with pytest.raises(ValueError, match="n_learners"):
        learner.check(blobs(n_classes=2, per_class=2, dim=4))


def test_any_library_loss_and_its_parameters_train():
    from pytorch_metric_learning.losses import TripletMarginLoss

    data = blobs(n_classes=6, per_class=12, dim=6)
    torch.manual_seed(0)
    other = DivideAndConquer(MLP(input_shape=(6,), hidden=(16,), out_features=16), adam, 12, TripletMarginLoss(),
                             None, FixedSlices(), n_learners=2, embedding_dim=8, m_per_class=4, classes_per_batch=3)
    assert other.fit(data, RunContext(progress=False)).final_loss is not None
    # a loss with a learnable parameter (the margin loss's beta): each learner's own copy is trained
    learned = DivideAndConquer(MLP(input_shape=(6,), hidden=(16,), out_features=16),
                               lambda p: torch.optim.SGD(p, lr=0.5), 30, MarginLoss(learn_beta=True), None,
                               FixedSlices(), n_learners=2, embedding_dim=8, m_per_class=4, classes_per_batch=3)
    learned.fit(data, RunContext(progress=False))
    betas = [float(loss.beta.detach()) for loss in learned.losses] + [float(learned.final_loss.beta.detach())]
    assert all(b != pytest.approx(1.2, abs=1e-6) for b in betas)
    assert len(set(round(b, 6) for b in betas)) == 3
