"""Class-balanced training batches through pytorch-metric-learning's ``MPerClassSampler``."""
from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils import common_functions as pml_common


def balanced_batches(labels: torch.Tensor, m_per_class: int, batch_size: int, n_batches: int,
                     seed: int) -> torch.Tensor:
    """(n_batches, batch_size) sample indices, each batch holding ``m_per_class`` samples of
    ``batch_size // m_per_class`` classes, drawn reproducibly from ``seed``."""
    n_classes = int(torch.unique(labels).numel())
    if batch_size % m_per_class:
        raise ValueError(f"batch_size={batch_size} must be a multiple of m_per_class={m_per_class}")
    if batch_size // m_per_class > n_classes:
        raise ValueError(
            f"a batch of {batch_size} with {m_per_class} per class needs {batch_size // m_per_class} classes "
            f"but the training split has {n_classes}; lower batch_size or raise m_per_class"
        )
    if pml_common.NUMPY_RANDOM is not np.random:
        raise RuntimeError("pytorch-metric-learning's sampler no longer draws from np.random; cannot seed it")
    sampler = MPerClassSampler(labels.cpu(), m=m_per_class, batch_size=batch_size,
                               length_before_new_iter=batch_size * n_batches)
    # The sampler draws from pytorch-metric-learning's module-level numpy generator: seed it for this
    # draw only and put the previous state back.
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        flat = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
    finally:
        np.random.set_state(saved)
    return flat.view(n_batches, batch_size)
