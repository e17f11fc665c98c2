"""precision=bf16: the training forward passes run under bfloat16 autocast (on the CPU here, on CUDA where
there is one); the numbers stay close to float32's; bf16 fits are cached apart from fp32 ones."""
import pytest
import torch

from benchmarks.fit_cache import fit_key
from benchmarks.run import execute
from methods.base import RunContext
from methods.training import optimise


def test_an_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision='fp16' is not one of fp32, bf16"):
        RunContext(precision="fp16")


def test_bf16_runs_the_forward_pass_in_bfloat16_and_fp32_does_not():
    seen = []
    layer = torch.nn.Linear(8, 4)
    layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    x = torch.randn(16, 8)
    for precision in ("fp32", "bf16"):
        optimise(lambda step: layer(x).pow(2).mean(), layer.parameters(),
                 lambda p: torch.optim.SGD(p, lr=0.1), 2, RunContext(progress=False, precision=precision), "t")
    assert seen == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]
    assert layer.weight.dtype == torch.float32  # autocast leaves the parameters (and evaluation) in float32


@pytest.mark.parametrize("method", ["triplet", "protonet", "sdn"])
def test_a_bf16_run_trains_differently_but_scores_close_to_fp32(compose_cfg, method):
    common = [f"method={method}", "protocol=knn", "budget.iterations=100", "threads=1", "fit_cache=false"]
    fp32 = execute(compose_cfg(*common, "study=fp32"))
    bf16 = execute(compose_cfg(*common, "study=bf16", "precision=bf16"))
    assert fp32["status"] == bf16["status"] == "ok"
    assert bf16["config"]["precision"] == "bf16" and "precision" not in fp32["config"]
    assert fp32["fit"]["loss_curve"] != bf16["fit"]["loss_curve"]  # the option does change the arithmetic
    a, b = fp32["metrics"]["knn_error"]["mean"], bf16["metrics"]["knn_error"]["mean"]
    assert abs(a - b) <= 0.05, (a, b)


def test_bf16_and_fp32_fits_have_different_cache_keys():
    parts = {"method": {"name": "triplet"}, "backbone": None, "budget": {"iterations": 1}, "dataset": {"name": "d"},
             "seed": 0, "train_index_sha": "x", "device_kind": "cpu", "threads": 1}
    assert fit_key(**parts) == fit_key(**parts, precision="fp32") != fit_key(**parts, precision="bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a machine that has one)")
def test_on_a_gpu_the_numbers_match_the_cpu_within_tolerance(compose_cfg):
    common = ["method=protonet", "protocol=fewshot", "budget.iterations=100", "fit_cache=false", "threads=1"]
    cpu = execute(compose_cfg(*common, "study=cpu", "device=cpu"))
    gpu = execute(compose_cfg(*common, "study=gpu", "device=cuda"))
    assert gpu["device"].startswith("cuda")
    for name, metric in cpu["metrics"].items():
        assert abs(metric["mean"] - gpu["metrics"][name]["mean"]) <= 0.03, name
