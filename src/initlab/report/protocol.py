"""The experiment's declared protocol, as the runs recorded it, and the report's Protocol section.

A named experiment declares under `hydra.sweeper.protocol` (initlab.config.Protocol) what it
takes from its paper (cited), what it changes and why, how each free hyperparameter is chosen,
and which seeds fit and which score a fitted quantity. Every job records it in .hydra/hydra.yaml;
the report reads it from there (not from conf/, which may have changed since), prints it beside
the values the runs actually had, and says where the declaration falls short: a hyperparameter
chosen after the main grid was seen, a rule run on the main grid's own seeds, a free
hyperparameter with no rule.
"""

import json
from collections import Counter

from omegaconf import OmegaConf

from initlab.config import Protocol
from initlab.report.load import Sweep
from initlab.report.stats import Estimate
from initlab.report.tables import table

TRAINING = ("optim.name", "optim.lr", "optim.momentum", "optim.weight_decay", "optim.schedule", "train.steps")
# settings a reproduction must choose or take from the paper (those its model has)
FREE = ("model.width", "model.channels", "data.batch_size", *TRAINING)


def read_protocol(sweep: Sweep) -> tuple[dict, int]:
    """The protocol most runs recorded (the empty one where none did), completed with the schema's
    defaults, and how many runs recorded another."""
    recorded = Counter(json.dumps(p, sort_keys=True) for p in sweep.protocols.values() if p)
    if not recorded:
        return _complete({}), 0
    text, count = recorded.most_common(1)[0]
    return _complete(json.loads(text)), sum(recorded.values()) - count


def _complete(protocol: dict) -> dict:
    """The protocol as recorded (what the experiment's yaml spelt out) with the schema's defaults for
    the rest: an experiment that fits nothing need not say `fits: []`."""
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(Protocol), protocol), enum_to_str=True)


def fit_declaration(sweep: Sweep, quantity: str) -> dict | None:
    """The protocol's fit of `quantity` ({quantity, fit_seeds, score_seeds}), if it declares one."""
    return next((f for f in read_protocol(sweep)[0]["fits"] if f["quantity"] == quantity), None)


def protocol_section(sweep: Sweep) -> list[str]:
    protocol, others = read_protocol(sweep)
    lines = ["## Protocol", ""]
    if not any(protocol[part] for part in ("takes", "changes", "chooses", "fits", "selects")):
        return lines + ["These runs declare no protocol (`hydra.sweeper.protocol` in the experiment's config): nothing "
                        "says which settings come from a paper, or how the free hyperparameters were chosen.", ""]
    lines += ["Declared by the experiment's config (`hydra.sweeper.protocol`) and recorded in each job's "
              ".hydra/hydra.yaml; beside each entry, the values these runs had.", ""]
    if others:
        lines += [f"**{others} run(s) recorded a different protocol**; this is the one most runs recorded.", ""]
    if protocol["paper"]:
        lines += [f"Paper: {protocol['paper']}", ""]
    lines += _table("Taken from the paper", ["what", "paper's value", "where in the paper", "these runs"],
                    [[t["what"], t["value"], t["source"], _values(sweep, t["keys"])] for t in protocol["takes"]])
    lines += _table("Changed from the paper, and why", ["what", "paper", "here", "why", "these runs"],
                    [[c["what"], c["paper"], c["here"], c["why"], _values(sweep, c["keys"])]
                     for c in protocol["changes"]])
    lines += _table("Free hyperparameters: how each is chosen",
                    ["setting", "these runs", "rule", "criterion", "seeds the rule used", "fixed before the main grid"],
                    [[f"`{c['key']}`", _values(sweep, [c["key"]]), _rule(c), c["criterion"],
                      _seeds(c["seeds"]), "yes" if c["before_grid"] is True else "**no**"]
                     for c in protocol["chooses"]])
    for selection in protocol["selects"]:
        lines += _selection_table(sweep, selection)
    lines += _table("Fitted quantities", ["quantity", "fitted on seeds", "scored on seeds", "seeds in this sweep"],
                    [[f["quantity"], _seeds(f["fit_seeds"]), _seeds(f["score_seeds"]), _seeds(_grid_seeds(sweep))]
                     for f in protocol["fits"]])
    shortfalls = _shortfalls(sweep, protocol)
    return lines + (["**Where the protocol falls short**", "", *(f"- {s}" for s in shortfalls), ""] if shortfalls else [])


