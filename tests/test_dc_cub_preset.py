"""The paper preset for divide and conquer on CUB runs end to end on a tiny CUB copy in the published
layout (ResNet-18 in place of ResNet-50 and a few steps, to stay fast)."""
import pytest

from benchmarks.run import execute
from test_dml_datasets import E2E_CLASSES, write_cub


@pytest.mark.parametrize("method", ["divide_conquer", "divide_conquer_masks"])
def test_dc_cub_preset_on_a_tiny_cub(compose_cfg, tmp_path, method):
    write_cub(tmp_path / "data", classes=E2E_CLASSES, per_class=6)
    cfg = compose_cfg("experiment=dc_cub", f"method={method}", f"data_root={tmp_path / 'data'}", "backbone=resnet18",
                      "budget.iterations=4", "method.learner.n_learners=2", "method.learner.m_per_class=2",
                      "dataset.source.workers=0", "dataset.source.transform.resize=36",
                      "dataset.source.transform.crop=32", "progress=false")
    assert cfg.method.learner.optimizer.lr == 1e-5 and cfg.protocol.name == "retrieval_published"
    record = execute(cfg)
    assert record["status"] == "ok" and record["method"] == ("dc_k2" if method == "divide_conquer" else "dc_masks_k2")
    assert record["split"]["kind"] == "published" and record["split"]["test_classes"] == [4, 5, 6, 7]
    assert record["fit"]["notes"]["n_learners"] == 2
    assert {"p_at_1", "map_at_r", "recall_at_8", "nmi"} <= set(record["metrics"])
