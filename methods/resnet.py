"""torchvision ResNet backbones (``conf/backbone/resnet18.yaml``, ``resnet50.yaml``) as deep-metric-learning
papers use them: the ImageNet classifier head removed, global pooling, an optional linear embedding, and
frozen BatchNorm.

- ``depth`` picks the torchvision constructor (18, 34, 50, 101 or 152; the yamls give 18 and 50).
- ``weights_path``: ``null`` keeps torchvision's random initialisation (seeded by the run), or the path of
  a torchvision ImageNet state_dict file (e.g. ``resnet50-11ad3fa6.pth``, ``resnet18-f37072fd.pth``), loaded
  strictly into the trunk at construction; its ``fc.*`` keys are ignored. Nothing is downloaded.
- ``pooling``: ``avg`` (torchvision's own global average pooling), ``max``, or ``avg+max``, the sum of the
  global average and the global max of the last feature map, as Proxy Anchor (Kim et al. 2020) and
  the "double" ResNet-50s of Roth et al.'s "Revisiting training strategies" (2020) code do.
- ``embedding_dim``: ``null`` gives the pooled trunk features (512 for ResNet-18/34, 2048 for 50/101/152);
  a number adds a linear projection to that size (papers: 128 or 512). ``out_features`` follows it.
- ``freeze_bn``: every BatchNorm layer stays in eval mode, using and never updating its running statistics,
  even after ``.train()`` (which is overridden, so a learner cannot unfreeze it); ``freeze_bn_affine``
  (``null``: the same as ``freeze_bn``) also takes BatchNorm's scale and shift out of training
  (``requires_grad=False``). Both are how DML papers fine-tune ImageNet ResNets with small batches.

Inputs are (n, C, H, W) with C = 1 or 3; one channel (Fashion-MNIST, Omniglot) is repeated to three. The
papers feed 224x224 crops normalised with ImageNet's channel statistics; small images work too (the
stride-32 trunk turns 28x28 or 32x32 into a 1x1 map, which global pooling takes as it is), but ImageNet
weights are not expected to help much at that size.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Literal, Sequence, get_args

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from methods.bounds import Count

# depth -> torchvision constructor, and the layout a state_dict of that depth has (bottleneck blocks?,
# blocks in layer1..layer4), used only to name the depth of a file that does not fit.
_BUILDERS = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50, 101: tvm.resnet101, 152: tvm.resnet152}
_LAYOUTS = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)), 50: (True, (3, 4, 6, 3)),
            101: (True, (3, 4, 23, 3)), 152: (True, (3, 8, 36, 3))}
Depth = Literal[18, 34, 50, 101, 152]
assert set(get_args(Depth)) == set(_BUILDERS)
Pooling = Literal["avg", "max", "avg+max"]
_POOLINGS = get_args(Pooling)


class WeightsFileError(ValueError):
    """A weights file that cannot be read, or that holds the weights of another network."""


class ResNet(nn.Module):
    """A torchvision ResNet trunk -> global pooling -> optional linear embedding (see the module docstring)."""

    def __init__(self, input_shape: Sequence[int], depth: Depth = 18, weights_path: str | None = None,
                 pooling: Pooling = "avg", embedding_dim: Count | None = None, freeze_bn: bool = True,
                 freeze_bn_affine: bool | None = None) -> None:
        super().__init__()
        if len(input_shape) != 3 or input_shape[0] not in (1, 3):
            raise ValueError(
                f"ResNet needs images with 1 or 3 channels (channels, height, width) but the data has shape "
                f"{tuple(input_shape)}; use backbone=mlp for vector data"
            )
        if depth not in _BUILDERS:
            raise ValueError(f"backbone.depth={depth}: torchvision has ResNets of depth {sorted(_BUILDERS)}")
        if pooling not in _POOLINGS:
            raise ValueError(f"backbone.pooling={pooling!r}: choose one of {', '.join(_POOLINGS)}")
        net = _BUILDERS[depth](weights=None)
        width = net.fc.in_features
        # the children up to layer4, under torchvision's names, so the trunk's state_dict keys are the file's
        self.trunk = nn.Sequential(OrderedDict(
            (name, child) for name, child in net.named_children() if name not in ("avgpool", "fc")))
        if weights_path is not None:
            load_trunk_weights(self.trunk, weights_path, depth)
        self.embedding = nn.Identity() if embedding_dim is None else nn.Linear(width, embedding_dim)
        self.out_features = width if embedding_dim is None else embedding_dim
        self.depth, self.weights_path, self.pooling = depth, weights_path, pooling
        self.in_channels = input_shape[0]
        self.freeze_bn = freeze_bn
        self.freeze_bn_affine = freeze_bn if freeze_bn_affine is None else freeze_bn_affine
        if self.freeze_bn_affine:
            for bn in self.batchnorms():
                bn.requires_grad_(False)
        self.train()

    def batchnorms(self) -> list[_BatchNorm]:
        return [m for m in self.modules() if isinstance(m, _BatchNorm)]

    def train(self, mode: bool = True) -> "ResNet":
        """As ``nn.Module.train``, except that with ``freeze_bn`` the BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self.freeze_bn:
            for bn in self.batchnorms():
                bn.eval()
        return self

    def pool(self, features: Tensor) -> Tensor:
        avg = F.adaptive_avg_pool2d(features, 1).flatten(1)
        if self.pooling == "avg":
            return avg
        top = F.adaptive_max_pool2d(features, 1).flatten(1)
        return top if self.pooling == "max" else avg + top

    def forward(self, x: Tensor) -> Tensor:
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.embedding(self.pool(self.trunk(x)))

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, weights_path={self.weights_path!r}, pooling={self.pooling!r}, "
                f"freeze_bn={self.freeze_bn}, freeze_bn_affine={self.freeze_bn_affine}")


