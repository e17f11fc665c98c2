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


# ------------------------------------------------------------- few-shot image sets (mini/tiered/CIFAR-FS)

def class_colour(seed: int) -> np.ndarray:
    """An RGB colour per seed, far enough apart that a JPEG of two seeds' colours is never confused."""
    rng = np.random.default_rng(20_000 + seed)
    return rng.integers(30, 226, 3).astype(np.int16)


def class_image(seed: int, k: int, size: int = 12) -> np.ndarray:
    """(size, size, 3) uint8: the class colour of ``seed`` plus a little noise drawn from (seed, k)."""
    rng = np.random.default_rng(1000 * seed + k)
    noise = rng.integers(-12, 13, (size, size, 3))
    return np.clip(class_colour(seed)[None, None, :] + noise, 0, 255).astype(np.uint8)


def fewshot_synsets(n_train: int = 3, n_val: int = 2, n_test: int = 3) -> dict[str, list[str]]:
    """Synset-like class names per published split, disjoint: n0100000{k}, n0200000{k}, n0300000{k}."""
    return {split: [f"n0{s + 1}{k:06d}" for k in range(n)]
            for s, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test)))}


def write_mini_imagenet_csv(root: Path, synsets: dict[str, list[str]] | None = None, per_class: int = 4,
                            size: int = 12) -> Path:
    """The usual miniImageNet distribution: {train,val,test}.csv (header filename,label) + images/, file
    names ``<synset><8 digits>.jpg``; class c of the whole set gets colour seed c."""
    synsets = synsets or fewshot_synsets()
    (root / "images").mkdir(parents=True, exist_ok=True)
    seed = 0
    for split, classes in synsets.items():
        rows = ["filename,label"]
        for synset in classes:
            for k in range(per_class):
                name = f"{synset}{k + 1:08d}.jpg"
                Image.fromarray(class_image(seed, k, size)).save(root / "images" / name, quality=95)
                rows.append(f"{name},{synset}")
            seed += 1
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def write_split_folders(root: Path, synsets: dict[str, list[str]] | None = None, per_class: int = 4,
                        size: int = 12, suffix: str = ".jpg") -> Path:
    """The class-folder layout: ``<split>/<synset>/<synset>_<k>.jpg``; class c gets colour seed c."""
    synsets = synsets or fewshot_synsets()
    seed = 0
    for split, classes in synsets.items():
        for synset in classes:
            folder = root / split / synset
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                Image.fromarray(class_image(seed, k, size)).save(folder / f"{synset}_{k}{suffix}", quality=95)
            seed += 1
    return root


def png_encoded(pixels: np.ndarray, as_array: bool = True):
    """An RGB PNG as ``cv2.imencode`` gives it (a uint8 array of shape (n, 1)), or as bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, 1).copy() if as_array else data


# split -> [(category name, [class names])]
TIERED_CLASSES = {
    "train": [("garment", ["jersey", "kimono"]), ("craft", ["canoe"])],
    "val": [("dog", ["beagle", "borzoi"])],
    "test": [("fruit", ["fig", "lemon"]), ("tool", ["hammer"])],
}


def write_tiered_pickles(root: Path, classes=None, per_class: int = 5, size: int = 12, protocol: int = 2,
                         as_array: bool = True) -> dict[str, list[tuple[str, str, int]]]:
    """Ren et al.'s pickles: ``<split>_images_png.pkl`` (a list of PNG-encoded images) and
    ``<split>_labels.pkl`` (label_specific, label_general and their names; protocol 2 as Python 2 wrote
    them). Images are interleaved across classes, as a shuffled file would be. Image i of a split is
    ``class_image(seed, k)`` for its class's seed; returns per split each image's (category, class, seed)."""
    import pickle

    classes = classes or TIERED_CLASSES
    root.mkdir(parents=True, exist_ok=True)
    seed, written = 0, {}
    for split, categories in classes.items():
        specific_str, general_str, members = [], [], []
        for category, names in categories:
            general_str.append(category)
            for name in names:
                members.append((len(specific_str), len(general_str) - 1, seed))
                specific_str.append(name)
                seed += 1
        images, specific, general, info = [], [], [], []
        for k in range(per_class):
            for s, g, class_seed in members:
                images.append(png_encoded(class_image(class_seed, k, size), as_array))
                specific.append(s)
                general.append(g)
                info.append((general_str[g], specific_str[s], class_seed))
        labels = {"label_specific": np.array(specific, dtype=np.int32),
                  "label_general": np.array(general, dtype=np.int32),
                  "label_specific_str": specific_str, "label_general_str": general_str}
        with open(root / f"{split}_images_png.pkl", "wb") as fh:
            pickle.dump(images, fh, protocol=protocol)
        with open(root / f"{split}_labels.pkl", "wb") as fh:
            pickle.dump(labels, fh, protocol=protocol)
        written[split] = info
    return written


# CIFAR-100's fine labels in the order of its meta file (alphabetical), typed from the CIFAR-100 page
CIFAR100_FINE = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
]


def cifar_pixel(fine: int, k: int) -> int:
    """The value of every byte of image k of fine class ``fine`` in the tiny CIFAR-100 copy."""
    return (7 * fine + 3 * k) % 256


def write_cifar100(root: Path, per_class: tuple[int, int] = (2, 1), fine_names=None) -> Path:
    """torchvision's CIFAR-100 layout, ``root/cifar-100-python/{train,test,meta}`` (protocol-2 pickles with
    str keys, as Python 2 wrote them), ``per_class`` images of every class in train and test, interleaved
    across classes; image k of class f is filled with ``cifar_pixel(f, k)`` (train first, k counting on in
    the test file); coarse label f % 20."""
    import pickle

    names = list(CIFAR100_FINE if fine_names is None else fine_names)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    k0 = 0
    for part, n in zip(("train", "test"), per_class):
        rows, fine = [], []
        for k in range(k0, k0 + n):
            for f in range(len(names)):
                rows.append(np.full(3072, cifar_pixel(f, k), dtype=np.uint8))
                fine.append(f)
        k0 += n
        data = {"filenames": [f"img_{i}.png" for i in range(len(rows))], "batch_label": f"{part} batch",
                "fine_labels": fine, "coarse_labels": [f % 20 for f in fine], "data": np.stack(rows)}
        with open(folder / part, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    meta = {"fine_label_names": names, "coarse_label_names": [f"super_{i}" for i in range(20)]}
    with open(folder / "meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return root
