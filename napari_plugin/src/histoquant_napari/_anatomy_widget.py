"""Anatomy widget: find the spinal cord regions, edit them as shapes, open and save them.

The regions come from :mod:`histoquant.anatomy`; they land in a Shapes layer (one polygon per
outline, the region in the ``name`` feature) that the user can move, reshape, rename or delete
before the assay widgets measure inside them. Region files (ImageJ RoiSet, QuPath GeoJSON) are
opened and saved through :mod:`histoquant.rois`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, FloatSpinBox, Label
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from histoquant.errors import ChannelError, DependencyError, RegionError

from . import _notify
from ._base_widget import RunnerWidget, image_choices, layer_combo, shapes_choices
from ._convert import layers_to_image
from ._shapes import regions_from_shapes_layer, shapes_layer_kwargs

__all__ = ["AnatomyWidget", "find_regions", "REGION_NAMES", "swap_left_right"]

#: Regions asked of histoquant.anatomy when it does not publish its own list.
REGION_NAMES = ("tissue", "grey_matter", "white_matter", "ventral_horn_left",
                "ventral_horn_right", "dorsal_horn_left", "dorsal_horn_right", "central_canal")


def _anatomy_module() -> Any:
    try:
        from histoquant import anatomy
    except ImportError as exc:
        raise DependencyError("histoquant.anatomy is not available in this installation; "
                              "draw the regions by hand or open a region file") from exc
    return anatomy


def region_names() -> tuple[str, ...]:
    """Names of the regions the anatomy module finds."""
    try:
        anatomy = _anatomy_module()
    except DependencyError:
        return REGION_NAMES
    return tuple(getattr(anatomy, "REGION_NAMES", REGION_NAMES))


def find_regions(image: Any, names: tuple[str, ...],
                 progress: Callable[[float, str], None] | None = None) -> dict[str, np.ndarray]:
    """``{name: bool mask}`` of the anatomy regions of ``image`` (histoquant.anatomy)."""
    anatomy = _anatomy_module()
    if progress is not None:
        progress(0.05, "finding the section and its regions…")
    masks = anatomy.auto_regions(image, names)
    if progress is not None:
        progress(0.9, "tracing outlines…")
    return {n: np.asarray(m, bool) for n, m in masks.items() if np.asarray(m).any()}


def swap_left_right(names: list[str]) -> list[str]:
    """Exchange ``_left`` and ``_right`` in region names (the section was mounted flipped)."""
    out = []
    for n in names:
        if n.endswith("_left"):
            out.append(n[: -len("_left")] + "_right")
        elif n.endswith("_right"):
            out.append(n[: -len("_right")] + "_left")
        else:
            out.append(n)
    return out


@dataclass
class _Job:
    image: Any
    names: tuple[str, ...]
    reference: Any
    tolerance_px: float


class AnatomyWidget(RunnerWidget):
    """Find the regions of a section and put them in an editable Shapes layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self.last_regions: dict[str, np.ndarray] | None = None
        self.regions_layer: Any = None
        self.image_choice = layer_combo(
            "image", lambda _w: image_choices(self.viewer, split_rgb=False),
            tooltip="The section to outline: a brightfield RGB layer or one fluorescence "
                    "channel (DAPI or autofluorescence show the grey matter best)")
        self.tolerance = FloatSpinBox(
            label="outline tolerance (px)", value=1.0, min=0.0, max=20.0, step=0.5,
            tooltip="Outlines traced from the region masks are simplified to within this many "
                    "pixels, so that each shape has few enough vertices to edit by hand. "
                    "0 keeps every boundary pixel.")
        help_text = Label(value=(
            "Run finds the regions; then edit the shapes layer (select ▸ move vertices; the "
            "'name' of a shape is its region). Assay widgets measure inside the shapes of the "
            "layer chosen as 'regions'."))
        help_text.native.setWordWrap(True)
        self.form = Container(widgets=[self.image_choice, self.tolerance, self.pixel_size,
                                       self.pixel_size_note, help_text], labels=True)
        self._layout.addWidget(self.form.native)
        self._layout.addWidget(self.run_button)
        self.run_button.setText("Find regions")
        self._layout.addWidget(self.progress_bar)
        self._layout.addWidget(self.status)
        self.shapes_choice = layer_combo("regions layer", lambda _w: shapes_choices(self.viewer),
                                         tooltip="The Shapes layer the buttons below act on")
        files = Container(widgets=[self.shapes_choice], labels=True)
        self._files = files
        self._layout.addWidget(files.native)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open regions…")
        self.open_button.setToolTip("Open an ImageJ RoiSet (.zip/.roi) or QuPath GeoJSON as a "
                                    "Shapes layer on the chosen image")
        self.save_button = QPushButton("Save regions…")
        self.save_button.setToolTip("Save the regions layer as an ImageJ RoiSet (.zip) or "
                                    "QuPath GeoJSON (.geojson), in the image's pixels")
        self.swap_button = QPushButton("Swap left/right")
        self.swap_button.setToolTip("Rename *_left ↔ *_right: use it when the section was "
                                    "mounted mirrored, so that left is the animal's left")
        self.open_button.clicked.connect(lambda: self.open_regions())
        self.save_button.clicked.connect(lambda: self.save_regions())
        self.swap_button.clicked.connect(lambda: self.swap_sides())
        for b in (self.open_button, self.save_button, self.swap_button):
            buttons.addWidget(b)
        self._layout.addLayout(buttons)
        self._layout.addStretch(1)
        self.image_choice.changed.connect(lambda *_: self.update_pixel_size_state())
        self.reset_choices()

    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        files = getattr(self, "_files", None)
        if files is not None:
            files.reset_choices()

    def primary_layer(self) -> Any:
        value = self.image_choice.value if hasattr(self, "image_choice") else None
        return value[0] if value is not None else None

    # -- finding regions -----------------------------------------------------------------------

    def prepare(self) -> _Job:
        layer = self.primary_layer()
        if layer is None:
            raise ChannelError("choose the image layer of the section first")
        px = self.resolve_pixel_size(layer)
        image = layers_to_image({"image": (layer, None)}, px, rgb=bool(layer.rgb),
                                name=self.image_name(layer))
        return _Job(image, region_names(), layer, float(self.tolerance.value))

    def compute(self, job: _Job, progress: Callable[[float, str], None]) -> dict:
        return find_regions(job.image, job.names, progress)

    def show_result(self, job: _Job, masks: dict[str, np.ndarray]) -> None:
        if not masks:
            raise RegionError("no region was found in this image")
        self.last_regions = masks
        name = f"{self.image_name(job.reference)} regions"
        data, kwargs = shapes_layer_kwargs(masks, job.reference, name=name,
                                           tolerance_px=job.tolerance_px)
        kwargs["metadata"] = {"histoquant": {"image": self.image_name(job.reference)}}
        self.regions_layer = self.add_or_update(data, kwargs, "shapes")
        self.shapes_choice.reset_choices()
        self.shapes_choice.value = self.regions_layer
        self.status.setText(f"{len(masks)} region(s): {', '.join(masks)}")

    # -- region files --------------------------------------------------------------------------

    def _chosen_shapes(self) -> Any:
        shapes = self.shapes_choice.value
        if shapes is None:
            raise RegionError("choose a regions (Shapes) layer first")
        return shapes

    def open_regions(self, path: str | Path | None = None) -> Any:
        """Open a region file as a Shapes layer over the chosen image; returns the layer."""
        from ._reader import read_region_layers

        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open regions", "", "Region files (*.zip *.roi *.geojson *.json)")
            if not path:
                return None
        try:
            ((data, kwargs, _),) = read_region_layers(path, reference=self.primary_layer())
            layer = self.add_or_update(data, kwargs, "shapes")
        except Exception as exc:
            self._fail(exc)
            return None
        self.shapes_choice.reset_choices()
        self.shapes_choice.value = layer
        return layer

    def save_regions(self, path: str | Path | None = None) -> Path | None:
        """Save the chosen Shapes layer as an ImageJ RoiSet or QuPath GeoJSON file."""
        from histoquant.rois import write_regions

        try:
            shapes = self._chosen_shapes()
        except RegionError as exc:
            self._fail(exc)
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save regions", f"{shapes.name}.zip",
                "ImageJ RoiSet (*.zip);;QuPath GeoJSON (*.geojson)")
            if not path:
                return None
        try:
            out = write_regions(regions_from_shapes_layer(shapes, self.primary_layer()), path)
        except Exception as exc:
            self._fail(exc)
            return None
        _notify.info(f"saved regions to {out}")
        return Path(out)

    def swap_sides(self) -> None:
        """Rename the chosen layer's ``*_left`` shapes ``*_right`` and the other way round."""
        try:
            shapes = self._chosen_shapes()
        except RegionError as exc:
            self._fail(exc)
            return
        if "name" not in shapes.features.columns:
            return
        features = shapes.features.copy()
        features["name"] = swap_left_right([str(n) for n in features["name"]])
        shapes.features = features
        shapes.refresh_text()
