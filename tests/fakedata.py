"""Small datasets written in the real on-disk formats, read back by torchvision's own code.

MNIST and CIFAR cannot be downloaded here; these files have the official layout and
encoding (IDX for the MNIST family, pickled batches for CIFAR), only fewer images.
"""

import pickle
import struct
from pathlib import Path

import numpy as np


def _learnable(n: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class sets the brightness of a class-specific stripe: learnable."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 80, (n, *shape), dtype=np.uint8)
    rows = shape[-2] if len(shape) >= 2 else 1
    for i, y in enumerate(labels):
        images[i, ..., (y * rows // classes) % rows, :] = 255
    return images, labels


def write_idx(root: Path, folder: str, n_train: int = 512, n_test: int = 128) -> Path:
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, as torchvision expects."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = _learnable(n, (28, 28), 10, seed)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())
    return root


def write_cifar(root: Path, classes: int = 10, per_batch: int = 100, n_test: int = 100) -> Path:
    """cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} or cifar-100-python/{train,test,meta}."""
    label_key = "labels" if classes == 10 else "fine_labels"

    def dump(path: Path, n: int, seed: int) -> None:
        images, labels = _learnable(n, (3, 32, 32), classes, seed)
        batch = {"data": images.reshape(n, -1), label_key: labels.tolist(), "filenames": [f"{i}.png" for i in range(n)]}
        path.write_bytes(pickle.dumps(batch))

    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, 6):
            dump(folder / f"data_batch_{i}", per_batch, i)
        dump(folder / "test_batch", n_test, 0)
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        dump(folder / "train", 5 * per_batch, 1)
        dump(folder / "test", n_test, 0)
        (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return root
