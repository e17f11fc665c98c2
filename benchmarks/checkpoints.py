"""Fitted learners kept beside their records, and evaluated again without training.

Every run writes ``model.pt`` into its run folder (``save_model=false`` turns it off): the fitted learner
(the whole object, as ``torch.save`` pickles it, weights included), the run's resolved config, the indices
of the samples it trained on, and the input standardisation fitted on them. The config is also written
as ``model.yaml`` for people to read.

``from_run=<run folder>`` makes a run evaluate that saved learner instead of training one: the data set,
method, backbone, budget, training seed, split seed and validation flag come from the saved run; the
protocol, ``episode_seed``, device and threads from this run. The saved standardisation is applied (not
one fitted on another split), and a split whose test side holds any sample the learner trained on is
refused. Such a record carries ``from_run`` (the saved run's folder, run id and model digest) and lands
in the study ``<study>@checkpoint``.

A pickled learner needs the same code to load; the checkpoint names the code digest it was written with,
and loading under other code warns.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from benchmarks.code_identity import fit_code
from benchmarks.records import atomic_write

MODEL_NAME = "model.pt"
MODEL_CONFIG_NAME = "model.yaml"
CHECKPOINT_FORMAT = 1
CHECKPOINT_TAG = "@checkpoint"  # appended to the study of a run that evaluates a saved learner
# What a re-evaluation takes from the saved run: everything that decided what was trained and on which split.
ADOPTED = ("dataset", "method", "backbone", "budget", "seed", "data_seed", "validation", "precision")


class CheckpointError(ValueError):
    """A saved run that cannot be evaluated as asked."""


@dataclass
class SavedModel:
    learner: Any
    config: dict           # the saved run's resolved config
    run_id: str
    train_index: np.ndarray
    transform: Any         # the standardisation fitted on the training side, or None
    fit: dict              # the saved run's fit report
    fit_s: float
    code: str
    sha256: str
    path: Path


def save(run_dir: Path, learner, cfg: DictConfig, run_id: str, train_index: torch.Tensor, transform, fit: dict,
         fit_s: float) -> dict:
    """Write ``model.pt`` (and ``model.yaml``) into ``run_dir`` atomically; returns the record's entry."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "learner": learner, "config": resolved, "run_id": run_id,
                "train_index": np.asarray(train_index.cpu().numpy(), dtype=np.int64), "transform": transform,
                "fit": fit, "fit_s": fit_s, "code": fit_code(resolved)}, buffer)
    data = buffer.getvalue()
    atomic_write(Path(run_dir) / MODEL_NAME, lambda fh: fh.write(data))
    text = OmegaConf.to_yaml(OmegaConf.create(resolved)).encode()
    atomic_write(Path(run_dir) / MODEL_CONFIG_NAME, lambda fh: fh.write(text))
    return {"file": MODEL_NAME, "config": MODEL_CONFIG_NAME, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data)}


def load(run_dir: str | Path, device: torch.device | str = "cpu") -> SavedModel:
    """The learner saved in ``run_dir`` (a run folder, or its ``model.pt``), with what it was trained on."""
    path = Path(str(run_dir))
    if path.name != MODEL_NAME:
        path = path / MODEL_NAME
    if not path.parent.is_dir():
        raise CheckpointError(f"{run_dir}: there is no such folder; give the folder of a finished run "
                              "(results/runs/<study>/<dataset>/<protocol>/<method>/seed<k>)")
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: the folder holds no {MODEL_NAME}. Runs save their fitted learner "
                              "unless save_model=false was given (or they ran before models were saved): run it again "
                              "with save_model=true")
    data = path.read_bytes()
    try:
        blob = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    except ModuleNotFoundError as exc:  # a learner from the user's own module, not importable from here
        raise CheckpointError(f"could not read {path}: its learner's module {exc.name!r} cannot be imported here; "
                              f"put the folder that holds {exc.name} on PYTHONPATH (or run from it)") from None
    except Exception as exc:  # damaged, or pickled by code that no longer exists
        raise CheckpointError(f"could not read {path} ({type(exc).__name__}: {exc}); it is damaged or was written by "
                              "other code: run that run again to write a new one") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of format {CHECKPOINT_FORMAT} (it holds "
                              f"{blob.get('format') if isinstance(blob, dict) else type(blob).__name__}): "
                              "run that run again to write one")
    now = fit_code(blob["config"])
    if blob["code"] != now:
        warnings.warn(f"{path} was written by other code (the digest of its learner's code and datasets/ was "
                      f"{blob['code']}, now {now}); the learner loaded, but may not behave as it did")
    return SavedModel(learner=blob["learner"], config=blob["config"], run_id=blob["run_id"],
                      train_index=blob["train_index"], transform=blob["transform"], fit=blob["fit"],
                      fit_s=blob["fit_s"], code=blob["code"], sha256=hashlib.sha256(data).hexdigest(), path=path)


# A user's data set is identified by a digest of its file (arrays) or its folder listing (image_folder): the key
# in the dataset config, and the key naming what it digests.
_DATA_DIGESTS = {"content_sha256": ("path", "_file_digest"), "listing_sha256": ("root", "_listing_digest")}


def check_same_data(saved: SavedModel) -> None:
    """Refuse a saved run whose data file or image folder has changed since it trained (its digest differs)."""
    import benchmarks

    dataset = saved.config.get("dataset", {})
    for key, (where, digest) in _DATA_DIGESTS.items():
        if key in dataset and where in dataset:
            now = getattr(benchmarks, digest)(dataset[where])
            if now != dataset[key]:
                raise CheckpointError(f"the data at {dataset[where]} changed since the saved run ({saved.path.parent}) "
                                      f"trained on it (digest {dataset[key]}, now {now}): its split and scores would not "
                                      "be the saved run's. Restore the data, or train on the new data (leave from_run out)")


def adopt(cfg: DictConfig, saved: SavedModel) -> DictConfig:
    """``cfg`` with what decided the saved learner (``ADOPTED``) replaced by the saved run's values; refuses
    a saved run whose data has changed since."""
    check_same_data(saved)
    for key in ADOPTED:
        if key in saved.config:
            OmegaConf.update(cfg, key, saved.config[key], merge=False, force_add=True)
    return cfg


def check_unseen(saved: SavedModel, train_index: torch.Tensor, test_index: torch.Tensor, protocol: str) -> bool:
    """Refuse a test side that holds samples the saved learner trained on; returns whether the training side
    (``train_index``) is the saved run's own, i.e. the same split."""
    test = np.asarray(test_index.cpu().numpy(), dtype=np.int64)
    seen = np.intersect1d(test, saved.train_index)
    if len(seen):
        raise CheckpointError(f"the {protocol} protocol's split tests on {len(seen)} of the {len(saved.train_index)} "
                              f"samples the saved learner ({saved.path}) trained on (its split differs from the saved "
                              f"run's, {saved.config['protocol']['name']}): the scores would be inflated. Re-evaluate it "
                              "under a protocol that splits the data as the saved run did (e.g. fewshot, retrieval and "
                              "verification share the class-disjoint split; knn has its own)")
    train = np.sort(np.asarray(train_index.cpu().numpy(), dtype=np.int64))
    return bool(np.array_equal(train, np.sort(saved.train_index)))
