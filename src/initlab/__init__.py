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

from initlab import theory
from initlab.diagnostics.probe import Probe
from initlab.init.apply import InitRecord, initialize
from initlab.init.lsuv import lsuv_rescale
from initlab.init.schemes import SCHEMES
from initlab.init.table import format_table
from initlab.models.stack import Stack
from initlab.track.identity import register_resolver

__version__ = "0.1.0"
__all__ = ["SCHEMES", "InitRecord", "Probe", "Stack", "format_table", "initialize", "lsuv_rescale", "theory"]

register_resolver()  # conf/train.yaml names job folders with it, in whichever process runs the job
