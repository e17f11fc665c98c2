"""benchmarks.api.evaluate: a learner object evaluated from Python gives the metrics the runner's record of the
same run holds."""
from functools import partial

import pytest
import torch

from benchmarks.api import evaluate
from benchmarks.run import execute
from methods.backbones import MLP
from methods.protonet import PrototypicalNetwork
from methods.raw import RawFeatures

FAST = ["budget.iterations=30", "budget.episodes=30", "threads=1"]


def _means(metrics: dict) -> dict:
    return {k: v["mean"] for k, v in metrics.items()}


@pytest.mark.parametrize("protocol", ["fewshot", "knn"])
def test_api_metrics_equal_the_runner_records(compose_cfg, protocol):
    record = execute(compose_cfg("method=raw", f"protocol={protocol}", *FAST))
    assert _means(evaluate(RawFeatures(), protocol=protocol, overrides=FAST)) == _means(record["metrics"])

    def protonet(input_shape):  # built after the run's seed is set, as the runner builds it: the same weights
        return PrototypicalNetwork(backbone=MLP(input_shape, hidden=[256], out_features=64), iterations=30, n_way=5,
                                   k_shot=5, n_query=5, optimizer=partial(torch.optim.Adam, lr=1e-3))
    record = execute(compose_cfg("method=protonet", f"protocol={protocol}", "fit_cache=false", *FAST))
    got = evaluate(protonet, protocol=protocol, overrides=FAST)
    assert got.keys() == record["metrics"].keys()
    for name, metric in got.items():
        assert metric == pytest.approx(record["metrics"][name]), name


def test_api_refuses_what_the_runner_refuses():
    with pytest.raises(Exception, match="10-way episodes need 10 classes"):
        evaluate(RawFeatures(), protocol="fewshot", overrides=["protocol.evaluator.n_way=10", *FAST])
