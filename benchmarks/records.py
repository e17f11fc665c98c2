"""Result records: one JSON file per run, written atomically (temporary file + rename), with curve and
artifact files beside it. A killed run never leaves half a record."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"
UNITS_NAME = "units.npz"  # per-unit values and paired bootstrap replicates of a run's metrics
UNIT, REPLICATE = "unit.", "replicate."  # key prefixes in units.npz


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_process_umask()  # what open() would give a new file (mkstemp's own is 0600)


def atomic_write(path: Path, write) -> None:
    """Write ``path`` through a temporary file beside it, renamed over it once whole. The file gets the
    permissions of any new file (0644 under the usual umask): records and fits in a shared results folder
    stay readable by the group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):  # POSIX (Windows has no group bits to give)
                os.fchmod(fh.fileno(), _FILE_MODE)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable).encode()
    atomic_write(Path(path), lambda fh: fh.write(data))


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    data = frame.to_csv(index=False).encode()
    atomic_write(Path(path), lambda fh: fh.write(data))


def write_npz_atomic(path: Path, arrays: dict[str, Any]) -> str:
    """Save arrays (scalars allowed) and return the sha256 of the file's content."""
    atomic_write(Path(path), lambda fh: np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


FAILED_NAME = "record.failed.json"    # a failed attempt beside an ok record it must not replace
PREVIOUS_NAME = "record.previous.json"  # the ok record of an earlier config, replaced by a newer ok run


def load_records(root: Path, name: str = RECORD_NAME) -> tuple[list[dict], list[Path]]:
    """Every readable record called ``name`` under ``root`` (each with its folder under ``_dir``), and the
    paths of those that could not be read (corrupt JSON, another schema version)."""
    records, unreadable = [], []
    for path in sorted(Path(root).rglob(name)):
        rec = read_record(path)
        if rec is None or rec.get("schema_version") != SCHEMA_VERSION:
            unreadable.append(path)
            continue
        rec["_dir"] = str(path.parent)
        records.append(rec)
    return records, unreadable


def store_record(run_dir: Path, record: dict, previous: dict | None) -> Path:
    """Write a finished record without ever losing an ok one:
    - an ok run replaces record.json; an ok record of another config, or made by other code, is kept as
      record.previous.json;
    - a failed run beside an ok record.json goes to record.failed.json and leaves record.json alone."""
    previous_ok = previous is not None and previous.get("status") == "ok"
    if record["status"] != "ok" and previous_ok:
        path = run_dir / FAILED_NAME
    else:
        if previous_ok and (previous.get("run_id"), previous.get("code")) != (record["run_id"], record.get("code")):
            write_json_atomic(run_dir / PREVIOUS_NAME, {k: v for k, v in previous.items() if k != "_dir"})
        path = run_dir / RECORD_NAME
    write_json_atomic(path, record)
    if record["status"] == "ok":
        (run_dir / FAILED_NAME).unlink(missing_ok=True)
    return path
