"""Triplet Siamese network with semi-hard mining (FaceNet, Schroff et al. 2015).

The loss and the miner are pytorch-metric-learning objects passed in from the yaml
(``TripletMarginLoss`` and ``TripletMarginMiner(type_of_triplets="semihard")``); batches hold
``m_per_class`` samples of each of several classes (``MPerClassSampler``). The embedding is L2-normalised.
"""
from __future__ import annotations

from methods.pair_losses import TupleLossNetwork


class TripletNetwork(TupleLossNetwork):
    name = "triplet"
    tuple_kind = "triplets"
