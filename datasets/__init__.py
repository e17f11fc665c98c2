"""Data for the suite: labelled sources, class-disjoint splits, episode and batch samplers.

Nothing here knows about learners or protocols.
"""
from datasets.labeled import LabeledData

__all__ = ["LabeledData"]
