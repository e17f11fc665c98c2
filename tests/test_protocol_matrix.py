"""Every learner (every conf/method/*.yaml) under every protocol of the digits leaderboard, through the
runner, at a tiny budget: each run ends ok with every metric of its protocol in [0, 1]."""
from pathlib import Path

import pytest

from benchmarks.run import build, execute

ROOT = Path(__file__).resolve().parent.parent
METHODS = sorted(p.stem for p in (ROOT / "conf" / "method").glob("*.yaml"))
PROTOCOLS = {"fewshot": {"acc_5w1s", "acc_5w5s"}, "retrieval": {"p_at_1", "map_at_r", "nmi"},
             "verification": {"auc", "eer"}, "knn": {"knn_error"},
             "set_retrieval": {"map_rho0", "map_rho25", "map_rho50", "map_poly_rho0", "map_poly_rho50"}}


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("method", METHODS)
def test_method_under_protocol(compose_cfg, method, protocol):
    cfg = compose_cfg(f"method={method}", f"protocol={protocol}", "budget.iterations=15", "budget.episodes=20",
                      "study=matrix")
    record = execute(cfg)
    assert record["status"] == "ok"
    assert PROTOCOLS[protocol] <= set(record["metrics"])
    # the names an objective is checked against before training are the names evaluation reports
    assert sorted(build(cfg.protocol.evaluator).metric_names()) == sorted(record["metrics"])
    assert all(0.0 <= m["mean"] <= 1.0 for m in record["metrics"].values())
