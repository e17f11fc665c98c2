"""Chunked, memory-bounded retrieval: the blocked k-NN search and the chunked metrics against brute force,
the query/gallery mode, the faiss path against the torch path, AccuracyCalculator parity and the protocol's
query/gallery layout."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, DotProductSimilarity, LpDistance, SNRDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

import benchmarks.retrieval_metrics as rm
from benchmarks.protocols.retrieval import RetrievalProtocol
from benchmarks.retrieval_metrics import (BLOCK_ELEMENTS, TORCH_BLOCK_ELEMENTS, chunk_sizes, nearest_neighbours,
                                         per_query)
from datasets.labeled import LabeledData
from methods.base import RunContext, euclidean

DISTANCES = {
    "l2": LpDistance(normalize_embeddings=False),
    "l2_normalised": LpDistance(),
    "l2_squared": LpDistance(normalize_embeddings=False, power=2),
    "l2_normalised_squared": LpDistance(power=2),
    "l1": LpDistance(normalize_embeddings=False, p=1),
    "cosine": CosineSimilarity(),
    "dot": DotProductSimilarity(normalize_embeddings=False),
    "snr": SNRDistance(),  # any other BaseDistance takes the torch path
}
FAISS_EXACT = ["l2", "l2_normalised", "l2_squared", "l2_normalised_squared", "cosine", "dot"]
CHUNKS = [(3, 1), (1, 9), (5, 7), (16, 40), (None, None)]  # 41 samples: most do not divide n


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny blocks: thread start-up would cost more than the work (cdist and faiss parallelise even 17 x 23)."""
    threads = torch.get_num_threads()
    faiss = rm._faiss()
    faiss_threads = faiss.omp_get_max_threads() if faiss is not None else None
    torch.set_num_threads(1)
    if faiss is not None:
        faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if faiss is not None:
        faiss.omp_set_num_threads(faiss_threads)


def clustered(seed, n=41, d=6, n_classes=5):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes  # every class has at least two samples
    labels = labels[torch.randperm(n, generator=gen)]
    emb = torch.randn(n_classes, d, generator=gen)[labels] + torch.randn(n, d, generator=gen)
    return emb, labels


def brute_force_neighbours(query, gallery, distance, k, exclude_self):
    """Each query's k nearest by sorting its full row of the distance matrix (ties by index)."""
    sim = distance(query.double(), gallery.double())
    sim = sim if distance.is_inverted else -sim
    rows = []
    for q in range(len(query)):
        order = sorted(range(len(gallery)), key=lambda i: (-sim[q, i].item(), i))
        rows.append([i for i in order if not (exclude_self and i == q)][:k])
    return torch.tensor(rows)


def brute_force_metrics(near, query_labels, gallery_labels, r, ks):
    """P@1, R-precision, MAP@R and Recall@K of one query per loop, from its ranked gallery labels."""
    out = {name: [] for name in ["p_at_1", "r_precision", "map_at_r", *[f"recall_at_{k}" for k in ks]]}
    for q in range(len(query_labels)):
        rel = [int(gallery_labels[i] == query_labels[q]) for i in near[q]]
        rq = int(r[q])
        out["p_at_1"].append(rel[0])
        out["r_precision"].append(sum(rel[:rq]) / rq)
        out["map_at_r"].append(sum(sum(rel[:i + 1]) / (i + 1) for i in range(rq) if rel[i]) / rq)
        for k in ks:
            out[f"recall_at_{k}"].append(float(any(rel[:k])))
    return {name: np.array(v, dtype=float) for name, v in out.items()}


