"""Every conf/method/*.yaml: instantiate, fit on a tiny data set, embed, adapt, score; on vectors (MLP) and
images (Conv-4)."""
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from pytorch_metric_learning.distances import BaseDistance

from helpers import blobs, tiny_images
from methods.base import RunContext, embed_all

METHODS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "conf" / "method").glob("*.yaml"))


def test_every_method_is_listed():
    assert {"raw", "untrained", "protonet", "triplet", "lmnn", "lmnn_backbone", "matching", "matching_fce",
            "cosine", "mmc", "mmc_diag", "contrastive"} <= set(METHODS)


def images():
    return tiny_images(per_class=25)  # Set2Model's default problems take 25 samples of a training class


@pytest.mark.parametrize("backbone,make", [("mlp", blobs), ("conv4", images)])
@pytest.mark.parametrize("method", METHODS)
def test_contract(compose_cfg, method, backbone, make):
    cfg = compose_cfg(f"method={method}", f"backbone={backbone}", "budget.iterations=3")
    data = make()
    cfg.backbone.input_shape = list(data.input_shape)
    learner = instantiate(cfg.method.learner)
    assert isinstance(learner.distance, BaseDistance)
    learner.check(data)
    torch.manual_seed(0)
    report = learner.fit(data, RunContext(progress=False))
    assert 0 <= report.iterations <= 3  # 0: nothing to train; < 3: converged early (MMC)
    emb = embed_all(learner, data.x)
    assert emb.ndim == 2 and emb.shape[0] == len(data) and torch.isfinite(emb).all()
    n_way, k = 4, 2
    support = torch.cat([torch.nonzero(data.y == c).flatten()[:k] for c in range(n_way)])
    query = torch.cat([torch.nonzero(data.y == c).flatten()[k:k + 3] for c in range(n_way)])
    scorer = learner.adapt(emb[support], torch.arange(n_way).repeat_interleave(k))
    scores = scorer.score(emb[query])
    assert scores.shape == (len(query), n_way) and torch.isfinite(scores).all()
    # adapt leaves no hidden state: a second, different episode gives its own scorer, the first is unchanged
    before = scorer.score(emb[query]).clone()
    learner.adapt(emb[query[:n_way]], torch.arange(n_way))
    assert torch.equal(scorer.score(emb[query]), before)
    # batched scoring, where a learner offers it, is the per-episode adapt + score, episode by episode
    batched = getattr(learner, "score_episodes", None)
    if batched is not None:
        support_y = torch.arange(n_way).repeat_interleave(k)
        other = torch.cat([torch.nonzero(data.y == c).flatten()[-k:] for c in range(n_way)])
        supports, queries = torch.stack([emb[support], emb[other]]), torch.stack([emb[query], emb[query].flip(0)])
        together = batched(supports, support_y, queries)
        one_by_one = torch.stack([learner.adapt(s, support_y).score(q) for s, q in zip(supports, queries)])
        torch.testing.assert_close(together, one_by_one, rtol=1e-5, atol=1e-5)
        assert torch.equal(together.argmax(2), one_by_one.argmax(2))
