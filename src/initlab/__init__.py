"""initlab: how weight initialization decides whether a network trains.

The same parts the Hydra harness runs on, for any nn.Module and any training loop:

    import initlab
    records = initlab.initialize(model, "kaiming", mode="fan_out", gain="relu")  # one InitRecord per tensor
    probe = initlab.Probe(model)
    with probe.capture():
        loss = loss_fn(model(x), y)
        loss.backward()
    probe.floats()  # {"act_var/<layer>": ..., "grad_var/<layer>": ..., ...}

K models of one architecture train as one network with `initlab.Stack([m0, m1, ...])`
(x [K, B, ...] -> logits [K, B, classes]); `initlab.Probe(stack)` gives each statistic per run.

`initlab.SCHEMES` lists the schemes (each function's docstring: formula and paper);
`initlab.theory` holds the mean-field predictions.
"""

import importlib

from initlab.track.identity import register_resolver

__version__ = "0.1.0"
__all__ = ["SCHEMES", "InitRecord", "Probe", "Stack", "format_table", "initialize", "lsuv_rescale", "theory"]

# Each export's module. They import torch (over a second): imported on first use (PEP 562), so that
# what needs none of them, train.py --help, tab completion or a config check, never waits for it.
_EXPORTS = {"SCHEMES": "initlab.init.schemes", "InitRecord": "initlab.init.apply", "Probe": "initlab.diagnostics.probe",
            "Stack": "initlab.models.stack", "format_table": "initlab.init.table", "initialize": "initlab.init.apply",
            "lsuv_rescale": "initlab.init.lsuv", "theory": "initlab.theory"}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'initlab' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "theory" else getattr(module, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


register_resolver()  # conf/train.yaml names job folders with it, in whichever process runs the job
