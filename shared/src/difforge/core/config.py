"""Run configs: frozen dataclasses loaded from YAML, overridden with ``key=value``, validated.

Every value is checked against the dataclass type hints and every error names the dotted key::

    @dataclass(frozen=True)
    class ModelConfig:
        hidden_size: int = 128

    @dataclass(frozen=True)
    class RunConfig:
        model: ModelConfig = field(default_factory=ModelConfig)
        lr: float = 1e-4

    cfg = load_config(RunConfig, "run.yaml", ["model.hidden_size=256", "lr=3e-4"])

Supported field types: bool, int, float (ints are promoted), str, Path, Literal, Optional / ``X | None``,
``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]`` and nested dataclasses.

Written here rather than with tyro/OmegaConf because the project wants YAML files, dotted ``key=value``
overrides parsed as YAML scalars, frozen dataclasses and one-line errors that name the key; neither
library gives all four without as much glue code as this module.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from difforge.core.errors import ConfigError
from difforge.core.io import atomic_open, write_json

__all__ = [
    "ConfigError",
    "InvalidConfigValue",
    "apply_overrides",
    "check_config",
    "config_diff",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_override",
    "save_config",
    "to_dict",
]

ConfigT = TypeVar("ConfigT")


class InvalidConfigValue(ConfigError):
    """A value of the right type that breaks a rule (raised by :func:`check_config`).

    Keeps the field name apart so that a nested config can re-raise it under its full dotted key.
    """

    def __init__(self, key: str, requirement: str, value: Any) -> None:
        self.key, self.requirement, self.value = key, requirement, value
        super().__init__(f"config key '{key}' must be {requirement}, got {value!r}")


def check_config(condition: bool, key: str, requirement: str, value: Any) -> None:
    """Raise :class:`InvalidConfigValue` unless ``condition``; for dataclass ``__post_init__`` checks.

    ``check_config(self.lr > 0, "lr", "> 0", self.lr)`` fails as
    ``config key 'train.lr' must be > 0, got -1.0`` when the config sits under ``train``.
    """
    if not condition:
        raise InvalidConfigValue(key, requirement, value)


# ----------------------------------------------------------------------------------------------
# YAML with YAML 1.2 scalars
# ----------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars.

    PyYAML follows YAML 1.1, where ``no``/``off``/``yes`` are booleans (so ``mixed_precision: no``
    would become False) and ``1e-4`` is a string. Users write both; YAML 1.2 reads them as expected.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with YAML 1.2 scalars; a syntax error becomes a one-line ConfigError."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: builds no objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML in {source}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a config") from None


# ----------------------------------------------------------------------------------------------
# Building and validating
# ----------------------------------------------------------------------------------------------


def from_dict(cls: type[ConfigT], data: Mapping[str, Any], *, prefix: str = "") -> ConfigT:
    """Build the dataclass ``cls`` from a plain mapping, checking every key and value."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config key '{prefix[:-1]}' expects a mapping, got {_show(data)}"
            if prefix
            else f"config expects a mapping of keys to values, got {_show(data)}"
        )
    fields = _init_fields(cls)
    for name in data:
        if name not in fields:
            raise ConfigError(_unknown_key_message(cls, prefix, str(name)))
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for name, fld in fields.items():
        key = prefix + name
        if name in data:
            kwargs[name] = _coerce(_onto_default(fld, hints[name], data[name]), hints[name], key)
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing config key '{key}' (it has no default)")
    try:
        return cls(**kwargs)
    except InvalidConfigValue as exc:
        raise InvalidConfigValue(prefix + exc.key, exc.requirement, exc.value) from None


