"""The library example (examples/own_model.py) runs as written and its model learns."""

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_model.py"


def test_own_model_example_trains_with_initialize_and_probe(capsys):
    result = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert "kaiming" in out and "fan_out" in out  # the init table of the user's model
    assert result["test_acc"] > 0.6  # chance is 0.2
    assert {"act_var/stem", "grad_var/stem", "grad_norm/head", "dead_frac/blocks.0.0"} <= result.keys()


def test_readme_library_snippet_runs(capsys):
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    section = readme.split("## initlab as a library", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(snippet, "README.md", "exec"), {})
    assert "act_var/0" in capsys.readouterr().out
