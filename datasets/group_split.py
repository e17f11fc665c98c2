"""Group-disjoint splits: hold out whole groups of classes (Omniglot alphabets, super-classes).

A group-disjoint split is class-disjoint too, and stricter: no test class shares a group with a training
class (a held-out alphabet has never been seen in any of its characters).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from datasets.labeled import LabeledData
from datasets.splits import Split, SplitError, _count


def group_names(data: LabeledData) -> dict[int, str]:
    """The name of each group id, read from the class names ``"<group>/<class>"`` (as Omniglot's
    ``"<Alphabet>/<character>"``); ids whose classes disagree on the prefix, or have none, are named by
    their number."""
    if data.groups is None:
        return {}
    prefixes: dict[int, set[str]] = {}
    pairs = torch.unique(torch.stack([data.groups, data.y]), dim=1)
    for g, c in pairs.t().tolist():
        name = data.classes[c]
        prefixes.setdefault(g, set()).add(name.split("/", 1)[0] if "/" in name else "")
    return {g: next(iter(p)) if len(p) == 1 and "" not in p else str(g) for g, p in prefixes.items()}


@dataclass(frozen=True)
class GroupDisjointSplit:
    """Hold out whole groups: ``test_groups`` of them (a fraction in (0, 1), or a count) chosen by the seed,
    or, when ``held_out`` is given, exactly those groups (names as in ``group_names``, or integer ids),
    whatever the seed."""

    test_groups: float | int = 0.5
    held_out: Sequence[str | int] | None = None

    def _explicit(self, data: LabeledData, present: torch.Tensor) -> torch.Tensor:
        names = group_names(data)
        by_name = {v: k for k, v in names.items()}
        chosen = []
        for item in self.held_out:
            if isinstance(item, int) and not isinstance(item, bool) and item in names:
                chosen.append(item)
            elif str(item) in by_name:
                chosen.append(by_name[str(item)])
            else:
                raise SplitError(f"held-out group {item!r} is not in {data.name}; its groups are: "
                                 f"{', '.join(sorted(names.values()))}")
        chosen = torch.unique(torch.tensor(chosen, dtype=torch.int64))
        if len(chosen) >= len(present):
            raise SplitError(f"held_out names all {len(present)} groups of {data.name}; leave at least one "
                             "for training")
        return chosen

    def __call__(self, data: LabeledData, seed: int) -> Split:
        if data.groups is None:
            raise SplitError(f"{data.name} has no groups (LabeledData.groups is None), so a group-disjoint split "
                             "cannot be made; use a source that sets groups (e.g. Omniglot's alphabets) or "
                             "datasets.splits.ClassDisjointSplit")
        pairs = torch.unique(torch.stack([data.groups, data.y]), dim=1)
        if len(torch.unique(pairs[1])) != pairs.shape[1]:
            raise SplitError(f"{data.name}: some classes have samples in several groups, so holding out groups "
                             "would not hold out whole classes")
        present = torch.unique(data.groups)
        if len(present) < 2:
            raise SplitError(f"{data.name} has {len(present)} group; a group-disjoint split needs at least 2")
        if self.held_out is not None and len(self.held_out) > 0:
            test_groups = self._explicit(data, present)
        else:
            n_test = _count(self.test_groups, len(present), "test_groups")
            gen = torch.Generator().manual_seed(seed)
            test_groups = present[torch.randperm(len(present), generator=gen)][:n_test]
        is_test = torch.isin(data.groups, test_groups)
        train_index = torch.nonzero(~is_test).flatten()
        test_index = torch.nonzero(is_test).flatten()
        return Split(data.subset(train_index, f"{data.name}/train"), data.subset(test_index, f"{data.name}/test"),
                     train_index, test_index, kind="group_disjoint")
