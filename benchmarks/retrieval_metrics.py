"""Retrieval metrics on held-out classes, as defined by Musgrave et al. (2020) and pytorch-metric-learning.

Each query is ranked against every other sample (the query itself excluded). With R = the number of other
samples of the query's class:
- P@1: the nearest neighbour has the query's class;
- R-precision: the fraction of the R nearest that share the class;
- MAP@R: (1/R) Σ_{i≤R} P(i)·[rank i is relevant];
- Recall@K: at least one of the K nearest shares the class (the DML papers' "Recall@K");
- NMI: k-means (as many clusters as classes) on the embeddings against the labels.
"""
from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.distances import BaseDistance
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from torch import Tensor

from methods.base import similarity


def nearest_labels(emb: Tensor, labels: Tensor, distance: BaseDistance, k: int, chunk: int = 1024) -> Tensor:
    """(n, k) labels of each sample's k nearest other samples, nearest first."""
    n = len(labels)
    out = torch.empty(n, k, dtype=labels.dtype)
    for start in range(0, n, chunk):
        sim = similarity(distance, emb[start:start + chunk], emb)
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + start] = -float("inf")  # never retrieve the query itself
        idx = sim.topk(k, dim=1).indices
        out[start:start + chunk] = labels[idx]
    return out


def per_query(emb: Tensor, labels: Tensor, distance: BaseDistance, ks=(1, 2, 4, 8)) -> dict[str, np.ndarray]:
    """Per-query P@1, R-precision, MAP@R and Recall@K (arrays of length n)."""
    labels = labels.cpu()
    counts = torch.bincount(labels)
    r = counts[labels] - 1  # same-class items other than the query
    if int(r.min()) < 1:
        raise ValueError("retrieval needs at least two samples of every class")
    k = min(len(labels) - 1, max(int(r.max()), max(ks)))
    near = nearest_labels(emb.float(), labels, distance, k)
    hit = (near == labels[:, None]).double()  # (n, k)
    ranks = torch.arange(1, k + 1, dtype=torch.double)
    within_r = (ranks[None, :] <= r[:, None]).double()
    precision_at_i = hit.cumsum(1) / ranks[None, :]
    out = {
        "p_at_1": hit[:, 0],
        "r_precision": (hit * within_r).sum(1) / r,
        "map_at_r": (precision_at_i * hit * within_r).sum(1) / r,
    }
    for kk in ks:
        out[f"recall_at_{kk}"] = hit[:, :kk].amax(1)
    return {name: v.numpy() for name, v in out.items()}


def nmi(emb: Tensor, labels: Tensor, seed: int) -> float:
    n_clusters = int(torch.unique(labels).numel())
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(emb.double().numpy())
    return float(normalized_mutual_info_score(labels.numpy(), clusters))
