"""The official Omniglot one-shot classification benchmark (Lake et al., Science 2015).

``all_runs.zip`` holds 20 runs, each 20-way 1-shot within one evaluation alphabet: 20 training images
``runNN/training/classNN.png`` (one per class) and 20 test images ``runNN/test/itemNN.png``, with the
answers in ``runNN/class_labels.txt`` (lines ``runNN/test/itemKK.png runNN/training/classJJ.png``).

The learner is fitted on the split's training side (the Omniglot background data, all of it: the runs are
the test). Each run's 40 images are decoded exactly like the training images (``datasets.images.decode_image``
with the training data's image size and the same inversion), passed through the split's ``transform`` (the
runner's standardisation with training statistics), embedded; the learner adapts on the 20 training
images (labels 0..19 in class-file order) and scores the 20 test images. ``oneshot_error`` is the mean of the
20 per-run error rates with a Student-t 95% interval over runs; the per-run errors go to ``oneshot_runs.csv``
beside the record, next to the published rates, which come from the config as constants.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.protocols.base import ProtocolResult, require
from benchmarks.stats import mean_ci
from datasets.images import decode_image
from datasets.labeled import LabeledData
from datasets.omniglot import EVALUATION_ALPHABETS, RUNS_FILE, locate, open_zip
from datasets.splits import Split
from methods.base import Learner, RunContext, embed_all

_LINE = re.compile(r"^(run\d+)/test/(item\d+)\.png\s+(run\d+)/training/(class\d+)\.png$")


@dataclass(frozen=True)
class AllForTraining:
    """The one-shot benchmark's split: every sample trains; the test images are the runs, read by the
    protocol. The test side is empty."""

    def __call__(self, data: LabeledData, seed: int) -> Split:
        every = torch.arange(len(data))
        none = torch.zeros(0, dtype=torch.long)
        return Split(data.subset(every, f"{data.name}/train"), data.subset(none, f"{data.name}/test"),
                     every, none, kind="all_train")


@dataclass(frozen=True)
class OneShotRun:
    name: str
    train_x: torch.Tensor  # (20, 1, H, W), class order class01..class20
    test_x: torch.Tensor  # (n_test, 1, H, W), item order
    test_y: torch.Tensor  # (n_test,) index of the right training image


def read_runs(path: Path, image_size: tuple[int, int] | None, invert: bool = True) -> list[OneShotRun]:
    """Every run in ``all_runs.zip``, images decoded as the loaders decode them."""
    runs = []
    with open_zip(path) as archive:
        names = set(archive.namelist())
        run_names = sorted({n.split("/", 1)[0] for n in names if re.match(r"^run\d+/class_labels\.txt$", n)})
        if not run_names:
            raise ValueError(f"{path} holds no runNN/class_labels.txt; it is not the Omniglot all_runs.zip")

        def image(member: str) -> torch.Tensor:
            if member not in names:
                raise ValueError(f"{path}: {member} is named in class_labels.txt but missing from the zip")
            return decode_image(archive.read(member), f"{path}:{member}", image_size, invert)

        for run in run_names:
            text = archive.read(f"{run}/class_labels.txt").decode("utf-8", errors="replace")
            pairs = []
            for number, line in enumerate(l.strip() for l in text.splitlines()):
                if not line:
                    continue
                match = _LINE.match(line)
                if not match or match.group(1) != run or match.group(3) != run:
                    raise ValueError(f"{path}: {run}/class_labels.txt line {number + 1} is not "
                                     f"'{run}/test/itemNN.png {run}/training/classNN.png': {line!r}")
                pairs.append((match.group(2), match.group(4)))
            classes = sorted({n.rsplit("/", 1)[1][:-4] for n in names
                              if n.startswith(f"{run}/training/") and n.endswith(".png")})
            unknown = sorted({c for _, c in pairs} - set(classes))
            if not pairs or unknown:
                raise ValueError(f"{path}: {run} has {len(pairs)} answers and training images {classes}; "
                                 f"answers name missing training images {unknown}")
            pairs.sort()
            position = {c: i for i, c in enumerate(classes)}
            runs.append(OneShotRun(
                name=run,
                train_x=torch.stack([image(f"{run}/training/{c}.png") for c in classes]),
                test_x=torch.stack([image(f"{run}/test/{item}.png") for item, _ in pairs]),
                test_y=torch.tensor([position[c] for _, c in pairs], dtype=torch.int64),
            ))
    return runs


@dataclass
class OmniglotOneShotProtocol:
    """root: the folder holding ``all_runs.zip`` (``${data_root}/omniglot``). invert: as the training
    data's loader (``dataset.source.invert``). published: error rates from the literature, shown beside
    this run's (constants from the config, never computed here)."""

    root: str = "data/omniglot"
    download: bool = False
    invert: bool = True
    published: dict[str, float] = field(default_factory=dict)
    split: Any = field(default_factory=AllForTraining)
    name: str = "omniglot_oneshot"

    def check_learner(self, learner: Learner) -> None:
        require(learner, self.name, "embed", "adapt")

    def metric_names(self) -> list[str]:
        """The metrics ``evaluate`` reports, known from the settings alone (an objective is checked against them
        before any training)."""
        return ["oneshot_error"]

    def runs_path(self) -> Path:
        return locate(self.root, [RUNS_FILE], self.download, "protocol.evaluator")[RUNS_FILE]

    def image_size(self, split: Split) -> tuple[int, int]:
        shape = split.train.input_shape
        if len(shape) != 3 or shape[0] != 1:
            raise ValueError(f"the omniglot_oneshot protocol needs grey images (1, H, W) for training, as "
                             f"dataset=omniglot gives; {split.train.name} has inputs of shape {shape}")
        return (int(shape[1]), int(shape[2]))

    def check(self, split: Split) -> None:
        self.image_size(split)
        leaked = sorted({split.train.classes[int(c)].split("/", 1)[0] for c in split.train.present_classes}
                        & EVALUATION_ALPHABETS)
        if leaked:
            raise ValueError(f"the one-shot runs are drawn from Omniglot's evaluation alphabets, but the training "
                             f"data holds {', '.join(leaked)}; train on background sets only "
                             "(dataset.source.sets without images_evaluation)")
        path = self.runs_path()
        with open_zip(path):
            pass

    @torch.no_grad()
    def evaluate(self, learner: Learner, split: Split, ctx: RunContext, data_seed: int) -> ProtocolResult:
        self.check(split)
        runs = read_runs(self.runs_path(), self.image_size(split), self.invert)
        errors, rows, predictions = [], [], []
        for run in runs:
            x = torch.cat([run.train_x, run.test_x])
            if split.transform is not None:
                # LabeledData wants one label per input; the labels play no part in the transform
                x = split.transform(LabeledData(x=x, y=torch.zeros(len(x), dtype=torch.int64), classes=["run"])).x
            emb = embed_all(learner, x)
            n_way = len(run.train_x)
            scores = learner.adapt(emb[:n_way], torch.arange(n_way)).score(emb[n_way:])
            if scores.shape != (len(run.test_x), n_way):
                raise ValueError(f"scorer returned shape {tuple(scores.shape)}, expected {(len(run.test_x), n_way)}")
            predicted = scores.argmax(1)
            error = float((predicted != run.test_y).float().mean())
            errors.append(error)
            predictions.append(predicted)
            rows.append({"run": run.name, "n_way": n_way, "n_test": len(run.test_x), "error": error,
                         "predicted": " ".join(str(int(p)) for p in predicted),
                         "truth": " ".join(str(int(t)) for t in run.test_y)})
        metrics = {"oneshot_error": mean_ci(errors, use_t=True)}
        table = pd.DataFrame(rows)
        comparison = pd.DataFrame(
            [{"source": "this run (mean over runs)", "error": metrics["oneshot_error"].mean, "kind": "measured"}]
            + [{"source": who, "error": float(rate), "kind": "published, Lake et al. 2015"}
               for who, rate in self.published.items()])
        answers = {"errors": np.asarray(errors)}
        for run, prediction in zip(runs, predictions):
            answers[f"{run.name}_predicted"] = prediction.numpy()
            answers[f"{run.name}_truth"] = run.test_y.numpy()
        return ProtocolResult(metrics=metrics, curves={"oneshot_runs": table, "oneshot_vs_published": comparison},
                              artifacts={"oneshot_answers": answers}, units={"oneshot_error": np.asarray(errors)})
