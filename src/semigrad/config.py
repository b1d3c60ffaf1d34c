"""Frozen config dataclasses: validation helpers and the bridge to ``argparse``.

A config is a ``@dataclass(frozen=True)`` whose ``__post_init__`` calls the checks below, so a
bad value fails when the config is built, before any work starts, with one ``ConfigError`` that
names the field and the allowed values. Field help for the command line comes from
``field(metadata={"help": ...})``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A config field holds a value outside its allowed range."""


# config fields renamed in checkpoint format 2 (one vocabulary with TD(0), SARSA and Baird):
# old name -> new name, for readers of old runs and for hints on old command lines
RENAMED_FIELDS = {"lr": "alpha", "lr_final_fraction": "alpha_end", "total_steps": "steps",
                  "eps_start": "epsilon_start", "eps_end": "epsilon_end",
                  "eps_fraction": "epsilon_fraction"}


def renamed_hint(name: str) -> str:
    """``"; --lr is now --alpha"`` for an old field or option name, else ``""``."""
    new = RENAMED_FIELDS.get(name.lstrip("-").replace("-", "_"))
    if new is None:
        return ""
    if name.startswith("--"):
        return f"; {name} is now --{new.replace('_', '-')}"
    return f"; {name!r} is now {new!r}"


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ConfigError`` unless ``low <= value <= high`` (``<`` where the end is open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):  # a config must read back from config.json
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "-inf" if low is None else f"{low:g}"
        right = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{left}, {right}"
        interval += ")" if high_open or high is None else "]"
        raise ConfigError(f"{name}: {value!r} is outside the allowed range {interval}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ConfigError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(repr, choices))}")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def parse_int(text: str) -> int:
    """An integer from the command line: ``50000``, ``5e4`` or ``50_000`` (an integral value
    written as a float is taken; ``1.5`` is refused)."""
    try:
        return _int64(int(text), text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return _int64(int(value), text)


def _int64(value: int, text: str) -> int:
    if not -MAX_SEED - 1 <= value <= MAX_SEED:  # what torch and NumPy hold
        raise argparse.ArgumentTypeError(f"expected an integer of at most 2^63-1, got {text!r}")
    return value


MAX_COUNT = 10**12  # env steps, episodes, sizes: a larger count is a typo (1e12 steps: years)


def parse_count(text: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """A count from the command line (``parse_int``) within ``low..high``."""
    value = parse_int(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high:_}, got {text!r}"
                                         .replace("_", ","))
    return value


def count_arg(low: int = 0, high: int = MAX_COUNT) -> Any:
    """An argparse ``type`` for a count within ``low..high``."""
    parse = functools.partial(parse_count, low=low, high=high)
    parse.__name__ = "count"  # argparse names the type in its messages
    return parse


def parse_path(text: str) -> Path:
    """A file or folder name from the command line; an empty one is refused (``Path("")`` is
    the current folder, which a typo such as ``--run-dir "$UNSET"`` would fill with files)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a file or folder name, got {text!r}; give '.' to mean this folder")
    return Path(text)


def parse_float(text: str) -> float:
    """A finite float from the command line (``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _arg_type(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """argparse ``type``/``choices``/``nargs`` for a field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _arg_type(inner[0])
    if origin is Literal:
        return type(args[0]), {"choices": list(args)}
    if origin is tuple:  # no values: the empty tuple (e.g. --start-box alone)
        return _ARG_PARSERS.get(args[0], args[0]), {"nargs": "*"}
    return _ARG_PARSERS.get(annotation, annotation), {}


_ARG_PARSERS = {int: parse_count, float: parse_float}


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type,
                         defaults: Any = None, defaults_from: str = "") -> None:
    """Add one ``--field-name`` option per field of ``config_cls``; its help shows the field's
    own default, or the value in ``defaults`` (a config instance: what runs when the option is
    left out, e.g. a preset's, named ``defaults_from`` in the group title).

    Options default to ``argparse.SUPPRESS`` so that ``config_from_args`` can tell what the
    user set from what they left alone.
    """
    hints = typing.get_type_hints(config_cls)
    title = f"{config_cls.__name__} fields"
    if defaults is not None:
        title += f" (defaults: {defaults_from})"
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(config_cls):
        if f.metadata.get("cli") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, tuple):  # as typed: --hidden 128 128
            default = " ".join(map(str, default)) or "none"
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        annotation = hints[f.name]
        if annotation is bool:
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )
            continue
        arg_type, extra = _arg_type(annotation)
        group.add_argument(
            flag, dest=f.name, type=arg_type, default=argparse.SUPPRESS, help=help_text, **extra
        )


def config_overrides(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The fields of ``config_cls`` that the user set on the command line."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.metadata.get("cli") is not False}
    overrides = {}
    for name, value in vars(args).items():
        if name in names:
            overrides[name] = tuple(value) if isinstance(value, list) else value
    return overrides


def config_from_args(args: argparse.Namespace, config_cls: type, **base: Any) -> Any:
    """Build ``config_cls`` from ``base`` values overridden by what the user set."""
    return config_cls(**{**base, **config_overrides(args, config_cls)})


MAX_SEED = 2**63 - 1  # seeds go to torch.Generator.manual_seed, a signed 64-bit integer
MAX_SEEDS = 100_000  # a longer list is a typo (each seed is a whole run)


def parse_seeds(text: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"0-4,10"`` -> ``(0, 1, 2, 3, 4, 10)``; a list of integers is taken as it is."""
    if isinstance(text, int) and not isinstance(text, bool):
        seeds: list[int] = [text]
    elif isinstance(text, str):
        seeds = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not match:
                raise ValueError(f"--seeds: cannot read {part!r}; use e.g. 0-9 or 0,3,7")
            first, last = int(match[1]), int(match[2] or match[1])
            if last < first:
                raise ValueError(f"--seeds: empty range {part!r}")
            if last - first >= MAX_SEEDS:
                raise ValueError(f"--seeds: {part!r} names {last - first + 1} seeds; at most "
                                 f"{MAX_SEEDS} at once")
            seeds.extend(range(first, last + 1))
    else:
        seeds = list(text)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED
                        for s in seeds):
        raise ValueError(f"--seeds: expected integers in 0..{MAX_SEED}, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: repeated seed in {text!r}")
    return tuple(seeds)


def config_from_saved(config_cls: type, saved: Mapping[str, Any]) -> Any:
    """A ``config_cls`` from ``config.json``'s or a checkpoint's fields (lists back to tuples;
    ``command``, ``algo`` and ``seeds`` ignored), with one clear error for fields an earlier
    semigrad named otherwise and for fields that are not ``config_cls``'s."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    old = sorted(set(saved) & set(RENAMED_FIELDS))
    if old:
        raise ValueError(f"config: written by an earlier semigrad (fields {old}; this version "
                         f"names them {[RENAMED_FIELDS[k] for k in old]}); train again with "
                         "this version")
    unknown = sorted(set(saved) - names - {"command", "algo", "seeds"})
    if unknown:
        raise ValueError(f"config: fields {unknown} are not {config_cls.__name__}'s; the run was "
                         "written by another semigrad version or command")
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in saved.items() if k in names})
