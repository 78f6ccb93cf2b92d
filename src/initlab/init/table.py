"""The init table printed when a run starts: what was done to every tensor."""

from initlab.init.apply import InitRecord

_COLUMNS = ("layer", "param", "shape", "fan_in", "fan_out", "scheme", "mode", "gain", "target_std", "std")


def format_table(records: list[InitRecord]) -> str:
    """A fixed-width text table, plus a line saying where a computed gain came from."""
    rows = [_COLUMNS] + [tuple(_cell(getattr(r, c)) for c in _COLUMNS) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    sources = sorted({r.gain_source for r in records if r.gain_source})
    lines += [f"gain: {s}" for s in sources]
    lsuv = [r for r in records if r.lsuv_iters is not None]
    lines += [f"lsuv {r.layer}: Var[out]={r.lsuv_out_var:.4g} after {r.lsuv_iters} rescales" for r in lsuv]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return str(value)
