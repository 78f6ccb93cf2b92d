"""Run records on disk: writers leave no damage (a full disk included), readers tolerate it."""

import json
import logging
import os
import subprocess

import pytest
import torch
from torch import nn

from conftest import run_in_process
from sweeps import job_dirs, multirun
from initlab.report.load import load_sweep
from initlab.report.markdown import write_report
from initlab.sweep.status import format_table, job_table
from initlab.track.records import (DamagedRecord, RunDirBusy, RunRecords, atomic_write, lock_holder, read_config,
                                   read_metrics, read_summary)
from initlab.train.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (root only; skipped where it cannot be mounted), and a function that fills it."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")

    def fill() -> None:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    yield mount, fill
    subprocess.run(["umount", str(mount)], check=True)


def _model_and_optimizer():
    model = nn.Linear(64, 64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def test_record_files_get_the_umasks_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        records = RunRecords(tmp_path)
        records.write_summary({"status": "completed"})
        records.append_metrics({"step": 0})
        save_checkpoint(tmp_path / "last.pt", 0, *_model_and_optimizer())
    finally:
        os.umask(old)
    for name in ("summary.json", "metrics.jsonl", "last.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_a_full_disk_leaves_the_old_file_and_no_temporary_one(full_disk):
    mount, fill = full_disk
    atomic_write(mount / "summary.json", '{"status": "completed"}')
    model, optimizer, scheduler = _model_and_optimizer()
    save_checkpoint(mount / "last.pt", 3, model, optimizer, scheduler)
    fill()
    with pytest.raises(OSError):
        atomic_write(mount / "summary.json", "x" * 20_000)
    with pytest.raises(OSError):
        save_checkpoint(mount / "last.pt", 4, model, optimizer, scheduler)
    assert sorted(p.name for p in mount.iterdir()) == ["filler", "last.pt", "summary.json"]
    assert read_summary(mount) == {"status": "completed"}
    assert load_checkpoint(mount / "last.pt", *_model_and_optimizer()) == 3


def test_an_append_that_fills_the_disk_is_cut_back_to_whole_lines(full_disk):
    mount, fill = full_disk
    records = RunRecords(mount)
    records.append_metrics({"step": 0, "train/loss": 1.0})
    before = records.metrics_path.read_bytes()
    fill()
    with pytest.raises(OSError):
        records.append_metrics({"step": 1, "pad": "x" * 20_000})
    assert records.metrics_path.read_bytes() == before


def test_a_truncated_last_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
    records = RunRecords(tmp_path)
    for step in range(3):
        records.append_metrics({"step": step, "train/loss": 1.0 / (step + 1)})
    text = records.metrics_path.read_text()
    records.metrics_path.write_text(text[:-9])
    with caplog.at_level(logging.WARNING):
        assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1]
    assert "truncated last line" in caplog.text
    records.truncate_metrics(5)  # what a resume does: the file is whole lines again
    assert records.metrics_path.read_text() == "".join(text.splitlines(keepends=True)[:2])


def test_an_unreadable_line_before_the_last_is_damage_not_a_cut(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1, "tr\n{"step": 2}\n')
    with pytest.raises(DamagedRecord, match="line 2"):
        read_metrics(tmp_path)


def test_an_unreadable_summary_reads_as_damaged_and_config_raises(tmp_path):
    assert read_summary(tmp_path) is None and read_config(tmp_path) is None
    (tmp_path / "summary.json").write_text('{"status": "compl')
    assert read_summary(tmp_path)["status"] == "damaged"
    (tmp_path / "config.yaml").write_text("seed: 0\ntrain:\n  steps: [1, 2\n")
    with pytest.raises(DamagedRecord, match="config.yaml"):
        read_config(tmp_path)


def test_an_unreadable_checkpoint_means_starting_again_from_step_0(tmp_path, caplog):
    model, optimizer, scheduler = _model_and_optimizer()
    save_checkpoint(tmp_path / "last.pt", 7, model, optimizer, scheduler)
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])
    fresh = _model_and_optimizer()
    weights = fresh[0].weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(tmp_path / "last.pt", *fresh) == 0
    assert "starting again from step 0" in caplog.text
    assert torch.equal(fresh[0].weight, weights)  # nothing half-restored


def test_a_second_holder_of_a_run_directory_is_refused(tmp_path):
    first = RunRecords(tmp_path)
    with first.locked():
        assert lock_holder(tmp_path) == str(os.getpid())
        with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"):
            with RunRecords(tmp_path).locked():
                pass
    assert not lock_holder(tmp_path)
    with RunRecords(tmp_path).locked():  # free again once the first run ends
        pass
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # locking wrote no record


