"""The real Fashion-MNIST (Debian's dataset-fashion-mnist): a short run learns far above chance."""

import json
from pathlib import Path

import pytest

from cli import summary
from conftest import run_in_process
from initlab.data.sources import SYSTEM_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SYSTEM_ROOT / "fashion-mnist").is_dir(), reason="apt-get install dataset-fashion-mnist"),
]


def test_short_fashion_mnist_run_reaches_high_test_accuracy(tmp_path: Path):
    run_in_process(tmp_path, "dataset=fashion_mnist", f"data.root={tmp_path / 'data'}", "train.steps=300", "train.eval_every=100")
    s = summary(tmp_path)
    assert s["status"] == "completed"
    assert s["test/acc"] > 0.75  # chance is 0.10
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["test/acc"] < 0.3  # at init: near chance, so the gain is real learning
