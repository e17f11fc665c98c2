"""Retrieval metrics on held-out classes, as defined by Musgrave et al. (2020) and pytorch-metric-learning.

Two ways to rank, one function:

- all-vs-all, ``per_query(emb, labels, distance, ks)``: every sample is a query ranked against every other
  sample (the query itself excluded); R = the number of *other* samples of the query's class, and a class
  with a single sample is an error;
- query vs gallery (the In-shop protocol), ``per_query(query_emb, query_labels, distance, ks,
  gallery_emb=..., gallery_labels=...)``: each query is ranked against the gallery only, nothing excluded;
  R = the number of gallery items of the query's class, and a query whose class has no gallery item is an
  error.

Per query, with the k nearest (k = max(largest R, largest K), capped at what the gallery holds):
- P@1: the nearest neighbour has the query's class;
- R-precision: the fraction of the R nearest that share the class;
- MAP@R: (1/R) Σ_{i≤R} P(i)·[rank i is relevant];
- Recall@K: at least one of the K nearest shares the class (the DML papers' "Recall@K");
- NMI (``nmi``): k-means (as many clusters as classes) on the embeddings against the labels.

Memory. The k-NN search runs over blocks of ``query_chunk`` queries x ``gallery_chunk`` gallery items with a
running top-k merge, and the metrics are computed one query chunk at a time, so nothing of size
n_query x n_gallery, nor any (n, k) matrix for all n queries, is ever held. Besides the embeddings and the
O(n) per-query results, the extra memory is one block of similarities and the (query_chunk, k) neighbour
indices and metric matrices of one chunk; ``chunk_sizes`` states the rule (at most 2^24 similarities,
64 MB, per block; at most 2^21 entries per (query_chunk, k) matrix).

Backends (``backend=``). "torch" works for any pytorch-metric-learning ``BaseDistance``: it scores each block
with the distance itself, oriented as ``methods.base.similarity`` (higher = closer). "faiss" runs faiss's
exact brute-force search (``faiss.knn``) on each block, for the distances faiss computes exactly:
``LpDistance`` with p=2 and power > 0 (L2), and ``DotProductSimilarity`` / ``CosineSimilarity`` with power 1
(inner product), after the distance's own normalisation. "auto" (the default) takes faiss when it is
importable (``pip install 'simbench[faiss]'``) and the distance is one of those, torch otherwise. Both rank
identically up to float rounding of near-ties; exact ties are broken arbitrarily, as by ``torch.topk`` and
faiss (and by pytorch-metric-learning).
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity, DotProductSimilarity, LpDistance
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from torch import Tensor

BACKENDS = ("auto", "torch", "faiss")
BLOCK_ELEMENTS = 1 << 24  # similarities per (query chunk x gallery chunk) block: 64 MB of float32
TORCH_GALLERY_CHUNK = 16384  # at least this many gallery columns per torch block
TORCH_COLUMNS_PER_NEIGHBOUR = 512  # and 512 per neighbour searched, so the running top-k is merged rarely
TORCH_BLOCK_ELEMENTS = 1 << 26  # similarities per torch block: 256 MB of float32
FAISS_QUERY_CHUNK = 4096  # faiss blocks its own search by 4096 queries; larger chunks gain nothing
METRIC_MATRICES = 8  # the metric code holds a few (query_chunk, k) float64 matrices at once


# --------------------------------------------------------------------------------------------- backends

@functools.cache
def _faiss():
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_metric(distance: BaseDistance) -> int | None:
    """The faiss metric that ranks exactly as ``distance`` does (after its normalisation), or None."""
    faiss = _faiss()
    if faiss is None:
        return None
    kind = type(distance)  # exact types only: a subclass may compute something else
    if kind is LpDistance and distance.p == 2 and distance.power > 0:
        return faiss.METRIC_L2
    if kind in (DotProductSimilarity, CosineSimilarity) and distance.power == 1:
        return faiss.METRIC_INNER_PRODUCT
    return None


def resolve_backend(distance: BaseDistance, backend: str = "auto") -> str:
    """"torch" or "faiss": the backend that ``backend`` ("auto", "torch" or "faiss") asks for."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    if backend == "torch":
        return "torch"
    usable = faiss_metric(distance) is not None
    if backend == "faiss" and not usable:
        if _faiss() is None:
            raise ImportError("backend='faiss' needs faiss, which is not installed: pip install 'simbench[faiss]' "
                              "(or pip install faiss-cpu), or use backend='torch'")
        raise ValueError(f"faiss cannot compute {distance!r} exactly (only LpDistance with p=2 and power > 0, "
                         "DotProductSimilarity and CosineSimilarity with power 1); use backend='torch' or 'auto'")
    return "faiss" if usable else "torch"


