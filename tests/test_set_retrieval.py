"""The noisy concept sets and the set-retrieval protocol: AP against scikit-learn, the sets' make-up,
the same sets for every learner, and clear errors before any work."""
import pytest
import scipy.stats
import torch
from sklearn.metrics import average_precision_score

from benchmarks.protocols.set_retrieval import (SetRetrievalProtocol, average_precision, concept_scores, metric_name,
                                               per_concept)
from datasets.concepts import ConceptSampler, concept_sets, members_per_class
from datasets.splits import Split
from helpers import blobs
from methods.base import RunContext
from methods.untrained import UntrainedBackbone


def test_average_precision_matches_sklearn():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        scores = torch.randn(50, generator=gen, dtype=torch.float64)
        relevant = torch.rand(50, generator=gen) < 0.3
        assert average_precision(scores, relevant) == pytest.approx(
            average_precision_score(relevant.numpy(), scores.numpy()), rel=1e-12)
    # by hand: ranks 1 and 3 relevant -> (1/1 + 2/3) / 2
    assert average_precision(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([True, False, True])) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="relevant"):
        average_precision(torch.tensor([1.0]), torch.tensor([False]))


@pytest.mark.parametrize("poly", [False, True])
@pytest.mark.parametrize("rho", [0.0, 0.25, 0.5])
def test_concept_sets_hold_what_they_say(rho, poly):
    labels = torch.arange(5).repeat_interleave(30)
    sets = concept_sets(labels, set_size=12, outlier_fraction=rho, polysemous=poly, repeats=3, seed=1)
    n_concepts = 10 if poly else 5
    assert len(sets) == 3 * n_concepts and sets.defining.shape == (3 * n_concepts, 12)
    for c in range(len(sets)):
        members = [int(k) for k in sets.concepts[c] if k >= 0]
        assert len(members) == (2 if poly else 1)
        got = labels[sets.defining[c]]
        inside = torch.isin(got, torch.tensor(members))
        assert torch.equal(inside, ~sets.outlier[c])               # flags say exactly which are outliers
        assert int(sets.outlier[c].sum()) == round(rho * 12)
        assert len(torch.unique(sets.defining[c])) == 12           # no sample twice
        if poly:                                                    # both senses present, evenly split
            counts = sorted(int((got == k).sum()) for k in members)
            assert counts == sorted(members_per_class(12, rho, True))
    again = concept_sets(labels, set_size=12, outlier_fraction=rho, polysemous=poly, repeats=3, seed=1)
    assert torch.equal(again.defining, sets.defining)
    other = concept_sets(labels, set_size=12, outlier_fraction=rho, polysemous=poly, repeats=3, seed=2)
    assert not torch.equal(other.defining, sets.defining)


def test_training_problems_keep_positives_and_negatives_apart():
    labels = torch.arange(4).repeat_interleave(25)
    sampler = ConceptSampler(labels, set_size=8, outlier_fraction=0.25, polysemous_fraction=0.5, n_positives=5,
                             n_negatives=10, seed=0)
    kinds = set()
    for _ in range(30):
        q = sampler.draw()
        kinds.add(len(q.concept))
        concept = torch.tensor(q.concept)
        assert torch.isin(labels[q.positives], concept).all() and not torch.isin(labels[q.negatives], concept).any()
        used = torch.cat([q.defining, q.positives, q.negatives])
        assert len(torch.unique(used)) == len(used)                 # nothing drawn twice
        assert int(q.outlier.sum()) == 2
    assert kinds == {1, 2}
    with pytest.raises(ValueError, match="polysemous_fraction"):
        ConceptSampler(labels, 8, 0.25, 1.5, 5, 10, seed=0)
    # a one-class concept takes 15 members of a class and 10 positives more: 25 > 20, even when half the
    # concepts are two-class ones (7 + 8 members)
    with pytest.raises(ValueError, match="fewer than 25"):
        ConceptSampler(torch.arange(4).repeat_interleave(20), 20, 0.25, 0.5, 10, 10, seed=0)


class _Identity(torch.nn.Module):
    out_features = 4

    def forward(self, x):
        return x


def _split(spread, per_class=40):
    train, test = blobs(n_classes=4, per_class=per_class, dim=4, seed=1, spread=spread), \
        blobs(n_classes=5, per_class=per_class, dim=4, seed=2, spread=spread)
    return Split(train=train, test=test, train_index=torch.arange(len(train)), test_index=torch.arange(len(test)), kind="class_disjoint")