def test_status_and_report_show_damaged_and_stopped_runs_rather_than_crash(tmp_path):
    sweep = tmp_path / "sweep"
    assert multirun(sweep, "experiment=smoke", "logger=none", "init=xavier", "seed=0,1,2,3") == 0
    summary_cut, config_cut, metrics_cut, killed = job_dirs(sweep)
    (summary_cut / "summary.json").write_text((summary_cut / "summary.json").read_text()[:25])
    (config_cut / "config.yaml").write_text("seed: 1\nmodel:\n  depth: [4\n")
    lines = (metrics_cut / "metrics.jsonl").read_text().splitlines(keepends=True)
    (metrics_cut / "metrics.jsonl").write_text("".join([lines[0], lines[1][:30] + "\n", *lines[2:]]))
    (killed / "summary.json").unlink()  # as if SIGKILLed: no summary, and no process holds its lock
    table = job_table(sweep).set_index("dir")
    assert [table.loc[str(d), "status"] for d in job_dirs(sweep)] == ["damaged"] * 3 + ["stopped"]
    assert "config.yaml" in table.loc[str(config_cut), "error"]
    assert "line 2" in table.loc[str(metrics_cut), "error"]
    shown = format_table(job_table(sweep))
    assert "damaged: 3" in shown and "stopped: 1" in shown
    out = write_report(load_sweep(sweep), tmp_path / "report")
    assert "damaged" in out.read_text()


def test_records_a_trained_run_lost_or_emptied_are_damage_and_a_report_still_reads_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    assert multirun(sweep, "experiment=smoke", "logger=none", "init=xavier", "seed=0,1,2,3,4,5") == 0
    config_empty, config_gone, metrics_empty, overrides_cut, init_odd, intact = job_dirs(sweep)
    (config_empty / "config.yaml").write_text("")
    (config_gone / "config.yaml").unlink()
    (metrics_empty / "metrics.jsonl").write_text("")
    (overrides_cut / ".hydra" / "overrides.yaml").write_text("[a: b")
    (init_odd / "init.json").write_text('[{"param": "weight", "fan_in": "x"}]')
    table = job_table(sweep).set_index("dir")
    statuses = [table.loc[str(d), "status"] for d in job_dirs(sweep)]
    assert statuses == ["damaged"] * 4 + ["completed"] * 2
    assert "config.yaml" in table.loc[str(config_gone), "error"] and "metrics.jsonl" in table.loc[str(metrics_empty), "error"]
    assert table.loc[str(overrides_cut), "overrides"] == ["experiment=smoke", "init=xavier", "seed=3"]  # from its name
    loaded = load_sweep(sweep)
    assert loaded.axes == []  # no axis made up from the damaged overrides
    text = write_report(loaded, tmp_path / "report").read_text()
    assert "| runs | completed | diverged | failed | damaged |" in text and "| 6 | 2 | 0 | 0 | 4 |" in text


def test_a_report_of_a_sweep_killed_before_any_run_finished(tmp_path):
    sweep = tmp_path / "sweep"
    assert multirun(sweep, "experiment=smoke", "logger=none", "init=xavier", "seed=0,1") == 0
    for job_dir in job_dirs(sweep):
        (job_dir / "summary.json").unlink()
    text = write_report(load_sweep(sweep), tmp_path / "report").read_text()
    assert "| 2 | 0 | 0 | 0 | 2 |" in text and "runs started: – to –" in text  # 2 stopped


def test_a_real_datasets_config_records_its_own_shape_not_synthetic_keys(tmp_path, caplog):
    """data.num_classes and friends shape synthetic data only: set for MNIST (as experiment=smoke
    sets them), they are said to be unused and recorded as null, never as the run's shape."""
    with caplog.at_level(logging.WARNING):
        run_in_process(tmp_path, "dataset=mnist", "data.num_classes=5", "train.steps=0")
    assert "data.num_classes=5: for dataset=synthetic only" in caplog.text
    data = read_config(tmp_path)["data"]
    assert [data[k] for k in ("input_shape", "num_classes", "train_size", "test_size")] == [None] * 4
    weights = [r["shape"] for r in json.loads((tmp_path / "init.json").read_text()) if r["param"] == "weight"]
    assert weights[0][1] == 784 and weights[-1][0] == 10  # MNIST's 28x28 inputs and 10 classes