def chunk_sizes(n_query: int, n_gallery: int, k: int, dim: int, backend: str) -> tuple[int, int]:
    """(query_chunk, gallery_chunk), the rule that bounds the memory of the search and of the metrics.

    torch: gallery_chunk = min(n_gallery, max(16384, 512 k)) columns, and query_chunk = min(2^26 //
    gallery_chunk, 2^21 // k) rows, so one block of similarities holds at most 2^26 floats (256 MB; 4096 x
    16384 when k is small) and each (query_chunk, k) matrix of the merge and the metrics at most 2^21 entries.
    faiss: faiss computes distances in its own 4096 x 1024 blocks, so our gallery chunk only bounds the
    normalised copy of the gallery: gallery_chunk = min(n_gallery, max(k, 2^24 // dim)) rows (64 MB), and
    query_chunk = min(4096, 2^21 // k) as above.
    Neither depends on n beyond the caps at n_query and n_gallery.
    """
    rows_for_k = max(1, BLOCK_ELEMENTS // (METRIC_MATRICES * max(k, 1)))
    if backend == "faiss":
        gallery_chunk = min(n_gallery, max(k, BLOCK_ELEMENTS // max(dim, 1)))
        query_chunk = min(FAISS_QUERY_CHUNK, rows_for_k)
    else:
        # wider blocks for larger k: a top-k over few columns is merged too often (512 columns per neighbour)
        gallery_chunk = min(n_gallery, max(TORCH_GALLERY_CHUNK, TORCH_COLUMNS_PER_NEIGHBOUR * k))
        query_chunk = min(max(1, TORCH_BLOCK_ELEMENTS // max(gallery_chunk, 1)), rows_for_k)
    return max(1, min(n_query, query_chunk)), max(1, gallery_chunk)


def _torch_block(distance: BaseDistance, query: Tensor, gallery: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(similarities, indices) of the k most similar gallery items of each query, most similar first.

    Similarities as ``methods.base.similarity`` orients them (higher = closer), but the block is ranked in the
    distance's own direction and only the k kept values are negated: negating the whole block would copy it.
    """
    mat = distance(query, gallery)
    top = mat.topk(min(k, mat.shape[1]), dim=1, largest=distance.is_inverted)
    values = top.values if distance.is_inverted else -top.values
    return values, top.indices


def _faiss_block(metric: int, query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
    """As ``_torch_block``, by faiss's exact search on already-normalised float32 arrays."""
    faiss = _faiss()
    dist, idx = faiss.knn(query, gallery, min(k, len(gallery)), metric=metric)
    values = torch.from_numpy(dist)
    return (-values if metric == faiss.METRIC_L2 else values), torch.from_numpy(idx)


def _as_faiss_input(distance: BaseDistance, x: Tensor) -> np.ndarray:
    """C-contiguous float32 array of ``x`` after the distance's own normalisation (a view when possible)."""
    return np.ascontiguousarray(distance.maybe_normalize(x).detach().cpu().numpy(), dtype=np.float32)


# ----------------------------------------------------------------------------------------------- search

def _merge(best: tuple[Tensor, Tensor] | None, new: tuple[Tensor, Tensor], k: int) -> tuple[Tensor, Tensor]:
    """The running top-k: keep the k most similar of the kept ones and a new block's, most similar first."""
    if best is None:
        return new
    values, idx = torch.cat([best[0], new[0]], dim=1), torch.cat([best[1], new[1]], dim=1)
    top = values.topk(min(k, values.shape[1]), dim=1)
    return top.values, idx.gather(1, top.indices)


def _drop_self(idx: Tensor, query_index: Tensor) -> Tensor:
    """(q, k+1) neighbour indices -> (q, k) without the query itself (without the last one if it is absent)."""
    is_self = idx == query_index[:, None]
    is_self[~is_self.any(1), -1] = True
    return idx[~is_self].view(len(idx), -1)


@torch.no_grad()
def _search_chunk(query: Tensor, gallery: Tensor, distance: BaseDistance, k: int, backend: str,
                  gallery_chunk: int) -> Tensor:
    """(q, k) int64 indices of the k nearest gallery items of each query, nearest first."""
    metric = faiss_metric(distance) if backend == "faiss" else None
    if metric is not None:
        query = _as_faiss_input(distance, query)
    best = None
    for start in range(0, len(gallery), gallery_chunk):
        block = gallery[start:start + gallery_chunk]
        if metric is None:
            values, idx = _torch_block(distance, query, block, k)
        else:
            values, idx = _faiss_block(metric, query, _as_faiss_input(distance, block), k)
        best = _merge(best, (values, idx.to(values.device) + start), k)
    return best[1].cpu()


def nearest_neighbours(query: Tensor, distance: BaseDistance, k: int, gallery: Tensor | None = None, *,
                       backend: str = "auto", query_chunk: int | None = None,
                       gallery_chunk: int | None = None) -> Iterator[tuple[int, Tensor]]:
    """Yield (start, idx) for each chunk of queries: idx[i] holds the int64 gallery indices of the k nearest
    of query start + i, nearest first. ``gallery=None``: all-vs-all, each query excluded from its own
    neighbours (k < n). Chunk sizes default to ``chunk_sizes``; pass them to override."""
    all_vs_all = gallery is None
    gallery = query if all_vs_all else gallery
    if not 1 <= k <= len(gallery) - all_vs_all:
        raise ValueError(f"k={k} nearest neighbours need 1 <= k <= {len(gallery) - all_vs_all} "
                         f"(the gallery holds {len(gallery)}{', the query excluded' if all_vs_all else ''})")
    backend = resolve_backend(distance, backend)
    k_search = k + 1 if all_vs_all else k  # one more, then the query itself is dropped
    if any(size is not None and size < 1 for size in (query_chunk, gallery_chunk)):
        raise ValueError(f"query_chunk and gallery_chunk must be positive (or None: chosen by chunk_sizes), got "
                         f"{query_chunk} and {gallery_chunk}")
    auto_query, auto_gallery = chunk_sizes(len(query), len(gallery), k_search, query.shape[1], backend)
    query_chunk, gallery_chunk = query_chunk or auto_query, gallery_chunk or auto_gallery
    for start in range(0, len(query), query_chunk):
        chunk = query[start:start + query_chunk]
        idx = _search_chunk(chunk, gallery, distance, k_search, backend, gallery_chunk)
        if all_vs_all:
            idx = _drop_self(idx, torch.arange(start, start + len(chunk)))
        yield start, idx


# ---------------------------------------------------------------------------------------------- metrics

def _all_finite(x: Tensor, rows: int = 65536) -> bool:
    """Whether every entry is finite, checked in row chunks: isfinite copies and masks its whole input."""
    return all(bool(torch.isfinite(x[i:i + rows]).all()) for i in range(0, len(x), rows))


def _check_embeddings(emb: Tensor, labels: Tensor, what: str) -> Tensor:
    if emb.ndim != 2 or labels.ndim != 1 or len(emb) != len(labels):
        raise ValueError(f"{what}: expected (n, d) embeddings and n labels, got {tuple(emb.shape)} and "
                         f"{tuple(labels.shape)}")
    if len(emb) == 0:
        raise ValueError(f"{what}: no samples to rank")
    if not _all_finite(emb):
        raise ValueError(f"{what}: the embeddings contain NaN or infinite values; the learner diverged or its "
                         "inputs are broken, so nothing can be ranked")
    return emb.float()


def _class_ids(query_labels: Tensor, gallery_labels: Tensor | None) -> tuple[Tensor, Tensor]:
    """Query and gallery labels as dense ids 0..C-1 (the gallery's are the queries' when it is None)."""
    if gallery_labels is None:
        ids = torch.unique(query_labels, return_inverse=True)[1]
        return ids, ids
    ids = torch.unique(torch.cat([query_labels, gallery_labels]), return_inverse=True)[1]
    return ids[:len(query_labels)], ids[len(query_labels):]


def _relevant_counts(query_labels: Tensor, query_ids: Tensor, gallery_ids: Tensor, all_vs_all: bool) -> Tensor:
    """R of every query: gallery items of its class (the query itself excluded in all-vs-all)."""
    counts = torch.bincount(gallery_ids, minlength=int(query_ids.max()) + 1)
    r = counts[query_ids] - int(all_vs_all)
    if all_vs_all and int(r.min()) < 1:
        raise ValueError("retrieval needs at least two samples of every class (a class with one sample has "
                         "nothing to retrieve); drop single-sample classes from the test set")
    if not all_vs_all and int(r.min()) < 1:
        lone = torch.unique(query_labels[r < 1])
        raise ValueError(f"{len(lone)} query class(es) have no gallery item (e.g. {lone[:5].tolist()}), so their "
                         "R would be 0: every query class needs at least one gallery sample; fix the "
                         "query/gallery split or drop those queries")
    return r


def _chunk_metrics(hit: Tensor, r: Tensor, ks: Sequence[int]) -> dict[str, Tensor]:
    """Per-query metrics of one chunk from its (q, k) relevance of the k nearest and its R."""
    hit = hit.double()
    ranks = torch.arange(1, hit.shape[1] + 1, dtype=torch.double)
    within_r = (ranks[None, :] <= r[:, None]).double()
    precision_at_i = hit.cumsum(1) / ranks[None, :]
    out = {
        "p_at_1": hit[:, 0],
        "r_precision": (hit * within_r).sum(1) / r,
        "map_at_r": (precision_at_i * hit * within_r).sum(1) / r,
    }
    for kk in ks:
        out[f"recall_at_{kk}"] = hit[:, :kk].amax(1)
    return out


def per_query(query_emb: Tensor, query_labels: Tensor, distance: BaseDistance, ks: Sequence[int] = (1, 2, 4, 8),
              gallery_emb: Tensor | None = None, gallery_labels: Tensor | None = None, *, backend: str = "auto",
              query_chunk: int | None = None, gallery_chunk: int | None = None) -> dict[str, np.ndarray]:
    """Per-query P@1, R-precision, MAP@R and Recall@K (float64 arrays of length n_query).

    Without a gallery, all-vs-all with each query excluded from its own ranking; with ``gallery_emb`` and
    ``gallery_labels``, queries ranked against the gallery only. ``backend``, ``query_chunk`` and
    ``gallery_chunk`` as in ``nearest_neighbours`` (results do not depend on them)."""
    if (gallery_emb is None) != (gallery_labels is None):
        raise ValueError("give both gallery_emb and gallery_labels, or neither (all-vs-all)")
    if not ks or any(int(kk) < 1 for kk in ks):
        raise ValueError(f"ks must be positive ranks, got {tuple(ks)}")
    all_vs_all = gallery_emb is None
    query_labels = query_labels.cpu()
    query_emb = _check_embeddings(query_emb, query_labels, "queries")
    if not all_vs_all:
        gallery_labels = gallery_labels.cpu()
        gallery_emb = _check_embeddings(gallery_emb, gallery_labels, "gallery")
        if gallery_emb.shape[1] != query_emb.shape[1]:
            raise ValueError(f"queries are {query_emb.shape[1]}-d but the gallery is {gallery_emb.shape[1]}-d")
    query_ids, gallery_ids = _class_ids(query_labels, gallery_labels)
    r = _relevant_counts(query_labels, query_ids, gallery_ids, all_vs_all)
    n_gallery = len(query_labels) - 1 if all_vs_all else len(gallery_labels)
    k = min(n_gallery, max(int(r.max()), max(ks)))
    out: dict[str, np.ndarray] = {}
    for start, idx in nearest_neighbours(query_emb, distance, k, gallery_emb, backend=backend,
                                         query_chunk=query_chunk, gallery_chunk=gallery_chunk):
        rows = slice(start, start + len(idx))
        hit = gallery_ids[idx] == query_ids[rows, None]
        for name, values in _chunk_metrics(hit, r[rows], ks).items():
            out.setdefault(name, np.empty(len(query_labels)))[rows] = values.numpy()
    return out


def nmi(emb: Tensor, labels: Tensor, seed: int) -> float:
    n_clusters = int(torch.unique(labels).numel())
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(emb.double().numpy())
    return float(normalized_mutual_info_score(labels.numpy(), clusters))
