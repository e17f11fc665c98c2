"""The few-shot protocol scores episodes in batches for learners with ``score_episodes``; the accuracies
are those of the one-episode-at-a-time loop."""
import dataclasses

import pytest
import torch

from benchmarks.protocols.fewshot import FewShotProtocol
from datasets.sklearn_sources import digits
from datasets.splits import ClassDisjointSplit
from methods.base import RunContext
from methods.raw import RawFeatures


class OneAtATime:
    """The same learner seen without its ``score_episodes``: the protocol falls back to adapt + score."""

    def __init__(self, learner):
        self.learner = learner

    def embed(self, x):
        return self.learner.embed(x)

    def adapt(self, support_emb, support_y):
        return self.learner.adapt(support_emb, support_y)


@pytest.mark.parametrize("per_batch", [1, 7, 32, 1000])
def test_batched_accuracies_equal_the_episode_loop(per_batch):
    split = ClassDisjointSplit()(digits(), seed=0)
    protocol = FewShotProtocol(n_episodes=100, episodes_per_batch=per_batch)
    learner = RawFeatures()
    ctx = RunContext(progress=False)
    fast = protocol.evaluate(learner, split, ctx, data_seed=0)
    slow = protocol.evaluate(OneAtATime(learner), split, ctx, data_seed=0)
    assert fast.metrics == slow.metrics
    assert 0.3 < fast.metrics["acc_5w1s"].mean < 1.0


def test_a_scorer_of_the_wrong_shape_is_named():
    class WrongShape(RawFeatures):
        def score_episodes(self, support_emb, support_y, query_emb):
            return torch.zeros(len(query_emb), query_emb.shape[1], 3)

    split = ClassDisjointSplit()(digits(), seed=0)
    protocol = dataclasses.replace(FewShotProtocol(), n_episodes=4)
    with pytest.raises(ValueError, match=r"scorer returned shape \(75, 3\) per episode, expected \(75, 5\)"):
        protocol.evaluate(WrongShape(), split, RunContext(progress=False), data_seed=0)
