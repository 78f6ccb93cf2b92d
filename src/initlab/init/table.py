"""The init table printed when a run starts: what was done to every tensor."""

from initlab.init.apply import InitRecord

_COLUMNS = ("layer", "param", "shape", "fan_in", "fan_out", "scheme", "mode", "gain", "target_std", "std")


def format_table(records: list[InitRecord], theory: dict | None = None, jacobian: dict | None = None) -> str:
    """A fixed-width text table, plus a line saying where a computed gain came from and, given
    the run's theory.json, one saying which mean-field phase the network is in, and given its
    jacobian.json, one with its Jacobian's spectrum at init beside the prediction."""
    rows = [_COLUMNS] + [tuple(_cell(getattr(r, c)) for c in _COLUMNS) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    sources = sorted({r.gain_source for r in records if r.gain_source})
    lines += [f"gain: {s}" for s in sources]
    lsuv = [r for r in records if r.lsuv_iters is not None]
    lines += [f"lsuv {r.layer}: Var[out]={r.lsuv_out_var:.4g} after {r.lsuv_iters} rescales" for r in lsuv]
    lines += [phase_line(theory)] if theory else []
    lines += [jacobian_line(jacobian)] if jacobian else []
    return "\n".join(lines)


_MEANING = {"ordered": "gradients shrink by chi_1 per layer", "chaotic": "gradients grow by chi_1 per layer",
            "critical": "gradients keep their size"}


def phase_line(theory: dict) -> str:
    """One line from theory.json: the phase, chi_1, and the depth against 6 xi_c."""
    if not theory["predicted"]:
        return f"theory: not predicted: {theory['reason']}"
    at = f"sigma_w^2={theory['sigma_w2']:.4g}, sigma_b^2={theory['sigma_b2']:.4g}"
    if theory["phase"] is None:
        return f"theory: no phase at {at}: {theory['undefined']['phase']}"
    critical = theory["critical_sigma_w2"]
    at += f"; critical sigma_w^2={critical:.4g}" if critical is not None else ""
    head = f"theory: {theory['phase']} (chi_1={theory['chi_1']:.4g} at {at}): {_MEANING[theory['phase']]}"
    if theory["xi_c"] is None:
        return f"{head}; xi_c undefined: {theory['undefined']['xi_c']}"
    where = "within" if theory["within_depth_bound"] else "beyond"
    return (f"{head}; xi_c={theory['xi_c']:.3g} layers, depth {theory['depth']} {where} "
            f"{theory['k']:g} xi_c = {theory['depth_bound']:.3g}")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return str(value)


def jacobian_line(jacobian: dict) -> str:
    """One line from jacobian.json: the squared singular values' mean and variance (how far from
    isometry: mean 1, variance 0), measured and predicted."""
    if not jacobian["measured"]:
        return f"jacobian: not measured: {jacobian['measure_reason']}"
    head = (f"jacobian {jacobian['start']} -> {jacobian['end']} ({jacobian['method']}, {jacobian['inputs']} inputs): "
            f"squared singular values mean {jacobian['sv2_mean']:.4g}, variance {jacobian['sv2_var']:.4g}")
    if not jacobian["predicted"]:
        return f"{head}; not predicted: {jacobian['reason']}"
    return (f"{head}; predicted for {jacobian['weights']} weights: {jacobian['predicted_sv2_mean']:.4g}, "
            f"{jacobian['predicted_sv2_var']:.4g}")
