"""Markdown tables: a row's cells joined by pipes, a pipe inside a cell escaped."""


def row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def table(head: list[str], rows: list[list]) -> list[str]:
    return [row(head), "|" + "---|" * len(head), *(row(r) for r in rows)]
