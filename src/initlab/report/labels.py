"""What a config key means, for axis labels, legends and tables: `init.scale` is sigma_w^2 only
for variance_scaling with fan_in and gain 1, so a key's meaning may depend on the settings the
runs share."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Meaning:
    text: str  # in Markdown and plain text
    tex: str  # in figures (matplotlib mathtext)
    note: str = ""  # what it is, for the report's table of axes


def _sigma_w2(shared: dict) -> bool:
    """std = gain sqrt(scale / fan) is sqrt(sigma_w^2 / fan_in) exactly when every run has fan_in
    (null: the scheme's default) and gain 1 (a key missing from `shared` varies between runs)."""
    return (shared.get("init.scheme") == "variance_scaling" and shared.get("mode", "varies") in (None, "fan_in")
            and str(shared.get("gain", "varies")) in ("None", "1", "1.0"))


MEANINGS = {
    "init.scale": Meaning("variance scale s", r"variance scale $s$", "std = gain sqrt(s / fan)"),
    "init.bias_std": Meaning("sigma_b", r"$\sigma_b$", "bias std"),
    "model.depth": Meaning("depth L", r"depth $L$", "weight layers, output layer included"),
    "model.width": Meaning("width N", r"width $N$", "units per hidden layer"),
    "model.activation": Meaning("activation", "activation", "nonlinearity phi"),
    "model.bias": Meaning("biases", "biases", "whether the layers have biases"),
    "init": Meaning("init", "init", "initialisation scheme"),
    "mode": Meaning("fan mode", "fan mode", "fan_in, fan_out or fan_avg in the scheme's std"),
    "gain": Meaning("gain", "gain", "factor on the scheme's std"),
    "optim.lr": Meaning("learning rate", "learning rate"),
    "optim.name": Meaning("optimizer", "optimizer"),
    "data.batch_size": Meaning("batch size", "batch size"),
    "dataset": Meaning("dataset", "dataset"),
    "train.steps": Meaning("training steps", "training steps"),
}
# key -> (condition on the shared settings, its meaning where the condition holds)
CONDITIONAL = {
    "init.scale": (_sigma_w2, Meaning("sigma_w^2", r"$\sigma_w^2$", "fan_in Var[W]: W ~ N(0, sigma_w^2 / fan_in)")),
}


def meaning(key: str, shared: dict) -> Meaning:
    """The meaning of `key` under the settings every run shares; a key the tables lack is itself."""
    condition, special = CONDITIONAL.get(key, (None, None))
    if condition is not None and condition(shared):
        return special
    return MEANINGS.get(key, Meaning(key, key))
