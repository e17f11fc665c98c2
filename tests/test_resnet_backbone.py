"""The torchvision ResNet backbones (methods/resnet.py): shapes, one-channel inputs, frozen BatchNorm through
a learner's training step and the fit cache, ImageNet-style weights from a local file and its errors, and a
run through the runner with backbone=resnet18."""
from pathlib import Path

import pytest
import torch
import torchvision
from hydra.utils import instantiate

from benchmarks.fit_cache import FitCache
from benchmarks.records import RECORD_NAME, read_record
from benchmarks.run import execute
from datasets.labeled import LabeledData
from helpers import blobs
from methods.base import RunContext, embed_all
from methods.resnet import ResNet, WeightsFileError

SHAPE = (3, 32, 32)


def rgb_images(n_classes: int = 4, per_class: int = 8) -> LabeledData:
    data = blobs(n_classes, per_class, dim=3 * 32 * 32)
    return LabeledData(x=data.x.view(-1, *SHAPE), y=data.y, classes=data.classes, name="rgb")


def bn_state(backbone: ResNet) -> dict[str, torch.Tensor]:
    """Running statistics and affine parameters of every BatchNorm layer, copied."""
    return {f"{name}.{key}": value.detach().clone()
            for name, bn in backbone.named_modules() if isinstance(bn, torch.nn.BatchNorm2d)
            for key, value in (("running_mean", bn.running_mean), ("running_var", bn.running_var),
                               ("weight", bn.weight), ("bias", bn.bias))}


def conv_state(backbone: ResNet) -> dict[str, torch.Tensor]:
    return {name: m.weight.detach().clone() for name, m in backbone.named_modules() if isinstance(m, torch.nn.Conv2d)}


@pytest.mark.parametrize("depth,width", [(18, 512), (50, 2048)])
@pytest.mark.parametrize("embedding_dim", [None, 16])
def test_output_shape(depth, width, embedding_dim):
    net = ResNet(SHAPE, depth=depth, embedding_dim=embedding_dim)
    expected = width if embedding_dim is None else embedding_dim
    assert net.out_features == expected
    assert net(torch.randn(2, *SHAPE)).shape == (2, expected)


@pytest.mark.parametrize("name,width", [("resnet18", 512), ("resnet50", 2048)])
def test_yaml_defaults(compose_cfg, name, width):
    cfg = compose_cfg(f"backbone={name}", "backbone.embedding_dim=128")
    cfg.backbone.input_shape = [1, 28, 28]
    net = instantiate(cfg.backbone)
    assert isinstance(net, ResNet) and net.depth == int(name[6:]) and net.weights_path is None
    assert net.freeze_bn and net.freeze_bn_affine and net.pooling == "avg"
    assert net.embedding.in_features == width and net.out_features == 128


