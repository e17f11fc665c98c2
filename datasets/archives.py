"""Published archives: checksum verification, optional download, extraction (torchvision's utilities).

A loader names the files its data set is published as (``Archive``: file name, the md5 its publisher or
torchvision gives, if any, and a download address, if one still works) and a test for its extracted layout.
``provide`` then makes the layout appear in ``root``:

1. the layout is already there: nothing is done (extracted files are not checksummed: no publisher gives
   per-file sums);
2. else each archive found in ``root`` is verified against its md5 and extracted into ``root``;
3. else, with ``download=True``, each archive that has an address is downloaded into ``root``, verified
   and extracted;
4. anything still missing raises ``DatasetNotFoundError`` naming the folder, the files and how to get them.

A wrong checksum raises ``ChecksumError`` naming the file, both sums and the fix; nothing is extracted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from datasets.errors import DatasetNotFoundError


class ChecksumError(ValueError):
    """A file's checksum differs from the published one."""


@dataclass(frozen=True)
class Archive:
    """filename: as published. md5: the published checksum, or None where none is published.
    url: where it can still be downloaded, or None (a manual step; the loader's error says which).
    extract: False for a plain file that is part of the layout as it is (e.g. Cars' ``cars_annos.mat``)."""

    filename: str
    md5: str | None = None
    url: str | None = None
    extract: bool = True


def md5_of(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(str(path))


def verify_md5(path: Path, md5: str | None) -> None:
    """Raise ``ChecksumError`` unless ``path`` has the md5 ``md5`` (None: nothing to check against)."""
    if md5 is None:
        return
    found = md5_of(path)
    if found != md5:
        raise ChecksumError(f"{path} has md5 {found}, but the published {path.name} has md5 {md5}: the file is "
                            "incomplete or a different release. Delete it and download it again (or copy it again "
                            "from the original source); a copy you trust from elsewhere can be extracted into "
                            f"{path.parent} by hand, since an extracted layout is read without a checksum.")


def fetch_url(url: str, folder: Path, filename: str) -> None:
    """Download ``url`` to ``folder/filename`` (torchvision's ``download_url``; tests replace this)."""
    from torchvision.datasets.utils import download_url

    download_url(url, root=str(folder), filename=filename)


def _extract(path: Path, folder: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    try:
        extract_archive(str(path), str(folder))
    except Exception as exc:  # tarfile, zipfile and gzip errors come in many types
        raise ValueError(f"{path} cannot be extracted ({type(exc).__name__}: {exc}); the archive is corrupt or "
                         f"password-protected: replace it, or extract it into {folder} by hand") from exc


def provide(root: Path, archives: Sequence[Archive], present: Callable[[], bool], download: bool,
            dataset: str, how_to: str) -> None:
    """Make the extracted layout appear in ``root`` (see the module docstring); ``present()`` tells whether
    it is there. ``how_to``: the ways to get the files, for the not-found error."""
    if present():
        return
    failures, used = [], []
    for archive in archives:
        path = root / archive.filename
        if not path.is_file() and download and archive.url:
            root.mkdir(parents=True, exist_ok=True)
            try:
                fetch_url(archive.url, root, archive.filename)
            except Exception as exc:  # network errors come in many types
                failures.append(f"{archive.filename} from {archive.url}: {exc}")
        if path.is_file():
            verify_md5(path, archive.md5)
            if archive.extract:
                _extract(path, root)
            used.append(archive.filename)
    if present():
        return
    if used:
        raise DatasetNotFoundError(f"{dataset}: {root} holds {', '.join(used)} (checksums fine where published), "
                                   "but the files the loader reads are still missing after extracting them; "
                                   f"the layout is not the published one. {how_to}")
    if download and not any(a.url for a in archives):
        failures.append("no download address works any more for this data set")
    tried = f" The download failed ({'; '.join(failures)})." if failures else ""
    names = ", ".join(a.filename for a in archives)
    raise DatasetNotFoundError(f"{dataset}: {root} does not hold the extracted files, nor the published {names}."
                               f"{tried} {how_to}")
