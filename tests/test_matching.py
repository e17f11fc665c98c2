"""Matching networks: the attention over cosine similarities against a brute-force loop, the full context
embeddings' shapes and order behaviour, and training on a toy problem."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from datasets.episodes import sample_episodes
from helpers import blobs
from methods.backbones import MLP
from methods.base import RunContext, embed_all
from methods.matching import FullContextEmbedding, MatchingNetwork, attention_log_probs


def _learner(fce: bool, dim: int = 8, **kw) -> MatchingNetwork:
    torch.manual_seed(0)
    backbone = MLP((dim,), hidden=(16,), out_features=6)
    return MatchingNetwork(backbone, partial(torch.optim.Adam, lr=1e-2), iterations=kw.pop("iterations", 0),
                           fce=fce, **kw)


def _brute_force(query, support, support_y, n_way, scale=1.0):
    """P(y=c | x̂, S) = Σ_{i: y_i=c} exp(s cos(x̂, x_i)) / Σ_j exp(s cos(x̂, x_j)), one number at a time."""
    out = torch.zeros(len(query), n_way, dtype=torch.float64)
    for q in range(len(query)):
        weights = []
        for i in range(len(support)):
            a, b = query[q].double(), support[i].double()
            weights.append(math.exp(scale * float(a @ b / (a.norm() * b.norm()))))
        total = sum(weights)
        for i, w in enumerate(weights):
            out[q, int(support_y[i])] += w / total
    return out


@pytest.mark.parametrize("scale", [1.0, 7.5])
def test_attention_equals_brute_force(scale):
    gen = torch.Generator().manual_seed(1)
    support, query = torch.randn(10, 5, generator=gen), torch.randn(7, 5, generator=gen)
    support_y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3, 3])
    log_p = attention_log_probs(query, support, support_y, 4, scale)
    assert log_p.shape == (7, 4)
    torch.testing.assert_close(log_p.exp().double(), _brute_force(query, support, support_y, 4, scale),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(7))


def test_scorer_without_fce_is_attention_on_backbone_embeddings():
    learner = _learner(fce=False)
    gen = torch.Generator().manual_seed(2)
    support, query = torch.randn(6, 6, generator=gen), torch.randn(4, 6, generator=gen)
    support_y = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = learner.adapt(support, support_y).score(query)
    torch.testing.assert_close(scores.exp().double(), _brute_force(query, support, support_y, 3), atol=1e-6, rtol=1e-5)


def test_a_class_without_support_gets_probability_zero():
    log_p = attention_log_probs(torch.randn(3, 4), torch.randn(4, 4), torch.tensor([0, 0, 2, 2]), 3)
    assert torch.isneginf(log_p[:, 1]).all() and torch.isfinite(log_p[:, [0, 2]]).all()


def test_fce_shapes_and_skip_connections():
    fce = FullContextEmbedding(6, steps=3)
    support, query = torch.randn(10, 6), torch.randn(4, 6)
    g = fce.encode_support(support)
    assert g.shape == (10, 6)
    f = fce.encode_query(query, g)
    assert f.shape == (4, 6)
    # with the LSTM weights at zero, the LSTMs output zeros and only the skip connections are left
    for p in fce.parameters():
        torch.nn.init.zeros_(p)
    torch.testing.assert_close(fce.encode_support(support), support)
    torch.testing.assert_close(fce.encode_query(query, support), query)
    with pytest.raises(ValueError, match="5-d"):
        FullContextEmbedding(5).encode_support(support)


def test_fce_steps_default_to_the_support_size():
    fce = FullContextEmbedding(4)
    calls = []
    fce.query_cell.register_forward_hook(lambda *a: calls.append(1))
    fce.encode_query(torch.randn(2, 4), torch.randn(7, 4))
    assert len(calls) == 7


def test_permutations():
    gen = torch.Generator().manual_seed(3)
    support, query = torch.randn(8, 6, generator=gen), torch.randn(5, 6, generator=gen)
    support_y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    perm_s = torch.randperm(8, generator=gen)
    perm_q = torch.randperm(5, generator=gen)
    plain, fce = _learner(fce=False), _learner(fce=True)
    for learner in (plain, fce):
        base = learner.adapt(support, support_y).score(query)
        # queries are scored independently of one another: permuting them permutes the rows
        torch.testing.assert_close(learner.adapt(support, support_y).score(query[perm_q]), base[perm_q])
    # without FCE the support set is a set: its order does not matter
    torch.testing.assert_close(plain.adapt(support[perm_s], support_y[perm_s]).score(query),
                               plain.adapt(support, support_y).score(query))
    # with FCE the bidirectional LSTM reads the support set in order (the paper's caveat): order matters
    with torch.no_grad():
        a = fce.adapt(support, support_y).score(query)
        b = fce.adapt(support[perm_s], support_y[perm_s]).score(query)
    assert not torch.allclose(a, b)
    # relabelling the classes permutes the columns, in both variants
    relabel = torch.tensor([2, 0, 3, 1])
    for learner in (plain, fce):
        with torch.no_grad():
            base = learner.adapt(support, support_y).score(query)
            moved = learner.adapt(support, relabel[support_y]).score(query)
        torch.testing.assert_close(moved[:, relabel], base)


def _episode_loss(learner, data, episodes):
    """Mean NLL of the queries over fixed episodes, in eval mode."""
    emb = embed_all(learner, data.x)
    losses = []
    with torch.no_grad():
        for e in range(episodes.n_episodes):
            sy = torch.arange(episodes.n_way).repeat_interleave(episodes.k_shot)
            qy = torch.arange(episodes.n_way).repeat_interleave(episodes.n_query)
            scores = learner.adapt(emb[episodes.support[e].flatten()], sy).score(emb[episodes.query[e].flatten()])
            losses.append(F.nll_loss(scores, qy))
    return float(torch.stack(losses).mean())


@pytest.mark.parametrize("fce", [False, True])
def test_training_reduces_the_episode_loss(fce):
    data = blobs(n_classes=6, per_class=20, dim=8, spread=1.0)
    episodes = sample_episodes(data.y, 3, 2, 4, 20, seed=11)
    learner = _learner(fce=fce, iterations=60, n_way=3, k_shot=2, n_query=4, scale=5.0)
    before = _episode_loss(learner, data, episodes)
    report = learner.fit(data, RunContext(progress=False, seed=0))
    after = _episode_loss(learner, data, episodes)
    assert report.iterations == 60 and report.notes["fce"] is fce and report.notes["train_way"] == 3
    assert after < 0.8 * before, (before, after)


def test_fce_needs_the_backbone_width():
    with pytest.raises(ValueError, match="feature_dim"):
        MatchingNetwork(torch.nn.Identity(), partial(torch.optim.Adam), 1, fce=True)
    assert MatchingNetwork(torch.nn.Identity(), partial(torch.optim.Adam), 1, fce=True, feature_dim=4).fce.dim == 4
