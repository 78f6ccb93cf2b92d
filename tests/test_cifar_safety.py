"""CIFAR's pickled batches are read by a restricted unpickler: data loads, code never runs."""

import pickle

import numpy as np
import pytest

from conftest import run_in_process
from fakedata import write_cifar
from initlab.data.sources import CIFAR10, CIFAR100, UnsafeDataFile, open_split


class Payload:
    """What a crafted pickle carries: unpickling it calls exec."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_real_format_cifar_batches_load(tmp_path):
    write_cifar(tmp_path, 10)
    write_cifar(tmp_path, 100)
    train, test = CIFAR10(str(tmp_path), train=True), CIFAR10(str(tmp_path), train=False)
    assert train.data.shape == (500, 32, 32, 3) and train.data.dtype == np.uint8 and len(train.targets) == 500
    assert len(test.targets) == 100 and train.classes == [f"c{i}" for i in range(10)]
    fine = CIFAR100(str(tmp_path), train=True)
    assert fine.data.shape == (500, 32, 32, 3) and max(fine.targets) < 100


def test_a_batch_written_by_python_2_style_protocol_2_loads(tmp_path):
    write_cifar(tmp_path, 10)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(pickle.loads(path.read_bytes()), protocol=2))  # bytes via _codecs.encode
    assert CIFAR10(str(tmp_path), train=False).data.shape == (100, 32, 32, 3)


@pytest.mark.parametrize("name", ["data_batch_3", "batches.meta"])
def test_a_crafted_pickle_is_refused_naming_the_file_and_never_runs(tmp_path, name):
    write_cifar(tmp_path, 10)
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / name
    entry = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({**entry, "extra": Payload(marker)}))
    with pytest.raises(UnsafeDataFile) as err:
        open_split("cifar10", str(tmp_path), train=True, download=False)
    assert str(path) in str(err.value) and "builtins.exec" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_a_run_on_a_crafted_file_fails_with_a_record_and_runs_nothing(tmp_path):
    root = write_cifar(tmp_path / "data", 10)
    marker = tmp_path / "pwned"
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UnsafeDataFile):
        run_in_process(tmp_path / "run", "dataset=cifar10", f"data.root={root}", "model.width=8", "train.steps=2")
    assert not marker.exists()
    s = (tmp_path / "run" / "summary.json").read_text()
    assert '"failed"' in s and "test_batch" in s
