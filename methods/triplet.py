"""Triplet Siamese network with semi-hard mining (FaceNet, Schroff et al. 2015).

The loss and the miner are pytorch-metric-learning objects passed in from the yaml
(``TripletMarginLoss`` and ``TripletMarginMiner(type_of_triplets="semihard")``); batches hold
``m_per_class`` samples of each of several classes (``MPerClassSampler``). The embedding is L2-normalised.
Without a miner (``method.learner.miner=null``) every triplet of the batch is used.
"""
from __future__ import annotations

from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor

from methods.pair_losses import TupleLossNetwork


class TripletNetwork(TupleLossNetwork):
    name = "triplet"
    tuple_kind = "triplets"

    def tuples(self, emb: Tensor, labels: Tensor, step: int) -> tuple[Tensor, ...]:
        if self.miner is None:
            return lmu.get_all_triplets_indices(labels)
        return self.miner(emb, labels)