def all_neighbours(query, distance, k, gallery=None, **kw):
    parts = list(nearest_neighbours(query, distance, k, gallery, backend="torch", **kw))
    assert [start for start, _ in parts] == sorted(start for start, _ in parts)
    return torch.cat([idx for _, idx in parts])


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("name", DISTANCES)
def test_chunked_search_equals_brute_force(name, chunks):
    emb, _ = clustered(0)
    query_chunk, gallery_chunk = chunks
    distance = DISTANCES[name]
    for k in (1, 3, 40):  # 40 = n - 1: every other sample
        expected = brute_force_neighbours(emb, emb, distance, k, exclude_self=True)
        got = all_neighbours(emb, distance, k, query_chunk=query_chunk, gallery_chunk=gallery_chunk)
        assert torch.equal(got, expected), (name, k)


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("name", ["l2", "cosine", "l1", "snr"])
def test_chunked_search_against_a_separate_gallery(name, chunks):
    query, _ = clustered(1, n=13)
    gallery, _ = clustered(2, n=29)
    distance = DISTANCES[name]
    for k in (1, 4, 29):
        expected = brute_force_neighbours(query, gallery, distance, k, exclude_self=False)
        got = all_neighbours(query, distance, k, gallery, query_chunk=chunks[0], gallery_chunk=chunks[1])
        assert torch.equal(got, expected), (name, k)


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("name", DISTANCES)
def test_all_vs_all_metrics_equal_brute_force(name, chunks):
    emb, labels = clustered(3)
    distance, ks = DISTANCES[name], (1, 2, 4, 8)
    r = torch.bincount(labels)[labels] - 1
    k = max(int(r.max()), max(ks))
    expected = brute_force_metrics(brute_force_neighbours(emb, emb, distance, k, True), labels, labels, r, ks)
    got = per_query(emb, labels, distance, ks, backend="torch", query_chunk=chunks[0], gallery_chunk=chunks[1])
    assert set(got) == set(expected)
    for metric in expected:
        np.testing.assert_allclose(got[metric], expected[metric], atol=1e-12, err_msg=f"{name} {metric}")


@pytest.mark.parametrize("chunks", CHUNKS, ids=str)
@pytest.mark.parametrize("name", ["l2", "l2_normalised", "cosine", "snr"])
def test_gallery_metrics_equal_brute_force(name, chunks):
    query, query_labels = clustered(4, n=23)
    gallery, gallery_labels = clustered(5, n=37)
    distance, ks = DISTANCES[name], (1, 3, 40)  # 40 > gallery size: the whole gallery
    r = torch.bincount(gallery_labels)[query_labels]
    near = brute_force_neighbours(query, gallery, distance, len(gallery), False)
    expected = brute_force_metrics(near, query_labels, gallery_labels, r, ks)
    got = per_query(query, query_labels, distance, ks, gallery_emb=gallery, gallery_labels=gallery_labels,
                    backend="torch", query_chunk=chunks[0], gallery_chunk=chunks[1])
    for metric in expected:
        np.testing.assert_allclose(got[metric], expected[metric], atol=1e-12, err_msg=f"{name} {metric}")


def test_gallery_mode_does_not_exclude_a_query_that_is_in_the_gallery():
    emb, labels = clustered(6)
    got = per_query(emb, labels, LpDistance(), gallery_emb=emb, gallery_labels=labels, backend="torch")
    assert got["p_at_1"].min() == 1.0  # each query finds itself first


def test_labels_need_not_be_dense_ids():
    emb, labels = clustered(7)
    dense = per_query(emb, labels, LpDistance(), backend="torch")
    sparse = per_query(emb, labels * 1000 + 7, LpDistance(), backend="torch")
    for metric in dense:
        np.testing.assert_array_equal(dense[metric], sparse[metric])


def test_duplicates_never_return_the_query_itself():
    base, labels = clustered(8, n=10)
    emb, labels = base.repeat(4, 1), labels.repeat(4)  # four identical copies of every sample
    idx = all_neighbours(emb, LpDistance(), 3, query_chunk=7, gallery_chunk=9)
    own = torch.arange(len(emb))[:, None]
    assert not (idx == own).any()
    assert (emb[idx] == emb[own.squeeze(1)][:, None]).all()  # the three other copies, at distance 0
    assert per_query(emb, labels, LpDistance(), query_chunk=7, gallery_chunk=9)["p_at_1"].min() == 1.0


def test_query_class_without_gallery_item_is_a_clear_error():
    query, gallery = torch.randn(4, 3), torch.randn(5, 3)
    with pytest.raises(ValueError, match="no gallery item"):
        per_query(query, torch.tensor([0, 1, 2, 9]), LpDistance(), gallery_emb=gallery,
                  gallery_labels=torch.tensor([0, 1, 2, 2, 3]))


