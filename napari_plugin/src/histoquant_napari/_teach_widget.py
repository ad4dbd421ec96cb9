"""Teach histoquant a stain in the viewer: paint, train, preview, save (issue #17).

Paint a few strokes per class, train a pixel classifier (:mod:`histoquant.learn`), preview
it, and save the model for the assay docks and the batch.

The dock is thin: painting is napari's own Labels layer (label ``k`` = the ``k``-th class
name), training is :func:`histoquant.learn.pixels.train_pixel_classifier`, the preview
:func:`histoquant.learn.pixels.predict_classes`, the file
:func:`histoquant.learn.pixels.save_pixel_classifier` — the same calls as ``histoquant train
pixels``. Training and preview run on the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, LineEdit, SpinBox
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from histoquant.errors import ChannelError, HistoquantError

from . import _notify
from ._base_widget import RunnerWidget, image_choices, layer_combo
from ._convert import layers_to_image

__all__ = ["TeachWidget"]


def _labels_choices(viewer: Any) -> list[tuple[str, Any]]:
    from napari.layers import Labels

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Labels)]


def _geometry(layer: Any) -> dict[str, Any]:
    """Return the Y/X scale, translation and units of ``layer``, for a layer over it."""
    out: dict[str, Any] = {"scale": tuple(layer.scale[-2:]),
                           "translate": tuple(layer.translate[-2:])}
    units = getattr(layer, "units", None)
    if units is not None and len(units) >= 2:
        out["units"] = tuple(str(u) for u in units[-2:])
    return out


@dataclass
class _Job:
    mode: str  # "train" or "preview"
    image: Any
    reference: Any
    scribbles: np.ndarray | None
    classes: list[str]
    trees: int


class TeachWidget(RunnerWidget):
    """Paint a few strokes per class on an image, train a pixel classifier, preview, save.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it when the widget is opened from the Plugins menu).
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self.model: Any = None
        self.preview_layer: Any = None
        self.image_choice = layer_combo(
            "image", lambda _w: image_choices(self.viewer, split_rgb=False),
            tooltip="The image to teach on (a brightfield RGB layer or one channel)")
        self.classes = LineEdit(
            label="classes", value="background, soma",
            tooltip="Class names in label order: paint label 1 for the first, 2 for the "
                    "second, … (an assay reads the class it needs by name: soma, leak, "
                    "vessel, grey_matter, …)")
        self.scribbles_choice = layer_combo(
            "strokes", lambda _w: _labels_choices(self.viewer),
            tooltip="The Labels layer you painted the classes on (New strokes layer makes "
                    "one over the image)")
        self.trees = SpinBox(label="trees", value=50, min=5, max=500,
                             tooltip="Trees of the random forest: more is steadier, slower")
        self.form = Container(widgets=[self.image_choice, self.classes,
                                       self.scribbles_choice, self.trees,
                                       self.pixel_size, self.pixel_size_note], labels=True)
        self._layout.addWidget(self.form.native)
        self.new_button = QPushButton("New strokes layer")
        self.new_button.setToolTip("Add an empty Labels layer over the image and start "
                                   "painting label 1")
        self.new_button.clicked.connect(lambda: self.new_strokes_layer())
        self._layout.addWidget(self.new_button)
        self.run_button.setText("Train")
        self._layout.addLayout(self.run_buttons())
        row = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Classify the image with the trained model (a Labels "
                                       "layer of the classes)")
        self.preview_button.clicked.connect(lambda: self.preview())
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip("Write the model (.hqm) for the assay docks' model box, "
                                    "--model on the command line, or model: in study.yaml")
        self.save_button.clicked.connect(lambda: self.save_model())
        for b in (self.preview_button, self.save_button):
            b.setEnabled(False)
            row.addWidget(b)
        self._layout.addLayout(row)
        self._layout.addWidget(self.progress_bar)
        self._layout.addWidget(self.status)
        self._layout.addStretch(1)
        self._mode = "train"
        self.image_choice.changed.connect(lambda *_: self.update_pixel_size_state())
        self.reset_choices()

    def primary_layer(self) -> Any:
        value = self.image_choice.value if hasattr(self, "image_choice") else None
        return value[0] if value is not None else None

    def class_names(self) -> list[str]:
        """Return the class names typed in the form, in label order."""
        return [c.strip() for c in str(self.classes.value).split(",") if c.strip()]

    # -- strokes ---------------------------------------------------------------------------

    def new_strokes_layer(self) -> Any:
        """Add an empty Labels layer on the image's grid, in paint mode on label 1."""
        layer = self.primary_layer()
        if layer is None:
            self._fail(ChannelError("choose the image layer first"))
            return None
        shape = layer.data.shape[:2] if layer.rgb else layer.data.shape[-2:]
        strokes = self.viewer.add_labels(
            np.zeros(shape, np.uint8), name=f"strokes · {layer.name}",
            **_geometry(layer))
        strokes.brush_size = 8
        strokes.selected_label = 1
        strokes.mode = "paint"
        self.scribbles_choice.reset_choices()
        self.scribbles_choice.value = strokes
        return strokes

    # -- running ---------------------------------------------------------------------------

    def preview(self) -> Any:
        """Classify the chosen image with the trained model, on the worker thread."""
        self._mode = "preview"
        try:
            return self.run()
        finally:
            self._mode = "train"

    def prepare(self) -> _Job:
        layer = self.primary_layer()
        if layer is None:
            raise ChannelError("choose the image layer first")
        px = self.resolve_pixel_size(layer)
        image = layers_to_image({"image": (layer, None)}, px, rgb=bool(layer.rgb),
                                name=self.image_name(layer))
        classes = self.class_names()
        if self._mode == "preview":
            if self.model is None:
                raise HistoquantError("train a model first")
            return _Job("preview", image, layer, None, classes, int(self.trees.value))
        strokes = self.scribbles_choice.value
        if strokes is None:
            raise HistoquantError("paint the classes on a strokes layer first (New strokes "
                                  "layer)")
        data = np.asarray(strokes.data)
        if len(classes) < 2:
            raise HistoquantError("name at least two classes (for example background, soma)")
        found = sorted(int(v) for v in np.unique(data) if v)
        missing = [classes[k - 1] for k in range(1, len(classes) + 1) if k not in found]
        if missing:
            raise HistoquantError(f"paint some pixels of every class; none of "
                                  f"{', '.join(missing)} yet (label k = class k)")
        if found and found[-1] > len(classes):
            raise HistoquantError(f"label {found[-1]} is painted but only {len(classes)} "
                                  "classes are named")
        return _Job("train", image, layer, data.copy(), classes, int(self.trees.value))

    def compute(self, job: _Job, progress: Callable[[float, str], None]) -> Any:
        from histoquant.learn.pixels import predict_classes, train_pixel_classifier

        if job.mode == "preview":
            return predict_classes(self.model, job.image, progress=progress)
        return train_pixel_classifier([job.image], [job.scribbles], classes=job.classes,
                                      n_estimators=job.trees, progress=progress)

    def show_result(self, job: _Job, result: Any) -> None:
        if job.mode == "preview":
            ref = job.reference
            self.preview_layer = self.add_or_update(
                result, {"name": f"classes · {ref.name}", **_geometry(ref), "opacity": 0.5},
                "labels")
            names = ", ".join(f"{k} = {c}" for k, c in enumerate(self.model.classes, 1))
            self.status.setText(f"preview: {names}")
            return
        self.model = result
        score = result.held_out.get("balanced_accuracy")
        text = f"trained on {len(job.classes)} classes"
        if score is not None:
            text += f"; held-out balanced accuracy {score:.2f}"
        self.status.setText(text)
        self.preview_button.setEnabled(True)
        self.save_button.setEnabled(True)

    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Write the trained model to a ``.hqm`` file (asked for when not given)."""
        from histoquant.learn.pixels import save_pixel_classifier

        if self.model is None:
            self._fail(HistoquantError("train a model first"))
            return None
        if path is None:
            layer = self.primary_layer()
            info = self.layer_info(layer) if layer is not None else {}
            folder = Path(info["path"]).parent if info.get("path") else Path.home()
            path, _ = QFileDialog.getSaveFileName(self, "Save model",
                                                  str(folder / "pixels.hqm"),
                                                  "histoquant model (*.hqm)")
            if not path:
                return None
        try:
            out = save_pixel_classifier(self.model, path)
        except Exception as exc:
            self._fail(exc)
            return None
        _notify.info(f"saved model {out}")
        self.status.setText(f"saved {out}; choose it in an assay dock's model box")
        return Path(out)
