"""scikit-learn's bundled data sets: always available offline. ``digits`` is the suite's default."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn import datasets as skd

from datasets.labeled import LabeledData


def _from_bunch(name: str, loader: Callable, class_names: list[str] | None = None) -> LabeledData:
    bunch = loader()
    x = torch.as_tensor(np.asarray(bunch.data), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(bunch.target), dtype=torch.int64)
    names = class_names or [str(c) for c in bunch.target_names]
    return LabeledData(x=x, y=y, classes=names, name=name)


def digits() -> LabeledData:
    """8x8 hand-written digits, 1,797 samples, as 64-d vectors, 10 classes."""
    return _from_bunch("digits", skd.load_digits)


def iris() -> LabeledData:
    return _from_bunch("iris", skd.load_iris)


def wine() -> LabeledData:
    return _from_bunch("wine", skd.load_wine)


def breast_cancer() -> LabeledData:
    return _from_bunch("breast_cancer", skd.load_breast_cancer)
