"""What a user meets before anything runs: train.py --help is initlab's own page, and --help and
Tab completion never import torch (scripts/bench.py --startup times them against `import torch`),
because composing a config needs none of it: the names the config takes are written out
(initlab.config, initlab.init.params), each held equal here to the table that owns it."""

import dataclasses
import inspect
import os
import re
import subprocess
import sys

import pytest

from cli import REPO
from initlab.activations import ACTIVATIONS
from initlab.config import ACTIVATION_NAMES, DATASET_NAMES, MODEL_SCHEMAS, FanMode
from initlab.data import DATASETS
from initlab.init.params import SCHEME_PARAMS, InitBase
from initlab.init.schemes import SCHEMES, scheme
from initlab.models import BUILDERS

HEAVY = ("torch", "torchvision", "wandb", "matplotlib", "pandas")
# train.py as the shell runs it, then the heavy modules it imported
AS_TYPED = f"""
import runpy, sys
sys.argv = ["train.py", *sys.argv[1:]]
try:
    runpy.run_path("train.py", run_name="__main__")
finally:
    print("imported:", *[m for m in {HEAVY!r} if m in sys.modules])
"""


def train_py(*args: str, env: dict | None = None) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", AS_TYPED, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_the_names_a_config_takes_are_those_of_the_tables_that_own_them():
    assert ACTIVATION_NAMES == tuple(ACTIVATIONS)
    assert DATASET_NAMES == tuple(DATASETS)
    assert MODEL_SCHEMAS.keys() == BUILDERS.keys()
    assert SCHEME_PARAMS.keys() == SCHEMES.keys()
    for name, s in SCHEMES.items():
        keys = [p.name for p in inspect.signature(s.fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert keys == [f.name for f in dataclasses.fields(s.params)][len(dataclasses.fields(InitBase)):], name


def test_a_scheme_whose_parameters_differ_from_its_declared_keys_is_refused():
    def kaiming(w, t, *, distribution, slope):  # `a` renamed
        return None

    with pytest.raises(TypeError, match=r"\['distribution', 'slope'\] differ from its keys \['distribution', 'a'\]"):
        scheme()(kaiming)
    assert SCHEMES["kaiming"].fn.__module__ == "initlab.init.schemes"


def test_help_and_tab_completion_import_no_torch_nor_wandb():
    assert train_py("--help")[-1] == "imported:"
    line = "python train.py init="
    offered = train_py("-sc", "query=bash", env={"COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert offered[-1] == "imported:" and "init=kaiming" in offered[0].split()


def test_help_lists_the_groups_a_user_sets_with_their_options_and_readme_commands():
    page = "\n".join(train_py("--help")[:-1])
    conf = REPO / "conf"
    groups = sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name != "hydra")
    listed = dict(re.findall(r"^(\w+): (.+)$", page.split("== Groups")[1].split("==")[1], re.M))
    assert sorted(listed) == groups  # every group, and nothing internal (no schema/...)
    for group in groups:
        assert listed[group].split(", ") == sorted(p.stem for p in (conf / group).glob("*.yaml")), group
    launchers = sorted(p.stem for p in (conf / "hydra" / "launcher").glob("*.yaml"))
    assert f"hydra/launcher={'|'.join(launchers)}" in page
    assert f"mode={'|'.join(m.value for m in FanMode)}" in page
    readme = (REPO / "README.md").read_text()
    examples = [line for line in page.splitlines() if line.startswith("python ")]
    assert len(examples) >= 5 and all(line in readme for line in examples)