@pytest.mark.parametrize("bad, message", [
    (dict(gallery_emb=torch.randn(5, 3)), "both gallery_emb and gallery_labels"),
    (dict(gallery_emb=torch.randn(5, 4), gallery_labels=torch.zeros(5, dtype=torch.long)), "4-d"),
    (dict(ks=(0, 1)), "positive ranks"),
])
def test_bad_arguments_are_clear_errors(bad, message):
    kwargs = dict(ks=(1,)) | bad
    with pytest.raises(ValueError, match=message):
        per_query(torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]), LpDistance(), **kwargs)


def test_non_finite_embeddings_are_a_clear_error():
    emb = torch.randn(6, 3)
    emb[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        per_query(emb, torch.tensor([0, 0, 1, 1, 2, 2]), LpDistance())


def test_chunk_rule_is_bounded_whatever_n():
    for backend in ("torch", "faiss"):
        for n in (10**6, 10**7):
            query_chunk, gallery_chunk = chunk_sizes(n, n, 26, 128, backend)
            assert query_chunk * 26 * 8 <= BLOCK_ELEMENTS
            if backend == "torch":
                assert (query_chunk, gallery_chunk) == (4096, 16384)  # a 256 MB block of similarities
            else:
                assert (query_chunk, gallery_chunk) == (4096, BLOCK_ELEMENTS // 128)
    # A large k shrinks the query chunk so that (query_chunk, k) stays bounded.
    query_chunk, gallery_chunk = chunk_sizes(10**6, 10**6, 200_000, 128, "torch")
    assert gallery_chunk == 10**6 and query_chunk * gallery_chunk <= TORCH_BLOCK_ELEMENTS
    assert query_chunk * 200_000 * 8 <= BLOCK_ELEMENTS  # the (query_chunk, k) matrices of the metrics
    # the gallery block widens with k (512 columns per neighbour), the similarity block stays bounded
    query_chunk, gallery_chunk = chunk_sizes(10**6, 10**6, 141, 128, "torch")
    assert gallery_chunk == 512 * 141 and query_chunk * gallery_chunk <= TORCH_BLOCK_ELEMENTS
    assert chunk_sizes(3, 5, 2, 128, "torch") == (3, 5)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ["l2", "l2_normalised", "cosine", "l1"])
def test_matches_accuracy_calculator_in_chunks(seed, name):
    emb, labels = clustered(seed, n=211, d=8, n_classes=9)
    distance = DISTANCES[name]
    calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                              k="max_bin_count", knn_func=CustomKNN(distance), device=torch.device("cpu"))
    for gallery in (False, True):
        if gallery:
            query_emb, query_labels, gallery_emb, gallery_labels = emb[:60], labels[:60], emb[60:], labels[60:]
            theirs = calc.get_accuracy(query_emb, query_labels, gallery_emb, gallery_labels, False)
        else:
            query_emb, query_labels, gallery_emb, gallery_labels = emb, labels, None, None
            theirs = calc.get_accuracy(emb, labels)
        ours = per_query(query_emb, query_labels, distance, gallery_emb=gallery_emb, gallery_labels=gallery_labels,
                         backend="torch", query_chunk=17, gallery_chunk=23)
        assert ours["p_at_1"].mean() == pytest.approx(theirs["precision_at_1"], abs=1e-9)
        assert ours["r_precision"].mean() == pytest.approx(theirs["r_precision"], abs=1e-9)
        assert ours["map_at_r"].mean() == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-9)


def test_backend_choice_and_errors(monkeypatch):
    with pytest.raises(ValueError, match="not one of"):
        rm.resolve_backend(LpDistance(), "gpu")
    assert rm.resolve_backend(SNRDistance(), "auto") == "torch"
    assert rm.resolve_backend(LpDistance(power=-1), "auto") == "torch"
    monkeypatch.setattr(rm, "_faiss", lambda: None)  # as if faiss were not installed
    assert rm.resolve_backend(LpDistance(), "auto") == "torch"
    with pytest.raises(ImportError, match="pip install"):
        rm.resolve_backend(LpDistance(), "faiss")


