"""Set generation (the Set Distribution Networks protocol): reconstruct held-out sets and sample new ones,
and judge both with a reference embedding that another learner of the suite trained (``judge``).

Sets. For every held-out class, ``gallery_per_class`` of its test samples form a gallery that no set
contains, and ``sets_per_class`` sets of ``max(set_sizes)`` samples are drawn from the rest; the set of
size n is the first n members of each (nested sets: a larger set holds the smaller ones, so the trend
over n is not blurred by different draws). All draws come from the data seed: every learner sees the
same sets. The generation noise and the prior samples come from the run's seed.

Generated inputs. ``reconstructed``: each set encoded (``learner.encode_sets``) and ``per_set`` new members
generated from its code (``learner.generate``). ``sampled``: as many codes drawn from the prior
(``learner.sample_codes``), ``per_set`` members generated from each.

Verification ROC (the paper's figure), for the real sets (their ``max(set_sizes)`` members), the
reconstructed sets (from that size) and the sampled sets: same-set pairs (two members of one set) against
different-set pairs (members of two sets of different classes; two sets of one class, or two sampled sets
with the same code, are the same identity and give no pair), scored by the judge's similarity. Metrics
``auc_<kind>``, ``eer_<kind>`` and ``tar_at_far_1e-2_<kind>``; 95% interval from a bootstrap over the sets
(``benchmarks.roc.class_bootstrap`` with the sets as the units).

Identity preservation against n: each generated member of a set reconstructed from n inputs is scored by
the judge against every gallery sample; the pairs with the set's own class are positives. One AUC per set,
``identity_auc_n<n>`` = its mean over the sets +- a 95% normal interval (the sets share classes, as the
few-shot episodes do). ``identity_auc_real_n<n>`` is the same for the set's n real members: how well the
inputs themselves verify against their class, the ceiling for their reconstruction.

Artifacts: the sets' and the gallery's indices into the test split, and ``grid``: for one set of each of
the first ``grid_sets`` classes, the inputs, the reconstructions at every n and prior samples, in the
data's own units (the split's standardisation undone), for ``benchmarks.generation_figures``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.roc import auc, class_bootstrap, eer, roc_points, tar_at_far, thin
from benchmarks.stats import Metric, mean_ci, single
from datasets.image_files import take
from datasets.splits import ClassDisjointSplit, Split
from methods.base import Learner, RunContext, embed_all, similarity
from methods.bounds import Count, CountOrZero, PositiveFraction, TwoOrMore

KINDS = ("real", "reconstructed", "sampled")


def set_pairs(emb: Tensor, group: Tensor, distance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair scores of members of sets: ``emb`` (n_sets, m, d) judge embeddings, ``group`` (n_sets,) the
    identity of each set. Returns (scores, set_a, set_b) over every pair of members of one set (set_a ==
    set_b) and every pair of members of two sets of different groups; pairs of two sets of one group are
    left out."""
    n_sets, m, _ = emb.shape
    flat = emb.reshape(n_sets * m, -1)
    which = torch.arange(n_sets).repeat_interleave(m)
    i, j = torch.triu_indices(len(flat), len(flat), offset=1)
    keep = (which[i] == which[j]) | (group[which[i]] != group[which[j]])
    i, j = i[keep], j[keep]
    sim = similarity(distance, flat, flat)
    return sim[i, j].double().numpy(), which[i].numpy(), which[j].numpy()


def per_set_auc(scores: Tensor, same: Tensor) -> np.ndarray:
    """(n_sets,) AUC of each row: ``scores`` (n_sets, n_pairs) with ``same`` (n_sets, n_pairs) the positives."""
    return np.array([auc(*roc_points(s.double().numpy(), t.numpy())[:2]) for s, t in zip(scores, same)])


