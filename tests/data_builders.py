"""Small Omniglot zips and ORL folders the tests write themselves, laid out exactly as the published files,
and where the real copies live."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def real_data_root() -> Path:
    """The shared offline data: $SIMBENCH_DATA_ROOT, else ../shared/data beside the checkout."""
    env = os.environ.get("SIMBENCH_DATA_ROOT")
    return Path(env) if env else (ROOT.parent / "shared" / "data")


def glyph(code: int, size: int = 105, shift: int = 0) -> np.ndarray:
    """A black-on-white binary character image (True = white, as the Omniglot PNGs), one per ``code``:
    a few blocks at places drawn from the code; ``shift`` moves them (another drawer's version)."""
    rng = np.random.default_rng(1000 + code)
    img = np.ones((size, size), dtype=bool)
    for _ in range(4):
        r, c = rng.integers(0, size * 3 // 4, 2)
        h, w = rng.integers(size // 10, size // 4, 2)
        img[max(0, r + shift):r + shift + h, c:c + w] = False
    return img


def png_bytes(img: np.ndarray) -> bytes:
    """A 1-bit PNG, as the published Omniglot files."""
    buf = io.BytesIO()
    Image.fromarray(img).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_omniglot_zip(path: Path, alphabets: dict[str, list[int]], drawers: int = 3, size: int = 105,
                       corrupt: tuple[str, int, int] | None = None) -> Path:
    """``<stem>/<Alphabet>/characterNN/<id>_<drawer>.png`` for the character numbers given per alphabet.
    A character's image content and file names depend only on (alphabet, number), so two zips naming the
    same character hold the same files, as small1 and small2 do for Greek and Latin. ``corrupt``, an
    (alphabet, character number, drawer), names one image whose bytes are garbage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[:-4]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{stem}/", b"")
        for alphabet, numbers in alphabets.items():
            archive.writestr(f"{stem}/{alphabet}/", b"")
            for n in numbers:
                code = abs(hash_name(alphabet)) * 100 + n
                folder = f"{stem}/{alphabet}/character{n:02d}"
                archive.writestr(f"{folder}/", b"")
                for d in range(1, drawers + 1):
                    member = f"{folder}/{code % 10000:04d}_{d:02d}.png"
                    data = png_bytes(glyph(code, size, shift=d - 1))
                    if corrupt == (alphabet, n, d):
                        data = b"\x89PNG\r\n\x1a\nnot really a png"
                    archive.writestr(member, data)
    return path


def hash_name(name: str) -> int:
    """A stable small number from a name (Python's hash() changes between runs)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(name)) % 97


def write_all_runs_zip(path: Path, n_runs: int = 2, n_way: int = 5, size: int = 105,
                       wrong: dict[str, int] | None = None) -> dict[str, list[int]]:
    """A one-shot benchmark zip in the official layout. Run r's class j image is ``glyph(5000 + 100 r + j)``;
    test item i is an exact copy of the image of its answer class (a shuffled order), except that
    ``wrong[run]`` test items are copies of another class's image while the answer file still names the
    right class. Returns each run's answer classes (0-based) in item order."""
    wrong = wrong or {}
    answers = {}
    rng = np.random.default_rng(7)
    with zipfile.ZipFile(path, "w") as archive:
        for r in range(1, n_runs + 1):
            run = f"run{r:02d}"
            for sub in ("", "/test", "/training"):
                archive.writestr(f"{run}{sub}/", b"")
            images = [glyph(5000 + 100 * r + j, size) for j in range(n_way)]
            for j, img in enumerate(images):
                archive.writestr(f"{run}/training/class{j + 1:02d}.png", png_bytes(img))
            order = [int(v) for v in rng.permutation(n_way)]
            lines = []
            for i, j in enumerate(order):
                shown = (j + 1) % n_way if i < wrong.get(run, 0) else j
                archive.writestr(f"{run}/test/item{i + 1:02d}.png", png_bytes(images[shown]))
                lines.append(f"{run}/test/item{i + 1:02d}.png {run}/training/class{j + 1:02d}.png")
            archive.writestr(f"{run}/class_labels.txt", "\n".join(lines) + "\n")
            answers[run] = order
    return answers


def write_pgm(path: Path, pixels: np.ndarray) -> None:
    """A binary (P5) 8-bit PGM, as the ORL files: header ``P5 <width> <height> 255``."""
    h, w = pixels.shape
    path.write_bytes(f"P5\n{w} {h}\n255\n".encode() + pixels.astype(np.uint8).tobytes())


def write_orl(folder: Path, subjects: tuple[int, ...] = (1, 2, 10), per_subject: int = 4,
              shape: tuple[int, int] = (112, 92)) -> Path:
    """``sN/M.pgm`` for the subject numbers given; subject N's images are all grey level 20 N + M."""
    for n in subjects:
        sub = folder / f"s{n}"
        sub.mkdir(parents=True, exist_ok=True)
        for m in range(1, per_subject + 1):
            write_pgm(sub / f"{m}.pgm", np.full(shape, 20 * n + m, dtype=np.uint8))
    return folder
