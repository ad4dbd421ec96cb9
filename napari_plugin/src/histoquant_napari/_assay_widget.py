"""One dock widget per histoquant assay, built from the assay registry.

:class:`AssayWidget` reads everything from the assay's :class:`~histoquant.assays.AssaySpec`:
the input layers it needs (one RGB layer, or one layer or colour channel per channel role), the
parameter form (from the params dataclass) and the title, and its combo box offers every
registered assay. So that each assay also has its own entry in napari's Plugins menu, the
manifest lists one small subclass per assay (:class:`MotorNeuronsWidget`, ...), named by
:func:`widget_class_name`, that only presets :attr:`AssayWidget.assay_name`. A new assay module
in ``histoquant.assays`` needs one such subclass here and its entry in ``napari.yaml`` (the
plugin tests check that every registered assay has both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit
from qtpy.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QWidget

from histoquant.assays import AssaySpec, available_assays
from histoquant.errors import ChannelError, ModelFileError
from histoquant.params import AssayParams
from histoquant.results import AssayResult

from . import _notify
from ._base_widget import (
    RunnerWidget,
    build_new_layers,
    compact,
    image_choices,
    layer_combo,
    shapes_choices,
    while_alive,
)
from ._convert import layers_to_image
from ._params_form import ParamsForm
from ._results import class_colours, result_layer_data
from ._shapes import regions_from_shapes_layer
from ._table import ResultTable, result_tables

__all__ = ["AssayWidget", "EvansBlueWidget", "GfpCellsWidget", "MotorNeuronsWidget",
           "VasculatureWidget", "assay_specs", "short_title", "widget_class_name"]

#: Assays with a dedicated widget instead of the generic one.
SPECIAL = ("anatomy",)


def assay_specs() -> dict[str, AssaySpec]:
    """Return the assays the generic widget offers: every registered assay but the special ones."""
    return {k: v for k, v in available_assays().items() if k not in SPECIAL}


def short_title(spec: AssaySpec, max_chars: int = 28) -> str:
    """Shorten an assay title to its subject.

    ``Evans Blue extravasation: EvB-positive area, ...`` → ``Evans Blue extravasation``;
    ``Motor neurons in Nissl (cresyl violet) brightfield sections`` → ``Motor neurons``.
    """
    title = spec.title.split(":")[0].strip() or spec.name
    if len(title) > max_chars:
        cuts = [i for i in (title.find(" in "), title.find(" ("), title.find(", ")) if i > 0]
        if cuts:
            title = title[: min(cuts)]
    return title


def widget_class_name(assay: str) -> str:
    """``motor-neurons`` → ``MotorNeuronsWidget`` (the manifest's python_name)."""
    return "".join(part.capitalize() for part in assay.replace("_", "-").split("-")) + "Widget"


@dataclass
class _Job:
    spec: AssaySpec
    image: Any
    regions: Any
    params: AssayParams
    channels: dict[str, str] | None
    reference: Any
    model: str | None = None
    #: (scale, translate, units) of the reference layer, read on the GUI thread
    geometry: tuple[Any, Any, Any] | None = None
    masks: bool = False
    existing: frozenset[str] = frozenset()
    #: made on the worker thread: the result's layer data and the layers a first run adds
    layer_data: list[Any] | None = None
    built: dict[str, Any] | None = None


class AssayWidget(RunnerWidget):
    """Run one histoquant assay on the chosen layers and show the results.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it when the widget is opened from the Plugins menu).
    assay : str, optional
        Assay to show first (``motor-neurons``, ``evans-blue``, ...); the combo box at the top
        switches to any other registered assay.
    """

    assay_name: str | None = None

    def __init__(self, napari_viewer: Any, assay: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self.specs = assay_specs()
        if not self.specs:
            raise RuntimeError("histoquant has no assay registered")
        first = assay or self.assay_name or next(iter(self.specs))
        first = first.replace("_", "-")
        if first not in self.specs:
            raise KeyError(f"unknown assay {first!r}; available: {', '.join(self.specs)}")
        self.last_result: AssayResult | None = None
        self.result_layers: list[Any] = []
        self.assay_choice = compact(ComboBox(
            label="assay", choices=[(short_title(s), n) for n, s in self.specs.items()],
            value=first, tooltip="Which histoquant assay to run"))
        top = Container(widgets=[self.assay_choice], labels=True)
        self._layout.addWidget(top.native)
        self._top = top
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self._layout.addWidget(self.description)
        self._inputs_holder = QWidget()
        self._inputs_holder.setLayout(QHBoxLayout())
        self._inputs_holder.layout().setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self._inputs_holder)
        # What the channel roles were filled from (names, LUT colours), or what must be chosen.
        self.channel_note = QLabel("")
        self.channel_note.setWordWrap(True)
        self.channel_note.setObjectName("channel_note")
        self._layout.addWidget(self.channel_note)
        self._params_scroll = QScrollArea()
        self._params_scroll.setWidgetResizable(True)
        self._params_scroll.setMinimumHeight(160)
        self._layout.addWidget(self._params_scroll)
        self._layout.addLayout(self.params_buttons())
        self._layout.addLayout(self.run_buttons())
        self._layout.addWidget(self.progress_bar)
        self._layout.addWidget(self.status)
        self.table = ResultTable(self, title="Results")
        self.table.row_chosen.connect(self._row_chosen)
        self._layout.addWidget(self.table, stretch=1)
        self.assay_choice.changed.connect(self._build_for_assay)
        self._build_for_assay(first)

    # -- building ------------------------------------------------------------------------------

    @property
    def spec(self) -> AssaySpec:
        return self.specs[self.assay_choice.value]

    def _retitle(self) -> None:
        """Name the dock after the assay chosen (it kept the first assay's title)."""
        from qtpy.QtWidgets import QDockWidget

        dock = self.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        if dock is None:
            return
        title = f"{short_title(self.spec)} (histoquant)"
        dock.setWindowTitle(title)
        label = getattr(getattr(dock, "title", None), "title", None)  # napari's title bar
        if hasattr(label, "setText"):
            label.setText(title)

    def event(self, ev: Any) -> bool:
        """Retitle the dock once napari has put the widget in it."""
        from qtpy.QtCore import QEvent

        handled = super().event(ev)
        if ev.type() == QEvent.Type.ParentChange and self.parent() is not None:
            self._retitle()
        return handled

    def _build_for_assay(self, name: str) -> None:
        spec = self.specs[name]
        roles = ", ".join(f"{r.name}{'' if r.required else ' (optional)'}"
                          for r in spec.channel_roles)
        self.description.setText(
            f"<i>{spec.title}</i><br>" +
            ("Input: one brightfield RGB layer." if spec.rgb or not spec.channel_roles else
             f"Input channels: {roles}. Pick a layer (or an RGB layer's colour) for each."))
        self.role_widgets: dict[str, ComboBox] = {}
        widgets: list[Any] = []
        if spec.rgb or not spec.channel_roles:
            w = layer_combo("image", lambda _w: image_choices(self.viewer, split_rgb=False,
                                                              rgb_only=True),
                            tooltip="The brightfield RGB image layer to measure")
            self.role_widgets["image"] = w
            widgets.append(w)
        else:
            for role in spec.channel_roles:
                w = layer_combo(f"{role.name} channel",
                                lambda _w, opt=not role.required: image_choices(
                                    self.viewer, split_rgb=True, optional=opt),
                                tooltip=role.help or role.name, name=f"role_{role.name}")
                self.role_widgets[role.name] = w
                widgets.append(w)
        self.regions_choice = layer_combo(
            "regions", lambda _w: shapes_choices(self.viewer),
            tooltip="A Shapes layer of named regions (from the Anatomy widget, a region file, "
                    "or drawn by hand; the 'name' feature names each shape). 'whole image' "
                    "measures the whole image as region 'image'.")
        if getattr(self, "show_masks", None) is None:
            self.show_masks = CheckBox(
                label="mask layers", value=False,
                tooltip="Also add the assay's masks (positive, vessel, ...) as hidden Labels "
                        "layers to check them; off, a result adds one layer and shows faster")
        if getattr(self, "model_file", None) is None:
            self.model_file = FileEdit(
                label="model (.hqm)", mode="r", filter="*.hqm", value="",
                tooltip="Optional: a learned model (histoquant train …, or the Teach dock) "
                        "that replaces the step of the assay its kind names; empty: the "
                        "assay's own rules")
        widgets += [self.regions_choice, self.show_masks, self.pixel_size,
                    self.pixel_size_note]
        if spec.model_steps:
            widgets.append(self.model_file)
        old = getattr(self, "form", None)
        if old is not None:
            # The shared widgets move to the new form; detach them first.
            for w in (self.show_masks, self.model_file, self.pixel_size,
                      self.pixel_size_note):
                if w in old:
                    old.remove(w)
        self.form = Container(widgets=widgets, labels=True)
        layout = self._inputs_holder.layout()
        while layout.count():
            item = layout.takeAt(0)
            if item.widget() is not None:
                item.widget().setParent(None)
        layout.addWidget(self.form.native)
        self.params_form = ParamsForm(spec.params_cls)
        self._params_scroll.setWidget(self.params_form.native)
        self.form.reset_choices()
        self._auto_pick()
        shapes = [v for _, v in self._choice_items(self.regions_choice) if v is not None]
        if shapes:
            self.regions_choice.value = shapes[-1]
        for w in self.role_widgets.values():
            w.changed.connect(lambda *_: self.update_pixel_size_state())
            w.changed.connect(lambda *_: self._check_roles())
        self.update_pixel_size_state()
        self._retitle()

    def _layers_changed(self, event: Any = None) -> None:
        super()._layers_changed(event)
        from napari.layers import Image, Shapes

        if getattr(event, "type", "") != "inserted":
            return
        layer = getattr(event, "value", None)
        if isinstance(layer, Image):
            self._auto_pick()
        elif isinstance(layer, Shapes):
            # New regions (from the anatomy widget, a region file, a sample) are what the user
            # wants measured next; "whole image" stays one click away.
            self.regions_choice.value = layer

    def _auto_pick(self) -> None:
        """Pre-select a layer per role from the channels' names and the file's LUT colours.

        The evidence is weighed by :func:`histoquant.io.channel_roles.guess_roles` (a name
        beats a colour; equal evidence for two channels is left to the user); a required role
        with no evidence takes the only channel left, if there is exactly one. The note under
        the inputs says what was chosen and why, and which roles must still be chosen.
        """
        if "image" in self.role_widgets:
            w = self.role_widgets["image"]
            rgb = [v for _, v in self._choice_items(w) if v is not None and v[0].rgb]
            if rgb and (w.value is None or not w.value[0].rgb):
                w.value = rgb[-1]
            self.channel_note.setText("")
            return
        from types import SimpleNamespace

        from histoquant.io.channel_roles import guess_roles

        first = next(iter(self.role_widgets.values()))
        values = [v for _, v in self._choice_items(first) if v is not None]
        names = [self._channel_name(v) for v in values]
        colours = [self._channel_colour(v) for v in values]
        pseudo = SimpleNamespace(rgb=False, channel_names=names, n_channels=len(names),
                                 metadata={"channel_colors": colours})
        roles = self.spec.channel_roles
        found = guess_roles(pseudo, roles)
        taken: set[int] = set()
        lines: list[str] = []
        for role in roles:
            w = self.role_widgets[role.name]
            g = found.chosen.get(role.name)
            if g is not None:
                w.value = values[g.index]
                taken.add(g.index)
                lines.append(f"{role.name} ← {names[g.index]} ({g.reason})")
        for role in roles:
            if role.name in found.chosen:
                continue
            w = self.role_widgets[role.name]
            free = [i for i in range(len(values)) if i not in taken]
            if role.name in found.ambiguous:
                choices = ", ".join(names[i] for i in found.ambiguous[role.name])
                lines.append(f"{role.name}: ambiguous ({choices}): choose one")
                if role.required:
                    self._unset(w)
                else:
                    w.value = None
            elif role.required and len(free) == 1:
                w.value = values[free[0]]
                taken.add(free[0])
                lines.append(f"{role.name} ← {names[free[0]]} (the only channel left)")
            elif role.required:
                self._unset(w)
                lines.append(f"{role.name}: choose its channel (no name or colour says which)")
            else:
                w.value = None
        self.channel_note.setText("\n".join(lines))
        self._check_roles()

    def _unset(self, w: ComboBox) -> None:
        """Leave a required role's box empty, so Run asks for it instead of guessing."""
        w.native.setCurrentIndex(-1)

    def _channel_name(self, value: tuple[Any, int | None]) -> str:
        layer, channel = value
        info = self.layer_info(layer)
        if channel is not None:  # an RGB layer's colour
            return f"{layer.name} [{'RGB'[channel]}]"
        return str(info.get("channel") or layer.name)

    def _channel_colour(self, value: tuple[Any, int | None]) -> str | None:
        layer, channel = value
        if channel is not None:
            return None
        colour = self.layer_info(layer).get("channel_color")
        return colour if isinstance(colour, str) else None

    def _role_values(self) -> dict[str, tuple[Any, int | None]]:
        out = {}
        for role, w in self.role_widgets.items():
            if w.native.currentIndex() >= 0 and w.value is not None:
                out[role] = w.value
        return out

    def _check_roles(self) -> str | None:
        """Say, in the note, when one channel is chosen for two roles; return that problem."""
        seen: dict[tuple[int, int | None], str] = {}
        for role, (layer, channel) in self._role_values().items():
            key = (id(layer), channel)
            if key in seen:
                problem = (f"one channel ({layer.name}) is chosen for both {seen[key]} and "
                           f"{role}: choose another for one of them")
                self.status.setText(problem)
                return problem
            seen[key] = role
        return None

    @staticmethod
    def _choice_items(w: ComboBox) -> list[tuple[str, Any]]:
        return [(w.native.itemText(i), w.native.itemData(i)) for i in range(w.native.count())]

    def primary_layer(self) -> Any:
        for w in getattr(self, "role_widgets", {}).values():
            if w.value is not None:
                return w.value[0]
        return None

    @property
    def params_section(self) -> str:
        return self.spec.name

    # -- running -------------------------------------------------------------------------------

    def prepare(self) -> _Job:
        spec = self.spec
        params = self.params_form.params()
        inputs = self._role_values()
        if "image" in self.role_widgets and not inputs and \
                image_choices(self.viewer, split_rgb=False):
            raise ChannelError(f"{spec.title}: a brightfield RGB image is needed; none of the "
                               "open image layers is RGB")
        if not inputs and not any(v is not None for w in self.role_widgets.values()
                                  for _, v in self._choice_items(w)):
            raise ChannelError(f"{spec.title}: choose the input layer(s) first (open an image "
                               "with File ▸ Open or a sample from File ▸ Open Sample)")
        problem = self._check_roles()
        if problem is not None:
            raise ChannelError(f"{spec.title}: {problem}")
        missing = [r for r in self.role_widgets if r not in inputs and
                   (r == "image" or any(c.required and c.name == r for c in spec.channel_roles))]
        if missing:
            raise ChannelError(f"{spec.title}: choose the channel for "
                               f"{', '.join(missing)} (the note under the inputs says why it "
                               "was not chosen for you)")
        reference = next(iter(inputs.values()))[0]
        px = self.resolve_pixel_size(reference)
        image = layers_to_image(inputs, px, rgb=spec.rgb or not spec.channel_roles,
                                name=self.image_name(reference))
        shapes = self.regions_choice.value
        regions = regions_from_shapes_layer(shapes, reference) if shapes is not None else None
        channels = None if spec.rgb or not spec.channel_roles else {r: r for r in inputs}
        model = str(self.model_file.value or "").strip() if spec.model_steps else ""
        if model in ("", "."):
            model = None
        elif not Path(model).is_file():
            raise ModelFileError(f"no model file {model}")
        units = getattr(reference, "units", None)
        geometry = (tuple(reference.scale[-2:]), tuple(reference.translate[-2:]),
                    tuple(str(u) for u in units[-2:]) if units is not None else None)
        return _Job(spec, image, regions, params, channels, reference, model, geometry,
                    bool(self.show_masks.value), frozenset(la.name for la in self.viewer.layers))

    def compute(self, job: _Job, progress: Callable[[float, str], None]) -> AssayResult:
        loaded = None
        if job.model is not None:  # read on the worker thread, once per file version
            from histoquant.learn.assay_models import (
                apply_assay_model,
                cached_assay_model,
                run_kwargs,
            )

            loaded = cached_assay_model(job.model, job.spec.name)
            more = run_kwargs(loaded)
        else:
            more = {}
        result = job.spec.run(job.image, regions=job.regions, params=job.params,
                              channels=job.channels, progress=progress, **more)
        if loaded is not None:
            result = apply_assay_model(result, loaded)
        scale, translate, units = job.geometry
        job.layer_data = result_layer_data(result, scale=scale, translate=translate,
                                           units=units, position=job.spec.positions[0],
                                           masks=job.masks)
        job.built = build_new_layers(job.layer_data, job.existing)
        return result

    def show_result(self, job: _Job, result: AssayResult) -> None:
        ref = job.reference
        layers = []
        built = job.built or {}
        for data, kwargs, kind in job.layer_data or ():
            layers.append(self.add_or_update(data, kwargs, kind, built.get(kwargs["name"])))
        self.result_layers = layers
        self._result_geometry = (tuple(float(v) for v in ref.translate[-2:]),)
        if getattr(self, "_picker", None) is None:
            self._picker = while_alive(self._pick_object)  # the layer outlives the dock
        if layers and kind_of(layers[0]) == "labels" and \
                self._picker not in layers[0].mouse_drag_callbacks:
            layers[0].mouse_drag_callbacks.append(self._picker)
        if layers:
            # The objects layer is the one to hover (its features are the objects table).
            self.viewer.layers.selection.active = layers[0]
        self.last_result = result
        path = self.layer_info(ref).get("path")
        self.table.set_tables(result_tables(result),
                              folder=Path(path).parent if path else None,
                              prefix=f"{result.image}_{result.assay}")
        legend = "  ".join(f"<span style='color:{c}'>■</span> {name}"
                           for name, c in class_colours(result.objects).items())
        self.status.setText(f"{result.assay}: {len(result.objects)} object(s) in "
                            f"{len(result.summary)} region(s)" + (f"<br>{legend}" if legend
                                                                  else ""))
        for message in result.warnings:
            _notify.warning(message)


    # -- table ↔ viewer -------------------------------------------------------------------------

    def _row_chosen(self, table: str, index: int) -> None:
        """Centre the viewer on the object of a clicked objects row and mark it."""
        result = self.last_result
        if result is None or table != "objects" or index >= len(result.objects):
            return
        self.focus_object(index)

    def focus_object(self, index: int) -> None:
        """Centre the view on object row ``index`` and ring it in a ``selected`` layer.

        Parameters
        ----------
        index : int
            Row of ``last_result.objects``.
        """
        result = self.last_result
        ycol, xcol = self.spec.positions[0]
        row = result.objects.iloc[index]
        if ycol not in row or xcol not in row:
            return
        ty, tx = self._result_geometry[0]
        y, x = float(row[ycol]) + ty, float(row[xcol]) + tx
        camera = viewer_camera(self.viewer)
        center = list(camera.center)
        center[-2:] = [y, x]
        camera.center = tuple(center)
        px = float(result.pixel_size_um or 1.0)
        name = f"selected · {result.assay} · {result.image}"
        kwargs = {"name": name, "size": 3.0 * np.sqrt(float(row.get("area_um2", 100.0))),
                  "border_color": "white", "face_color": "transparent", "symbol": "ring",
                  "border_width": 0.15, "scale": (px, px),
                  "translate": self._result_geometry[0]}
        if self.result_layers and getattr(self.result_layers[0], "units", None) is not None:
            kwargs["units"] = tuple(str(u) for u in self.result_layers[0].units[-2:])
        data = np.array([[float(row[ycol]) / px, float(row[xcol]) / px]])
        self.add_or_update(data, kwargs, "points")
        if self.result_layers:
            self.viewer.layers.selection.active = self.result_layers[0]
        if "label" in row and self.result_layers and \
                kind_of(self.result_layers[0]) == "labels":
            self.result_layers[0].selected_label = int(row["label"])

    def _pick_object(self, layer: Any, event: Any) -> None:
        """Select, in the table, the row of the object clicked in the objects layer."""
        result = self.last_result
        if result is None or "label" not in result.objects.columns:
            return
        value = layer.get_value(event.position, world=True)
        if value is None or int(value) == 0:
            return
        rows = np.flatnonzero(result.objects["label"].to_numpy() == int(value))
        if len(rows):
            self.table.select_row("objects", int(rows[0]))


def viewer_camera(viewer: Any) -> Any:
    """Return the viewer's camera (``viewer.scene.camera`` from napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def kind_of(layer: Any) -> str:
    """Return a layer's kind in lower case (``labels``, ``points``, ...)."""
    return layer.__class__.__name__.lower()


# One class per assay for the manifest's Plugins-menu entries. Plain classes rather than ones
# made on demand: napari, npe2's validation and readers of the code find them by name.


class MotorNeuronsWidget(AssayWidget):
    """The assay widget opened on the ``motor-neurons`` assay (Plugins ▸ Motor neurons)."""

    assay_name = "motor-neurons"


class EvansBlueWidget(AssayWidget):
    """The assay widget opened on the ``evans-blue`` assay (Plugins ▸ Evans Blue)."""

    assay_name = "evans-blue"


class VasculatureWidget(AssayWidget):
    """The assay widget opened on the ``vasculature`` assay (Plugins ▸ Microvessels)."""

    assay_name = "vasculature"


class GfpCellsWidget(AssayWidget):
    """The assay widget opened on the ``gfp-cells`` assay (Plugins ▸ GFP+ cells)."""

    assay_name = "gfp-cells"
