"""Writer contribution: a Shapes layer of regions as an ImageJ RoiSet .zip or QuPath GeoJSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["write_shapes"]


def write_shapes(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write the shapes as named regions through :func:`histoquant.rois.write_regions`.

    Vertices are written in the Shapes layer's data coordinates, which are the image's pixel
    coordinates for layers the plugin makes (they share the image's scale). Region names come
    from the ``name`` feature; ``.zip``/``.roi`` gives an ImageJ RoiSet, ``.geojson``/``.json``
    QuPath GeoJSON.
    """
    from histoquant.rois import write_regions

    from ._convert import shapes_to_regions

    features = meta.get("features")
    if features is not None and not isinstance(features, pd.DataFrame):
        features = pd.DataFrame(features)
    if features is None or "name" not in features.columns:
        props = meta.get("properties") or {}
        features = pd.DataFrame(props) if props else None
    regions = shapes_to_regions(data, meta.get("shape_type", ["polygon"] * len(data)), features)
    return [str(write_regions(regions, Path(path)))]
