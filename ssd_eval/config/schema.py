"""Strict loading of YAML into frozen-dataclass schemas, shared by every config.

Every unknown key or wrong type is a `ConfigError` naming the config file and the dotted key path;
relative paths resolve against the folder of the config file; a bare config name also finds the
configs bundled with the package.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from ssd_eval.config.strict_load import load_yaml_file
from ssd_eval.errors import ConfigError

T = TypeVar("T")

BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def absolute(path: str | os.PathLike[str]) -> Path:
    """`path` made absolute without `..` in it (`/repo/ssd_eval/../shared` -> `/repo/shared`), as every
    path is shown and recorded. Where a `..` follows a symbolic link (so that dropping it lexically
    would name another file) the link is resolved instead."""
    raw = os.path.join(os.getcwd(), os.fspath(path))  # an absolute path stays as it is
    normal = os.path.normpath(raw)
    if normal != raw and os.path.realpath(normal) != os.path.realpath(raw):
        return Path(os.path.realpath(raw))
    return Path(normal)


def find_config(name: str | Path) -> Path:
    """The config file a user means: a path as given, else a bundled config of that name."""
    path = Path(name).expanduser()
    try:
        if path.is_file():
            return path
    except OSError as exc:  # a name too long for the file system, among others
        raise ConfigError(f"config file {str(name)[:60]!r}...: {exc.strerror}") from None
    for candidate in (BUNDLED_CONFIG_DIR / path.name, BUNDLED_CONFIG_DIR / f"{path.name}.yaml"):
        if path.parent == Path(".") and candidate.is_file():
            return candidate
    bundled = ", ".join(sorted(p.name for p in BUNDLED_CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config file {str(name)!r} not found (bundled configs: {bundled})")


def read_yaml_config(name: str | Path) -> tuple[object, Path]:
    """Find and parse a YAML config file strictly (`strict_load.load_yaml_file`): its tree and its path.
    An empty file is an error: it should not silently mean "the defaults"."""
    path = find_config(name)
    raw = load_yaml_file(path)
    if raw is None:
        raise ConfigError(
            f"{path}: the config is empty; start from a bundled one (configs/coco_val.yaml) or give at "
            "least one section, e.g. `model: {source: ssd-10}`"
        )
    return raw, path


def parse_section(raw: object, cls: type[T], *, base_dir: Path, where: str, key: str = "") -> T:
    """Validate a parsed YAML value into any frozen-dataclass schema (for configs other than RunConfig).

    Errors are `ConfigError`s naming `where` (the file) and the dotted key path under `key`.
    """
    try:
        converted: T = _convert(raw, cls, key, _Context(base_dir=base_dir))
    except _KeyError as exc:
        raise ConfigError(f"{where}: {exc.path or '<top level>'}: {exc.message}") from None
    return converted


def raise_first_problem(problems: list[tuple[str, str]], where: str) -> None:
    """The first (dotted key, message) problem as a ConfigError naming the config file."""
    if problems:
        key, message = problems[0]
        raise ConfigError(f"{where}: {key}: {message}")


@dataclass(frozen=True)
class _Context:
    base_dir: Path


class _KeyError(Exception):
    """A validation failure at a dotted key path (internal; becomes a ConfigError)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _convert(value: object, annotation: Any, path: str, ctx: _Context) -> Any:
    """Check `value` against a type annotation and convert it (dataclasses, paths, tuples)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(value, non_none[0], path, ctx)
        raise _KeyError(path, f"unsupported union {annotation}")  # pragma: no cover - schema bug
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _convert_dataclass(value, annotation, path, ctx)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise _KeyError(path, f"must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _KeyError(path, f"expected a list, got {_type_name(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]", ctx) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _KeyError(path, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(
            _convert(v, a, f"{path}[{i}]", ctx) for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise _KeyError(path, f"expected a mapping, got {_type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                raise _KeyError(path, f"keys must be strings, got {key!r}")
        _check_finite(value, path)
        return dict(value)
    if annotation is Path:
        if not isinstance(value, str) or not value:
            raise _KeyError(path, f"expected a path (a string), got {_type_name(value)}")
        resolved = Path(value).expanduser()
        return absolute(ctx.base_dir / resolved)
    if annotation is bool:
        if not isinstance(value, bool):
            raise _KeyError(path, f"expected true or false, got {_type_name(value)} {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _KeyError(path, f"expected an integer, got {_type_name(value)} {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _KeyError(path, f"expected a number, got {_type_name(value)} {value!r}")
        if not math.isfinite(value):
            raise _KeyError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _KeyError(path, f"expected a string, got {_type_name(value)} {value!r}")
        return value
    if annotation is Any:
        _check_finite(value, path)
        return value
    raise _KeyError(path, f"unsupported type {annotation}")  # pragma: no cover - schema bug


def _check_finite(value: object, path: str) -> None:
    """No NaN or infinity anywhere, even in free-form values (provider options)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _KeyError(path, f"expected a finite number, got {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, _join(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}[{index}]")


def _convert_dataclass(value: object, cls: type, path: str, ctx: _Context) -> Any:
    if not isinstance(value, dict):
        raise _KeyError(path, f"expected a mapping, got {_type_name(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
    for key in value:
        if key not in fields:
            known = ", ".join(fields)
            raise _KeyError(_join(path, str(key)), f"unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(value[name], hints[name], _join(path, name), ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _KeyError(_join(path, name), "missing required key")
    return cls(**kwargs)


def config_to_dict(config: Any) -> Any:
    """A config (or any part of it) as plain YAML/JSON data: paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            f.name: config_to_dict(getattr(config, f.name))
            for f in dataclasses.fields(config)
            if f.metadata.get("yaml", True)
        }
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config