def _shortfalls(sweep: Sweep, protocol: dict) -> list[str]:
    """Where the protocol does not make the runs a test fixed before their results were seen."""
    grid = set(_grid_seeds(sweep))
    warnings = []
    for choice in protocol["chooses"]:
        if choice["key"] in sweep.axes:  # swept here (a pre-sweep): nothing was chosen for these runs
            continue
        if choice["before_grid"] is not True:
            warnings.append(f"`{choice['key']}` was chosen after the main grid's results were seen, not by a rule fixed "
                            "before it: the runs' verdicts are not independent of that choice.")
        elif shared := grid & set(choice["seeds"]):
            warnings.append(f"the rule for `{choice['key']}` ran on seeds {sorted(shared)}, which the main grid "
                            "uses too: its choice has seen these runs' noise.")
    declared = {k for part in ("takes", "changes") for entry in protocol[part] for k in entry["keys"]}
    declared |= {c["key"] for c in protocol["chooses"]} | set(sweep.axes)
    free = [k for k in FREE if (k in sweep.shared or k in sweep.axes)
            and not (sweep.init_only() and k in TRAINING)]  # runs that measure their init do not train
    if missing := [k for k in free if k not in declared]:
        warnings.append("no entry says where these settings come from: " + ", ".join(f"`{k}`" for k in missing) + ".")
    for fit in protocol["fits"]:
        if not (set(fit["fit_seeds"]) <= grid and set(fit["score_seeds"]) <= grid):
            warnings.append(f"{fit['quantity']} is declared to be fitted on seeds {fit['fit_seeds']} and scored on "
                            f"{fit['score_seeds']}, but this sweep ran seeds {sorted(grid)}: it is not fitted here.")
    return warnings


def select(sweep: Sweep, selection: dict) -> tuple[object, dict[object, tuple[Estimate, int]]]:
    """A pre-sweep's rule applied to its runs: per value of the key, the estimate of the metric over its
    completed runs and how many of its runs did not complete; and the chosen value (None if none is
    eligible: a value is only where every one of its runs completed)."""
    key, metric = selection["key"], selection["metric"]
    scores = {value: (Estimate.of(runs.loc[runs["status"] == "completed", metric]),
                      int((runs["status"] != "completed").sum()))
              for value, runs in sweep.jobs.groupby(key, sort=True)}
    eligible = [value for value, (score, unfinished) in scores.items() if not unfinished and score.n]
    pick = min if selection["goal"] == "min" else max
    return pick(eligible, key=lambda value: scores[value][0].mean, default=None), scores


def _selection_table(sweep: Sweep, selection: dict) -> list[str]:
    key, metric, goal = selection["key"], selection["metric"], selection["goal"]
    if key not in sweep.axes:
        return [f"**Pre-sweep**: the rule chooses `{key}`, which is not an axis of this grid: nothing to choose from.", ""]
    chosen, scores = select(sweep, selection)
    rows = [[f"`{value}`", score.text(), unfinished, "**chosen**" if value == chosen else ""]
            for value, (score, unfinished) in scores.items()]
    verdict = (f"`{key}` = {chosen}" if chosen is not None else "no value: every one had a run that did not complete")
    return [f"**Pre-sweep for `{selection['used_by']}`**: the value of `{key}` with the {goal}imum mean final "
            f"`{metric}` over all its runs, among values whose every run completed. Chosen: {verdict}.", "",
            *table([f"`{key}`", f"final `{metric}`", "runs not completed", ""], rows), ""]


def _rule(choice: dict) -> str:
    presweep = choice["presweep"]
    return choice["rule"] + (f" (the pre-sweep `experiment={presweep}`, its report: `results/{presweep}/report.md`)"
                             if presweep else "")


def _table(title: str, head: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return []
    return [f"**{title}**", "", *table(head, rows), ""]


def _values(sweep: Sweep, keys: list[str] | None) -> str:
    """`key` = value as the runs had it, for each key (a grid axis: the values it takes)."""
    shown = []
    for key in keys or []:
        if key in sweep.axes:
            shown.append(f"`{key}` ∈ {{{', '.join(map(str, dict.fromkeys(sweep.jobs[key].dropna())))}}}")
        else:
            shown.append(f"`{key}` = {sweep.shared.get(key, 'varies')}")
    return "; ".join(shown) or "–"


def _grid_seeds(sweep: Sweep) -> list:
    return sorted(sweep.jobs["seed"].dropna().unique().tolist())


def _seeds(seeds) -> str:
    return ", ".join(map(str, seeds)) if seeds else "–"
