"""Protocols, the Hydra runner, records, leaderboard, figures and the regression check."""

from omegaconf import OmegaConf

VALIDATION_TAG = "@validation"  # appended to the protocol's name in records and run folders of validation runs


def _split_tag(validation) -> str:
    return VALIDATION_TAG if str(validation).lower() == "true" else ""


# conf/config.yaml's run_dir uses it: a validation run never shares a folder (or a table) with a test run
OmegaConf.register_new_resolver("split_tag", _split_tag, replace=True)


def episode_tag(episode_seed, data_seed) -> str:
    """``@episodes<k>`` when the evaluation draws its episodes / queries with a seed other than the split's."""
    return "" if str(episode_seed) == str(data_seed) else f"@episodes{episode_seed}"


def _checkpoint_tag(from_run) -> str:
    return "" if from_run is None or str(from_run) in ("None", "null", "") else "@checkpoint"


# run_dir again: another episode seed, or a saved learner evaluated again (from_run), gets its own folder
OmegaConf.register_new_resolver("episode_tag", episode_tag, replace=True)
OmegaConf.register_new_resolver("checkpoint_tag", _checkpoint_tag, replace=True)


def named_yaml(folder, name: str):
    """The plan ``name`` as a path: ``<folder>/<name>.yaml``, or ``name`` itself when it is a yaml file path.
    Returns (path, the known names in ``folder``) so a caller can say which exist when it does not."""
    from pathlib import Path

    folder = Path(folder)
    path = Path(name) if name.endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    return path, sorted(p.stem for p in folder.glob("*.yaml"))


def _stem(path) -> str:
    from pathlib import Path

    return Path(str(path)).stem


def _file_digest(path) -> str:
    """sha256 (16 hex digits) of a data file's bytes, so a run's identity (and its fit-cache key) changes when
    the file does; "missing" when there is no such file (the loader then says how to give one)."""
    import hashlib
    from pathlib import Path

    path = Path(str(path))
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# conf/dataset/arrays.yaml: a user file's data set is named after the file and identified by its content
OmegaConf.register_new_resolver("stem", _stem, replace=True)
OmegaConf.register_new_resolver("file_digest", _file_digest, replace=True)


def _listing_digest(folder) -> str:
    """sha256 (16 hex digits) of a folder's file listing (relative paths and sizes, not contents: cheap for
    thousands of images), so adding, removing or replacing images changes a run's identity; "missing" when
    there is no such folder."""
    import hashlib
    from pathlib import Path

    folder = Path(str(folder))
    if not folder.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


OmegaConf.register_new_resolver("listing_digest", _listing_digest, replace=True)
