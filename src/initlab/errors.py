"""User mistakes: one exception family, printed as one line (exit code 2), never a traceback."""

import difflib
from collections.abc import Iterable

from hydra.errors import CompactHydraException


class ConfigError(ValueError):
    """A value the user typed cannot run; the message names the key, the value and what is valid.

    `where` locates it, e.g. the job of a grid it is in.
    """

    headline = "invalid value for '{key}': {value!r}"

    def __init__(self, key: str, value: object, expected: str, where: str = "") -> None:
        self.key, self.value, self.expected, self.where = key, value, expected, where
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.headline.format(key=self.key, value=self.value)} — {self.expected}"
        return f"{text} ({self.where})" if self.where else text

    def __reduce__(self):  # rebuilt from its parts when pickled (submitit sends errors back)
        return type(self), (self.key, self.value, self.expected, self.where)

    def within(self, where: str) -> "ConfigError":
        """The same mistake, located (e.g. `job #3: init=xavier seed=1`)."""
        return type(self)(self.key, self.value, self.expected, where)


class UnknownKey(ConfigError):
    """A key the config does not have (`model.widht=3`); `value` is what it was set to."""

    headline = "unknown key '{key}' (in {key}={value})"


class BadOverride(ConfigError):
    """An override Hydra's grammar cannot read (`init=[`); `value` is the override as typed."""

    headline = "cannot read override {value!r}"


class BadOverrides(ConfigError):
    """Overrides Hydra cannot compose into a config, for a reason no single key explains."""

    headline = "cannot compose a config from {value!r}"


def choices(values: Iterable, typed: object = None, noun: str = "choices", section: str = "") -> str:
    """'valid choices: a, b, c', led by 'did you mean b?' when `typed` is close to one of them;
    with `section`, each value is shown as the key `section.value`."""
    values = [str(v) for v in values]
    shown = [f"{section}.{v}" if section else v for v in values]
    return did_you_mean(typed, values, section) + f"valid {noun}: " + ", ".join(shown)


def did_you_mean(typed: object, values: Iterable[str], section: str = "") -> str:
    """'did you mean b? ' for the values closest to `typed` (case aside: ReLU is relu), or '' when none is close."""
    lowered = {v.lower(): v for v in values}
    close = [lowered[c] for c in difflib.get_close_matches(str(typed).lower(), list(lowered), n=3, cutoff=0.75)
             ] if typed is not None else []
    return f"did you mean {' or '.join(f'{section}.{c}' if section else c for c in close)}? " if close else ""


class DataError(Exception):
    """A dataset that cannot be used as found: one line for the user, no traceback."""


class DatasetNotFound(DataError):
    pass


class UnsafeDataFile(DataError):
    """A data file that holds something other than data, or cannot be read as its format."""


class JobFailed(CompactHydraException):
    """A user mistake (ConfigError, DataError) that failed one job of a multirun. Hydra goes on
    with the other jobs and at the end reports the first failed one with this line, not a traceback."""

    @classmethod
    def of(cls, err: BaseException) -> BaseException:
        """What a failed job hands Hydra: a user mistake as one line; anything else, with its traceback."""
        return cls(str(err)) if isinstance(err, (ConfigError, DataError)) else err
