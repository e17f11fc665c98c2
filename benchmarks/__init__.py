"""Protocols, the Hydra runner, records, leaderboard, figures and the regression check."""

from omegaconf import OmegaConf

VALIDATION_TAG = "@validation"  # appended to the protocol's name in records and run folders of validation runs


def _split_tag(validation) -> str:
    return VALIDATION_TAG if str(validation).lower() == "true" else ""


# conf/config.yaml's run_dir uses it: a validation run never shares a folder (or a table) with a test run
OmegaConf.register_new_resolver("split_tag", _split_tag, replace=True)


DEFAULT_DATA_SEED = "0"  # conf/config.yaml's data_seed: its runs' folders and protocol names carry no tag


def episode_tag(episode_seed, data_seed) -> str:
    """``@split<k>`` for a split drawn with another data seed than the default (so a sweep over data seeds
    keeps each split's runs, and a leaderboard row never averages over two splits), then ``@episodes<k>``
    when the evaluation draws its episodes / queries with a seed other than the split's."""
    split = "" if str(data_seed) == DEFAULT_DATA_SEED else f"@split{data_seed}"
    return split + ("" if str(episode_seed) == str(data_seed) else f"@episodes{episode_seed}")


def protocol_base(label) -> str:
    """A record's protocol name without its tags (``retrieval@split1@episodes3`` -> ``retrieval``): what
    decides its panels, its tolerance in the regression check and which figures it gets."""
    return str(label).split("@", 1)[0]


def protocol_tags(label) -> str:
    """The tags of a record's protocol name (``@split1@episodes3``, ``@validation``; "" for none), which the
    file names of its figures carry so that two splits' figures never overwrite each other."""
    return str(label)[len(protocol_base(label)):]


def _checkpoint_tag(from_run) -> str:
    return "" if from_run is None or str(from_run) in ("None", "null", "") else "@checkpoint"


# run_dir again: another split or episode seed, or a saved learner evaluated again (from_run), gets its own folder
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


_FILE_DIGESTS: dict[tuple, str] = {}  # (file, size, mtime, inode) -> digest: a run resolves it several times


def _file_digest(path) -> str:
    """sha256 (16 hex digits) of a data file's bytes, so a run's identity (and its fit-cache key) changes when
    the file does; "missing" when there is no such file (the loader then says how to give one). Read once per
    process for a file that has not changed since (its size, modification time and inode are the same)."""
    import hashlib
    import stat
    from pathlib import Path

    path = Path(str(path))
    try:
        info = path.stat()
    except OSError:
        return "missing"
    if not stat.S_ISREG(info.st_mode):
        return "missing"
    seen = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    if seen not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _FILE_DIGESTS[seen] = digest.hexdigest()[:16]
    return _FILE_DIGESTS[seen]


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
