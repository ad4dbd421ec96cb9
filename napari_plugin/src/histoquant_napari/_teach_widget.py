"""Teach histoquant a stain in the viewer: paint or click, train, preview, save (issue #17).

Two things can be taught, as on the command line:

- **pixels**: paint a few strokes per class on an image, train a pixel classifier
  (``histoquant train pixels``), preview the classes, save the model;
- **objects**: click points on the objects an assay dock found (its ``objects`` layer), one
  class per point, train an object classifier (``histoquant train objects``), preview the
  model's classes, save the model.

A saved model goes into an assay dock's model box, ``--model`` or ``model:`` in study.yaml.

The dock is thin: painting and clicking are napari's own Labels and Points layers, and
training, preview and saving are the core's calls (:mod:`histoquant.learn.pixels`,
:mod:`histoquant.learn.objects`). Training and preview run on the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, LineEdit, SpinBox
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


#: What the dock teaches: ``pixels`` (paint strokes) or ``objects`` (click points).
TEACH_KINDS = ("pixels", "objects")
_DEFAULT_CLASSES = {"pixels": "background, soma", "objects": "{counted}, other"}


def _objects_choices(viewer: Any) -> list[tuple[str, Any]]:
    """Labels layers of assay objects whose counts an object classifier can replace."""
    from napari.layers import Labels

    from histoquant.learn.objects import COUNTING

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Labels)
            and layer.metadata.get("histoquant", {}).get("assay") in COUNTING]


def _points_choices(viewer: Any) -> list[tuple[str, Any]]:
    from napari.layers import Points

    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Points)
            and "class" in layer.features.columns]


def objects_result(layer: Any) -> Any:
    """Rebuild the assay result an objects layer shows: labels, objects table, pixel size.

    Parameters
    ----------
    layer : napari.layers.Labels
        An ``objects`` layer an assay dock made (its features are the objects table, its
        metadata the assay, image and pixel size).

    Returns
    -------
    AssayResult
        What :func:`histoquant.learn.objects.label_points` reads.
    """
    import pandas as pd

    from histoquant.results import AssayResult

    meta = layer.metadata.get("histoquant", {})
    objects = layer.features.drop(columns=["index"], errors="ignore").reset_index(drop=True)
    if not len(objects) or "label" not in objects.columns:
        raise HistoquantError(f"{layer.name} holds no objects to teach on; run the assay "
                              "dock first")
    return AssayResult(assay=str(meta["assay"]), image=str(meta["image"]), objects=objects,
                       summary=pd.DataFrame(), labels=np.asarray(layer.data),
                       pixel_size_um=meta.get("pixel_size_um"))


def _points_table(points: Any, image: str) -> Any:
    """Return the points layer as :func:`~histoquant.learn.objects.read_points` reads a CSV."""
    import pandas as pd

    from histoquant.learn.objects import read_points

    yx = np.asarray(points.data, float).reshape(-1, points.data.shape[-1] if
                                                  len(points.data) else 2)[:, -2:]
    return read_points(pd.DataFrame({"image": image, "class": points.features["class"]
                                     .astype(str).to_numpy(),
                                     "x_px": yx[:, 1], "y_px": yx[:, 0]}))


@dataclass
class _Job:
    mode: str  # "train" or "preview"
    image: Any
    reference: Any
    scribbles: np.ndarray | None
    classes: list[str]
    trees: int
    kind: str = "pixels"
    examples: Any = None  # objects: the labelled objects (label_points)


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
        self.kind = ComboBox(label="teach", choices=list(TEACH_KINDS), value="pixels",
                             tooltip="pixels: paint strokes of each class on an image; "
                                     "objects: click points on the objects an assay dock "
                                     "found, one class per point")
        self.objects_choice = layer_combo(
            "objects", lambda _w: _objects_choices(self.viewer),
            tooltip="The objects layer of a motor-neuron or GFP-cell run (run the assay "
                    "dock first)")
        self.points_choice = layer_combo(
            "points", lambda _w: _points_choices(self.viewer),
            tooltip="The Points layer of your clicks (New points layer makes one); each "
                    "point's class is its 'class' feature")
        self.point_class = ComboBox(label="new points are", choices=self._class_choices,
                                    tooltip="The class the next clicked points get")
        self.point_class.changed.connect(lambda *_: self._set_point_class())
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
        self.form = Container(widgets=[self.kind, self.image_choice, self.objects_choice,
                                       self.classes, self.scribbles_choice,
                                       self.points_choice, self.point_class, self.trees,
                                       self.pixel_size, self.pixel_size_note], labels=True)
        self._layout.addWidget(self.form.native)
        self.new_button = QPushButton("New strokes layer")
        self.new_button.clicked.connect(lambda: self.new_strokes_layer()
                                        if self.kind.value == "pixels"
                                        else self.new_points_layer())
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
        self.kind.changed.connect(lambda *_: self._kind_changed())
        self.classes.changed.connect(lambda *_: self.point_class.reset_choices())
        self.objects_choice.changed.connect(lambda *_: self._objects_changed())
        self.reset_choices()
        self._kind_changed()

    # -- what is taught --------------------------------------------------------------------

    def _class_choices(self, _w: Any = None) -> list[str]:
        return self.class_names() if hasattr(self, "classes") else []

    def _counted_class(self) -> str:
        from histoquant.learn.objects import COUNTING

        layer = self.objects_choice.value
        assay = layer.metadata.get("histoquant", {}).get("assay") if layer is not None \
            else None
        return COUNTING[assay].counted_class if assay in COUNTING else "motor_neuron"

    def _kind_changed(self) -> None:
        """Show the inputs of what is taught; propose that kind's class names."""
        objects = self.kind.value == "objects"
        for w in (self.objects_choice, self.points_choice, self.point_class):
            w.visible = objects
        for w in (self.image_choice, self.scribbles_choice, self.pixel_size,
                  self.pixel_size_note):
            w.visible = not objects
        defaults = {k: v.format(counted=self._counted_class())
                    for k, v in _DEFAULT_CLASSES.items()}
        if str(self.classes.value) in defaults.values() or not str(self.classes.value):
            self.classes.value = defaults[str(self.kind.value)]
        self.new_button.setText("New points layer" if objects else "New strokes layer")
        self.new_button.setToolTip(
            "Add an empty Points layer over the objects; each click is one object of the "
            "class chosen in 'new points are'" if objects else
            "Add an empty Labels layer over the image and start painting label 1")
        self.model = None
        for b in (self.preview_button, self.save_button):
            b.setEnabled(False)

    def _objects_changed(self) -> None:
        if self.kind.value == "objects":
            self._kind_changed()

    def _set_point_class(self) -> None:
        points = self.points_choice.value
        if points is not None and self.point_class.value is not None:
            points.feature_defaults["class"] = str(self.point_class.value)

    def primary_layer(self) -> Any:
        if getattr(self, "kind", None) is not None and self.kind.value == "objects":
            return None  # the objects layer carries its own pixel size
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

    def new_points_layer(self) -> Any:
        """Add an empty Points layer over the objects layer; clicks get the chosen class."""
        objects = self.objects_choice.value
        if objects is None:
            self._fail(HistoquantError("run a motor-neuron or GFP-cell dock first: its "
                                       "objects layer is what the points label"))
            return None
        import pandas as pd

        classes = self.class_names()
        points = self.viewer.add_points(
            np.zeros((0, 2)), name=f"teach points · {objects.metadata['histoquant']['image']}",
            features=pd.DataFrame({"class": pd.Series([], dtype=str)}),
            feature_defaults={"class": classes[0] if classes else ""},
            face_color="class", size=8 * float(objects.scale[-1]), **_geometry(objects))
        points.mode = "add"
        self.points_choice.reset_choices()
        self.points_choice.value = points
        self.point_class.reset_choices()
        self._set_point_class()
        return points

    # -- running ---------------------------------------------------------------------------

    def preview(self) -> Any:
        """Classify the chosen image with the trained model, on the worker thread."""
        self._mode = "preview"
        try:
            return self.run()
        finally:
            self._mode = "train"

    def _prepare_objects(self) -> _Job:
        from histoquant.learn.objects import label_points

        layer = self.objects_choice.value
        if layer is None:
            raise HistoquantError("run a motor-neuron or GFP-cell dock first: its objects "
                                  "layer is what the points label")
        result = objects_result(layer)
        classes = self.class_names()
        if self._mode == "preview":
            if self.model is None:
                raise HistoquantError("train a model first")
            return _Job("preview", result, layer, None, classes, int(self.trees.value),
                        kind="objects")
        points = self.points_choice.value
        if points is None or not len(points.data):
            raise HistoquantError("click some objects of each class on a points layer first "
                                  "(New points layer)")
        table = _points_table(points, result.image)
        unknown = sorted(set(table["class"]) - set(classes))
        if unknown:
            raise HistoquantError(f"points of classes {unknown} that are not named in "
                                  f"classes ({', '.join(classes)})")
        # on the GUI thread: a point off every object is reported at once, before training
        examples = label_points({result.image: result}, table)
        return _Job("train", result, layer, None, classes, int(self.trees.value),
                    kind="objects", examples=examples)

    def prepare(self) -> _Job:
        if self.kind.value == "objects":
            return self._prepare_objects()
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

        if job.kind == "objects":
            from histoquant.learn.objects import (
                classify_objects,
                train_objects,
                trained_object_model,
            )

            if job.mode == "preview":
                model = trained_object_model(self.model,
                                             pixel_size_um=job.image.pixel_size_um)
                return classify_objects(job.image, model)
            # the first class named is the one the assay counts (motor_neuron, gfp_cell)
            return train_objects(job.examples, assay=job.image.assay, keep=job.classes[:1],
                                 min_per_class=2, n_estimators=job.trees)

        if job.mode == "preview":
            return predict_classes(self.model, job.image, progress=progress)
        return train_pixel_classifier([job.image], [job.scribbles], classes=job.classes,
                                      n_estimators=job.trees, progress=progress)

    def show_result(self, job: _Job, result: Any) -> None:
        if job.kind == "objects":
            self._show_objects(job, result)
            return
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

    def _show_objects(self, job: _Job, result: Any) -> None:
        from ._results import class_colour

        ref = job.reference
        if job.mode == "preview":
            table = result.drop_duplicates("label")
            cmap: dict[Any, Any] = {None: "transparent", 0: "transparent"}
            cmap.update({int(lab): class_colour(str(c))
                         for lab, c in zip(table["label"], table["model_class"], strict=True)})
            features = table.copy()
            features.insert(0, "index", features["label"].astype(np.int64))
            self.preview_layer = self.add_or_update(
                np.asarray(ref.data),
                {"name": f"model classes · {job.image.image}", **_geometry(ref),
                 "opacity": 0.6, "colormap": cmap,
                 "features": features.reset_index(drop=True)}, "labels")
            counts = table["model_class"].value_counts()
            self.status.setText("preview: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
            return
        self.model = result
        score = result.scores.get("cv_balanced_accuracy")
        text = (f"trained on {len(job.examples)} objects of {len(result.classes)} classes; "
                f"cross-validated balanced accuracy {score:.2f}" if score is not None
                else f"trained on {len(job.examples)} objects")
        self.status.setText(text)
        self.preview_button.setEnabled(True)
        self.save_button.setEnabled(True)

    def _save(self, path: str | Path) -> Path:
        if self.kind.value == "objects":
            from histoquant.learn.objects import save_object_model

            layer = self.objects_choice.value
            px = layer.metadata.get("histoquant", {}).get("pixel_size_um") if layer else None
            return save_object_model(path, self.model, pixel_size_um=px)
        from histoquant.learn.pixels import save_pixel_classifier

        return save_pixel_classifier(self.model, path)

    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Write the trained model to a ``.hqm`` file (asked for when not given)."""
        if self.model is None:
            self._fail(HistoquantError("train a model first"))
            return None
        if path is None:
            layer = self.primary_layer()
            info = self.layer_info(layer) if layer is not None else {}
            folder = Path(info["path"]).parent if info.get("path") else Path.home()
            path, _ = QFileDialog.getSaveFileName(self, "Save model",
                                                  str(folder / f"{self.kind.value}.hqm"),
                                                  "histoquant model (*.hqm)")
            if not path:
                return None
        try:
            out = self._save(path)
        except Exception as exc:
            self._fail(exc)
            return None
        _notify.info(f"saved model {out}")
        self.status.setText(f"saved {out}; choose it in an assay dock's model box")
        return Path(out)
