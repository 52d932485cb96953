"""Command lines generated from settings dataclasses, so that each CLI declares a flag once.

A field declared with `option(...)` becomes a flag named after it (`batch_size` ->
`--batch-size`, or `flag=` for another name; a `flag` without dashes is a positional argument).
Its type, default and help come from the declaration. Booleans that default to False are
switches (`--with-r`); one that defaults to True is turned off by `--no-<name>` (`progress` ->
`--no-progress`); `list[str]` fields repeat (`--set a --set b`). Fields without `option` are not
flags. Modelled on CleanRL's `Args` dataclasses (parsed there by tyro); written here on argparse
to keep the suite's error form: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any

from common.errors import ArgumentParser

_HELP = "help"


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    metavar: str | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field that is also a command-line flag (see the module docstring)."""
    metadata = {_HELP: help, "flag": flag, "metavar": metavar}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and adds each flag's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        # Switches and unset values have nothing to show.
        shown = not (default is None or isinstance(default, bool) or default == [])
        if shown and default is not argparse.SUPPRESS and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _base_type(annotation: Any) -> Any:
    """`int | None` -> int; other annotations as they are."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def add_settings_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Iterable[str] | None = None,
    *,
    unset: bool = False,
) -> None:
    """Add one flag per `option` field of the dataclass `cls` to `parser` (or an argument
    group of it): every field, or those in `names`, in that order. With `unset`, each flag
    defaults to None, whatever its field's default, so that a caller tells the values given
    from the rest (a reproduce script's overrides of its budget's settings)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if _HELP in f.metadata}
    for name in fields if names is None else names:
        f = fields[name]
        kind = _base_type(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else f.default
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata[_HELP]}
        if f.metadata["metavar"]:
            kwargs["metavar"] = f.metadata["metavar"]
        if not flag.startswith("-"):  # positional: argparse names its dest after the flag
            del kwargs["dest"]
            parser.add_argument(flag, type=kind, **kwargs)
        elif kind is bool:
            on = bool(default)
            if on:
                flag = f.metadata["flag"] or "--no-" + f.name.replace("_", "-")
            action = "store_false" if on else "store_true"
            parser.add_argument(flag, action=action, default=None if unset else on, **kwargs)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, action="append", default=None if unset else [], **kwargs)
        elif required and not unset:
            parser.add_argument(flag, type=kind, required=True, **kwargs)
        else:
            parser.add_argument(flag, type=kind, default=None if unset else default, **kwargs)


# Declared here, not in common.devices, so that parsers (and --help) need not import torch.
DEVICE_HELP = "auto|cpu|cuda|cuda:N (auto: cuda:0 if a usable GPU is present, else cpu)"
TF32_HELP = (
    "let CUDA run fp32 convolutions and matrix products in TF32 (faster on Ampere and later, "
    "about 1e-3 off full fp32); off by default"
)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """--device and --tf32, as every trainer and benchmark takes them
    (common.devices.select_device)."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--tf32", action="store_true", help=TF32_HELP)


def settings_parser(
    cls: type, description: str | None, *, device: bool = False
) -> argparse.ArgumentParser:
    """The suite's ArgumentParser (one-line errors, exit 2) with the flags of dataclass `cls`;
    `device=True` adds --device and --tf32 for settings that do not hold them."""
    parser = ArgumentParser(description=description, formatter_class=_HelpFormatter)
    add_settings_arguments(parser, cls)
    if device:
        add_device_argument(parser)
    return parser


def settings_from(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """An instance of `cls` from parsed `args` (its `option` fields) and `overrides`."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if _HELP in f.metadata}
    return cls(**{**values, **overrides})
