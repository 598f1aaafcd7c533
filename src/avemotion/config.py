"""params.yaml -> frozen dataclasses, one per section.

Every section of params.yaml is turned into a frozen dataclass by `build`, which
rejects unknown keys, missing keys and wrong types with a message that names the
key, so a typo in an ablation fails at once instead of silently using a default.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params.yaml value is missing, unknown or of the wrong type."""


#: Keys that older params files have and this version does not, with what to do instead.
MOVED_KEYS = {
    "corpus.root": (
        "the corpus' location is set per machine with `make corpus ROOT=/path/to/IEMOCAP_full_release` "
        "(a link data/corpus, not tracked by git); delete the key"
    ),
}


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def build(cls: type[T], params: Mapping[str, Any], section: str) -> T:
    """Build dataclass `cls` from `params[section]`, checking names and types.

    Fields with defaults may be left out; unknown keys are errors.
    """
    if section not in params:
        fields = [f for f in dataclasses.fields(cls) if _required(f)]
        if fields:
            raise ParamsError(f"params: section '{section}' is missing")
        raw: Mapping[str, Any] = {}
    else:
        raw = params[section] or {}
    return _build(cls, raw, section)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _build(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"params: '{where}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    for key in unknown:
        if f"{where}.{key}" in MOVED_KEYS:
            raise ParamsError(f"params: '{where}.{key}' is no longer a param: {MOVED_KEYS[f'{where}.{key}']}")
    if unknown:
        raise ParamsError(
            f"params: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"valid keys of '{where}': {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in raw:
            if _required(f):
                raise ParamsError(f"params: missing key '{key}'")
            continue
        values[name] = _coerce(raw[name], hints[name], key)
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(where)
    return obj


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against type `hint`; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except ParamsError as exc:
                errors.append(str(exc))
        names = " or ".join(_type_name(a) for a in args)
        raise ParamsError(f"params: '{key}' must be {names}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(
                f"params: '{key}' is {value!r}; valid values: {', '.join(map(repr, args))}"
            )
        return value
    if hint is type(None):
        if value is not None:
            raise ParamsError(f"params: '{key}' must be null, got {value!r}")
        return None
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (tuple,):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"params: '{key}' must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ParamsError(f"params: '{key}' must have {len(args)} items, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, collections.abc.Mapping) or hint in (dict, Mapping, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise ParamsError(f"params: '{key}' must be a mapping, got {value!r}")
        if not args:
            return types.MappingProxyType(dict(value))
        kt, vt = args
        return types.MappingProxyType(
            {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
        )
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"params: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params: '{key}' must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params: '{key}' must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"params: '{key}' must be a string, got {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ParamsError(f"params: '{key}' must be {_type_name(hint)}, got {value!r}")
    return value


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def as_dict(obj: Any) -> Any:
    """A dataclass (with mapping proxies and tuples inside) as plain JSON-able data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: as_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    return obj
