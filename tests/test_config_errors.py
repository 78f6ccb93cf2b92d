"""Bad input, for every config group: rejected before any data, named key, value and choices."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from cli import REPO, train
from initlab.config import register_configs
from initlab.errors import ConfigError
from initlab.validate import validate

register_configs()


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(
    "override, says",
    [
        ("init=kaimin", "init/kaimin"),
        ("init.distribution=gaussian", "gaussian"),
        ("init.sparsity=0.5", "sparsity"),  # kaiming has no such key
        ("init.a=steep", "steep"),
        ("mode=fan_inn", "fan_inn"),
        ("model=transformer", "model/transformer"),
        ("model.depth=deep", "deep"),
        ("model.activation=swish", "swish"),
        ("model.norm=group", "group"),
        ("dataset=imagenet", "dataset/imagenet"),
        ("data.batch_size=big", "big"),
        ("optim=lamb", "optim/lamb"),
        ("optim.schedule=step", "step"),
        ("logger=tensorboard", "logger/tensorboard"),
        ("logger.mode=sometimes", "sometimes"),
        ("train.steps=many", "many"),
        ("seed=abc", "abc"),
    ],
)
def test_hydra_rejects_wrong_types_and_choices_while_composing(override, says):
    with pytest.raises(ConfigCompositionException) as err:
        composed(override)
    assert says in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["gain=-1"], "gain"),
        (["gain=steep"], "gain"),
        (["init=normal", "mode=fan_out"], "mode"),
        (["init=uniform", "gain=relu"], "gain"),
        (["init=lecun", "gain=2"], "gain"),
        (["model=resnet", "model.depth=21"], "model.depth"),
        (["model=cnn", "model.kernel=2"], "model.kernel"),
        (["model.depth=0"], "model.depth"),
        (["model.width=0"], "model.width"),
        (["data.batch_size=0"], "data.batch_size"),
        (["data.subset=-5"], "data.subset"),
        (["optim.lr=0"], "optim.lr"),
        (["train.steps=-1"], "train.steps"),
        (["train.log_every=0"], "train.log_every"),
        (["device=tpu"], "device"),
        (["device=cuda:0"], "device"),
    ],
)
def test_relations_between_values_are_checked_before_anything_runs(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(composed(*overrides))
    assert err.value.key == key
    assert str(overrides[-1].split("=")[1]) in str(err.value)


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["gain=banana", "train.steps=0"], "invalid value for 'gain': 'banana'"),
        (["init=normal", "mode=fan_out", "train.steps=0"], "init=normal takes no fan mode"),
        (["init=dirac", "train.steps=0"], "needs a model with convolutions"),
        (["init=eye", "model=cnn", "train.steps=0"], "needs 2-D weights"),
        (["init=delta_orthogonal", "model=cnn", "model.channels=2", "dataset=cifar10", "train.steps=0"],
         "out_channels >= in_channels"),
        (["dataset=cifar100", "data.root=/nonexistent", "data.download=false", "train.steps=1"],
         "put a system copy in /usr/share/datasets/cifar-100, or go online"),
    ],
)
def test_cli_prints_one_line_and_exits_nonzero_without_traceback(tmp_path, overrides, says):
    proc = train(tmp_path, *overrides, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]


def test_missing_dataset_names_all_three_remedies(tmp_path):
    proc = train(tmp_path, "dataset=mnist", "data.root=/nonexistent", "data.download=false", "train.steps=1",
                 check=False)
    message = proc.stderr.strip()
    assert "data.root='/nonexistent'" in message and "/usr/share/datasets/mnist" in message
    assert "download" in message
    assert (tmp_path / "summary.json").exists()  # the failed run is recorded, not lost


def test_the_debian_package_is_named_only_where_one_exists(tmp_path, monkeypatch):
    from initlab.data import sources

    monkeypatch.setattr(sources, "SYSTEM_ROOT", tmp_path / "system")  # as on a machine without it
    with pytest.raises(sources.DatasetNotFound, match=r"apt-get install dataset-fashion-mnist"):
        sources.open_split("fashion_mnist", str(tmp_path / "root"), True, download=False)
    with pytest.raises(sources.DatasetNotFound) as err:
        sources.open_split("cifar10", str(tmp_path / "root"), True, download=False)
    assert "apt-get" not in str(err.value) and "system" in str(err.value)
