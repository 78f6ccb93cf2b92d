"""Find a dataset on disk (data.root, then the system folder) or download it, via torchvision.

torchvision's dataset classes do the reading, so the on-disk formats are the real ones
(IDX for the MNIST family, pickled batches for CIFAR; the pickles through a restricted
unpickler, never plain pickle.load: a data file must not be able to run code).
"""

import logging
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from torchvision import datasets
from torchvision.datasets.utils import extract_archive

from initlab.errors import DatasetNotFound, UnsafeDataFile

log = logging.getLogger(__name__)

SYSTEM_ROOT = Path("/usr/share/datasets")  # where Debian's dataset-* packages install


class _CifarUnpickler(pickle.Unpickler):
    """Admits what a CIFAR batch holds: dicts, lists, str, bytes and numbers (which need no
    globals) and numpy arrays and scalars. Any other global, the way a pickle runs code, is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # bytes, as protocol 2 writes them
    ALLOWED |= {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                for name in ("_reconstruct", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def load_cifar_pickle(path: Path) -> dict:
    """One CIFAR batch or meta file, read without ever running code from it."""
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except Exception as err:  # a refused global, or a damaged file (which raises many types)
        raise UnsafeDataFile(f"refusing {path}: {' '.join(str(err).split())}") from None
    if not isinstance(entry, dict):
        raise UnsafeDataFile(f"refusing {path}: it holds a {type(entry).__name__}, not a CIFAR dict")
    return entry


class _SafeCifar:
    """Mixin for torchvision's CIFAR classes: the batches are read by load_cifar_pickle (this
    replaces the two methods where torchvision calls pickle.load: __init__ and _load_meta),
    and the files are checked to exist, not against their MD5 sums.

    torchvision refuses CIFAR copies whose checksums differ from the official archive
    (repacked system copies, or the small files the tests write). We read them rather
    than re-verify; a download is still verified against the archive's MD5.
    """

    def __init_subclass__(cls) -> None:
        cls.train_list = [[name, None] for name, _ in cls.train_list]
        cls.test_list = [[name, None] for name, _ in cls.test_list]
        cls.meta = {**cls.meta, "md5": None}

    def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
        datasets.VisionDataset.__init__(self, root)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        batches = [self._batch(name) for name, _ in (self.train_list if train else self.test_list)]
        self.data = np.vstack([images for images, _ in batches]).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        self.targets = [y for _, labels in batches for y in labels]
        self._load_meta()

    def _batch(self, name: str) -> tuple[np.ndarray, list[int]]:
        path = self._file(name)
        entry = load_cifar_pickle(path)
        images, labels = entry.get("data"), entry.get("labels", entry.get("fine_labels"))
        if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape[1:] == (3 * 32 * 32,)
                and isinstance(labels, list) and len(labels) == len(images)):
            raise UnsafeDataFile(f"refusing {path}: not a CIFAR batch (uint8 'data' [N, 3072] and N labels)")
        return images, labels

    def _load_meta(self) -> None:
        path = self._file(self.meta["filename"])
        self.classes = load_cifar_pickle(path).get(self.meta["key"])
        if not isinstance(self.classes, list):
            raise UnsafeDataFile(f"refusing {path}: not CIFAR metadata (no {self.meta['key']!r} list)")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def _file(self, name: str) -> Path:
        return Path(self.root) / self.base_folder / name


class CIFAR10(_SafeCifar, datasets.CIFAR10):
    pass


class CIFAR100(_SafeCifar, datasets.CIFAR100):
    pass


# name -> (torchvision class, folder name under /usr/share/datasets)
TORCHVISION = {
    "mnist": (datasets.MNIST, "mnist"),
    "fashion_mnist": (datasets.FashionMNIST, "fashion-mnist"),
    "cifar10": (CIFAR10, "cifar-10"),
    "cifar100": (CIFAR100, "cifar-100"),
}


# Debian packages that install a dataset into SYSTEM_ROOT (the others have none).
DEBIAN_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def open_split(name: str, root: str, train: bool, download: bool):
    """The torchvision dataset for one split, from the first source that has it."""
    cls, system_name = TORCHVISION[name]
    system_dir = SYSTEM_ROOT / system_name
    for source in (lambda: cls(root, train=train), lambda: _from_system(cls, system_dir, root, train)):
        try:
            return source()
        except (RuntimeError, FileNotFoundError):
            continue
    failure = None
    if download:
        try:
            with _removed_if_left_empty(_download_folder(cls, root)):
                return cls(root, train=train, download=True)
        except Exception as err:  # network errors come in many types; all mean "not here"
            failure = _last_line(err)
    raise DatasetNotFound(_not_found(name, root, system_dir, failure))


def _not_found(name: str, root: str, system_dir: Path, failure: str | None) -> str:
    """One line: where the dataset was looked for, why it was not downloaded, and what to do,
    offline first (this project's machines have no internet but Debian's packages)."""
    package = DEBIAN_PACKAGES.get(name)
    looked = f"not under data.root={root!r}" + (f" nor in {system_dir}" if package else "")
    why = f"the download failed ({failure})" if failure else "data.download=false"
    remedies = [f"apt-get install {package}" if package else f"offline, use {_offline_choices()}",
                "online, " + ("run again" if failure else "set data.download=true"),
                "or put its files under data.root in torchvision's layout"]
    return f"dataset {name!r} not found: {looked}, and {why}; {'; '.join(remedies)}"


def _offline_choices() -> str:
    """The datasets Debian packages, each marked installed or with its install command."""
    def how(name: str, package: str) -> str:
        return "installed" if (SYSTEM_ROOT / TORCHVISION[name][1]).is_dir() else f"apt-get install {package}"

    return " or ".join(f"dataset={name} ({how(name, package)})" for name, package in DEBIAN_PACKAGES.items())


def _last_line(err: Exception) -> str:
    """The cause of a failed download, in one line: torchvision's message lists every mirror it
    tried (six lines for MNIST); its last line is the error itself, e.g. no network."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__).strip("<>")


def _download_folder(cls, root: str) -> Path:
    """Where torchvision downloads `cls` to (MNIST's family: root/<Class>/raw; CIFAR: root)."""
    return Path(root) / cls.__name__ / "raw" if issubclass(cls, datasets.MNIST) else Path(root)


@contextmanager
def _removed_if_left_empty(folder: Path) -> Iterator[None]:
    """torchvision makes the download folder before it fetches anything: if the download fails,
    the folders it made are removed again where still empty, so a failed attempt leaves nothing."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for path in made:
            try:
                path.rmdir()
            except OSError:  # something was written into it: kept
                break
        raise


def _from_system(cls, system_dir: Path, root: str, train: bool):
    """Read a system copy: CIFAR folders directly, MNIST-family .gz files unpacked into root.

    torchvision's MNIST classes read only uncompressed files under root/<Class>/raw, so the
    .gz files are unpacked there once; their checksums differ from torchvision's and are
    not checked.
    """
    if not system_dir.is_dir():
        raise FileNotFoundError(system_dir)
    if not issubclass(cls, datasets.MNIST):
        return cls(str(system_dir), train=train)
    raw = Path(root) / cls.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for archive in sorted(system_dir.glob("*-ubyte.gz")):
        if not (raw / archive.stem).exists():
            log.info("unpacking %s into %s", archive, raw)
            extract_archive(str(archive), str(raw))
    return cls(root, train=train)
