"""scripts/theory.py: the quantities, --json, critical=true, the phase diagram, one-line errors."""

import json
import runpy
import subprocess
import sys

import pytest

from cli import REPO
from initlab.theory import critical_sigma_w2, mean_field

SCRIPT = REPO / "scripts" / "theory.py"
theory_main = runpy.run_path(str(SCRIPT))["main"]  # its main(), in this process


def test_json_holds_the_mean_field_quantities(capsys):
    assert theory_main(["activation=tanh", "sigma_w2=1.5", "sigma_b2=0.05", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(mean_field("tanh", 1.5, 0.05).as_dict()))
    assert {"q_star", "c_star", "chi_1", "xi_q", "xi_c"} <= set(printed) and printed["phase"] == "ordered"


def test_text_output_names_each_quantity_and_why_one_is_undefined(capsys):
    assert theory_main(["activation=relu", "sigma_w2=2"]) == 0
    out = capsys.readouterr().out
    assert "q*      undefined [1]" in out and "[1] every q is a fixed point" in out
    assert "chi_1   1\n" in out and "phase   critical" in out and "xi_c    undefined [2]" in out
    assert theory_main(["activation=tanh", "sigma_w2=4", "sigma_b2=0.05"]) == 0
    assert "phase   chaotic" in capsys.readouterr().out


def test_critical_prints_the_critical_sigma_w2_or_why_there_is_none(capsys):
    assert theory_main(["activation=tanh", "sigma_b2=0.05", "critical=true", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["critical_sigma_w2"] == pytest.approx(critical_sigma_w2("tanh", 0.05))
    assert theory_main(["activation=relu", "sigma_b2=0.05", "critical=true"]) == 0
    out = capsys.readouterr().out
    assert "critical sigma_w^2 does not exist: chi_1 < 1 wherever q* is finite" in out
    assert "q* = sigma_b^2 / (1 - chi_1) diverges from sigma_w^2 = 2 on, exactly where chi_1 reaches 1" in out
    assert theory_main(["activation=relu", "critical=true"]) == 0  # He init, the edge of chaos
    assert capsys.readouterr().out == "relu, sigma_b^2=0: critical sigma_w^2 = 2 (chi_1 = 1)\n"


def test_phase_draws_a_png(tmp_path, capsys):
    out = tmp_path / "phase.png"
    assert theory_main(["phase", "activation=tanh", "points=4", "sigma_w2=[1,3]", f"out={out}"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["activation=swish", "sigma_w2=1"], "'activation': 'swish' — valid choices: relu, leaky_relu, tanh"),
    (["activation=tanh", "sigma_w2=abc"], "'sigma_w2': 'abc' — a number"),
    (["activation=tanh"], "'sigma_w2': None — a number >= 0 (fan_in * Var[W]), or critical=true"),
    (["activation=tanh", "sigma_w2=1", "sigma_b2=-0.1"], "'sigma_b2': -0.1 — a finite number >= 0"),
    (["activation=tanh", "sigma_w2=nan"], "'sigma_w2': nan — a finite number >= 0"),
    (["activation=tanh", "sigma_w2=inf"], "'sigma_w2': inf — a finite number >= 0"),
    (["activation=leaky_relu", "sigma_w2=1", "negative_slope=nan"], "'negative_slope': nan — a finite number"),
    (["activation=ReLU", "sigma_w2=1"], "'activation': 'ReLU' — did you mean relu"),
    (["phase", "sigma_w2=[1,inf]"], "'sigma_w2': [1.0, inf] — [low,high] with 0 <= low < high, finite"),
    (["phase", "out=/tmp/phase.txt"], "'out': '/tmp/phase.txt' — a .png file"),
    (["phase", "out=/etc/hostname/phase.png"], "/etc/hostname is not a folder"),
    (["sigmaw2=1"], "'sigmaw2': '1' — unknown key; valid keys: activation, sigma_w2"),
    (["tanh"], "'arguments': 'tanh' — key=value pairs"),
    (["phase", "sigma_w2=[3,1]"], "'sigma_w2': [3.0, 1.0] — [low,high] with 0 <= low < high"),
    (["phase", "points=x"], "'points': 'x' — an integer"),
])
def test_bad_arguments_get_one_line_and_exit_2(args, message, capsys):
    assert theory_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_script_does_not_import_torch_dynamo():
    """Its start-up must stay within 1.2x of `import torch`'s: torch.func's transforms pull in
    torch._dynamo (over a second), so the theory takes its derivatives with plain torch.autograd."""
    check = (f"import runpy, sys; sys.argv = ['theory.py', 'activation=selu', 'sigma_w2=1.2', 'sigma_b2=0.1'];\n"
             f"try: runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\nexcept SystemExit: pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "phase   chaotic" in proc.stdout and proc.stdout.endswith("\n[]\n"), proc.stdout


def test_the_script_exits_2_without_a_traceback():
    proc = subprocess.run([sys.executable, str(SCRIPT), "activation=tanh", "critical=maybe"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == "error: invalid value for 'critical': 'maybe' — true or false\n"