def test_pooling_is_avg_max_or_their_sum():
    torch.manual_seed(0)
    nets = {p: ResNet((3, 64, 64), pooling=p) for p in ("avg", "max", "avg+max")}
    for net in nets.values():
        net.load_state_dict(nets["avg"].state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fmap = nets["avg"].trunk(x)  # 2x2 at this size: max and mean differ
        torch.testing.assert_close(nets["avg"](x), fmap.mean((2, 3)))
        torch.testing.assert_close(nets["max"](x), fmap.amax((2, 3)))
        torch.testing.assert_close(nets["avg+max"](x), fmap.mean((2, 3)) + fmap.amax((2, 3)))


def test_one_channel_is_repeated_to_three():
    torch.manual_seed(0)
    grey = ResNet((1, 28, 28))
    torch.manual_seed(0)
    colour = ResNet((3, 28, 28))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), colour(x.repeat(1, 3, 1, 1)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_shape=(64,)), "use backbone=mlp"),
    (dict(input_shape=(4, 32, 32)), "1 or 3 channels"),
    (dict(input_shape=SHAPE, depth=20), "ResNets of depth"),
    (dict(input_shape=SHAPE, pooling="mean"), "avg, max, avg\\+max"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet(**kwargs)


def _contrastive_learner(compose_cfg, *overrides):
    cfg = compose_cfg("method=contrastive", "backbone=resnet18", "budget.iterations=1",
                      "method.learner.miner=null", *overrides)  # random pairs: every step has a loss
    cfg.backbone.input_shape = list(SHAPE)
    return instantiate(cfg.method.learner)


def test_frozen_batchnorm_survives_train_and_a_training_step(compose_cfg):
    learner = _contrastive_learner(compose_cfg)
    backbone = learner.encoder
    assert isinstance(backbone, ResNet) and backbone.freeze_bn and backbone.freeze_bn_affine
    bn_before, conv_before = bn_state(backbone), conv_state(backbone)
    learner.train()
    assert backbone.training and not any(bn.training for bn in backbone.batchnorms())
    assert not any(p.requires_grad for bn in backbone.batchnorms() for p in bn.parameters())
    torch.manual_seed(0)
    report = learner.fit(rgb_images(), RunContext(progress=False))  # calls .train() itself
    assert report.iterations == 1 and learner.training
    assert not any(bn.training for bn in backbone.batchnorms())
    for key, value in bn_state(backbone).items():
        assert torch.equal(value, bn_before[key]), key
    assert all(not torch.equal(w, conv_before[name]) for name, w in conv_state(backbone).items())


def test_unfrozen_batchnorm_trains(compose_cfg):
    learner = _contrastive_learner(compose_cfg, "backbone.freeze_bn=false")
    backbone = learner.encoder
    assert not backbone.freeze_bn and not backbone.freeze_bn_affine  # null follows freeze_bn
    before = bn_state(backbone)
    torch.manual_seed(0)
    learner.fit(rgb_images(), RunContext(progress=False))
    assert all(bn.training for bn in backbone.batchnorms())
    for key, value in bn_state(backbone).items():
        assert not torch.equal(value, before[key]), key


def test_affine_can_train_while_statistics_stay_frozen(compose_cfg):
    learner = _contrastive_learner(compose_cfg, "backbone.freeze_bn_affine=false")
    before = bn_state(learner.encoder)
    torch.manual_seed(0)
    learner.fit(rgb_images(), RunContext(progress=False))
    after = bn_state(learner.encoder)
    for key in before:
        assert torch.equal(after[key], before[key]) == ("running" in key), key


def test_fit_cache_round_trip_keeps_batchnorm_frozen(compose_cfg, tmp_path):
    learner = _contrastive_learner(compose_cfg)
    data = rgb_images()
    torch.manual_seed(0)
    learner.fit(data, RunContext(progress=False))
    cache = FitCache(tmp_path)
    cache.store("k", learner, {"iterations": 1}, 0.1)
    loaded, _, _ = cache.load("k", torch.device("cpu"))
    assert loaded.encoder.freeze_bn and loaded.encoder.freeze_bn_affine
    loaded.train()
    assert not any(bn.training for bn in loaded.encoder.batchnorms())
    assert not any(p.requires_grad for bn in loaded.encoder.batchnorms() for p in bn.parameters())
    torch.testing.assert_close(embed_all(loaded, data.x), embed_all(learner, data.x), rtol=0, atol=0)
    x = data.x[:16]  # in train mode too: frozen statistics, so the same as eval
    torch.testing.assert_close(loaded.embed(x), learner.eval().embed(x), rtol=0, atol=0)


@pytest.fixture
def resnet18_file(tmp_path):
    """A torchvision ResNet-18 with a known seed and non-default BatchNorm statistics, saved as torchvision
    saves its ImageNet files (a plain state_dict, fc included)."""
    torch.manual_seed(123)
    model = torchvision.models.resnet18()
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def test_weights_are_loaded_from_the_file(resnet18_file):
    path, model = resnet18_file
    torch.manual_seed(999)  # another initialisation: everything must come from the file
    net = ResNet(SHAPE, depth=18, weights_path=str(path))
    saved = model.state_dict()
    trunk = net.trunk.state_dict()
    assert set(trunk) == {k for k in saved if not k.startswith("fc.")}
    for key, value in trunk.items():
        assert torch.equal(value, saved[key]), key
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        model.fc = torch.nn.Identity()
        expected = model(x)  # torchvision's own pooled features
        torch.testing.assert_close(net.eval()(x), expected)
        torch.testing.assert_close(net.train()(x), expected)  # frozen BN: running statistics in train mode too


def test_file_without_batchnorm_counters_loads(resnet18_file, tmp_path):
    path, model = resnet18_file
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    net = ResNet(SHAPE, depth=18, weights_path=str(tmp_path / "old.pth"))
    assert torch.equal(net.trunk.conv1.weight, model.conv1.weight)


def test_missing_weights_file(tmp_path):
    path = tmp_path / "resnet50-11ad3fa6.pth"
    with pytest.raises(FileNotFoundError, match=f"{path} does not exist.*weights_path=null"):
        ResNet(SHAPE, depth=50, weights_path=str(path))


def test_unreadable_weights_file(tmp_path):
    path = tmp_path / "resnet18.pth"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(WeightsFileError, match=f"{path} cannot be read as a torch state_dict.*weights_path=null"):
        ResNet(SHAPE, weights_path=str(path))
    torch.save({"epoch": 3, "state_dict": {}}, path)
    with pytest.raises(WeightsFileError, match="not a state_dict of tensors"):
        ResNet(SHAPE, weights_path=str(path))


def test_weights_of_another_architecture(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(WeightsFileError, match=f"{path} does not fit a ResNet-50: it holds a ResNet-18 .*"
                                               "set backbone.depth=18"):
        ResNet(SHAPE, depth=50, weights_path=str(path))
    changed = torch.load(path)
    changed["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    torch.save(changed, path)
    with pytest.raises(WeightsFileError, match=r"modified ResNet-18 \(shapes differ: conv1.weight"):
        ResNet(SHAPE, depth=18, weights_path=str(path))


RUN = ["dataset.source._target_=helpers.tiny_images", "backbone=resnet18", "method=triplet",
       "budget.iterations=2", "budget.episodes=10", "study=resnet"]


def test_bad_weights_path_fails_the_run_before_training(compose_cfg, tmp_path):
    cfg = compose_cfg(*RUN, "protocol=retrieval", f"backbone.weights_path={tmp_path / 'absent.pth'}")
    with pytest.raises(FileNotFoundError, match="absent.pth does not exist"):
        execute(cfg)
    record = read_record(Path(cfg.run_dir) / RECORD_NAME)
    assert record["status"] == "failed" and "fit_s" not in record["timings"]


def test_run_with_resnet18_and_the_fit_cache(compose_cfg):
    first = execute(compose_cfg(*RUN, "protocol=retrieval"))  # 1x28x28 images, 3 training classes
    assert first["status"] == "ok" and first["config"]["backbone"]["depth"] == 18
    assert first["fit"]["iterations"] == 2 and first["fit_cache"]["loaded"] is False
    assert all(0.0 <= m["mean"] <= 1.0 for m in first["metrics"].values())
    # the verification run loads that fit (the loaded learner embeds exactly as the fitted one: see the
    # round-trip test above)
    # (36 test images give 432 different-class pairs: a FAR of 1e-3 would be refused as unresolved)
    cached = execute(compose_cfg(*RUN, "protocol=verification", "protocol.evaluator.fars=[1e-2]"))
    assert cached["status"] == "ok" and cached["fit"] == first["fit"]
    assert cached["fit_cache"] == {"key": first["fit_cache"]["key"], "loaded": True}