def load_trunk_weights(trunk: nn.Module, weights_path: str | Path, depth: int) -> None:
    """Load a torchvision ResNet state_dict file into ``trunk`` strictly (the ``fc.*`` head keys dropped);
    a missing file, an unreadable one, or one of another architecture raises an error naming the file."""
    path = Path(weights_path).expanduser()
    fix = (f"put torchvision's ImageNet ResNet-{depth} state_dict file there (nothing is downloaded), "
           "or set backbone.weights_path=null for a random initialisation")
    if not path.is_file():
        raise FileNotFoundError(f"ResNet-{depth} weights file {path} does not exist; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsFileError(
            f"ResNet-{depth} weights file {path} cannot be read as a torch state_dict ({type(exc).__name__}): "
            "it is damaged, not a .pth file, or a whole pickled model (save model.state_dict() instead); "
            f"{fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsFileError(
            f"ResNet-{depth} weights file {path} holds a {type(state).__name__}, not a state_dict of tensors "
            f"(a training checkpoint? save its model's state_dict()); {fix}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    problems = _mismatch(trunk.state_dict(), state)
    if problems:
        found = _guess_depth(state)
        if found is None:
            what, hint = "does not hold a torchvision ResNet", ""
        elif found == depth:
            what, hint = f"holds a modified ResNet-{depth}", ""
        else:
            what, hint = f"holds a ResNet-{found}", f"set backbone.depth={found}, or "
        raise WeightsFileError(
            f"weights file {path} does not fit a ResNet-{depth}: it {what} ({problems}); "
            f"{hint}give torchvision's ResNet-{depth} file, or set backbone.weights_path=null")
    trunk.load_state_dict(state, strict=True)


def _mismatch(expected: dict, state: dict) -> str:
    """What keeps ``state`` from loading strictly where ``expected`` is wanted, in words ("" if nothing)."""
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    # files saved before torch 0.4 lack BatchNorm's step counters, which load_state_dict fills in itself
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    parts = [f"{len(missing)} keys missing: {some(missing)}" if missing else "",
             f"{len(unexpected)} unexpected keys: {some(unexpected)}" if unexpected else "",
             f"shapes differ: {some(shapes)}" if shapes else ""]
    return "; ".join(p for p in parts if p)


def _guess_depth(state: dict) -> int | None:
    """The ResNet depth whose layout ``state``'s keys have, or None."""
    def blocks_in(layer: str) -> int:
        found = [int(k.split(".")[1]) for k in state if k.startswith(layer + ".") and k.split(".")[1].isdigit()]
        return 1 + max(found, default=-1)
    blocks = tuple(blocks_in(f"layer{i}") for i in range(1, 5))
    bottleneck = any(".conv3." in k for k in state)
    return next((d for d, layout in _LAYOUTS.items() if layout == (bottleneck, blocks)), None)
