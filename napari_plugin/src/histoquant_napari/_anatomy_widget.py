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
from types import SimpleNamespace
from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, Select
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QScrollArea, QWidget

from histoquant.anatomy.regions import REGION_NAMES, region_base_name, swap_left_right
from histoquant.assays import AssaySpec, available_assays
from histoquant.errors import ChannelError, DependencyError, RegionError
from histoquant.params import AssayParams
from histoquant.results import AssayResult
from histoquant.rois import Region

from . import _notify
from ._base_widget import (
    RunnerWidget,
    build_new_layers,
    image_choices,
    layer_combo,
    shapes_choices,
)
from ._convert import layer_pixel_size, layers_to_image
from ._params_form import ParamsForm
from ._shapes import regions_from_shapes_layer, shapes_layer_kwargs
from ._table import ResultTable, result_tables

__all__ = ["AnatomyWidget", "find_regions", "REGION_NAMES"]

#: Made by default: the regions the assays measure in. The tissue outline, the white matter
#: (tissue minus grey matter) and the canal (already a hole in the grey matter) nest around the
#: same centre and would pile their labels on the canal; tick them when an assay needs them.
DEFAULT_SHOWN = ("grey_matter", "ventral_horn_left", "ventral_horn_right", "dorsal_horn_left",
                 "dorsal_horn_right")


def anatomy_spec() -> AssaySpec:
    """Return the ``anatomy`` assay of the registry (DependencyError when histoquant has none)."""
    spec = available_assays().get("anatomy")
    if spec is None:
        raise DependencyError("this histoquant has no anatomy assay (histoquant.assays."
                              "anatomy); draw the regions by hand or open a region file")
    return spec


def region_names() -> tuple[str, ...]:
    """Names of the regions the anatomy finds (the region choices offered)."""
    return tuple(REGION_NAMES)


def anatomy_params_cls() -> type[AssayParams] | None:
    """Return the anatomy's parameter dataclass, when histoquant has an anatomy assay."""
    try:
        return anatomy_spec().params_cls
    except DependencyError:
        return None


def find_regions(image: Any, names: tuple[str, ...], params: Any = None,
                 progress: Callable[[float, str], None] | None = None,
                 ) -> tuple[list[Region], AssayResult | None]:
    """Regions of every cord section of ``image``, from the registry's ``anatomy`` assay.

    Returns the regions named in ``names`` (named as the assays' ``regions="auto"`` names them:
    plain for one section, ``s<k>_<name>`` for several) as polygons in full-resolution pixels,
    and the anatomy's result (one summary row per section: orientation, quality, areas).
    """
    spec = anatomy_spec()
    result = spec.run(image, params=params, progress=progress)
    found = list(result.extra.get("regions") or [])
    if not found:
        status = ", ".join(str(s) for s in result.summary.get("status", []))
        raise RegionError(
            f"{image.name}: no spinal cord section found ({status or 'nothing found'}"
            f"{'; ' + '; '.join(result.warnings) if result.warnings else ''}). Check the "
            "layer and the anatomy parameters, or draw the regions by hand.")
    return [r for r in found if region_base_name(r) in names], result


@dataclass
class _Job:
    image: Any
    names: tuple[str, ...]
    params: Any
    reference: Any
    tolerance_px: float
    geometry: Any = None
    layer_name: str = "regions"
    existing: frozenset[str] = frozenset()
    image_name: str = ""
    built: Any = None  # the Shapes layer of a first run, made on the worker thread


