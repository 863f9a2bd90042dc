"""Command configuration: dataclasses with help text, YAML recipes as defaults, command-line overrides.

    seer <command> --config recipe.yaml --key value ...

Every field of a command's dataclasses is one flat snake_case key, the same in YAML and on the command
line. The recipe sets defaults, the command line overrides them, and an unknown key in either place is an
error that names the key (a typo must never be silently ignored). Recipe values are type-checked
against the field annotations, so `num_generations: eight` fails with the file and key named instead of
deep inside a training loop. Every run writes the resolved configuration beside its outputs
(`save_config`), and `--config <that file>` re-runs it. This reproduces the semantics of TRL's
`TrlParser` on top of transformers' `HfArgumentParser`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser

from seer.errors import SeerError


class _Parser(HfArgumentParser):
    """HfArgumentParser whose errors become one-line SeerErrors instead of usage dumps and SystemExit."""

    def error(self, message: str) -> typing.NoReturn:
        raise SeerError(f"{self.prog}: {message} (see --help)")


def _field_types(dtype: type) -> dict[str, Any]:
    hints = typing.get_type_hints(dtype)
    return {f.name: hints[f.name] for f in dataclasses.fields(dtype) if f.init}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a YAML value against a field annotation; return it converted (e.g. '1e-4' -> 1e-4 for floats)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise SeerError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SeerError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is bool:
        if not isinstance(value, bool):
            raise SeerError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SeerError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        # PyYAML reads `1e-4` (no dot) as a string, so accept numeric strings for float fields.
        if isinstance(value, bool):
            raise SeerError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SeerError(f"{where}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise SeerError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def read_recipe(path: str | os.PathLike, dataclass_types: tuple[type, ...]) -> dict[str, Any]:
    """Read a YAML recipe into {key: checked value}; every key must be a field of one of `dataclass_types`."""
    path = Path(path)
    if not path.is_file():
        raise SeerError(f"{path}: recipe file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SeerError(f"{path}: not valid YAML ({first_line})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeerError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    known: dict[str, Any] = {}
    for dtype in dataclass_types:
        known.update(_field_types(dtype))
    out = {}
    for key, value in data.items():
        if key not in known:
            raise SeerError(f"{path}: unknown key {key!r}; valid keys: {', '.join(sorted(known))}")
        out[key] = _coerce(value, known[key], f"{path}: key {key!r}")
    return out


def parse(argv: list[str], dataclass_types: tuple[type, ...], prog: str = "seer") -> tuple[Any, ...]:
    """Parse `argv` (without the command name) into one instance of each dataclass type.

    `--config FILE` sets defaults from a YAML recipe; `--key value` overrides them. A ValueError raised by
    a dataclass's `__post_init__` (a cross-field check) becomes a one-line SeerError.
    """
    parser = _Parser(list(dataclass_types), prog=prog)
    parser.add_argument("--config", type=str, default=None, help="YAML recipe whose keys set the defaults.")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=str, default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**read_recipe(known.config, dataclass_types))
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        raise SeerError(f"{prog}: unknown option {unknown[0]!r} (see --help)")
    values = vars(namespace)
    instances = []
    for dtype in dataclass_types:
        kwargs = {name: values[name] for name in _field_types(dtype)}
        try:
            instances.append(dtype(**kwargs))
        except ValueError as e:
            raise SeerError(f"{prog}: {e}") from None
    return tuple(instances)


def config_dict(*instances: Any) -> dict[str, Any]:
    """The flat {key: value} view of dataclass instances (what a recipe file holds)."""
    out: dict[str, Any] = {}
    for inst in instances:
        out.update(dataclasses.asdict(inst))
    return out


def save_config(out_dir: str | os.PathLike, *instances: Any, name: str = "config.yaml") -> Path:
    """Write the resolved configuration to `out_dir/name` atomically; `--config` on it re-runs the same job."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    text = yaml.safe_dump(config_dict(*instances), sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, target)
    return target
