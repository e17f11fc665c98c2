"""Omniglot (Lake et al. 2015), read straight from the published zip files.

The zips are looked for in one folder (``root``, by default ``${data_root}/omniglot``):

- ``images_background.zip`` (30 alphabets, 964 characters) and ``images_evaluation.zip`` (20 alphabets,
  659 characters), the sets most few-shot papers use;
- ``images_background_small1.zip`` and ``images_background_small2.zip``, the "minimal" background sets
  (5 alphabets each; Greek and Latin are in both, with the very same characters and images);
- ``all_runs.zip``, the official 20 one-shot runs (read by ``benchmarks/protocols/omniglot_oneshot.py``).

Inside an image zip: ``<set>/<Alphabet>/characterNN/<id>_<drawer>.png``, 105x105 black-on-white.
Each character is one class named ``"<Alphabet>/<characterNN>"``; a character found in several zips is one
class (its images are merged by file name, so a shared image counts once). ``groups`` is the alphabet id,
for alphabet-disjoint splits (``datasets.group_split.GroupDisjointSplit``).

Images become (n, 1, H, W) floats in [0, 1], by default resized to 28x28 and inverted (strokes 1,
background 0), as in Prototypical Networks. ``rotations`` adds rotated copies as extra classes
(``"<Alphabet>/<characterNN>/rot90"``) in the same alphabet group, so a group split keeps every rotation
of a character on the same side.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable

import torch

from datasets.errors import DatasetNotFoundError
from datasets.images import decode_image
from datasets.labeled import LabeledData

URL_PREFIX = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
IMAGE_SETS = ("images_background", "images_evaluation", "images_background_small1", "images_background_small2")
SMALL_SETS = ("images_background_small1", "images_background_small2")
RUNS_FILE = "all_runs.zip"
URLS = {f"{s}.zip": f"{URL_PREFIX}/{s}.zip" for s in IMAGE_SETS}
URLS[RUNS_FILE] = f"{URL_PREFIX}/one-shot-classification/{RUNS_FILE}"
# The alphabets of images_evaluation.zip; the official one-shot runs are drawn from them.
EVALUATION_ALPHABETS = frozenset({
    "Angelic", "Atemayar_Qelisayer", "Atlantean", "Aurek-Besh", "Avesta", "Ge_ez", "Glagolitic", "Gurmukhi",
    "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian", "Old_Church_Slavonic_(Cyrillic)", "Oriya",
    "Sylheti", "Syriac_(Serto)", "Tengwar", "Tibetan", "ULOG",
})
ROTATIONS = (0, 90, 180, 270)


def _zip_name(name: str) -> str:
    return name if name.endswith(".zip") else f"{name}.zip"


def _download(folder: Path, name: str) -> None:
    from torchvision.datasets.utils import download_url

    download_url(URLS[name], root=str(folder), filename=name)


def locate(root: str | Path, names: Iterable[str], download: bool = False,
           config_prefix: str = "dataset.source") -> dict[str, Path]:
    """Paths of the named Omniglot files in ``root``; with ``download`` missing ones are fetched from
    brendenlake/omniglot. Anything still missing gives one error naming the folder, the files and the ways
    to provide them (``config_prefix``: where those options live in the config)."""
    folder = Path(root)
    names = [_zip_name(n) for n in names]
    unknown = [n for n in names if n not in URLS]
    if unknown:
        raise ValueError(f"Omniglot: unknown file(s) {', '.join(unknown)}; known: {', '.join(sorted(URLS))}")
    missing = [n for n in names if not (folder / n).is_file()]
    failures = []
    if missing and download:
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            try:
                _download(folder, name)
            except Exception as exc:  # network errors come in many types
                failures.append(f"{name}: {exc}")
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        tried = f" The download failed ({'; '.join(failures)})." if failures else ""
        raise DatasetNotFoundError(
            f"Omniglot: {folder} lacks {', '.join(missing)} (expected there: {', '.join(names)}).{tried} "
            "Provide them in one of three ways: "
            "(1) put the zips, as published, into that folder; "
            "(2) point the data root at a folder holding omniglot/<zips>: data_root=<folder> or the environment "
            f"variable SIMBENCH_DATA_ROOT (or {config_prefix}.root=<folder with the zips> directly); "
            f"(3) {config_prefix}.download=true to fetch them from {URL_PREFIX} (needs the internet)."
        )
    return {n: folder / n for n in names}


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path} cannot be read as a zip file ({exc}); the file is corrupt: replace it "
                         "(copy it again, or delete it and use dataset.source.download=true)") from exc


def _members(archive: zipfile.ZipFile, path: Path) -> list[tuple[str, str, str, str]]:
    """(alphabet, character, file name, member name) of every image in a zip laid out as
    ``<set>/<Alphabet>/<character>/<file>.png``."""
    found = []
    for member in archive.namelist():
        parts = member.split("/")
        if len(parts) == 4 and parts[3].lower().endswith(".png"):
            found.append((parts[1], parts[2], parts[3], member))
    if not found:
        raise ValueError(f"{path} holds no images laid out as <set>/<Alphabet>/<character>/<file>.png; "
                         "it is not an Omniglot image zip")
    return found


def omniglot(root: str | Path, sets: Iterable[str] = SMALL_SETS, image_size: int | Iterable[int] | None = 28,
             invert: bool = True, rotations: Iterable[int] = (0,), download: bool = False,
             max_per_class: int | None = None) -> LabeledData:
    """Omniglot characters from the named zips in ``root`` as one ``LabeledData``.

    sets: which zips (``images_background_small1`` ... with or without ``.zip``); characters that appear
        in several are one class. image_size: 28 (default), (height, width), or None for the original
        105x105. invert: strokes 1 on 0 (default) or the files' black on white. rotations: any of
        0/90/180/270; every angle other than 0 adds a rotated copy of each character as its own class.
        max_per_class: keep the first N drawers (by file name) of each character.
    """
    sets = [_zip_name(s) for s in sets]
    if not sets:
        raise ValueError("Omniglot: dataset.source.sets is empty; name at least one zip")
    bad_sets = [s for s in sets if s == RUNS_FILE]
    if bad_sets:
        raise ValueError("Omniglot: all_runs.zip is the one-shot benchmark, not a training set; "
                         "use protocol=omniglot_oneshot for it")
    rotations = [int(r) for r in rotations]
    if not rotations or any(r not in ROTATIONS for r in rotations) or len(set(rotations)) != len(rotations):
        raise ValueError(f"Omniglot: rotations must be distinct values among {ROTATIONS}, got {rotations}")
    paths = locate(root, sets, download)

    # (alphabet, character) -> {file name: (zip path, member)}; the first zip holding a file wins
    characters: dict[tuple[str, str], dict[str, tuple[Path, str]]] = {}
    for name in sets:
        path = paths[name]
        with open_zip(path) as archive:
            for alphabet, character, file, member in _members(archive, path):
                characters.setdefault((alphabet, character), {}).setdefault(file, (path, member))

    keys = sorted(characters)
    alphabets = sorted({a for a, _ in keys})
    alphabet_id = {a: i for i, a in enumerate(alphabets)}
    archives = {name: open_zip(paths[name]) for name in sets}
    images, labels, groups = [], [], []
    try:
        for c, key in enumerate(keys):
            files = sorted(characters[key])[:max_per_class]
            for file in files:
                path, member = characters[key][file]
                raw = archives[path.name].read(member)
                images.append(decode_image(raw, f"{path}:{member}", image_size, invert))
                labels.append(c)
                groups.append(alphabet_id[key[0]])
    finally:
        for archive in archives.values():
            archive.close()
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"Omniglot: images of different sizes {sorted(shapes)}; set dataset.source.image_size")
    x = torch.stack(images)
    y = torch.tensor(labels, dtype=torch.int64)
    g = torch.tensor(groups, dtype=torch.int64)
    base_names = [f"{a}/{ch}" for a, ch in keys]

    xs, ys, gs, classes = [], [], [], []
    for r in rotations:
        xs.append(x if r == 0 else torch.rot90(x, k=r // 90, dims=(-2, -1)))
        ys.append(y + len(classes))
        gs.append(g)
        classes += base_names if r == 0 else [f"{n}/rot{r}" for n in base_names]
    return LabeledData(x=torch.cat(xs).contiguous(), y=torch.cat(ys), classes=classes, groups=torch.cat(gs),
                       name="omniglot")

