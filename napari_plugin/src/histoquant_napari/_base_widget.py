"""What the anatomy and assay widgets share: layer pickers, pixel size, the worker thread.

The widgets are QWidgets holding magicgui forms. Long work runs on a napari
:func:`~napari.qt.threading.create_worker` thread; the core's ``progress(fraction, message)``
callback is relayed to the GUI thread through a Qt signal, and every failure becomes a napari
error notification with the core's message.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from histoquant.errors import PixelSizeError

from . import _notify
from ._convert import META_KEY, layer_image_name, layer_pixel_size, set_layer_pixel_size

__all__ = ["RunnerWidget", "image_choices", "shapes_choices", "scrolling_layout"]

WHOLE_IMAGE = "whole image (no regions)"
#: Wide enough for labelled parameters with units and a readable table column.
WIDGET_MIN_WIDTH = 420


def while_alive(method: Callable[..., Any]) -> Callable[..., None]:
    """Return a viewer-event callback calling the widget method ``method`` while its widget lives.

    The viewer outlives a closed dock widget; holding the widget weakly, and skipping the call
    once Qt has deleted it, keeps layer events from reaching a dead widget (or keeping it alive).
    """
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        bound = ref()
        if bound is None:
            return
        try:
            bound.__self__.objectName()  # raises RuntimeError once the C++ widget is deleted
        except RuntimeError:
            return
        bound(*args)

    return call


class RunCancelled(Exception):
    """Raised inside a run's worker thread, at its next progress report, after Cancel."""


#: The most height a dock asks for; more content scrolls (two docks fit a 1,080 px screen).
DOCK_MAX_HINT_PX = 500


class _DockScroll(QScrollArea):
    """A scroll area as tall as its content, up to :data:`DOCK_MAX_HINT_PX`."""

    def sizeHint(self) -> Any:
        hint = super().sizeHint()
        inner = self.widget()
        if inner is not None:
            hint.setHeight(min(inner.sizeHint().height() + 2 * self.frameWidth(),
                               DOCK_MAX_HINT_PX))
        return hint


