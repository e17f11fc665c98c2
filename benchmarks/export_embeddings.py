"""Export a saved learner's embeddings of its split, for other tools (UMAP, a vector database, scikit-learn).

    python -m benchmarks.export_embeddings results/runs/smoke_digits/digits/fewshot/protonet/seed0
    python -m benchmarks.export_embeddings RUN_DIR --side train --side test --out exported/

The run folder must hold a ``model.pt`` (runs save one unless ``save_model=false``). The split is the saved
run's own (its data set, protocol split, ``data_seed`` and validation flag), standardised with the saved
statistics, so the embeddings are the ones its protocol scored. For each side it writes
``<side>_embeddings.npy`` (float32, n x d), ``<side>_labels.npy`` (int64 class ids),
``<side>_index.npy`` (the samples' indices in the data set), and once ``class_names.json`` (the name of each
class id) and ``export.json`` (what was exported, from which run). Default folder: ``<RUN_DIR>/embeddings``.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmarks import checkpoints
from benchmarks.records import atomic_write, write_json_atomic
from benchmarks.run import build, prepare_split
from methods.base import embed_all

SIDES = ("train", "test")


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def export(run_dir: str | Path, out: str | Path | None = None, sides: tuple[str, ...] = ("test",)) -> dict:
    """Write the embeddings of ``sides`` of the saved run's split into ``out``; returns what ``export.json`` says."""
    unknown = [s for s in sides if s not in SIDES]
    if unknown:
        raise ValueError(f"unknown side(s) {', '.join(unknown)}: choose from {', '.join(SIDES)}")
    saved = checkpoints.load(run_dir)
    cfg = OmegaConf.create(saved.config)
    split = prepare_split(cfg, build(cfg.protocol.evaluator), transform=saved.transform)
    out = Path(out) if out is not None else saved.path.parent / "embeddings"
    written: dict = {"run_id": saved.run_id, "run_dir": str(saved.path.parent), "model_sha256": saved.sha256,
                     "dataset": cfg.dataset.name, "method": cfg.method.name, "protocol": cfg.protocol.name,
                     "seed": cfg.seed, "data_seed": cfg.data_seed, "validation": bool(cfg.get("validation", False)),
                     "distance": type(saved.learner.distance).__name__, "sides": {}}
    for side in sides:
        data, index = getattr(split, side), getattr(split, f"{side}_index")
        emb = embed_all(saved.learner, data.x).numpy().astype(np.float32)
        _write_npy(out / f"{side}_embeddings.npy", emb)
        _write_npy(out / f"{side}_labels.npy", data.y.numpy().astype(np.int64))
        _write_npy(out / f"{side}_index.npy", index.numpy().astype(np.int64))
        written["sides"][side] = {"n": int(emb.shape[0]), "dim": int(emb.shape[1]),
                                  "classes": int(len(data.present_classes))}
    write_json_atomic(out / "class_names.json", [str(c) for c in split.train.classes])
    write_json_atomic(out / "export.json", written)
    return written | {"out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run folder holding model.pt")
    parser.add_argument("--side", action="append", choices=SIDES, help="train and/or test (default: test)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run_dir>/embeddings)")
    args = parser.parse_args(argv)
    try:
        written = export(args.run_dir, args.out, tuple(args.side or ["test"]))
    except checkpoints.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for side, info in written["sides"].items():
        print(f"{side}: {info['n']} embeddings of dimension {info['dim']} ({info['classes']} classes)")
    print(f"-> {written['out']} ({', '.join(f'{s}_embeddings.npy' for s in written['sides'])}, labels, index, "
          f"class_names.json, export.json)")
    print(json.dumps({k: written[k] for k in ("method", "dataset", "protocol", "seed")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
