"""Omniglot (Lake et al. 2015) for N-way K-shot classification, from the official archive layout.

quickstudy does not download Omniglot. Users who have it unpack the official ``images_background``
and ``images_evaluation`` folders into one directory (``<root>/images_background/<alphabet>/
<characterNN>/<drawing>.png``, 105 x 105 black-on-white PNGs) and point ``QUICKSTUDY_OMNIGLOT_DIR``
at it (default ``~/.cache/quickstudy/omniglot``). As in MAML's code, every character of both
folders is a class (1623), resized to 28 x 28 with Lanczos filtering, with ink as 1; a fixed
seeded permutation puts 1200 characters in meta-training and the rest in meta-testing, and each
class of a task is rotated by a random multiple of 90 degrees. The resized array is cached beside
the images (``quickstudy-omniglot28.npz``). The built-in ``fewshot-glyphs-*`` tasks have the same
shape and need no files.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.errors import ConfigError
from quickstudy.tasks.fewshot import FewShotTasks, classification

FOLDERS = ("images_background", "images_evaluation")
SIZE = 28
NUM_TRAIN_CLASSES = 1200
SPLIT_SEED = 1
CACHE_NAME = "quickstudy-omniglot28.npz"


def default_root() -> Path:
    """``$QUICKSTUDY_OMNIGLOT_DIR`` or ``~/.cache/quickstudy/omniglot``."""
    env = os.environ.get("QUICKSTUDY_OMNIGLOT_DIR")
    return Path(env) if env else Path.home() / ".cache" / "quickstudy" / "omniglot"


def load_omniglot(root: str | Path) -> tuple[np.ndarray, list[str]]:
    """Reads every character of the official layout under ``root``, resized to 28 x 28.

    Args:
        root: Directory holding ``images_background`` and/or ``images_evaluation``.

    Returns:
        Images ``[C, D, 28, 28]`` uint8 (ink 255, background 0), characters in sorted
        ``folder/alphabet/character`` order and drawings in sorted file-name order; and the
        character names.

    Raises:
        ConfigError: No folder of the layout, a character without drawings, or characters with
            different numbers of drawings (the message names the path).
    """
    from PIL import Image

    root = Path(root)
    folders = [root / f for f in FOLDERS if (root / f).is_dir()]
    if not folders:
        raise ConfigError(
            f"no Omniglot images under {root}: expected {' and/or '.join(FOLDERS)}/<alphabet>/"
            f"<character>/*.png (the official archives, unzipped); set QUICKSTUDY_OMNIGLOT_DIR "
            f"or use the built-in fewshot-glyphs-* tasks"
        )
    alphabets = [a for f in folders for a in f.iterdir() if a.is_dir()]
    chars = sorted(c for a in alphabets for c in a.iterdir() if c.is_dir())
    images, names, drawings = [], [], None
    for char in chars:
        files = sorted(char.glob("*.png"))
        if not files:
            raise ConfigError(f"Omniglot character {char} has no .png drawings")
        if drawings is None:
            drawings = len(files)
        elif len(files) != drawings:
            raise ConfigError(
                f"Omniglot character {char} has {len(files)} drawings, the others {drawings}"
            )
        imgs = []
        for path in files:
            with Image.open(path) as img:
                small = img.convert("L").resize((SIZE, SIZE), resample=Image.LANCZOS)
            imgs.append(255 - np.asarray(small, np.uint8))
        images.append(np.stack(imgs))
        names.append(str(char.relative_to(root)))
    if not images:
        raise ConfigError(f"no Omniglot characters under {', '.join(map(str, folders))}")
    return np.stack(images), names


@functools.cache
def _cached(root: str) -> np.ndarray:
    path = Path(root) / CACHE_NAME
    if path.exists():
        with np.load(path) as data:
            return data["images"]
    images, _ = load_omniglot(root)
    with contextlib.suppress(OSError):  # a read-only copy of the data: no cache, same result
        np.savez_compressed(path, images=images)
    return images


def omniglot(
    ways: int, shots: int, root: str | Path | None = None, num_train_classes: int | None = None
) -> FewShotTasks:
    """N-way K-shot Omniglot; the images are read (or their cache loaded) on first use.

    Args:
        ways: ``N``.
        shots: ``K``.
        root: Data directory (default: :func:`default_root`).
        num_train_classes: Meta-training classes (default 1200, MAML's split).
    """
    root = str(root or default_root())
    num_train = NUM_TRAIN_CLASSES if num_train_classes is None else num_train_classes

    def data() -> np.ndarray:
        images = _cached(root)
        return images[np.random.default_rng(SPLIT_SEED).permutation(images.shape[0])]

    def image(c: jax.Array, j: jax.Array) -> jax.Array:
        images = data()
        return (jnp.asarray(images)[c, j].astype(jnp.float32) / 255.0)[..., None]

    return classification(
        name=f"fewshot-omniglot-{ways}way-{shots}shot",
        description=(
            f"Omniglot (official layout under $QUICKSTUDY_OMNIGLOT_DIR), 28x28, {num_train} "
            f"train / rest test characters, rotations; {ways}-way {shots}-shot."
        ),
        ways=ways,
        shots=shots,
        image=image,
        image_shape=(SIZE, SIZE, 1),
        num_train_classes=num_train,
        num_classes=_num_classes(root, num_train),
        drawings=20,
    )


def _num_classes(root: str, num_train: int) -> int:
    """Number of characters, without reading the images when the cache or folders are absent."""
    cache = Path(root) / CACHE_NAME
    if cache.exists():
        with np.load(cache) as data:
            return int(data["images"].shape[0])
    folders = [Path(root) / f for f in FOLDERS if (Path(root) / f).is_dir()]
    count = sum(1 for f in folders for a in f.iterdir() if a.is_dir() for c in a.iterdir())
    return count or 1623  # the official total, until the data is there
