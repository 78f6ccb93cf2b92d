"""The report's figures, drawn from the records with matplotlib (no display needed): only those the
experiment supports (runs that only measure their init get no training curves and no accuracy map)."""

from pathlib import Path

from initlab.report.load import Sweep
from initlab.report.overlay import Overlay
from initlab.report.plots.curves import training_curves
from initlab.report.plots.heatmaps import heatmap, trainability_map
from initlab.report.plots.signal import activation_values, signal_propagation
from initlab.report.plots.spectrum import spectrum_figure
from initlab.report.trainability import KFit, TrainabilityMap


# every figure drawn here
NAMES = ("curves.png", "signal.png", "activations.png", "heatmap.png", "trainability.png", "spectrum.png")


def figures(sweep: Sweep, out: Path, overlay: Overlay, tmap: TrainabilityMap | None, fit: KFit | None) -> list[Path]:
    """The figures drawn; an earlier report's figure that this one does not draw is removed from
    `out`, so that no figure there speaks for runs it was not drawn from. The trainability map,
    where the grid is one, stands for the accuracy heatmap (the same cells)."""
    trains = not sweep.init_only()
    accuracy = (heatmap(sweep, out) if tmap is None else trainability_map(tmap, fit, out)) if trains else None
    drawn = [path for path in (training_curves(sweep, out) if trains else None, signal_propagation(sweep, out, overlay),
                               activation_values(sweep, out), accuracy, spectrum_figure(sweep, out))
             if path is not None]
    for stale in set(NAMES) - {path.name for path in drawn}:
        (out / stale).unlink(missing_ok=True)
    return drawn