def scrolling_layout(widget: QWidget) -> QVBoxLayout:
    """Give ``widget`` a scroll area and return the layout of its content.

    A dock's minimum height is then the scroll area's, not its content's: two docks fit a
    1,080 px screen, and the window shrinks back when one closes (issue #17).
    """
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = _DockScroll(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    inner = QWidget()
    scroll.setWidget(inner)
    outer.addWidget(scroll)
    layout = QVBoxLayout(inner)
    layout.setContentsMargins(6, 6, 6, 6)
    return layout


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued by Qt)."""

    progress = Signal(float, str)


def _layers_of(viewer: Any, kind: str) -> list[Any]:
    from napari import layers

    cls = {"image": layers.Image, "shapes": layers.Shapes}[kind]
    return [layer for layer in viewer.layers if isinstance(layer, cls)]


NO_CHANNEL = "(none)"


def image_choices(viewer: Any, split_rgb: bool, optional: bool = False, rgb_only: bool = False,
                  ) -> list[tuple[str, tuple[Any, int | None] | None]]:
    """``(label, (layer, channel))`` for every image layer; RGB layers split into R, G, B.

    With ``optional``, a first ``(none)`` entry (value None) leaves an optional channel out;
    with ``rgb_only``, only RGB layers are listed (a brightfield input).
    """
    out: list[tuple[str, tuple[Any, int | None] | None]] = [(NO_CHANNEL, None)] if optional \
        else []
    for layer in _layers_of(viewer, "image"):
        if rgb_only and not layer.rgb:
            continue
        if split_rgb and layer.rgb:
            for i, c in enumerate("RGB"):
                out.append((f"{layer.name} [{c}]", (layer, i)))
        else:
            out.append((layer.name, (layer, None)))
    return out


def shapes_choices(viewer: Any) -> list[tuple[str, Any]]:
    """``(label, layer)`` for every Shapes layer, after a "whole image" entry (None)."""
    return [(WHOLE_IMAGE, None)] + [(layer.name, layer) for layer in _layers_of(viewer, "shapes")]


class RunnerWidget(QWidget):
    """Base of the widgets that run histoquant on a layer.

    Subclasses build ``self.form`` (a magicgui Container) and implement :meth:`prepare`
    (GUI thread: gather inputs, may raise HistoquantError), :meth:`compute` (worker thread)
    and :meth:`show_result` (GUI thread).
    """

    run_finished = Signal()
    """Emitted when a run ends, successfully or not (tests wait on it)."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumWidth(WIDGET_MIN_WIDTH)
        self.viewer = napari_viewer
        self.worker: Any = None
        self.pixel_size_needed = False
        self.last_error: str | None = None
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self._layout = scrolling_layout(self)
        self.pixel_size = FloatSpinBox(
            label="pixel size (µm)", min=0.0, max=1000.0, step=0.01, value=0.0,
            tooltip="Edge length of one pixel in µm. Needed because every threshold of the "
                    "assays is in µm; it is taken from the layer scale when the layer has one.")
        self.pixel_size.native.setDecimals(4)
        # Typed once, the pixel size goes onto the layer: every dock, the scale bar and the
        # coordinates then read it from there (issue #17).
        self.pixel_size.native.editingFinished.connect(self._pixel_size_typed)
        self.pixel_size_note = Label(value="")
        self.pixel_size_note.native.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(lambda: self.run())
        # A run can be cancelled (button, or closing the dock): the worker stops at its next
        # progress report and its result, if one still comes, is dropped.
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this run; nothing is added to the viewer")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self._cancel_requested = False
        self._closed = False
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        events = self.viewer.layers.events
        for name in ("inserted", "removed", "reordered"):
            getattr(events, name).connect(while_alive(self._layers_changed))
        for layer in self.viewer.layers:
            self._watch(layer)

    # -- layers ------------------------------------------------------------------------------

    def _layers_changed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and getattr(event, "type", "") == "inserted":
            self._watch(layer)
        self.reset_choices()

    def _watch(self, layer: Any) -> None:
        """Follow a layer's renames (pickers) and scale changes (the pixel size)."""
        layer.events.name.connect(while_alive(self.reset_choices))
        if hasattr(layer.events, "scale"):
            layer.events.scale.connect(while_alive(self._scale_changed))

    def _scale_changed(self, *_: Any) -> None:
        self.update_pixel_size_state()

    def _pixel_size_typed(self) -> None:
        """Put the typed pixel size on the chosen layer and the other layers of its image."""
        value = float(self.pixel_size.value)
        layer = self.primary_layer()
        if value <= 0 or layer is None or layer_pixel_size(layer) is not None:
            return
        self.set_pixel_size(layer, value)

    def set_pixel_size(self, layer: Any, pixel_size_um: float) -> None:
        """Set ``layer``'s pixel size (and its sibling channels'), turning the scale bar on.

        Parameters
        ----------
        layer : napari.layers.Image
            The layer the value was typed for.
        pixel_size_um : float
            µm per pixel.
        """
        def yx(la: Any) -> tuple[float, ...]:
            return tuple(float(v) for v in la.extent.data[1][-2:])

        name = layer_image_name(layer)
        siblings = [la for la in _layers_of(self.viewer, "image")
                    if la is layer or (layer_image_name(la) == name and yx(la) == yx(layer)
                                       and layer_pixel_size(la) is None)]
        set_layer_pixel_size(siblings, pixel_size_um)
        overlays = getattr(getattr(self.viewer, "canvas", None), "overlays", None)
        if overlays is not None and "scale_bar" in overlays:
            overlays["scale_bar"].visible = True  # its unit comes from the layers' units
        else:  # napari < 0.9
            self.viewer.scale_bar.visible = True
            self.viewer.scale_bar.unit = "um"
        self.pixel_size.value = 0.0
        self.update_pixel_size_state()

    def reset_choices(self, *_: Any) -> None:
        """Refresh every layer picker (napari calls this when layers change)."""
        form = getattr(self, "form", None)
        if form is not None:
            form.reset_choices()
        self.update_pixel_size_state()

    def primary_layer(self) -> Any:
        """Return the image layer whose scale gives the pixel size (subclasses say which)."""
        raise NotImplementedError

    def update_pixel_size_state(self) -> None:
        """Show the pixel-size field when the chosen layer has no physical scale, and say why."""
        layer = self.primary_layer()
        self.pixel_size_needed = False
        if layer is None:
            self.pixel_size.visible = False
            self.pixel_size_note.value = ""
            return
        try:
            px = layer_pixel_size(layer)
        except PixelSizeError as exc:
            self.pixel_size.visible = False
            self.pixel_size_note.value = f"⚠ {exc}"
            return
        if px is None:
            self.pixel_size_needed = True
            self.pixel_size.visible = True
            self.pixel_size_note.value = self.missing_pixel_size_note(layer)
        else:
            self.pixel_size.visible = False
            self.pixel_size_note.value = f"pixel size {px:g} µm (from the layer scale)"

    def missing_pixel_size_note(self, layer: Any) -> str:
        """Return what the dock says when ``layer`` has no physical pixel size."""
        return (f"⚠ Layer '{layer.name}' has no physical pixel size (scale 1, no µm unit). "
                "Enter the pixel size in µm (it is set on the layer, for every dock): the "
                "assay's sizes and thresholds are in µm and would be meaningless in pixels.")

    def resolve_pixel_size(self, layer: Any) -> float:
        """Pixel size in µm for ``layer``: its scale, else the field, else PixelSizeError."""
        px = layer_pixel_size(layer)
        if px is not None:
            return px
        if self.pixel_size.value > 0:
            px = float(self.pixel_size.value)
            self.set_pixel_size(layer, px)
            return px
        self.update_pixel_size_state()
        raise PixelSizeError(
            f"layer '{layer.name}' has no physical pixel size (its scale is 1 pixel and nothing "
            "says µm). Enter the pixel size in µm in the 'pixel size' field, or set the "
            "layer's scale to the pixel size."
        )

    @staticmethod
    def image_name(layer: Any) -> str:
        return layer_image_name(layer)

    @staticmethod
    def layer_info(layer: Any) -> dict[str, Any]:
        return (getattr(layer, "metadata", None) or {}).get(META_KEY) or {}

    # -- parameters --------------------------------------------------------------------------

    params_form: Any = None
    params_section: str | None = None
    """Section of a study file to read parameters from (the assay's name)."""

    def params_buttons(self) -> QHBoxLayout:
        """Load / Save / Defaults buttons for :attr:`params_form`."""
        buttons = QHBoxLayout()
        self.load_button = QPushButton("Load params…")
        self.load_button.setToolTip("Read parameters from a JSON/YAML file (the same file the "
                                    "command line takes with --params, or a study.yaml)")
        self.save_button = QPushButton("Save params…")
        self.save_button.setToolTip("Write these parameters to a JSON/YAML file for the "
                                    "command line (--params) or a later session")
        self.reset_button = QPushButton("Defaults")
        self.reset_button.setToolTip("Back to the default parameters")
        self.load_button.clicked.connect(lambda: self.load_params())
        self.save_button.clicked.connect(lambda: self.save_params())
        self.reset_button.clicked.connect(lambda: self.params_form.reset())
        for b in (self.load_button, self.save_button, self.reset_button):
            buttons.addWidget(b)
        return buttons

    def load_params(self, path: str | Path | None = None) -> Any:
        """Load parameters from a JSON/YAML file (asked for when not given) into the form."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load parameters", "",
                                                  "Parameter files (*.yaml *.yml *.json)")
            if not path:
                return None
        try:
            return self.params_form.load(path, section=self.params_section)
        except Exception as exc:
            self._fail(exc)
            return None

    def save_params(self, path: str | Path | None = None) -> Path | None:
        """Save the form's parameters to a JSON/YAML file (asked for when not given)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save parameters",
                                                  f"{self.params_section or 'params'}.yaml",
                                                  "YAML (*.yaml *.yml);;JSON (*.json)")
            if not path:
                return None
        try:
            out = self.params_form.save(path)
        except Exception as exc:
            self._fail(exc)
            return None
        _notify.info(f"saved parameters to {out}")
        return out

    # -- running -----------------------------------------------------------------------------

    def prepare(self) -> Any:
        """Gather the inputs on the GUI thread; return what :meth:`compute` needs."""
        raise NotImplementedError

    def compute(self, job: Any, progress: Callable[[float, str], None]) -> Any:
        """Do the long work, on the worker thread."""
        raise NotImplementedError

    def show_result(self, job: Any, result: Any) -> None:
        """Put the result into the viewer and the widget (GUI thread)."""
        raise NotImplementedError

    def run(self) -> Any:
        """Start a run on a worker thread; returns the worker (None when inputs are invalid)."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            _notify.warning("a run is already in progress")
            return None
        self.last_error = None
        try:
            job = self.prepare()
        except Exception as exc:
            self._fail(exc)
            self.run_finished.emit()
            return None
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._cancel_requested = False
        self.progress_bar.setValue(0)
        self.status.setText("running…")
        relay = self._relay

        def progress(fraction: float, message: str = "") -> None:
            if self._cancel_requested:
                raise RunCancelled("cancelled")
            relay.progress.emit(float(fraction), str(message))

        worker = create_worker(self.compute, job, progress,
                               _connect={"returned": lambda r: self._on_returned(job, r),
                                         "errored": self._fail,
                                         "finished": self._on_finished})
        self.worker = worker
        return worker

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(round(1000 * min(max(fraction, 0.0), 1.0)))
        if message:
            self.status.setText(message)

    def cancel(self) -> None:
        """Cancel the run in progress: it stops at its next progress report, adding nothing."""
        if self.worker is None:
            return
        self._cancel_requested = True
        self.cancel_button.setEnabled(False)
        if not self._closed:
            self.status.setText("cancelling…")

    def event(self, ev: Any) -> bool:
        """Treat being taken out of the window as closing (napari unparents a closed dock)."""
        from qtpy.QtCore import QEvent

        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked, self._closed = True, False
            elif getattr(self, "_docked", False) and not self._closed:
                self._closed = True
                self.cancel()
        return super().event(ev)

    def closeEvent(self, event: Any) -> None:
        """Cancel the run when the dock closes; a result that still arrives is dropped."""
        self._closed = True
        self.cancel()
        super().closeEvent(event)

    def _dead(self) -> bool:
        """Whether the dock was closed or its Qt object deleted (results must not land)."""
        if self._closed:
            return True
        try:
            self.objectName()
        except RuntimeError:
            return True
        return False

    def _on_returned(self, job: Any, result: Any) -> None:
        if self._cancel_requested or self._dead():
            return
        try:
            self.show_result(job, result)
        except Exception as exc:  # a display problem must not take napari down
            self._fail(exc)
            return
        self.progress_bar.setValue(1000)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, RunCancelled) or self._dead():
            if not self._dead():
                self.status.setText("cancelled")
                self.progress_bar.setValue(0)
            return
        message = _notify.describe(exc)
        self.last_error = message
        self.status.setText(f"failed: {message}")
        _notify.error(message)

    def _on_finished(self) -> None:
        self.worker = None
        try:
            self.objectName()
        except RuntimeError:  # the dock was deleted: nothing left to update
            return
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(True)
        self.run_finished.emit()

    # -- helpers for subclasses --------------------------------------------------------------

    def run_buttons(self) -> QHBoxLayout:
        """Run and Cancel side by side."""
        row = QHBoxLayout()
        row.addWidget(self.run_button, stretch=1)
        row.addWidget(self.cancel_button)
        return row

    def add_or_update(self, data: Any, kwargs: dict[str, Any], kind: str,
                      built: Any = None) -> Any:
        """Add a layer, or update the existing layer of that name in place.

        Re-running an assay updates its result layers — data, features, colours — instead of
        removing and re-adding them: no layer-list churn, the user's visibility, opacity and
        selection stay, and the viewer does not rebuild them (issue #17). ``built`` is the
        layer already made on the worker thread (:func:`build_new_layers`) for a first run.
        """
        name = kwargs["name"]
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if layer.__class__.__name__.lower() == kind:
                if update_layer(layer, data, kwargs):
                    return layer
                self.viewer.layers.remove(layer)
        if built is not None:
            return self.viewer.add_layer(built)
        add = getattr(self.viewer, f"add_{kind}")
        return add(data, **kwargs)


def build_new_layers(layer_data: Sequence[tuple[Any, dict[str, Any], str]],
                     existing: Collection[str]) -> dict[str, Any]:
    """Make the napari layers a first run adds, on the worker thread.

    A layer object is a model without Qt: building it (its features, colours, text and, for
    shapes, every triangulated polygon) off the GUI thread leaves only napari's visual to
    make there. Layers named in ``existing`` are updated in place instead and not built.

    Parameters
    ----------
    layer_data : sequence of (data, kwargs, kind)
        What :meth:`RunnerWidget.add_or_update` would add.
    existing : collection of str
        The viewer's layer names when the run started.

    Returns
    -------
    dict of str to napari layer
        Layer name → layer, for those not in ``existing``.
    """
    from napari import layers

    classes = {"labels": layers.Labels, "points": layers.Points, "shapes": layers.Shapes,
               "image": layers.Image}
    return {kw["name"]: classes[kind](data, **kw) for data, kw, kind in layer_data
            if kw["name"] not in existing and kind in classes}


#: What a rerun sets on an existing result layer after its data, in this order; visibility,
#: opacity and blending stay the user's.
_UPDATED = ("features", "colormap", "border_color", "face_color", "edge_color", "size",
            "metadata")


def update_layer(layer: Any, data: Any, kwargs: dict[str, Any]) -> bool:
    """Update ``layer`` in place to ``data`` and the settings of ``kwargs``.

    Parameters
    ----------
    layer : napari layer
        A Labels, Points, Shapes or Image layer.
    data : array-like
        Its new data.
    kwargs : dict
        The keyword arguments the layer would be added with.

    Returns
    -------
    bool
        Whether it was updated (False: the caller replaces the layer).
    """
    try:
        # geometry first, so that the data lands on the right grid
        for key in ("scale", "translate", "units"):
            # only when changed: each assignment re-checks the viewer's dimensions
            if key in kwargs and tuple(str(v) for v in getattr(layer, key)) != \
                    tuple(str(v) for v in kwargs[key]):
                setattr(layer, key, kwargs[key])
        if "shape_type" in kwargs:  # Shapes: each shape's type travels with its vertices
            types = kwargs["shape_type"]
            types = [types] * len(data) if isinstance(types, str) else list(types)
            data = list(zip(data, types))
        layer.data = data
        for key in _UPDATED:
            if key in kwargs:
                setattr(layer, key, kwargs[key])
    except (AttributeError, TypeError, ValueError, KeyError):
        return False
    return True


def layer_combo(label: str, choices: Callable[[Any], list], *, tooltip: str = "",
                nullable: bool = False, name: str | None = None) -> ComboBox:
    """Return a magicgui ComboBox whose choices are recomputed from the viewer on reset_choices."""
    box = ComboBox(label=label, name=name or label.replace(" ", "_"), choices=choices,
                   tooltip=tooltip, nullable=nullable)
    compact(box)
    return box


def compact(box: ComboBox, chars: int = 18) -> ComboBox:
    """Keep a combo box from widening the dock to its longest item (long layer names)."""
    from qtpy.QtWidgets import QComboBox

    box.native.setSizeAdjustPolicy(
        QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.native.setMinimumContentsLength(chars)
    return box


def stack(*widgets: Any) -> Container:
    """Return a labelled magicgui Container of ``widgets``."""
    return Container(widgets=list(widgets), labels=True)
