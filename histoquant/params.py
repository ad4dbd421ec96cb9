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
import math
import numbers
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ParamsError

__all__ = ["AssayParams", "param", "load_params_file", "ParamsValidationError",
           "DEFAULT_UNIT_BOUNDS"]

P = TypeVar("P", bound="AssayParams")

# Bounds every numeric field of a unit gets unless it declares its own ``minimum``/
# ``maximum``. They catch what no analysis could mean (a negative area, 150 %, a 10 m
# smoothing scale) without judging what is sensible, which each field's own bounds do. The
# upper bounds sit far beyond any section or slide (a slide is 75 mm long), so they only stop
# values that would make an assay allocate absurd kernels or overflow.
DEFAULT_UNIT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "µm": (0.0, 1e5),        # a length: 100 mm is longer than any slide
    "µm²": (0.0, 1e10),      # an area: 100 mm × 100 mm
    "mm²": (0.0, 1e4),
    "px": (0.0, 1e6),
    "%": (0.0, 100.0),
    "°": (-360.0, 360.0),
    "OD": (0.0, 10.0),       # optical density: 10 is 1e-10 transmission, beyond any camera
    "σ": (0.0, 1e3),         # a multiple of the noise
    "Mpx": (0.0, None),
    "MB": (0.0, None),
}

# Units implied by a field name when the field declares none (``_um2`` before ``_um``).
_SUFFIX_UNITS = (("_um2", "µm²"), ("_mm2", "mm²"), ("_um", "µm"), ("_px", "px"),
                 ("_pct", "%"), ("_deg", "°"))
# Unitless names with a fixed range: a fraction is a share of a whole.
_SUFFIX_BOUNDS = (("_fraction", (0.0, 1.0)),)


def param(default: Any, *, unit: str = "", help: str = "", choices: tuple | None = None,
          minimum: float | None = None, maximum: float | None = None) -> Any:
    """Return a dataclass field carrying its unit, help text, allowed choices and range.

    Parameters
    ----------
    default : object
        Default value (lists, dicts and sets are copied per instance).
    unit : str
        Physical unit shown in the CLI, GUI and docs (``"µm"``, ``"µm²"``, ``"%"``...).
    help : str
        What the parameter does and why the default is what it is.
    choices : tuple, optional
        The only values allowed.
    minimum, maximum : float, optional
        Inclusive range of a number (or of every number of a list/tuple). Left out, the
        unit's default range applies (see :data:`DEFAULT_UNIT_BOUNDS`): lengths and areas are
        ≥ 0, percentages within 0–100, fractions within 0–1, integers ≥ 0.

    Returns
    -------
    dataclasses.Field
    """
    meta = {"unit": unit, "help": help, "choices": choices, "minimum": minimum,
            "maximum": maximum}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class ParamsValidationError(ParamsError):
    """Every invalid parameter value of one params object, reported together.

    ``problems`` holds ``(key, problem)`` pairs (key ``None`` for a problem of the whole
    mapping, such as unknown keys); the message has one line per problem,
    ``WHERE: key: problem (got VALUE; allowed RANGE)``, where ``WHERE`` is the params file
    when the values came from one, else the params class.
    """

    def __init__(self, problems: list[tuple[str | None, str]], where: str, prefix: str = ""):
        self.problems = list(problems)
        self.where = where
        self.prefix = prefix
        lines = self.lines()
        if len(lines) == 1:
            message = lines[0]
        else:
            message = (f"{len(lines)} invalid parameters:\n"
                       + "\n".join(f"  {line}" for line in lines))
        super().__init__(message)

    def lines(self, with_where: bool = True) -> list[str]:
        """Return one line per problem, with the location (and ``WHERE:`` unless told not to).

        Parameters
        ----------
        with_where : bool
            Whether each line starts with where the problem is (a file, a params class).

        Returns
        -------
        list of str
            ``WHERE: key: what is wrong`` lines.
        """
        out = []
        for key, text in self.problems:
            loc = (f"{self.prefix}{key}" if key is not None
                   else self.prefix.rstrip("."))
            body = f"{loc}: {text}" if loc else text
            out.append(f"{self.where}: {body}" if with_where else body)
        return out

    def at(self, where: str | os.PathLike[str], prefix: str = "") -> ParamsValidationError:
        """Return the same problems located in ``where`` (a file), keys prefixed by ``prefix``.

        Parameters
        ----------
        where : str or os.PathLike
            Where the parameters came from.
        prefix : str
            Put before every key (e.g. ``"assays.evans-blue.params."``).

        Returns
        -------
        ParamsValidationError
            A new error; this one is unchanged.
        """
        return ParamsValidationError(self.problems, str(where), prefix)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints evaluates the string annotations of every base class: cache per class,
    # as params objects are built per image and per tile.
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _bounds(f: dataclasses.Field, hint: Any = None) -> tuple[Any, Any]:
    """Return the field's declared range, filled in from its unit, name or integer type."""
    lo, hi = f.metadata.get("minimum"), f.metadata.get("maximum")
    unit = f.metadata.get("unit") or ""
    if not unit:
        unit = next((u for s, u in _SUFFIX_UNITS if f.name.endswith(s)), "")
    default = DEFAULT_UNIT_BOUNDS.get(unit)
    if default is None and not unit:
        default = next((b for s, b in _SUFFIX_BOUNDS if f.name.endswith(s)), None)
    if default is None and _is_int_hint(hint):
        default = (0, None)  # counts, sizes and indices are never negative
    if default is not None:
        lo = default[0] if lo is None else lo
        hi = default[1] if hi is None else hi
    return lo, hi


