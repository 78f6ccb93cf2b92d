"""LSUV's data-driven half (Mishkin & Matas 2016): rescale each layer to unit output variance."""

import torch
from torch import Tensor, nn

from initlab.init.apply import WEIGHT_LAYERS, InitRecord, measure


@torch.no_grad()
def lsuv_rescale(model: nn.Module, batch: Tensor, records: list[InitRecord], tol: float, max_iter: int) -> None:
    """Layer by layer, input to output: divide W by sqrt(Var[out]) until |Var[out] - 1| < tol.

    Runs in eval mode so BatchNorm neither normalises the measured output away nor updates
    its running statistics. Each record gets the variance reached and the iterations used.
    """
    was_training = model.training
    model.eval()
    by_layer = {r.layer: r for r in records if r.param == "weight"}
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_LAYERS):
            continue
        var, iters = _output_var(model, module, batch), 0
        while abs(var - 1.0) >= tol and iters < max_iter and var > 0:
            module.weight.div_(var**0.5)
            var, iters = _output_var(model, module, batch), iters + 1
        by_layer[name].lsuv_out_var, by_layer[name].lsuv_iters = var, iters
    model.train(was_training)
    measure(model, records)


def _output_var(model: nn.Module, module: nn.Module, batch: Tensor) -> float:
    seen: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, i, out: seen.append(out.var()))
    try:
        model(batch)
    finally:
        handle.remove()
    return seen[0].item()