def _onto_default(fld: dataclasses.Field, tp: Any, value: Any) -> Any:
    """A partial mapping for a nested group, laid over the group's own default.

    A group whose default is ``field(default_factory=lambda: TrainConfig(lr=2e-3))`` keeps
    ``lr=2e-3`` when only ``train.steps`` is given; building the group from the bare mapping would
    fall back to ``TrainConfig``'s class defaults instead.
    """
    if not isinstance(value, Mapping) or _dataclass_in(tp) is None:
        return value
    if fld.default_factory is not dataclasses.MISSING:
        default = fld.default_factory()
    elif fld.default is not dataclasses.MISSING:
        default = fld.default
    else:
        return value
    if not dataclasses.is_dataclass(default):
        return value  # e.g. an optional group whose default is None
    return _deep_merge(to_dict(default), value)


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    cls: type[ConfigT],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> ConfigT:
    """Defaults of ``cls``, updated by the YAML (or JSON) file at ``path``, then by ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        loaded = load_yaml(text, str(path))  # JSON is a subset of YAML 1.2
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(
                f"config file {path} must hold a mapping of keys, got {_show(loaded)}"
            )
        data = dict(loaded or {})
    for override in overrides:
        key, value = parse_override(override)
        _set_dotted(cls, data, key, value)
    return from_dict(cls, data)


def apply_overrides(config: ConfigT, overrides: Sequence[str]) -> ConfigT:
    """A copy of ``config`` with ``key=value`` overrides applied and validated."""
    data = to_dict(config)
    for override in overrides:
        key, value = parse_override(override)
        _set_dotted(type(config), data, key, value)
    return from_dict(type(config), data)


_KEY_RE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.hidden_size=256"`` -> ``("model.hidden_size", 256)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.match(key):
        raise ConfigError(
            f"override {text!r} is not of the form key=value (e.g. model.hidden_size=256)"
        )
    return key, load_yaml(raw, f"override {key}")


def _set_dotted(cls: type, data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for key ``a.b.c`` after checking the key exists in ``cls``."""
    parts = key.split(".")
    node, node_cls = data, cls
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth])
        prefix = prefix + "." if prefix else ""
        fields = _init_fields(node_cls)
        if part not in fields:
            raise ConfigError(_unknown_key_message(node_cls, prefix, ".".join(parts[depth:])))
        if depth == len(parts) - 1:
            node[part] = value
            return
        child_cls = _dataclass_in(typing.get_type_hints(node_cls)[part])
        if child_cls is None:
            raise ConfigError(
                f"unknown config key '{key}' ('{prefix}{part}' is a value, not a group of keys)"
            )
        child = node.get(part)
        if child is None:
            child = {}
        elif isinstance(child, Mapping):
            child = dict(child)
        else:
            raise ConfigError(f"config key '{prefix}{part}' expects a mapping, got {_show(child)}")
        node[part] = child
        node, node_cls = child, child_cls


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``tp``; convert lists/ints/strings where the hint says."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, prefix=key + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1 and dataclasses.is_dataclass(options[0]) and value is not None:
            return _coerce(value, options[0], key)  # keeps the nested key in error messages
        for option in options:
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise _type_error(key, tp, value)
    if origin is Literal:
        # `type(...) is` keeps True from matching 1 and 1 from matching 1.0.
        if any(value == a and type(value) is type(a) for a in args):
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"config key '{key}' expects one of {choices}, got {_show(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, tp, value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _type_error(key, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, tp, value)
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _type_error(key, tp, value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, tp, value)
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(
                f"config key '{key}' expects {len(args)} values ({_type_name(tp)}), got {_show(value)}"
            )
        item_types = (
            [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else list(args)
        )
        items = [_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _type_error(key, tp, value)
        return {k: _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    raise TypeError(f"config key '{key}': unsupported type annotation {tp!r}")


def _init_fields(cls: type) -> dict[str, dataclasses.Field]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass in a hint like ``Cfg`` or ``Cfg | None``; None for any other hint."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return inner[0] if len(inner) == 1 else None
    return None


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key the dataclass ``cls`` accepts, nested groups included."""
    keys = []
    hints = typing.get_type_hints(cls)
    for name in _init_fields(cls):
        keys.append(prefix + name)
        child = _dataclass_in(hints[name])
        if child is not None:
            keys.extend(_all_keys(child, f"{prefix}{name}."))
    return keys


def _unknown_key_message(group_cls: type, prefix: str, name: str) -> str:
    """Message for key ``prefix + name`` missing from ``group_cls``, the dataclass at ``prefix``."""
    key = prefix + name
    candidates = _all_keys(group_cls, prefix)
    level = [k for k in candidates if "." not in k[len(prefix) :]]
    # Whole dotted key first (catches a typo in a group name), then the last part alone.
    close = difflib.get_close_matches(
        key, candidates, n=1, cutoff=0.75
    ) or difflib.get_close_matches(key, level, n=1, cutoff=0.6)
    if close:
        return f"unknown config key '{key}' (did you mean '{close[0]}'?)"
    under = f" under {prefix[:-1]}" if prefix else ""
    return f"unknown config key '{key}' (known keys{under}: {', '.join(k[len(prefix) :] for k in level)})"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return re.sub(r"\b(?:typing|pathlib)\.", "", str(tp))


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _type_error(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {_show(value)}")


# ----------------------------------------------------------------------------------------------
# Saving and comparing
# ----------------------------------------------------------------------------------------------


def to_dict(config: Any) -> Any:
    """Plain JSON/YAML-ready data: dataclasses and mappings -> dict, tuples -> list, Path -> str."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` atomically as JSON (``.json``) or YAML (``.yaml`` / ``.yml``)."""
    path = Path(path)
    data = to_dict(config)
    if path.suffix == ".json":
        write_json(path, data)
    elif path.suffix in (".yaml", ".yml"):
        with atomic_open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)
    else:
        raise ValueError(f"config path must end in .json, .yaml or .yml: {path}")


def config_diff(a: Any, b: Any) -> list[str]:
    """Dotted keys whose values differ between two configs (dataclasses or mappings).

    A key present in only one of them, or a group on one side and a value on the other, counts
    once under its own name. Lists and tuples compare whole.
    """
    return _diff(to_dict(a), to_dict(b), "")


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [prefix[:-1]]
    differing = []
    for key in list(a) + [k for k in b if k not in a]:
        if key in a and key in b:
            differing.extend(_diff(a[key], b[key], f"{prefix}{key}."))
        else:
            differing.append(prefix + key)
    return differing
