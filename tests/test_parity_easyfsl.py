"""Prototypical and matching networks against easyfsl 1.5.0 on identical episodes with the same frozen backbone.

Episodes: the project's sampler (``datasets.episodes.sample_episodes``) on scikit-learn's digits
(standardised), 5-way 1- and 5-shot, 15 queries per class. Backbone: a seeded random MLP (64 -> 64) or
Conv-4 (depth 3, 32 channels, on the 1x8x8 images), its batch-norm statistics set by one pass over the
data, then frozen in eval mode; one module object shared by both sides. This project
embeds every sample once (``embed_all``) and scores the embeddings (``adapt`` / ``score``); easyfsl gets the
raw support and query tensors (``process_support_set`` then ``forward``; its ``TaskSampler`` is not used, it
breaks on this torch, see ../shared/PEERS.md).

What is compared, exactly:

- Prototypical: easyfsl's scores are -||q - c_k|| (``torch.cdist``, not squared); this project's are
  -||q - c_k||² (the paper's squared Euclidean). We compare our scores with -(easyfsl score)², i.e. the
  squared distances to the same prototypes, the softmax over them, and the argmax.
- Matching, no FCE: easyfsl always runs its FCE modules (a bidirectional LSTM on the support features with
  a skip connection, an attention LSTM cell on the queries with a skip connection) and does *not*
  normalise the query features in its final similarity. With its own default modules whose weights and
  biases are all zero, both LSTMs output exactly zero (gates sigmoid(0) = 1/2, cell input tanh(0) = 0,
  cell state stays 0), so only the skip connections remain; with ``feature_normalization=2`` it
  normalises the backbone features of support and query, so its similarity is the cosine. Its output is
  then log(Σ_i softmax_i(cos) onehot(y_i) + 1e-6); ours is log Σ_i softmax_i(cos) onehot(y_i). We compare
  log(exp(ours) + 1e-6) with easyfsl's output, the probabilities exp(ours) with exp(easyfsl) - 1e-6, and
  the argmax.
- Matching, FCE: with the same LSTM weights (ours copied into easyfsl's default modules, no feature
  normalisation) the contextualised support embeddings g and query embeddings f are compared; the final
  scores are not, since easyfsl's similarity is f·ĝ (query not normalised) where the paper's, and
  ours, is cos(f, g).
"""
from functools import partial

import pytest
import torch

import easyfsl  # noqa: E402  (a test-only dependency: pip install -e ".[test]")
from easyfsl.methods import MatchingNetworks, PrototypicalNetworks  # noqa: E402

from datasets.episodes import sample_episodes  # noqa: E402
from datasets.labeled import Standardizer  # noqa: E402
from datasets.sklearn_sources import digits  # noqa: E402
from methods.backbones import MLP, Conv4  # noqa: E402
from methods.base import embed_all  # noqa: E402
from methods.matching import MatchingNetwork  # noqa: E402
from methods.protonet import PrototypicalNetwork  # noqa: E402

N_WAY, N_QUERY, N_EPISODES = 5, 15, 4
FIGURES: dict = {}


def _data(kind: str):
    data = digits()
    data = Standardizer.fit(data.x)(data)
    if kind == "conv4":
        data = data.with_inputs(data.x.view(-1, 1, 8, 8))
    return data


def _backbone(kind: str) -> torch.nn.Module:
    torch.manual_seed(123)
    net = MLP((64,), hidden=(128,), out_features=64) if kind == "mlp" else Conv4((1, 8, 8), channels=32, depth=3)
    # batch-norm statistics from one pass over the data (else a random Conv-4's features are tiny), then frozen
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: one pass sets the running statistics to the batch's
    with torch.no_grad():
        net.train()(_data(kind).x)
    return net.eval()


def _episodes(data, k_shot):
    """Yield (support_index, support_y, query_index, query_y) of a few episodes from the project's sampler."""
    eps = sample_episodes(data.y, N_WAY, k_shot, N_QUERY, N_EPISODES, seed=2024 + k_shot)
    for e in range(eps.n_episodes):
        yield (eps.support[e].flatten(), torch.arange(N_WAY).repeat_interleave(k_shot),
               eps.query[e].flatten(), torch.arange(N_WAY).repeat_interleave(N_QUERY))


def _record(name, value):
    FIGURES[name] = max(FIGURES.get(name, 0.0), float(value))
    print(f"{name}: max abs difference {FIGURES[name]:.3g}")


def _zero(module: torch.nn.Module) -> torch.nn.Module:
    for p in module.parameters():
        torch.nn.init.zeros_(p)
    return module


