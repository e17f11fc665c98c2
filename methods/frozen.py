"""Frozen feature extractors for the linear metric learners (LMNN, MMC).

A linear learner works either on the (flattened) inputs or on the features of a backbone that stays
frozen (at its seeded random initialisation, as the ``*_backbone`` configs use it). These helpers hold
the two pieces those learners share: freezing the extractor, and running it over a whole data set in
batches on the learner's device.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from datasets.image_files import without_augmentation
from methods.base import EmbeddingLearner, embed_all, euclidean


WIDE_RAW_INPUT = 1024  # a linear metric on more raw input features than this warns before it fits (d x d)


def frozen_features(features: nn.Module | None) -> nn.Module:
    """``features`` with its parameters frozen, or a plain ``Flatten`` (the raw inputs) when it is None."""
    module = features if features is not None else nn.Flatten()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class FrozenView(nn.Module):
    """Adapter so ``methods.base.embed_all`` runs only a learner's frozen feature extractor.

    ``learner`` needs a ``_features(x)`` method (the extractor in eval mode, flattened) and a ``device``.
    """

    def __init__(self, learner: nn.Module) -> None:
        super().__init__()
        self.learner = learner

    @property
    def device(self) -> torch.device:
        return self.learner.device

    def embed(self, x: Tensor) -> Tensor:
        return self.learner._features(x)


class LinearMetricOnFeatures(EmbeddingLearner):
    """Base of the Mahalanobis learners: a linear map L (M = LᵀL) applied to frozen features, so the
    Euclidean distance of the embedding is the learned Mahalanobis distance. Subclasses set ``self.L``
    in ``fit``."""

    def __init__(self, features: nn.Module | None) -> None:
        super().__init__()
        self.features = frozen_features(features)
        self.L: Tensor | None = None
        self.distance = euclidean()

    def _features(self, x: Tensor) -> Tensor:
        self.features.eval()
        return self.features(x).flatten(1)

    def embed(self, x: Tensor) -> Tensor:
        if self.L is None:
            raise RuntimeError(f"{type(self).__name__}.embed called before fit")
        return self._features(x) @ self.L.T

    def frozen_train_features(self, x: Tensor) -> Tensor:
        """The frozen features of the training inputs, computed once in batches on the learner's device,
        from the inputs as evaluated (one random crop per image would not be an augmentation)."""
        return embed_all(FrozenView(self), without_augmentation(x))