@pytest.mark.parametrize("name", FAISS_EXACT)
def test_faiss_path_equals_torch_path(name):
    pytest.importorskip("faiss")
    distance = DISTANCES[name]
    assert rm.resolve_backend(distance, "auto") == "faiss"
    with pytest.raises(ValueError, match="cannot compute"):
        rm.resolve_backend(DISTANCES["l1"], "faiss")
    emb, labels = clustered(9, n=301, d=8, n_classes=11)
    for chunks in [(None, None), (13, 29)]:
        kw = dict(query_chunk=chunks[0], gallery_chunk=chunks[1])
        for gallery in (None, emb[:100]):
            query = emb if gallery is None else emb[100:]
            by_torch = torch.cat([i for _, i in nearest_neighbours(query, distance, 12, gallery, backend="torch", **kw)])
            by_faiss = torch.cat([i for _, i in nearest_neighbours(query, distance, 12, gallery, backend="faiss", **kw)])
            assert torch.equal(by_torch, by_faiss), (name, chunks)
        theirs = per_query(emb, labels, distance, backend="torch", **kw)
        ours = per_query(emb, labels, distance, backend="faiss", **kw)
        for metric in theirs:
            np.testing.assert_allclose(ours[metric], theirs[metric], atol=1e-12)


# ------------------------------------------------------------------------------------------- protocol

def _split(roles):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(6).repeat_interleave(8)
    x = torch.randn(6, 5, generator=gen)[y] * 2 + torch.randn(len(y), 5, generator=gen)
    test = LabeledData(x=x, y=y, classes=[str(c) for c in range(6)], name="blobs/test")
    return SimpleNamespace(test=test, test_roles=roles)


class _Learner:
    distance = euclidean()

    def embed(self, x):
        return x


def test_protocol_ranks_queries_against_the_gallery_when_the_split_has_roles():
    roles = torch.arange(48) % 3 == 0  # a third of each class are gallery items
    split = _split(roles.long())
    result = RetrievalProtocol().evaluate(_Learner(), split, RunContext(), data_seed=0)
    x, y = split.test.x, split.test.y
    expected = per_query(x[~roles], y[~roles], euclidean(), gallery_emb=x[roles], gallery_labels=y[roles])
    assert result.metrics["map_at_r"].n == int((~roles).sum())
    assert result.metrics["map_at_r"].mean == pytest.approx(expected["map_at_r"].mean())
    assert result.metrics["recall_at_1"].mean == pytest.approx(expected["recall_at_1"].mean())
    assert "nmi" in result.metrics
    np.testing.assert_array_equal(result.artifacts["gallery"]["test_roles"], roles.long().numpy())


def test_protocol_without_roles_is_all_vs_all():
    split = _split(None)
    result = RetrievalProtocol().evaluate(_Learner(), split, RunContext(), data_seed=0)
    expected = per_query(split.test.x, split.test.y, euclidean())
    assert result.metrics["map_at_r"].n == 48
    assert result.metrics["map_at_r"].mean == pytest.approx(expected["map_at_r"].mean())


def test_protocol_caps_or_skips_nmi():
    split = _split(None)
    assert "nmi" not in RetrievalProtocol(nmi=False).evaluate(_Learner(), split, RunContext(), 0).metrics
    assert "nmi" not in RetrievalProtocol(nmi_max_samples=47).evaluate(_Learner(), split, RunContext(), 0).metrics
    assert "nmi" in RetrievalProtocol(nmi_max_samples=48).evaluate(_Learner(), split, RunContext(), 0).metrics


def test_protocol_rejects_a_query_class_without_gallery():
    roles = (torch.arange(48) % 2 == 0).long()
    roles[torch.arange(48) // 8 == 5] = 0  # class 5: queries only
    with pytest.raises(ValueError, match="no gallery sample"):
        RetrievalProtocol().check(_split(roles))
    with pytest.raises(ValueError, match="one role per test sample"):
        RetrievalProtocol().check(_split(torch.zeros(3, dtype=torch.long)))