def _is_int_hint(hint: Any) -> bool:
    if hint is int:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType, tuple, list):
        inner = [a for a in args if a is not type(None) and a is not Ellipsis]
        return bool(inner) and all(a is int for a in inner)
    return False


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _range_text(lo: Any, hi: Any, unit: str) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f"{_fmt(lo)} to {_fmt(hi)}{u}"
    if lo is not None:
        return f"≥ {_fmt(lo)}{u}"
    if hi is not None:
        return f"≤ {_fmt(hi)}{u}"
    return f"any finite number{u}"


class _Bad(Exception):
    """One problem of one value, raised inside the coercion and caught per field."""


@dataclasses.dataclass(frozen=True)
class AssayParams:
    """Base class of every assay's parameters.

    Building one — directly, by :meth:`from_dict`, :meth:`from_file` or :meth:`replace` —
    coerces each value to its field's type (``"3"`` from a YAML or the command line becomes
    3.0) and checks it: the right type (a bool is not a number), a finite number (NaN and
    infinity are refused: NaN compares false with every threshold and silently empties a
    result, infinity overflows inside the assays), within the field's range, one of its
    choices. Every problem is collected and raised at once as a
    :class:`ParamsValidationError`.

    ``common`` names the few parameters a histologist changes most (say the minimum soma
    diameter); forms show them first and fold the rest (engine options, advanced) away.
    """

    #: The parameters shown first; the rest are folded away in the GUI. Empty: all shown.
    common: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Validate every field (finite, in range, an allowed choice); raise on any problem."""
        problems = self._validate_fields()
        if problems:
            raise ParamsValidationError(problems, type(self).__name__)

    def _validate_fields(self) -> list[tuple[str | None, str]]:
        """Coerce every field in place and return its problems (empty when all is well)."""
        hints = _hints(type(self))
        problems: list[tuple[str | None, str]] = []
        for f in dataclasses.fields(self):
            hint = hints.get(f.name)
            value = getattr(self, f.name)
            unit = f.metadata.get("unit") or ""
            lo, hi = _bounds(f, hint)
            try:
                coerced = _coerce(value, hint)
            except _Bad as exc:
                problems.append((f.name, f"{exc} (got {_fmt(value)})"))
                continue
            choices = f.metadata.get("choices")
            if choices and coerced not in choices:
                problems.append((f.name, f"not one of the choices (got {_fmt(value)}; "
                                         f"allowed {', '.join(map(str, choices))})"))
                continue
            problem = _range_problem(coerced, lo, hi, unit)
            if problem:
                problems.append((f.name, f"{problem} (got {_fmt(value)}; allowed "
                                         f"{_range_text(lo, hi, unit)})"))
                continue
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        return problems

    @classmethod
    def field_info(cls) -> list[dict[str, Any]]:
        """Return one dict per parameter: name, default, type, unit, help, choices, min, max.

        ``minimum``/``maximum`` are the range the value is checked against: the field's own,
        else its unit's default (see :data:`DEFAULT_UNIT_BOUNDS`).

        Returns
        -------
        list of dict
            Keys ``name``, ``default``, ``type``, ``unit``, ``help``, ``choices``, ``minimum``
            and ``maximum``, in the order the fields are declared.
        """
        hints = _hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else None)
            lo, hi = _bounds(f, hints.get(f.name))
            out.append({"name": f.name, "default": default, "type": hints.get(f.name),
                        **{k: f.metadata.get(k) for k in ("unit", "help", "choices")},
                        "minimum": lo, "maximum": hi})
        return out

    @classmethod
    def from_dict(cls: type[P], values: Mapping[str, Any] | None) -> P:
        """Build from a mapping; unknown keys and bad values are all reported at once.

        Parameters
        ----------
        values : mapping of str to object, or None
            Parameter name → value; a missing name keeps its default, None gives the defaults.

        Returns
        -------
        AssayParams
            An instance of the class it is called on.

        Raises
        ------
        ParamsValidationError
            Listing every unknown key and every invalid value.
        """
        if values is not None and not isinstance(values, Mapping):
            raise ParamsValidationError(
                [(None, f"expected a mapping of parameter names to values, got "
                        f"{_fmt(values)}")], cls.__name__)
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names), key=str)
        problems: list[tuple[str | None, str]] = []
        if unknown:
            problems.append((None, f"unknown parameter(s) for {cls.__name__}: "
                                   f"{', '.join(map(str, unknown))}. "
                                   f"Valid parameters: {', '.join(names)}"))
        known = {k: v for k, v in values.items() if k in names}
        try:
            obj = cls(**known)
        except ParamsValidationError as exc:
            raise ParamsValidationError(problems + exc.problems, cls.__name__) from None
        if problems:
            raise ParamsValidationError(problems, cls.__name__)
        return obj

    def to_dict(self) -> dict[str, Any]:
        """Return a plain JSON-serialisable mapping of every parameter (tuples as lists).

        Returns
        -------
        dict of str to object
            Name → value.
        """
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    def replace(self: P, **changes: Any) -> P:
        """Return a copy with some parameters changed (validated like :meth:`from_dict`).

        Parameters
        ----------
        **changes : object
            Parameter name → new value.

        Returns
        -------
        AssayParams
            A new instance of the same class.

        Raises
        ------
        ParamsValidationError
            When a name is unknown or a value invalid.
        """
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_file(cls: type[P], path: str | Path, section: str | None = None) -> P:
        """Read parameters from a JSON or YAML file (optionally one section of it).

        Parameters
        ----------
        path : str or pathlib.Path
            The JSON or YAML file (see :func:`load_params_file`).
        section : str, optional
            The key of the file's mapping whose value holds the parameters.

        Returns
        -------
        AssayParams
            An instance of the class it is called on.

        Raises
        ------
        ParamsError
            Naming the file: unreadable, not JSON/YAML, or (as a
            :class:`ParamsValidationError`) every bad key and value in it.
        """
        data = load_params_file(path)
        if section is not None and isinstance(data.get(section), dict):
            data = data[section]
        try:
            return cls.from_dict(data)
        except ParamsValidationError as exc:
            raise exc.at(path) from None
        except ParamsError as exc:
            # A check across fields (e.g. min below max) in a subclass.
            raise ParamsError(f"{path}: {exc}") from None


def _range_problem(value: Any, lo: Any, hi: Any, unit: str) -> str | None:
    """Return what is wrong with a number (or any number in a tuple/list), or None."""
    items = value if isinstance(value, (list, tuple)) else (value,)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            continue
        if not math.isfinite(v):
            return "not a finite number"
        if lo is not None and v < lo:
            return "below the minimum"
        if hi is not None and v > hi:
            return "above the maximum"
    return None


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint``; raises :class:`_Bad` saying what was needed."""
    if hint is None or hint is Any:
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
                return _coerce(value, a)
            except _Bad as exc:
                errors.append(str(exc))
        raise _Bad(" or ".join(dict.fromkeys(errors)) or "a bad value")
    if origin is typing.Literal:
        if value not in args:
            raise _Bad(f"not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Bad("needs a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            # A fixed-length tuple such as tuple[float, float, float].
            if len(value) != len(args):
                raise _Bad(f"needs a list of {len(args)} values")
            return tuple(_coerce(v, a) for v, a in zip(value, args))
        inner = args[0] if args else None
        items = [_coerce(v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        if type(value).__name__ == "bool_":  # numpy bool
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise _Bad("needs true or false")
    if hint is float:
        # A bool is an int to Python but never a meaningful size or threshold.
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            raise _Bad("needs a number, not true/false")
        if isinstance(value, float):
            return value
        if not isinstance(value, (numbers.Real, str)):
            raise _Bad("needs a number")
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise _Bad("needs a number") from None
    if hint is int:
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            raise _Bad("needs an integer, not true/false")
        if isinstance(value, int):
            return value
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            if not math.isfinite(value) or not float(value).is_integer():
                raise _Bad("needs an integer")
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise _Bad("needs an integer") from None
        raise _Bad("needs an integer")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise _Bad("needs text")
    return value


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Load a JSON or YAML mapping from ``path`` (by suffix; YAML when unsure).

    YAML is read with ``yaml.safe_load``: a tag that would build a Python object
    (``!!python/object``, ``!!python/object/apply:os.system``) is refused, never run.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.json``, ``.yaml`` or ``.yml`` file.

    Returns
    -------
    dict of str to object
        The file's mapping.

    Raises
    ------
    ParamsError
        Naming the file when it cannot be read, is not JSON/YAML, uses a Python tag, or
        does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read parameter file ({exc})") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.constructor.ConstructorError as exc:
                raise ParamsError(
                    f"{path}: YAML tags that build Python objects (such as !!python/object) "
                    f"are not allowed in a parameter file ({exc.problem})") from None
    except ParamsError:
        raise
    except Exception as exc:
        # json/yaml raise several types (with line and column); any of them is a bad file.
        raise ParamsError(f"{path}: not valid JSON/YAML ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter names to values")
    return data
