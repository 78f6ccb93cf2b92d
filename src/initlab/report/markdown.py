"""report.md: claims, the cell table, figures and provenance, every number from the records."""

import shlex
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from initlab.config import unused_data_keys
from initlab.report import plots
from initlab.report.aggregate import cell_table, mean_pm_std, statuses
from initlab.report.claims import claims_for
from initlab.report.load import Sweep, read_config
from initlab.report.overlay import predictions, trainability
from initlab.track.identity import drop_operational, is_operational

VERDICT = {True: "agrees", False: "does not agree", None: "not tested"}
THEORY = "theory vs measured"


def write_report(sweep: Sweep, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    overlay, tmap = predictions(sweep), trainability(sweep)
    figures = [f for f in (plots.training_curves(sweep, out), plots.signal_propagation(sweep, out, overlay),
                           plots.heatmap(sweep, out)) if f is not None]
    if tmap is not None:
        figures.append(plots.trainability_map(tmap, (tmap.best_k() or (None,))[0], out))
    experiment = _experiment(sweep)
    lines = [f"# Sweep report: {experiment or sweep.dir.name}", "",
             f"{len(sweep.jobs)} runs in `{sweep.dir}`; grid axes: "
             f"{', '.join(f'`{a}`' for a in sweep.axes) or 'none'}; seeds: {sorted(sweep.jobs['seed'].unique().tolist())}.",
             ""]
    lines += _setup(sweep)
    claims = claims_for(experiment, sweep)
    if claims:
        lines += ["## Claims and this reproduction", "", "| claim | evidence (from the runs) | verdict |", "|---|---|---|"]
        lines += [f"| {c.claim} | {c.evidence} | **{VERDICT[c.agrees]}** |" for c in claims]
        lines.append("")
    table = cell_table(sweep)
    ratios = overlay.last_hidden_ratio(sweep)
    table[THEORY] = [ratios.get(cell if isinstance(cell, tuple) else (cell,), np.nan) for cell, _ in sweep.cells()]
    lines += ["## Final metrics per cell", "",
              "Mean ± std over seeds of the completed runs; counts of runs by status. "
              f"{THEORY}: the last hidden layer's Var[y] at init, measured / mean-field prediction "
              "(– where the theory does not describe the network: only MLPs without norm layers).", "",
              *_cell_markdown(sweep, table), ""]
    table.to_csv(out / "cells.csv", index=False)
    sweep.jobs.drop(columns=["error"]).assign(dir=[Path(d).name for d in sweep.jobs["dir"]]).to_csv(
        out / "runs.csv", index=False)
    lines += ["Per cell and per run, as data: [cells.csv](cells.csv), [runs.csv](runs.csv).", ""]
    lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})\n" for f in figures]
    lines += _provenance(sweep, out)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _setup(sweep: Sweep) -> list[str]:
    """What every run shares, from their config.yaml (how they were launched left out): the
    settings a reader compares with a paper's, beside the grid axes that vary."""
    configs = [pd.json_normalize(read_config(Path(d)), sep=".") for d in sweep.jobs["dir"]]
    configs = [c.iloc[0].to_dict() for c in configs if len(c)]
    shared = {k: v for k, v in configs[0].items() if all(k in c and c[k] == v for c in configs[1:])} if configs else {}
    unused = unused_data_keys(shared.get("data.name"))
    rows = [f"| `{k}` | {v} |" for k, v in shared.items() if k != "seed" and k not in unused and not is_operational(k)]
    if not rows:
        return []
    return ["## Setup", "", f"Settings every run shares (from {len(configs)} config.yaml files); the grid axes vary.", "",
            "<details><summary>all shared settings</summary>", "", "| setting | value |", "|---|---|", *rows, "",
            "</details>", ""]


def _cell_markdown(sweep: Sweep, table: pd.DataFrame) -> list[str]:
    counted = statuses(sweep)
    head = [*(a.split(".")[-1] for a in sweep.axes), "runs", *counted, "steps", "train loss", "test acc", THEORY]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict("records"):  # not iterrows: it turns an all-number row's ints into floats
        cells = [*(str(r[a]) for a in sweep.axes), str(r["runs"]), *(str(r[s]) for s in counted),
                 "–" if np.isnan(r["steps"]) else f"{r['steps']:.0f}", mean_pm_std(r["train/loss"], r["train/loss std"]),
                 mean_pm_std(r["test/acc"], r["test/acc std"]), mean_pm_std(r[THEORY], np.nan)]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _experiment(sweep: Sweep) -> str | None:
    first = sweep.overrides[sweep.jobs["job"].iloc[0]]
    return next((o.split("=", 1)[1] for o in first if o.startswith("experiment=")), None)


def _provenance(sweep: Sweep, out: Path) -> list[str]:
    summaries = [s for s in sweep.summaries.values() if s]
    unique = lambda key: sorted({str(s[key]) for s in summaries if s.get(key) is not None}) or ["–"]  # noqa: E731
    versions = sorted({", ".join(f"{k} {v}" for k, v in s["versions"].items()) for s in summaries if "versions" in s})
    first_job = sweep.jobs["dir"].iloc[0]
    config = read_config(first_job)
    lines = ["## Provenance", "", "Reproduce the sweep, then this report:", "", "```bash",
             _sweep_command(sweep), f"python scripts/report.py {shlex.quote(str(sweep.dir))} --out {shlex.quote(str(out))}",
             "```", "",
             f"- git SHA: {', '.join(unique('git_sha'))}", f"- packages: {'; '.join(versions)}",
             f"- device: {', '.join(unique('device'))}; host: {', '.join(unique('host'))}",
             f"- runs started: {unique('date')[0]} to {unique('date')[-1]}",
             f"- report written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- total run time: {_run_time(summaries) / 60:.1f} min", "",
             "### Each cell's runs", ""]
    for values, group in sweep.cells():
        lines.append(f"- {sweep.cell_label(values)}: " + ", ".join(
            f"`{Path(d).name}` ({status})" for d, status in zip(group["dir"], group["status"])))
    lines += ["", f"Resolved config of job `{Path(first_job).name}` (the others differ only in their overrides):",
              "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```"]
    return lines


def _run_time(summaries: list[dict]) -> float:
    """Seconds the sweep's runs took; a packed run's wall_s is its whole pack's, shared by `pack_size` runs."""
    return sum((s.get("wall_s") or 0) / (s.get("pack_size") or 1) for s in summaries)


def _sweep_command(sweep: Sweep) -> str:
    """The command that ran the grid: sweep.py for a named experiment, else train.py -m."""
    multirun = yaml.safe_load((sweep.dir / "multirun.yaml").read_text()) if (sweep.dir / "multirun.yaml").exists() else {}
    recorded = multirun.get("hydra", {}).get("overrides", {})
    task = drop_operational(recorded.get("task") or [])
    hydra = [o for o in recorded.get("hydra") or [] if not o.startswith("hydra.mode")]
    if any(o.startswith("experiment=") for o in task):
        hydra = [o.replace("hydra/launcher=", "launcher=") for o in hydra]
        return " ".join(["python scripts/sweep.py", *map(shlex.quote, task + hydra)])
    return " ".join(["python train.py -m", *map(shlex.quote, task + hydra)])
