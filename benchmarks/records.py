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


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable).encode()
    _atomic_write(Path(path), lambda fh: fh.write(data))


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    data = frame.to_csv(index=False).encode()
    _atomic_write(Path(path), lambda fh: fh.write(data))


def write_npz_atomic(path: Path, arrays: dict[str, Any]) -> str:
    """Save arrays (scalars allowed) and return the sha256 of the file's content."""
    _atomic_write(Path(path), lambda fh: np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
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


def load_records(root: Path) -> list[dict]:
    """Every readable record under ``root``, each with its folder under the key ``_dir``."""
    records = []
    for path in sorted(Path(root).rglob(RECORD_NAME)):
        rec = read_record(path)
        if rec is None or rec.get("schema_version") != SCHEMA_VERSION:
            continue
        rec["_dir"] = str(path.parent)
        records.append(rec)
    return records
