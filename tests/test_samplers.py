"""Splits, episodes and balanced batches: invariants and reproducibility."""
import pytest
import torch

from datasets.batches import balanced_batches
from datasets.episodes import EpisodeError, sample_episodes
from datasets.splits import ClassDisjointSplit, SplitError, WithinClassSplit
from helpers import blobs


def test_class_disjoint_split():
    data = blobs(n_classes=10, per_class=5)
    a = ClassDisjointSplit(test_classes=0.4)(data, seed=3)
    assert set(a.train.y.tolist()).isdisjoint(a.test.y.tolist())
    assert len(a.test.present_classes) == 4 and len(a.train) + len(a.test) == len(data)
    assert torch.equal(a.test_index, ClassDisjointSplit(0.4)(data, seed=3).test_index)
    assert any(not torch.equal(a.test_index, ClassDisjointSplit(0.4)(data, seed=s).test_index) for s in range(4, 9))
    assert len(ClassDisjointSplit(test_classes=3)(data, seed=0).test.present_classes) == 3
    with pytest.raises(SplitError):
        ClassDisjointSplit(test_classes=10)(data, seed=0)


def test_within_class_split_is_stratified():
    data = blobs(n_classes=4, per_class=10)
    s = WithinClassSplit(test_fraction=0.3)(data, seed=0)
    assert set(s.train_index.tolist()).isdisjoint(s.test_index.tolist())
    assert s.test.counts().tolist() == [3, 3, 3, 3] and s.train.counts().tolist() == [7, 7, 7, 7]


def test_episode_invariants_and_reproducibility():
    labels = torch.arange(8).repeat_interleave(25)
    eps = sample_episodes(labels, n_way=5, k_shot=3, n_query=4, n_episodes=50, seed=11)
    assert eps.support.shape == (50, 5, 3) and eps.query.shape == (50, 5, 4)
    for e in range(50):
        assert len(set(eps.classes[e].tolist())) == 5
        s, q = set(eps.support[e].flatten().tolist()), set(eps.query[e].flatten().tolist())
        assert not s & q and len(s) == 15 and len(q) == 20
        for n, c in enumerate(eps.classes[e].tolist()):
            assert (labels[eps.support[e, n]] == c).all() and (labels[eps.query[e, n]] == c).all()
    again = sample_episodes(labels, 5, 3, 4, 50, seed=11)
    assert torch.equal(eps.support, again.support) and torch.equal(eps.query, again.query)
    other = sample_episodes(labels, 5, 3, 4, 50, seed=12)
    assert not torch.equal(eps.support, other.support)


def test_episode_errors_name_the_fix():
    labels = torch.arange(4).repeat_interleave(6)
    with pytest.raises(EpisodeError, match="5-way episodes need 5 classes but the split has 4"):
        sample_episodes(labels, 5, 1, 1, 1, seed=0)
    with pytest.raises(EpisodeError, match=r"Lower k_shot or n_query \(n_query=1 fits\)\.$"):
        sample_episodes(labels, 2, 5, 2, 1, seed=0)
    uneven = torch.tensor([0] * 10 + [1] * 8 + [2] * 3 + [3] * 3)
    with pytest.raises(EpisodeError, match=r"only 2 classes have that many .* \(n_query=1 or n_way=2 fits\)\.$"):
        sample_episodes(uneven, 3, 2, 5, 1, seed=0)
    sample_episodes(uneven, 3, 2, 1, 1, seed=0)  # what the message offers does fit
    sample_episodes(uneven, 2, 2, 5, 1, seed=0)
    with pytest.raises(EpisodeError, match=r"Lower k_shot or n_query \(k_shot up to 2 fits\)\.$"):  # not n_way:
        sample_episodes(uneven, 3, 9, 1, 1, seed=0)  # one class has 10 samples, and 3-way needs 2 more
    sample_episodes(uneven, 3, 2, 1, 1, seed=0)
    with pytest.raises(EpisodeError, match=r"but the split has 1\. An episode needs at least 2: use data with more "
                                           r"classes on this side of the split\.$"):
        sample_episodes(torch.zeros(6, dtype=torch.long), 2, 1, 1, 1, seed=0)


def test_balanced_batches():
    labels = torch.arange(6).repeat_interleave(10)
    b = balanced_batches(labels, m_per_class=4, batch_size=12, n_batches=20, seed=3)
    assert b.shape == (20, 12)
    for batch in b:
        counts = torch.bincount(labels[batch], minlength=6)
        assert sorted(counts.tolist()) == [0, 0, 0, 4, 4, 4]
    assert torch.equal(b, balanced_batches(labels, 4, 12, 20, seed=3))
    assert not torch.equal(b, balanced_batches(labels, 4, 12, 20, seed=4))
    with pytest.raises(ValueError, match="needs 4 classes but the training split has"):
        balanced_batches(torch.arange(3).repeat_interleave(5), 2, 8, 1, seed=0)
