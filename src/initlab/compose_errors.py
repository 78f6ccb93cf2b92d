"""Hydra's and OmegaConf's errors while composing a config, as one-line ConfigErrors.

Hydra reports a typo in several lines (a search path, `full_key:`/`object_type=` lines, a
hint about HYDRA_FULL_ERROR) or, for some, a traceback. The exception objects carry what a
user needs: the key, the value, the options; this module turns them into one line that also
says what is valid and, for a near miss, which name was meant.
"""

import dataclasses
import re

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from initlab.config import MODEL_SCHEMAS
from initlab.errors import BadOverride, BadOverrides, ConfigError, UnknownKey, choices
from initlab.init.params import SCHEME_PARAMS

# What composing a config raises for a bad command line. ValueError: Hydra's own checks on
# an override's value (`init=null`) raise it bare.
COMPOSE_ERRORS = (HydraException, OmegaConfBaseException, ValueError)

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic"
# The config groups whose options are schemas of their own: a key one option lacks may be another's.
OPTION_SCHEMAS = {"init": SCHEME_PARAMS, "model": MODEL_SCHEMAS}
# OmegaConf's wording of a type mismatch -> what is valid, in a user's words.
_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "bool": "true or false"}
_NOISE = ("full_key:", "object_type=", "reference_type=", "Set the environment variable HYDRA_FULL_ERROR")


def as_config_error(err: Exception, overrides: list[str] = ()) -> ConfigError:
    """The one-line ConfigError for an error raised while composing `overrides` (a ConfigError is kept)."""
    if isinstance(err, ConfigError):
        return err
    if isinstance(err, MissingConfigException) and err.options is not None:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return ConfigError(group, option, choices(err.options, option))
    if isinstance(err, OverrideParseException):
        return BadOverride(err.override.split("=", 1)[0], err.override, f"{_first_line(err.message)}; see {GRAMMAR}")
    cause = err.__cause__ or err.__context__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        return _unknown_key(cause, _typed_value(err))
    if isinstance(cause, ValidationError) and cause.full_key:
        return ConfigError(cause.full_key, cause.value, _expected(cause))
    if listed := _listed_options(overrides):
        return listed
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.strip().startswith(_NOISE)]
    return BadOverrides("overrides", " ".join(overrides), "; ".join(lines))


def _listed_options(overrides: list[str]) -> ConfigError | None:
    """`init=[xavier,kaiming]`: a list of a config group's options, which Hydra merges into one
    config (and fails to); what was meant is nearly always a sweep over them."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return None
    for o in parsed:
        if "." not in o.key_or_group and not o.is_sweep_override() and isinstance(o.value(), list) and o.value():
            options = ",".join(map(str, o.value()))
            return ConfigError(o.key_or_group, o.get_value_element_as_str(),
                               f"one option, not a list; to run each, sweep them: -m {o.key_or_group}={options}")
    return None


def _unknown_key(cause: OmegaConfBaseException, value: str | None) -> UnknownKey:
    """Name the keys that exist, the closest first; a key that another option of the group has
    (init.sparsity under init=kaiming) names the options that have it."""
    section = cause.full_key.rpartition(".")[0]
    schema = cause.object_type
    keys = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
    owners = [name for name, option in OPTION_SCHEMAS.get(section, {}).items()
              if cause.key in {f.name for f in dataclasses.fields(option)}]
    valid = choices(keys, cause.key, noun="keys", section=section) if keys else "no such key"
    if owners:
        return UnknownKey(cause.full_key, value, f"only {section}={'|'.join(owners)} has it; {valid}")
    return UnknownKey(cause.full_key, value, valid)


def _expected(cause: ValidationError) -> str:
    """What the key admits, from OmegaConf's message: the enum's values, or the type in words."""
    message = _first_line(cause.msg)
    enum = re.search(r"expected one of \[(.*)\]", message)
    if enum:
        return choices(enum.group(1).split(", "), cause.value)
    converted = re.search(r"could not be converted to (\w+)|is not a valid (\w+)", message)
    if converted:
        type_name = converted.group(1) or converted.group(2)
        return "must be " + _TYPE_WORDS.get(type_name, type_name)
    if "is not Optional" in message:
        return "must not be null"
    if "is not a ListConfig" in message:
        return "must be a list" + (f", e.g. {list(cause.child_node)}" if cause.child_node is not None else "")
    if message.startswith("Cannot convert"):
        return "must be a single value, not a list or a mapping"
    if message.startswith("Invalid type assigned") and OmegaConf.is_dict(cause.child_node):
        return f"is a section; set one of its keys ({cause.full_key}.<key>=...)"
    return message


def _typed_value(err: Exception) -> str | None:
    """The value in Hydra's 'To append to your config use +key=value' hint."""
    found = re.search(r"use \+[^=\s]+=(.*)$", str(err), re.MULTILINE)
    return found.group(1) if found else None


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0]