def test_separated_concepts_are_retrieved_perfectly_without_outliers():
    protocol = SetRetrievalProtocol(set_size=8, outlier_fractions=(0.0, 0.5), polysemous=True, repeats=4,
                                    max_per_class=None)
    learner = UntrainedBackbone(_Identity())  # the mean of the defining set, Euclidean: a prototype scorer
    result = protocol.evaluate(learner, _split(spread=50.0), RunContext(progress=False), data_seed=0)
    assert set(result.metrics) == {metric_name(r, p) for r in (0.0, 0.5) for p in (False, True)}
    assert result.metrics["map_rho0"].mean == pytest.approx(1.0)
    assert result.metrics["map_rho50"].mean < result.metrics["map_rho0"].mean   # outliers pull the mean away
    assert len(result.artifacts["concepts_map_poly_rho0"]["ap"]) == 10 * 4
    # the interval is over concepts (5 classes; 10 pairs), the mean over every defining set
    for name, n_concepts in (("map_rho50", 5), ("map_poly_rho0", 10)):
        aps = result.artifacts[f"concepts_{name}"]["ap"]
        assert result.metrics[name].n == n_concepts
        assert result.metrics[name].mean == pytest.approx(float(aps.mean()))
        means = per_concept(torch.as_tensor(aps), torch.as_tensor(result.artifacts[f"concepts_{name}"]["concepts"]))
        t = scipy.stats.t.ppf(0.975, n_concepts - 1)
        assert result.metrics[name].ci95 == pytest.approx(t * float(means.std()) / n_concepts ** 0.5)


def test_per_concept_means_loop():
    concepts = torch.tensor([[3, -1], [1, -1], [3, -1], [1, 2], [1, -1], [1, 2]])
    aps = torch.tensor([0.2, 0.5, 0.4, 0.9, 0.7, 0.5], dtype=torch.float64)
    expected = []
    for row in [[1, -1], [1, 2], [3, -1]]:  # sorted order of the concepts
        mine = [float(a) for c, a in zip(concepts.tolist(), aps) if c == row]
        expected.append(sum(mine) / len(mine))
    assert per_concept(aps, concepts).tolist() == pytest.approx(expected)


def test_every_learner_sees_the_same_sets():
    protocol = SetRetrievalProtocol(set_size=6, outlier_fractions=(0.25,), polysemous=False, repeats=3,
                                    max_per_class=30)
    split = _split(spread=2.0)
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        learner = UntrainedBackbone(torch.nn.Sequential(torch.nn.Linear(4, 4)))
        learner.encoder.out_features = 4
        runs.append(protocol.evaluate(learner, split, RunContext(progress=False), data_seed=7))
    a, b = (r.artifacts["concepts_map_rho25"] for r in runs)
    assert (a["defining"] == b["defining"]).all() and (a["outlier"] == b["outlier"]).all()
    other = protocol.evaluate(learner, split, RunContext(progress=False), data_seed=8).artifacts["concepts_map_rho25"]
    assert not (other["defining"] == a["defining"]).all()


def test_a_defining_set_larger_than_a_class_is_a_clear_error():
    protocol = SetRetrievalProtocol(set_size=60, outlier_fractions=(0.0,), polysemous=False)
    with pytest.raises(ValueError, match="lower protocol.evaluator.set_size or use more samples per class"):
        protocol.check(_split(spread=2.0, per_class=40))


def test_matching_networks_rank_by_attention_mass_not_by_a_constant():
    from methods.backbones import MLP
    from methods.matching import MatchingNetwork

    torch.manual_seed(0)
    learner = MatchingNetwork(MLP(input_shape=(4,), out_features=8), lambda p: torch.optim.Adam(p), 1)
    gen = torch.Generator().manual_seed(1)
    defining, pool = torch.randn(6, 8, generator=gen), torch.randn(30, 8, generator=gen)
    one_class = learner.adapt(defining, torch.zeros(6, dtype=torch.long)).score(pool)
    assert torch.allclose(one_class, torch.zeros_like(one_class), atol=1e-6)   # log P of one class: 0 (+ rounding)
    with pytest.raises(ValueError, match="same score"):               # which the guard does not take for a ranking
        concept_scores(_Constant(one_class), defining, pool)
    scores = concept_scores(learner, defining, pool)
    cos = torch.nn.functional.normalize(pool, dim=1) @ torch.nn.functional.normalize(defining, dim=1).T
    torch.testing.assert_close(scores[:, 0], torch.logsumexp(learner.scale * cos, dim=1))


class _Constant:
    """A learner whose one-class scorer returns fixed scores (zeros, or the ones given)."""

    def __init__(self, scores=None):
        self.scores = scores

    def adapt(self, support_emb, support_y):
        fixed = self.scores

        class Flat:
            def score(self, q):
                return torch.zeros(len(q), 1) if fixed is None else fixed
        return Flat()


def test_a_scorer_that_cannot_rank_is_a_clear_error():
    with pytest.raises(ValueError, match="same score"):
        concept_scores(_Constant(), torch.randn(3, 4), torch.randn(10, 4))
