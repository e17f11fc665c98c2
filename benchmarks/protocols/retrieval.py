"""Retrieval on held-out classes: P@1, R-precision, MAP@R, Recall@1/2/4/8 (means over queries, 95% CI) and NMI.

Two layouts of the test split:
- no roles (``split.test_roles`` absent or None): all-vs-all, every test sample is a query ranked against
  all the others (Stanford Online Products, CUB-200-2011, Cars196);
- ``split.test_roles`` (per test sample, 0 = query, 1 = gallery): queries ranked against the gallery only,
  the In-shop protocol. ``max_per_class`` then caps queries and gallery items of each class separately.

Options: ``max_per_class`` (a seeded cap per class, None = all), ``recall_ks``, ``nmi`` (False: no NMI) and
``nmi_max_samples``: NMI runs k-means with as many clusters as classes on all test embeddings, which costs
far more time and memory than the chunked ranking on very large test sets (1,000,000 samples of ~100,000
classes); above ``nmi_max_samples`` test embeddings NMI is left out of the metrics (None = no limit).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.protocols.sampling import cap_per_class
from benchmarks.retrieval_metrics import nmi as nmi_score, per_query
from benchmarks.stats import mean_ci, single
from datasets.image_files import take
from datasets.splits import GALLERY_ROLE as GALLERY, QUERY_ROLE as QUERY, ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all
from methods.bounds import Count


def read_test_roles(split: Split) -> torch.Tensor | None:
    """The split's per-test-sample roles (0 = query, 1 = gallery), checked, or None for all-vs-all."""
    roles = getattr(split, "test_roles", None)
    if roles is None:
        return None
    roles = torch.as_tensor(roles)
    if roles.shape != (len(split.test),):
        raise ValueError(f"split.test_roles has shape {tuple(roles.shape)}, but the test side holds "
                         f"{len(split.test)} samples: give one role per test sample (0 = query, 1 = gallery)")
    if not bool(((roles == QUERY) | (roles == GALLERY)).all()):
        raise ValueError("split.test_roles must hold only 0 (query) and 1 (gallery)")
    return roles


@dataclass
class RetrievalProtocol:
    max_per_class: Count | None = None
    recall_ks: tuple[Count, ...] = (1, 2, 4, 8)
    split: Any = field(default_factory=ClassDisjointSplit)
    name: str = "retrieval"
    nmi: bool = True
    nmi_max_samples: Count | None = None

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "distance")

    def metric_names(self) -> list[str]:
        """The metrics ``evaluate`` reports, known from the settings alone (NMI where ``nmi`` is on; a test set over ``nmi_max_samples`` skips it; an objective is checked against them
        before any training)."""
        return ["p_at_1", "r_precision", "map_at_r", *(f"recall_at_{k}" for k in self.recall_ks),
                *(["nmi"] if self.nmi else [])]

    def check(self, split: Split) -> None:
        roles = read_test_roles(split)
        if roles is None:
            counts = split.test.counts()
            if int((counts == 1).sum()):
                raise ValueError("retrieval needs at least two test samples of every class")
            return
        y = split.test.y
        query_classes, gallery_classes = torch.unique(y[roles == QUERY]), torch.unique(y[roles == GALLERY])
        if len(query_classes) == 0 or len(gallery_classes) == 0:
            raise ValueError("split.test_roles marks no query or no gallery sample; retrieval needs both")
        lone = query_classes[~torch.isin(query_classes, gallery_classes)]
        if len(lone):
            raise ValueError(f"{len(lone)} query class(es) have no gallery sample (e.g. {lone[:5].tolist()}); "
                             "every query class needs at least one gallery sample")

    def _keep(self, split: Split, roles: torch.Tensor | None, seed: int) -> torch.Tensor:
        """Sorted test indices to evaluate: the per-class cap, applied to each role on its own."""
        y = split.test.y
        if roles is None:
            return cap_per_class(y, self.max_per_class, seed=seed)
        parts = []
        for role in (QUERY, GALLERY):
            members = torch.nonzero(roles == role).flatten()
            parts.append(members[cap_per_class(y[members], self.max_per_class, seed=seed)])
        return torch.sort(torch.cat(parts)).values

    def _nmi(self, emb: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
        if not self.nmi or (self.nmi_max_samples is not None and len(labels) > self.nmi_max_samples):
            return {}
        return {"nmi": single(nmi_score(emb, labels, seed=seed))}

    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        roles = read_test_roles(split)
        keep = self._keep(split, roles, data_seed)
        emb = embed_all(learner, take(split.test.x, keep))  # lazy images: decoded batch by batch
        labels = split.test.y[keep]
        if roles is None:
            values = per_query(emb, labels, learner.distance, self.recall_ks)
        else:
            is_query = roles[keep] == QUERY
            values = per_query(emb[is_query], labels[is_query], learner.distance, self.recall_ks,
                               gallery_emb=emb[~is_query], gallery_labels=labels[~is_query])
        metrics = {name: mean_ci(v) for name, v in values.items()}
        metrics.update(self._nmi(emb, labels, data_seed))
        artifacts = {"test_index": keep.numpy()}
        if roles is not None:
            artifacts["test_roles"] = roles[keep].numpy()
        return ProtocolResult(metrics=metrics, artifacts={"gallery": artifacts},
                              units=dict(values))
