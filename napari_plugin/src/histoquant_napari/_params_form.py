"""A magicgui form built from an assay's parameter dataclass.

Every widget, label, unit, tooltip, range and default comes from
:meth:`histoquant.params.AssayParams.field_info`; nothing is repeated here. Reading the form
goes through ``params_cls.from_dict``, so the core validates and coerces exactly as it does for
a parameter file.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)

from histoquant.errors import ParamsError
from histoquant.params import AssayParams

if TYPE_CHECKING:
    from magicgui.widgets.bases import ValueWidget

__all__ = ["ParamsForm", "label_for", "save_params_file"]

_UNIT_SUFFIX = re.compile(r"_(um2|um|mm2|mm|pct|px|s|deg)$")
_BIG = 1e9


def label_for(name: str, unit: str) -> str:
    """``min_soma_area_um2`` with unit ``µm²`` → ``min soma area (µm²)``."""
    base = _UNIT_SUFFIX.sub("", name).replace("_", " ")
    return f"{base} ({unit})" if unit else base


def _decimals(value: float) -> int:
    """Decimals a spin box needs to show ``value`` exactly (at least 2, at most 8)."""
    if value == 0 or not math.isfinite(value):
        return 3
    text = f"{value:.10f}".rstrip("0")
    places = len(text.split(".")[1]) if "." in text else 0
    return max(3, min(8, places))


def _step(value: float) -> float:
    if value == 0:
        return 0.1
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1)


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)) and len(args) == 1:
            return args[0], True
    return hint, False


def _tooltip(info: dict[str, Any]) -> str:
    unit = f" {info['unit']}" if info.get("unit") else ""
    parts = [info.get("help") or ""]
    parts.append(f"Parameter file key: {info['name']}; default {info['default']!r}{unit}.")
    lo, hi = info.get("minimum"), info.get("maximum")
    if lo is not None or hi is not None:
        parts.append(f"Allowed: {'' if lo is None else lo} … {'' if hi is None else hi}{unit}.")
    return "\n\n".join(p for p in parts if p)


class ParamsForm(Container):
    """One labelled input per parameter of ``params_cls``, set to the core's defaults.

    Parameters
    ----------
    params_cls : type of AssayParams
        The assay's parameter dataclass.
    """

    def __init__(self, params_cls: type[AssayParams]):
        super().__init__(labels=True)
        self.params_cls = params_cls
        self._info = {i["name"]: i for i in params_cls.field_info()}
        self._kinds: dict[str, str] = {}
        # The parameters a histologist changes most first; the rest folded behind a toggle,
        # so a dock fits a laptop screen (issue #17).
        common = [n for n in getattr(params_cls, "common", ()) if n in self._info]
        rest = [n for n in self._info if n not in common]
        for name in common:
            self.append(self._make(self._info[name]))
        self.more_names: list[str] = rest if common else []
        self.more_toggle: PushButton | None = None
        if common and rest:
            self.more_toggle = PushButton(text="", name="more_parameters")
            self.more_toggle.changed.connect(lambda *_: self.show_more(not self._more_shown))
            self.append(self.more_toggle)
        for name in rest:
            self.append(self._make(self._info[name]))
        self._more_shown = True
        if self.more_toggle is not None:
            self.show_more(False)

    def show_more(self, shown: bool) -> None:
        """Unfold (``True``) or fold the parameters that are not among ``common``."""
        self._more_shown = bool(shown)
        for name in self.more_names:
            self[name].visible = self._more_shown
        if self.more_toggle is not None:
            arrow = "▾" if self._more_shown else "▸"
            self.more_toggle.text = f"{arrow} more parameters ({len(self.more_names)})"

    # -- building ------------------------------------------------------------------------------

    def _make(self, info: dict[str, Any]) -> ValueWidget:
        name, default = info["name"], info["default"]
        hint, optional = _strip_optional(info["type"])
        common = {"name": name, "label": label_for(name, info.get("unit") or ""),
                  "tooltip": _tooltip(info)}
        choices = info.get("choices")
        if choices is None and typing.get_origin(hint) is typing.Literal:
            choices = typing.get_args(hint)
        if choices and not optional:
            self._kinds[name] = "choice"
            return ComboBox(choices=list(choices), value=default, **common)
        if optional or hint not in (bool, int, float, str):
            self._kinds[name] = "text"
            widget = LineEdit(value=self._to_text(default), **common)
            if optional:
                widget.native.setPlaceholderText("none")
            return widget
        lo, hi = info.get("minimum"), info.get("maximum")
        if hint is bool:
            self._kinds[name] = "bool"
            return CheckBox(value=bool(default), **common)
        if hint is int:
            self._kinds[name] = "int"
            return SpinBox(value=int(default), min=int(lo) if lo is not None else -int(_BIG),
                           max=int(hi) if hi is not None else int(_BIG), **common)
        if hint is float:
            self._kinds[name] = "float"
            value = float(default)
            low = lo if lo is not None else (0.0 if value >= 0 else -_BIG)
            return self._float_box(value, low, hi, common)
        self._kinds[name] = "str"
        return LineEdit(value=str(default), **common)

    @staticmethod
    def _float_box(value: float, low: float, hi: float | None, common: dict[str, Any],
                   ) -> FloatSpinBox:
        box = FloatSpinBox(min=low, max=hi if hi is not None else _BIG, step=_step(value),
                           **common)
        # Enough decimals first: the box rounds its value to them, and the default must come
        # back unchanged.
        box.native.setDecimals(_decimals(value))
        box.value = value
        return box

    @staticmethod
    def _to_text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        if isinstance(value, (dict,)):
            return json.dumps(value)
        return str(value)

    # -- reading and writing -------------------------------------------------------------------

    def _from_text(self, name: str, text: str) -> Any:
        import yaml

        text = text.strip()
        if text == "" or text.lower() in ("none", "null"):
            return None
        hint, _ = _strip_optional(self._info[name]["type"])
        if typing.get_origin(hint) in (list, tuple):
            if not text.startswith("["):
                text = f"[{text}]"
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text

    def values(self) -> dict[str, Any]:
        """Return the form's values as a plain mapping (not yet validated)."""
        out = {}
        for name, kind in self._kinds.items():
            value = self[name].value
            out[name] = self._from_text(name, value) if kind == "text" else value
        return out

    def params(self) -> AssayParams:
        """Return the parameters the form shows, validated by the core (ParamsError if invalid)."""
        return self.params_cls.from_dict(self.values())

    def set_params(self, params: AssayParams | dict[str, Any]) -> None:
        """Show ``params`` (a params object or a mapping of some parameters)."""
        values = params.to_dict() if isinstance(params, AssayParams) else dict(params)
        for name, value in values.items():
            if name not in self._kinds:
                continue
            if self._kinds[name] == "text":
                self[name].value = self._to_text(value)
            elif self._kinds[name] == "float":
                box = self[name]
                box.native.setDecimals(max(box.native.decimals(), _decimals(float(value))))
                box.value = float(value)
            else:
                self[name].value = value

    def reset(self) -> None:
        """Back to the core's defaults."""
        self.set_params(self.params_cls())

    def load(self, path: str | Path, section: str | None = None) -> AssayParams:
        """Load parameters from a JSON/YAML file as the command line reads it, and show them.

        A study file's ``assays: {<assay>: {params: ...}}`` section or a top-level section
        named after the assay is used when present.
        """
        from histoquant.params import load_params_file

        data = load_params_file(path)
        if section is not None:
            study = data.get("assays")
            if isinstance(study, dict) and isinstance(study.get(section), dict):
                data = study[section].get("params") or {}
            elif isinstance(data.get(section), dict):
                data = data[section]
        params = self.params_cls.from_dict(data)
        self.set_params(params)
        return params

    def save(self, path: str | Path) -> Path:
        """Save the current parameters to a JSON or YAML file the command line accepts."""
        return save_params_file(self.params(), path)


def save_params_file(params: AssayParams, path: str | Path) -> Path:
    """Write ``params.to_dict()`` as JSON (``.json``) or YAML (anything else)."""
    import yaml

    from histoquant.io import atomic_path

    path = Path(path)
    data = params.to_dict()
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    elif path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        raise ParamsError(f"{path}: save parameters as .json, .yaml or .yml")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
