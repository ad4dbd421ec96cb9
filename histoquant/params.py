"""Assay parameters: one dataclass per assay, with units and reasons in field metadata.

The CLI, config files and the napari widgets all read defaults, units and help from these
dataclasses; nothing else repeats them. Declare a field with :func:`param`::

    @dataclass(frozen=True)
    class MyParams(AssayParams):
        min_area_um2: float = param(100.0, unit="µm²", help="why 100 µm²")
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ParamsError

__all__ = ["AssayParams", "param", "load_params_file"]

P = TypeVar("P", bound="AssayParams")


def param(default: Any, *, unit: str = "", help: str = "", choices: tuple | None = None,
          minimum: float | None = None, maximum: float | None = None) -> Any:
    """A dataclass field carrying its unit, help text, allowed choices and range."""
    meta = {"unit": unit, "help": help, "choices": choices, "minimum": minimum,
            "maximum": maximum}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class AssayParams:
    """Base class of every assay's parameters."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            choices = meta.get("choices")
            if choices and value not in choices:
                raise ParamsError(
                    f"{type(self).__name__}.{f.name} = {value!r} is not one of {list(choices)}"
                )
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lo, hi = meta.get("minimum"), meta.get("maximum")
                if lo is not None and value < lo:
                    raise ParamsError(f"{type(self).__name__}.{f.name} = {value} is below {lo}")
                if hi is not None and value > hi:
                    raise ParamsError(f"{type(self).__name__}.{f.name} = {value} is above {hi}")

    @classmethod
    def field_info(cls) -> list[dict[str, Any]]:
        """One dict per parameter: name, default, type, unit, help, choices, min, max."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else None)
            out.append({"name": f.name, "default": default, "type": hints.get(f.name),
                        **{k: f.metadata.get(k) for k in ("unit", "help", "choices", "minimum",
                                                          "maximum")}})
        return out

    @classmethod
    def from_dict(cls: type[P], values: dict[str, Any] | None) -> P:
        """Build from a mapping; unknown keys raise ParamsError listing the valid ones."""
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ParamsError(
                f"unknown parameter(s) for {cls.__name__}: {', '.join(unknown)}. "
                f"Valid parameters: {', '.join(names)}"
            )
        hints = typing.get_type_hints(cls)
        coerced = {k: _coerce(v, hints.get(k), f"{cls.__name__}.{k}") for k, v in values.items()}
        return cls(**coerced)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable mapping of every parameter."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    def replace(self: P, **changes: Any) -> P:
        """Copy with some parameters changed (validated like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_file(cls: type[P], path: str | Path, section: str | None = None) -> P:
        """Read parameters from a JSON or YAML file (optionally one section of it)."""
        data = load_params_file(path)
        if section is not None and isinstance(data.get(section), dict):
            data = data[section]
        return cls.from_dict(data)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{where} = {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where} needs a list, got {value!r}")
        inner = args[0] if args else None
        return tuple(_coerce(v, inner, where) for v in value) if origin is tuple else \
            [_coerce(v, inner, where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ParamsError(f"{where} needs true or false, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ParamsError(f"{where} needs a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParamsError(f"{where} needs a number, got {value!r}") from None
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ParamsError(f"{where} needs an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ParamsError(f"{where} needs an integer, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where} needs text, got {value!r}")
        return value
    return value


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Load a JSON or YAML mapping from ``path`` (by suffix; YAML when unsure)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read parameter file ({exc})") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ParamsError(f"{path}: not valid JSON/YAML ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter names to values")
    return data