@dataclass
class SetGenerationProtocol:
    set_sizes: tuple[Count, ...] = (1, 2, 4, 8)
    sets_per_class: Count = 10
    per_set: TwoOrMore = 8
    gallery_per_class: Count = 20
    grid_sets: Count = 6
    far: PositiveFraction = 1e-2
    bootstrap: CountOrZero = 200
    split: Any = field(default_factory=ClassDisjointSplit)
    judge: Any = None  # the fitted reference learner; the runner sets it from ``protocol.judge``
    name: str = "set_generation"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "encode_sets", "generate", "sample_codes")

    def check(self, split: Split) -> None:
        sizes = [int(n) for n in self.set_sizes]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"set_sizes must be positive sizes, got {list(self.set_sizes)}")
        if self.sets_per_class < 1 or self.per_set < 2 or self.gallery_per_class < 1:
            raise ValueError("set_generation needs sets_per_class >= 1, per_set >= 2 (same-set pairs) and "
                             f"gallery_per_class >= 1; got {self.sets_per_class}, {self.per_set}, {self.gallery_per_class}")
        need = self.gallery_per_class + max(sizes)
        counts = split.test.counts()[split.test.present_classes]
        if len(counts) < 2:
            raise ValueError(f"set_generation needs two held-out classes, the test split has {len(counts)}")
        short = int((counts < need).sum())
        if short:
            raise ValueError(f"set_generation needs gallery_per_class + max(set_sizes) = {need} test samples per class, "
                             f"but {short} held-out class(es) have fewer (smallest: {int(counts.min())}); lower "
                             "protocol.evaluator.gallery_per_class or set_sizes")

    def draw(self, labels: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """(sets (n_sets, max_n) indices, set_class (n_sets,), gallery (n_gallery,) indices) into ``labels``."""
        gen = torch.Generator().manual_seed(seed)
        width = max(int(n) for n in self.set_sizes)
        sets, set_class, gallery = [], [], []
        for c in torch.unique(labels).tolist():
            members = torch.nonzero(labels == c).flatten()
            members = members[torch.randperm(len(members), generator=gen)]
            gallery.append(members[:self.gallery_per_class])
            rest = members[self.gallery_per_class:]
            for _ in range(self.sets_per_class):
                sets.append(rest[torch.randperm(len(rest), generator=gen)[:width]])
                set_class.append(c)
        return torch.stack(sets), torch.tensor(set_class), torch.cat(gallery)

    def _judge_emb(self, inputs: Tensor) -> Tensor:
        """(n_sets, m, d) judge embeddings of ``inputs`` (n_sets, m, *shape)."""
        n_sets, m = inputs.shape[:2]
        return embed_all(self.judge, inputs.reshape(n_sets * m, *inputs.shape[2:])).view(n_sets, m, -1)

    def _roc(self, emb: Tensor, group: Tensor, data_seed: int) -> tuple[dict[str, Metric], pd.DataFrame]:
        scores, a, b = set_pairs(emb, group, self.judge.distance)
        fpr, tpr, _ = roc_points(scores, a == b)
        far = f"tar_at_far_{self.far:.0e}".replace("-0", "-")
        statistics = {"auc": auc, "eer": eer, far: lambda f, t: tar_at_far(f, t, self.far)}
        reps = class_bootstrap(scores, a, b, statistics, n_boot=self.bootstrap, seed=data_seed) if self.bootstrap else {}
        metrics = {}
        for name, fn in statistics.items():
            r = reps.get(name)
            metrics[name] = Metric(fn(fpr, tpr), float(1.96 * r.std(ddof=1)), len(emb)) if r is not None and len(r) >= 2 \
                else single(fn(fpr, tpr))
        f, t = thin(fpr, tpr)
        return metrics, pd.DataFrame({"fpr": f, "tpr": t})

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        if self.judge is None:
            raise ValueError("set_generation judges generated sets with a reference learner, but none was given: name "
                             "its method in protocol.judge (conf/protocol/set_generation.yaml: /method@judge: triplet)")
        labels = split.test.y
        sets, set_class, gallery = self.draw(labels, seed=data_seed * 7919 + 101)
        width = sets.shape[1]
        inputs = take(split.test.x, sets.flatten()).view(*sets.shape, *split.test.input_shape)
        noise = ctx.generator(offset=29)

        generated = {n: learner.generate(learner.encode_sets(inputs[:, :n]), self.per_set, noise) for n in self.set_sizes}
        prior_codes = learner.sample_codes(len(sets), noise)
        sampled = learner.generate(prior_codes, self.per_set, noise)

        metrics, curves = {}, {}
        distinct_codes = torch.unique(prior_codes, dim=0, return_inverse=True)[1]
        for kind, members, group in (("real", inputs, set_class), ("reconstructed", generated[width], set_class),
                                     ("sampled", sampled, distinct_codes)):
            values, curve = self._roc(self._judge_emb(members), group, data_seed)
            metrics.update({f"{name}_{kind}": m for name, m in values.items()})
            curves[f"roc_{kind}"] = curve
        metrics["distinct_sampled_codes"] = single(float(distinct_codes.max() + 1) / len(prior_codes))

        gallery_emb = embed_all(self.judge, take(split.test.x, gallery))
        same = set_class[:, None] == labels[gallery][None, :]  # (n_sets, n_gallery)
        identity = []
        for n in self.set_sizes:
            for kind, members in (("", generated[n]), ("real_", inputs[:, :n])):
                emb = self._judge_emb(members)
                sim = similarity(self.judge.distance, emb.reshape(-1, emb.shape[2]), gallery_emb)
                sim = sim.view(len(sets), -1, len(gallery))
                aucs = per_set_auc(sim.flatten(1), same[:, None, :].expand_as(sim).flatten(1))
                metrics[f"identity_auc_{kind}n{n}"] = mean_ci(aucs)
                identity.append({"n": n, "inputs": kind.rstrip("_") or "reconstructed", "auc": float(aucs.mean())})
        curves["identity_vs_n"] = pd.DataFrame(identity)

        artifacts = {"sets": {"sets": sets.numpy(), "set_class": set_class.numpy(), "gallery": gallery.numpy()},
                     "grid": self._grid(split, set_class, inputs, generated, sampled)}
        return ProtocolResult(metrics=metrics, curves=curves, artifacts=artifacts)

    def _grid(self, split: Split, set_class: Tensor, inputs: Tensor, generated: dict, sampled: Tensor) -> dict:
        """The first set of each of the first ``grid_sets`` classes: inputs, reconstructions per n, samples."""
        first = torch.tensor([int(torch.nonzero(set_class == c)[0]) for c in torch.unique(set_class)])[:self.grid_sets]
        undo = getattr(split.transform, "mean", None)
        scale = getattr(split.transform, "std", None)

        def raw(x: Tensor) -> np.ndarray:
            if undo is not None:
                shape = x.shape
                x = (x.reshape(*shape[:2], -1) * scale.reshape(-1) + undo.reshape(-1)).view(shape)
            return x.float().numpy()

        grid = {"inputs": raw(inputs[first]), "samples": raw(sampled[:len(first)]),
                "set_sizes": np.array(self.set_sizes), "set_class": set_class[first].numpy()}
        grid.update({f"reconstructed_n{n}": raw(generated[n][first]) for n in self.set_sizes})
        return grid