@pytest.mark.parametrize("kind", ["mlp", "conv4"])
@pytest.mark.parametrize("k_shot", [1, 5])
def test_prototypical_scores_equal_easyfsl(kind, k_shot):
    data, backbone = _data(kind), _backbone(kind)
    ours = PrototypicalNetwork(backbone, partial(torch.optim.Adam), iterations=0).eval()
    peer = PrototypicalNetworks(backbone).eval()
    emb = embed_all(ours, data.x)
    worst = 0.0
    with torch.no_grad():
        for s, sy, q, qy in _episodes(data, k_shot):
            mine = ours.adapt(emb[s], sy).score(emb[q])
            peer.process_support_set(data.x[s], sy)
            theirs = peer(data.x[q])
            assert mine.shape == theirs.shape == (len(qy), N_WAY)
            squared = -(theirs ** 2)
            torch.testing.assert_close(mine, squared, rtol=1e-5, atol=1e-5)
            assert torch.equal(mine.argmax(1), theirs.argmax(1))
            worst = max(worst, float((mine - squared).abs().max()))
            # the softmax over the scores (easyfsl's use_softmax on -d would differ: we compare distances)
            torch.testing.assert_close(mine.softmax(1), squared.softmax(1), rtol=1e-5, atol=1e-6)
    _record(f"protonet {kind} {k_shot}-shot squared distances (mean {float(squared.abs().mean()):.3g})", worst)


@pytest.mark.parametrize("kind", ["mlp", "conv4"])
@pytest.mark.parametrize("k_shot", [1, 5])
def test_matching_scores_equal_easyfsl_without_fce(kind, k_shot):
    data, backbone = _data(kind), _backbone(kind)
    ours = MatchingNetwork(backbone, partial(torch.optim.Adam), iterations=0, fce=False).eval()
    dim = ours.embed(data.x[:2]).shape[1]
    peer = MatchingNetworks(backbone, feature_dimension=dim, feature_normalization=2).eval()
    _zero(peer.support_features_encoder)
    _zero(peer.query_features_encoding_cell)
    emb = embed_all(ours, data.x)
    worst_log, worst_p = 0.0, 0.0
    with torch.no_grad():
        for s, sy, q, qy in _episodes(data, k_shot):
            mine = ours.adapt(emb[s], sy).score(emb[q])
            peer.process_support_set(data.x[s], sy)
            theirs = peer(data.x[q])
            assert mine.shape == theirs.shape == (len(qy), N_WAY)
            torch.testing.assert_close(torch.log(mine.exp() + 1e-6), theirs, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(mine.exp(), theirs.exp() - 1e-6, rtol=1e-5, atol=1e-6)
            assert torch.equal(mine.argmax(1), theirs.argmax(1))
            worst_log = max(worst_log, float((torch.log(mine.exp() + 1e-6) - theirs).abs().max()))
            worst_p = max(worst_p, float((mine.exp() - (theirs.exp() - 1e-6)).abs().max()))
    _record(f"matching {kind} {k_shot}-shot log-probs", worst_log)
    _record(f"matching {kind} {k_shot}-shot probabilities", worst_p)


@pytest.mark.parametrize("k_shot", [1, 5])
def test_full_context_embeddings_equal_easyfsl(k_shot):
    data, backbone = _data("mlp"), _backbone("mlp")
    torch.manual_seed(7)
    ours = MatchingNetwork(backbone, partial(torch.optim.Adam), iterations=0, fce=True).eval()
    peer = MatchingNetworks(backbone, feature_dimension=ours.fce.dim).eval()
    peer.support_features_encoder.load_state_dict(ours.fce.support_lstm.state_dict())
    peer.query_features_encoding_cell.load_state_dict(ours.fce.query_cell.state_dict())
    emb = embed_all(ours, data.x)
    worst_g, worst_f = 0.0, 0.0
    with torch.no_grad():
        for s, sy, q, qy in _episodes(data, k_shot):
            g = ours.fce.encode_support(emb[s])
            f = ours.fce.encode_query(emb[q], g)
            peer.process_support_set(data.x[s], sy)
            their_f = peer.encode_query_features(peer.compute_features(data.x[q]))
            torch.testing.assert_close(g, peer.contextualized_support_features, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(f, their_f, rtol=1e-5, atol=1e-5)
            worst_g = max(worst_g, float((g - peer.contextualized_support_features).abs().max()))
            worst_f = max(worst_f, float((f - their_f).abs().max()))
            # and the scorer uses exactly these embeddings
            scorer = ours.adapt(emb[s], sy)
            torch.testing.assert_close(scorer.support, g)
    _record(f"matching FCE mlp {k_shot}-shot support embeddings g", worst_g)
    _record(f"matching FCE mlp {k_shot}-shot query embeddings f", worst_f)
