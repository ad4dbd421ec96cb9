"""Reader contribution: images through :func:`histoquant.io.read_image`, region files as shapes.

The probe (:func:`napari_get_reader`) only looks at the path; it never opens the file and
never raises, and returns ``None`` for anything histoquant does not read.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["napari_get_reader", "read_image_layers", "read_region_layers", "REGION_SUFFIXES"]

log = logging.getLogger(__name__)

REGION_SUFFIXES = (".zip", ".roi", ".geojson")

LayerData = tuple[Any, dict[str, Any], str]


def _kind(path: str | Path) -> str | None:
    from histoquant.io import is_image_file

    p = Path(path)
    name = p.name.lower()
    zarr_dir = p.is_dir() and ((p / ".zattrs").exists() or (p / "zarr.json").exists())
    if is_image_file(p) or zarr_dir:
        return "image"
    if name.endswith((".roi", ".geojson")):
        return "regions"
    if name.endswith(".zip"):
        # Only an ImageJ RoiSet: every member a .roi file.
        try:
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
        except (OSError, zipfile.BadZipFile):
            return None
        if members and all(m.lower().endswith(".roi") for m in members):
            return "regions"
    return None


def napari_get_reader(path: str | Sequence[str]) -> Callable[..., list[LayerData]] | None:
    """Return a reader for ``path`` (or every path of a list) histoquant reads, else None."""
    try:
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            return None
        kinds = [_kind(p) for p in paths]
    except Exception:  # the probe must never raise
        log.debug("histoquant probe failed for %r", path, exc_info=True)
        return None
    if any(k is None for k in kinds):
        return None
    return _read_all


def _read_all(path: str | Sequence[str]) -> list[LayerData]:
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    out: list[LayerData] = []
    for p in paths:
        if _kind(p) == "regions":
            out.extend(read_region_layers(p))
        else:
            out.extend(read_image_layers(p))
    return out


def read_image_layers(path: str | Path) -> list[LayerData]:
    """Layers of one image file: RGB brightfield as one layer, fluorescence one per channel.

    The layer ``scale`` is the pixel size in µm from the file's metadata (1 pixel when the file
    has none, in which case the assay widgets ask for it).
    """
    from histoquant.io import read_image

    from ._convert import image_to_layer_data

    return image_to_layer_data(read_image(path))


def _reference_layer() -> Any:
    """Return the image layer region files go on: the selected image layer, else the top one."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:
        return None
    if viewer is None:
        return None
    from napari.layers import Image as ImageLayer

    active = viewer.layers.selection.active
    if isinstance(active, ImageLayer):
        return active
    images = [layer for layer in viewer.layers if isinstance(layer, ImageLayer)]
    return images[-1] if images else None


def read_region_layers(path: str | Path, reference: Any = None) -> list[LayerData]:
    """Return a Shapes layer of the named regions in an ImageJ RoiSet/.roi or QuPath GeoJSON file.

    Region files hold pixel coordinates, so the layer takes the scale and translation of the
    image layer it belongs to: ``reference``, else the current viewer's selected (or top) image
    layer, else 1 pixel.
    """
    from histoquant.rois import read_regions

    from ._shapes import shapes_layer_kwargs

    regions = read_regions(path)
    if reference is None:
        reference = _reference_layer()
    data, kwargs = shapes_layer_kwargs(regions, reference, name=Path(path).stem)
    kwargs.setdefault("metadata", {})["histoquant"] = {"path": str(path)}
    return [(data, kwargs, "shapes")]