class AnatomyWidget(RunnerWidget):
    """Find the regions of a section and put them in an editable Shapes layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self.last_regions: list[Region] | None = None
        self.last_result: AssayResult | None = None
        self.regions_layer: Any = None
        self.image_choice = layer_combo(
            "image", lambda _w: image_choices(self.viewer, split_rgb=False),
            tooltip="The section to outline: a brightfield RGB layer or one fluorescence "
                    "channel (DAPI or autofluorescence show the grey matter best)")
        names = region_names()
        self.region_select = Select(
            label="regions", choices=list(names),
            value=[n for n in names if n in DEFAULT_SHOWN] or list(names),
            tooltip="Which regions to make shapes of (white matter is tissue minus grey "
                    "matter)")
        self.region_select.native.setMaximumHeight(20 * len(names) + 8)
        self.tolerance = FloatSpinBox(
            label="outline simplification (µm)", value=5.0, min=0.0, max=100.0, step=1.0,
            tooltip="Outlines are simplified to within this distance so that each shape has "
                    "few enough vertices to edit by hand. 5 µm is half the anatomy's 10 µm "
                    "working pixel, below the precision of the outlines themselves; 0 keeps "
                    "every vertex.")
        help_text = Label(value=(
            "Find regions, then edit the shapes (select a shape, drag its vertices; the "
            "'name' feature is the region). Assay widgets measure inside the shapes of the "
            "layer chosen as their 'regions'."))
        help_text.native.setWordWrap(True)
        self.form = Container(widgets=[self.image_choice, self.region_select, self.tolerance,
                                       self.pixel_size, self.pixel_size_note, help_text],
                              labels=True)
        self._layout.addWidget(self.form.native)
        params_cls = anatomy_params_cls()
        self.params_form = ParamsForm(params_cls) if params_cls is not None else None
        if self.params_form is not None:
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(self.params_form.native)
            scroll.setMinimumHeight(140)
            self._layout.addWidget(scroll)
            self._layout.addLayout(self.params_buttons())
        self._layout.addLayout(self.run_buttons())
        self.run_button.setText("Find regions")
        self._layout.addWidget(self.progress_bar)
        self._layout.addWidget(self.status)
        self.shapes_choice = layer_combo("regions layer", lambda _w: shapes_choices(self.viewer),
                                         tooltip="The Shapes layer the buttons below act on")
        # Hand-drawn shapes are named from the regions the assays know, not typed into the
        # layer's features table.
        self.shape_name = ComboBox(
            label="name new / selected shapes", choices=[*names, "region"],
            value="grey_matter" if "grey_matter" in names else "region",
            tooltip="The region name a newly drawn shape takes; 'Rename selected' gives it "
                    "to the shapes selected in the layer")
        self.shape_name.changed.connect(lambda *_: self._set_new_shape_name())
        self.shapes_choice.changed.connect(lambda *_: self._set_new_shape_name())
        files = Container(widgets=[self.shapes_choice, self.shape_name], labels=True)
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
        self.rename_button = QPushButton("Rename selected")
        self.rename_button.setToolTip("Give the shapes selected in the regions layer the name "
                                      "chosen above")
        self.rename_button.clicked.connect(lambda: self.rename_selected())
        for b in (self.open_button, self.save_button):
            buttons.addWidget(b)
        self._layout.addLayout(buttons)
        names_row = QHBoxLayout()  # a second row: four buttons do not fit a 420 px dock
        for b in (self.swap_button, self.rename_button):
            names_row.addWidget(b)
        self._layout.addLayout(names_row)
        self.table = ResultTable(self, title="Sections")
        self._layout.addWidget(self.table, stretch=1)
        self.image_choice.changed.connect(lambda *_: self.update_pixel_size_state())
        self.reset_choices()

    params_section = "anatomy"

    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        files = getattr(self, "_files", None)
        if files is not None:
            files.reset_choices()

    def primary_layer(self) -> Any:
        value = self.image_choice.value if hasattr(self, "image_choice") else None
        return value[0] if value is not None else None

    def missing_pixel_size_note(self, layer: Any) -> str:
        """Anatomy runs without a pixel size, on the cord-width assumption; say so."""
        return (f"Layer '{layer.name}' has no physical pixel size: anatomy will assume one "
                "from the cord width (parameter assumed_cord_width_um, or the species' "
                "width) and report no areas. Enter the pixel size in µm to measure instead.")

    # -- finding regions -----------------------------------------------------------------------

    def prepare(self) -> _Job:
        layer = self.primary_layer()
        if layer is None:
            raise ChannelError("choose the image layer of the section first")
        # Anatomy alone can work without a pixel size: it assumes one from the cord width.
        px = self.resolve_pixel_size(layer) if self.pixel_size.value > 0 or \
            layer_pixel_size(layer) is not None else None
        image = layers_to_image({"image": (layer, None)}, px, rgb=bool(layer.rgb),
                                name=self.image_name(layer))
        names = tuple(self.region_select.value or ())
        if not names:
            raise RegionError("tick at least one region to find")
        params = self.params_form.params() if self.params_form is not None else None
        # Without a pixel size the outline keeps one-pixel precision (areas are not reported
        # then either).
        # The reference layer's geometry, read here on the GUI thread for the worker.
        geometry = SimpleNamespace(scale=tuple(layer.scale), translate=tuple(layer.translate),
                                   units=getattr(layer, "units", None))
        return _Job(image, names, params, layer,
                    float(self.tolerance.value) / px if px else 1.0, geometry,
                    f"{self.image_name(layer)} regions",
                    frozenset(la.name for la in self.viewer.layers), self.image_name(layer))

    def compute(self, job: _Job, progress: Callable[[float, str], None]
                ) -> tuple[list[Region], AssayResult | None, Any]:
        regions, result = find_regions(job.image, job.names, job.params, progress)
        if not regions:
            raise RegionError("none of the ticked regions was found in this image")
        # Outline simplification and the shapes' data are built here, on the worker thread:
        # on a whole section they took seconds of a frozen viewer on the GUI thread.
        progress(1.0, "building the shapes")
        shapes = shapes_layer_kwargs(regions, job.geometry, name=job.layer_name,
                                     tolerance_px=job.tolerance_px)
        shapes[1]["metadata"] = {"histoquant": {"image": job.image_name}}
        job.built = build_new_layers([(*shapes, "shapes")], job.existing).get(job.layer_name)
        return regions, result, shapes

    def show_result(self, job: _Job, found: tuple[list[Region], AssayResult | None, Any]
                    ) -> None:
        regions, result, (data, kwargs) = found
        self.last_regions = regions
        self.last_result = result
        self.regions_layer = self.add_or_update(data, kwargs, "shapes", job.built)
        self.shapes_choice.reset_choices()
        self.shapes_choice.value = self.regions_layer
        found_names = ", ".join(dict.fromkeys(r.name for r in regions))
        self.status.setText(f"{len(regions)} region(s): {found_names}")
        if result is not None:
            path = self.layer_info(job.reference).get("path")
            self.table.set_tables(result_tables(result),
                                  folder=Path(path).parent if path else None,
                                  prefix=f"{result.image}_anatomy")
            for message in result.warnings:
                _notify.warning(message)

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

    def _set_new_shape_name(self) -> None:
        shapes = self.shapes_choice.value if hasattr(self, "shapes_choice") else None
        if shapes is None or not hasattr(self, "shape_name"):
            return
        defaults = dict(shapes.feature_defaults.iloc[0]) if len(shapes.feature_defaults) \
            else {}
        defaults["name"] = self.shape_name.value
        shapes.feature_defaults = defaults

    def rename_selected(self) -> None:
        """Give the shapes selected in the chosen regions layer the name chosen in the box."""
        try:
            shapes = self._chosen_shapes()
        except RegionError as exc:
            self._fail(exc)
            return
        chosen = sorted(shapes.selected_data)
        if not chosen or "name" not in shapes.features.columns:
            self.status.setText("select shapes in the regions layer first")
            return
        features = shapes.features.copy()
        features.loc[features.index[chosen], "name"] = self.shape_name.value
        shapes.features = features
        shapes.refresh_text()
        self.status.setText(f"{len(chosen)} shape(s) named {self.shape_name.value}")

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
