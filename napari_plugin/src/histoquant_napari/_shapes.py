"""Named regions as an editable napari Shapes layer, and back (napari not imported here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from histoquant.rois import Region

from ._convert import region_colour, regions_to_shapes_data, shapes_to_regions

__all__ = ["shapes_layer_kwargs", "regions_from_shapes_layer", "name_colours"]


def name_colours(names: Sequence[str]) -> dict[str, str]:
    """Colour of each region name (a fixed colour per name)."""
    return {n: region_colour(n) for n in dict.fromkeys(names)}


def shapes_layer_kwargs(
    regions: Mapping[str, np.ndarray] | Sequence[Region],
    reference: Any = None,
    *,
    name: str = "regions",
    tolerance_px: float = 0.0,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Return data and keyword arguments of a Shapes layer showing ``regions``.

    ``reference`` is the image layer the regions were drawn on; the Shapes layer takes its scale
    and translation (last two axes) so that it overlays the image and its data coordinates are
    the image's pixel coordinates. Each shape is labelled with its region name; holes are drawn
    dashed-looking (no fill) and flagged in the ``hole`` feature.
    """
    data, types, features = regions_to_shapes_data(regions, tolerance_px=tolerance_px)
    scale = tuple(float(s) for s in reference.scale[-2:]) if reference is not None else (1.0,
                                                                                         1.0)
    translate = (tuple(float(t) for t in reference.translate[-2:]) if reference is not None
                 else (0.0, 0.0))
    # The text of a hole says so (napari draws holes as shapes of their own).
    features["note"] = np.where(features["hole"].to_numpy(bool), " (hole)", "")
    colours = name_colours(features["name"].tolist())
    edge = [colours[n] for n in features["name"]]
    face = [(0, 0, 0, 0) if h else _with_alpha(colours[n], 0.15)
            for n, h in zip(features["name"], features["hole"])]
    kwargs: dict[str, Any] = {
        "name": name,
        "shape_type": types,
        "features": features,
        "scale": scale,
        "translate": translate,
        "edge_color": edge or "yellow",
        "face_color": face or "transparent",
        "edge_width": 2.0 * max(scale) if reference is not None else 2.0,
        "text": {"string": "{name}{note}", "size": 9, "color": "white"},
        "feature_defaults": {"name": "region", "hole": False, "note": ""},
    }
    units = getattr(reference, "units", None)
    if units is not None and len(units) >= 2:
        kwargs["units"] = tuple(str(u) for u in units[-2:])
    return data, kwargs


def _with_alpha(colour: str, alpha: float) -> tuple[float, float, float, float]:
    h = colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    return (r, g, b, alpha)


def regions_from_shapes_layer(shapes: Any, image: Any = None) -> list[Region]:
    """Regions in ``image``'s pixel coordinates from a napari Shapes layer (as edited).

    Parameters
    ----------
    shapes : napari.layers.Shapes
        Shapes with a ``name`` feature (and optionally ``hole``).
    image : napari.layers.Image, optional
        The image layer measured; its scale and translation map world to pixel coordinates.
        Without it the Shapes data coordinates are taken as pixels.
    """
    features = getattr(shapes, "features", None)
    return shapes_to_regions(
        shapes.data, shapes.shape_type, features,
        shapes_scale=shapes.scale, shapes_translate=shapes.translate,
        image_scale=image.scale if image is not None else shapes.scale,
        image_translate=image.translate if image is not None else shapes.translate,
    )
