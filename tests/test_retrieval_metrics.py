"""Retrieval metrics against pytorch-metric-learning's AccuracyCalculator and against brute-force loops."""
import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from benchmarks.retrieval_metrics import nmi, per_query


def _random_embeddings(seed, n=300, d=16, n_classes=7):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=gen)
    centres = torch.randn(n_classes, d, generator=gen)
    emb = centres[labels] * 0.8 + torch.randn(n, d, generator=gen)
    return emb, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distance", [LpDistance(normalize_embeddings=False), CosineSimilarity()], ids=["l2", "cos"])
def test_matches_accuracy_calculator(seed, distance):
    emb, labels = _random_embeddings(seed)
    calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                              k="max_bin_count", knn_func=CustomKNN(distance), device=torch.device("cpu"))
    theirs = calc.get_accuracy(emb, labels)
    ours = per_query(emb, labels, distance)
    assert ours["p_at_1"].mean() == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["r_precision"].mean() == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert ours["map_at_r"].mean() == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


def test_against_brute_force_loop():
    emb, labels = _random_embeddings(5, n=60, d=4, n_classes=4)
    ours = per_query(emb, labels, LpDistance(normalize_embeddings=False))
    d = torch.cdist(emb, emb)
    for q in range(len(labels)):
        others = [i for i in sorted(range(len(labels)), key=lambda i: (d[q, i].item(), i)) if i != q]
        rel = [int(labels[i] == labels[q]) for i in others]
        r = sum(rel)
        ap = sum(sum(rel[:i + 1]) / (i + 1) for i in range(r) if rel[i]) / r
        assert ours["p_at_1"][q] == rel[0]
        assert ours["r_precision"][q] == pytest.approx(sum(rel[:r]) / r)
        assert ours["map_at_r"][q] == pytest.approx(ap)
        for k in (1, 2, 4, 8):
            assert ours[f"recall_at_{k}"][q] == float(any(rel[:k]))


def test_perfect_and_nmi():
    labels = torch.arange(5).repeat_interleave(10)
    emb = torch.nn.functional.one_hot(labels).float() * 10 + 0.01 * torch.randn(50, 5)
    ours = per_query(emb, labels, LpDistance(normalize_embeddings=False))
    assert ours["map_at_r"].min() == 1.0
    assert nmi(emb, labels, seed=0) == pytest.approx(1.0)
    shuffled = labels[torch.randperm(50, generator=torch.Generator().manual_seed(0))]
    assert nmi(emb, shuffled, seed=0) < 0.5


def test_nmi_matches_accuracy_calculator_with_same_clustering():
    emb, labels = _random_embeddings(3)

    def kmeans(x, n_clusters):
        return torch.as_tensor(KMeans(n_clusters=n_clusters, n_init=10, random_state=4).fit_predict(x.double().numpy()))

    calc = AccuracyCalculator(include=("NMI",), kmeans_func=kmeans, knn_func=CustomKNN(LpDistance()),
                              device=torch.device("cpu"))
    assert nmi(emb, labels, seed=4) == pytest.approx(calc.get_accuracy(emb, labels)["NMI"], abs=1e-9)


def test_single_sample_class_is_an_error():
    with pytest.raises(ValueError, match="at least two samples"):
        per_query(torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 2]), LpDistance())
