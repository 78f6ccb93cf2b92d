"""The one exception type for user mistakes: printed as one line, never a traceback."""


class ConfigError(ValueError):
    """A value the user typed is invalid; the message names the key, the value and the choices."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        super().__init__(f"invalid value for '{key}': {value!r} — {expected}")
        self.key, self.value, self.expected = key, value, expected


def choices(values) -> str:
    """'valid choices: a, b, c' — the tail of most error messages."""
    return "valid choices: " + ", ".join(str(v) for v in values)
