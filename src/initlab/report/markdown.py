"""report.md: protocol, setup, claims, the cell table, figures and provenance, every number from
the records and every cell statistic with its 95% interval over seeds and n."""

import shlex
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from initlab.config import unused_data_keys
from initlab.report.aggregate import cell_table, columns, estimate, statuses
from initlab.report.claims import Claim, claims_for
from initlab.report.load import Sweep
from initlab.report.overlay import Overlay, predictions
from initlab.report.plots import figures
from initlab.report.protocol import protocol_section
from initlab.report.stats import INTERVAL, Estimate
from initlab.report.tables import table
from initlab.report.trainability import declared_fit, trainability
from initlab.track.identity import drop_operational, is_operational

THEORY = "theory vs measured"
METRICS = {"train/loss": "train loss", "test/acc": "test acc"}  # the final metrics the cell table shows


def write_report(sweep: Sweep, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    overlay, tmap = predictions(sweep), trainability(sweep)
    drawn = figures(sweep, out, overlay, tmap, declared_fit(sweep, tmap) if tmap is not None else None)
    experiment = _experiment(sweep)
    lines = [*_heading(sweep, experiment), *(protocol_section(sweep) if experiment else []), *_setup(sweep),
             *_claims(claims_for(experiment, sweep)), *_cell_section(sweep, overlay, out),
             "## Figures", "", *(f"![{f.stem}]({f.name})\n" for f in drawn), *_provenance(sweep, out)]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _heading(sweep: Sweep, experiment: str | None) -> list[str]:
    seeds = sorted(sweep.jobs["seed"].unique().tolist())
    return [f"# Sweep report: {experiment or sweep.dir.name}", "",
            f"{len(sweep.jobs)} runs in `{sweep.dir}`; grid axes: {', '.join(f'`{a}`' for a in sweep.axes) or 'none'}; "
            f"seeds: {seeds}.", "",
            f"Every cell statistic is a mean over the cell's seeds ± half its {INTERVAL} (its bounds where the interval "
            "is not symmetric: geometric means, bootstrap intervals), with n, the runs behind it; n = 1 has no "
            "interval.", ""]


def _cell_section(sweep: Sweep, overlay: Overlay, out: Path) -> list[str]:
    """The cell table, in report.md and as cells.csv (runs.csv beside it)."""
    ratios = overlay.last_hidden_ratio(sweep)
    theory = pd.DataFrame([columns(THEORY, ratios.get(c, Estimate.of([]))) for c in _cells(sweep)])
    cells = pd.concat([cell_table(sweep), theory], axis=1)
    cells.to_csv(out / "cells.csv", index=False)
    sweep.jobs.drop(columns=["error"]).assign(dir=[Path(d).name for d in sweep.jobs["dir"]]).to_csv(
        out / "runs.csv", index=False)
    init_only = " (none here: the runs measure their init only, too few steps for a final metric to mean anything)"
    return ["## Final metrics per cell", "",
            f"Counts of runs by status; final metrics over the completed runs{init_only if sweep.init_only() else ''}. "
            f"{THEORY}: the last hidden layer's Var[y] at init, measured / mean-field prediction, run by run (– where "
            "the theory does not describe the network: MLPs and circular-padded CNNs without norm layers only).", "",
            *_cell_markdown(sweep, cells), "",
            "Per cell and per run, as data: [cells.csv](cells.csv) (each statistic's mean, `low`, `high` and `n`), "
            "[runs.csv](runs.csv).", ""]


def _cells(sweep: Sweep) -> list[tuple]:
    return [c if isinstance(c, tuple) else (c,) for c, _ in sweep.cells()]


def _claims(claims: list[Claim]) -> list[str]:
    if not claims:
        return []
    rows = [[c.claim, c.test or "–", c.evidence, f"**{c.verdict.value}**" + (f"<br>{c.basis()}" if c.basis() else "")]
            for c in claims]
    return ["## Claims and this reproduction", "",
            "Each claim's test (its thresholds and tolerances) is a constant of the report's code, committed before "
            "the main grid ran (`git log src/initlab/report/claims/` dates it).", "",
            *table(["claim", "test", "evidence (from the runs)", "verdict"], rows), ""]


def _setup(sweep: Sweep) -> list[str]:
    """What every run shares, from their config.yaml (how they were launched left out): the
    settings a reader compares with a paper's, beside the grid axes that vary, named by meaning."""
    shared = sweep.shared
    unused = unused_data_keys(shared.get("data.name"))
    rows = [[f"`{k}`", v] for k, v in shared.items() if k != "seed" and k not in unused and not is_operational(k)]
    axes = [[f"`{a}`", sweep.meaning(a).text, sweep.meaning(a).note or "–",
             ", ".join(map(str, dict.fromkeys(sweep.jobs[a].dropna())))] for a in sweep.axes]
    lines = ["## Setup", ""]
    if axes:
        lines += ["Grid axes (figures and tables name them by meaning):", "",
                  *table(["key", "meaning", "what it is", "values"], axes), ""]
    if rows:
        lines += [f"Settings every run shares (from {sum(map(bool, sweep.configs.values()))} config.yaml files).", "",
                  "<details><summary>all shared settings</summary>", "", *table(["setting", "value"], rows), "",
                  "</details>", ""]
    return lines if len(lines) > 2 else []


def _cell_markdown(sweep: Sweep, cells: pd.DataFrame) -> list[str]:
    counted = statuses(sweep)
    metrics = {} if sweep.init_only() else METRICS
    head = [*(sweep.meaning(a).text for a in sweep.axes), "runs", *counted, "steps", *metrics.values(), THEORY]
    rows = [[*(r[a] for a in sweep.axes), r["runs"], *(r[s] for s in counted),
             "–" if np.isnan(r["steps"]) else f"{r['steps']:.0f}",
             *(estimate(r, key).text() for key in metrics), estimate(r, THEORY, symmetric=False).text()]
            for r in cells.to_dict("records")]  # not iterrows: it turns an all-number row's ints into floats
    return table(head, rows)


def _experiment(sweep: Sweep) -> str | None:
    first = sweep.overrides[sweep.jobs["job"].iloc[0]]
    return next((o.split("=", 1)[1] for o in first if o.startswith("experiment=")), None)


def _provenance(sweep: Sweep, out: Path) -> list[str]:
    summaries = [s for s in sweep.summaries.values() if s]
    unique = lambda key: sorted({str(s[key]) for s in summaries if s.get(key) is not None}) or ["–"]  # noqa: E731
    versions = sorted({", ".join(f"{k} {v}" for k, v in s["versions"].items()) for s in summaries if "versions" in s})
    first_job = sweep.jobs["dir"].iloc[0]
    config = sweep.configs[sweep.jobs["job"].iloc[0]]
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
