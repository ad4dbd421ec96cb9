"""napari layer data for an :class:`~histoquant.results.AssayResult` (napari not imported).

Label images and masks become Labels layers, objects without a label image become Points;
the objects table travels in the layer's ``features`` so hovering an object shows its
measurements. Every layer takes the scale and translation of the image that was measured.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from histoquant.results import AssayResult

__all__ = ["result_layer_data", "result_layer_name", "class_colours", "class_colour"]

#: Colours of object classes, from the Okabe–Ito palette (told apart with the common colour
#: vision deficiencies): cool ones for what an assay keeps, warm ones for classes whose name
#: says they were set aside (autofluorescent, rejected, no_nucleus, ...).
KEPT_COLOURS = ("#009e73", "#56b4e9", "#0072b2", "#f0e442")
SET_ASIDE_COLOURS = ("#d55e00", "#e69f00", "#cc79a7", "#999999")
#: The classes the assays report, each with its own colour in every run and every image.
CLASS_COLOURS = {
    "motor_neuron": "#009e73", "gfp_cell": "#56b4e9", "pericyte": "#f0e442",
    "vessel": "#0072b2", "other": "#999999", "autofluorescent": "#d55e00",
    "debris": "#e69f00", "no_nucleus": "#cc79a7", "rejected": "#d55e00",
}
_SET_ASIDE = re.compile(r"reject|autofluor|^no_|^not_|^non_|artifact|artefact|exclud|debris|"
                        r"noise|fail|outside|too_|small|decoy|^other$|^unknown$")


def class_colour(name: str) -> str:
    """Return the colour of an object class: fixed by its name, never by order of appearance.

    The assays' own classes have theirs (:data:`CLASS_COLOURS`); any other name (a learned
    model's classes) takes one of :data:`SET_ASIDE_COLOURS` when its name says it was set
    aside, else one of :data:`KEPT_COLOURS`, picked by a checksum of the name so that it is
    the same in every run and session.
    """
    import zlib

    if name in CLASS_COLOURS:
        return CLASS_COLOURS[name]
    palette = SET_ASIDE_COLOURS if _SET_ASIDE.search(name.lower()) else KEPT_COLOURS
    return palette[zlib.crc32(name.encode()) % len(palette)]


def class_colours(objects: pd.DataFrame) -> dict[str, str]:
    """Return a colour per value of the objects' ``class`` column (empty when there is none)."""
    if "class" not in objects.columns or objects.empty:
        return {}
    return {c: class_colour(c) for c in dict.fromkeys(str(c) for c in objects["class"])}


LayerData = tuple[Any, dict[str, Any], str]

def _label_features(objects: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame | None:
    """Objects as Labels features: napari maps label value → row through an ``index`` column."""
    if objects.empty or "label" not in objects.columns:
        return None
    feats = objects.copy()
    feats.insert(0, "index", feats["label"].astype(np.int64))
    # napari looks labels up by value; a duplicate label (same object in two regions) keeps its
    # first row.
    return feats.drop_duplicates("index").reset_index(drop=True)


def result_layer_name(what: str, assay: str, image: str) -> str:
    """Return a layer name such as ``objects · evans-blue · section1``.

    What the layer shows comes first, so napari's layer list, which elides the middle of long
    names, keeps it readable.
    """
    return f"{what} · {assay} · {image}"


def result_layer_data(
    result: AssayResult,
    *,
    scale: tuple[float, float],
    translate: tuple[float, float] = (0.0, 0.0),
    units: tuple[str, str] | None = None,
    position: tuple[str, str] = ("centroid_y_um", "centroid_x_um"),
    masks: bool = True,
) -> list[LayerData]:
    """Layer data tuples showing ``result`` over the image it was measured on.

    Parameters
    ----------
    result : AssayResult
        What the core returned.
    scale, translate : (float, float)
        The measured image layer's scale and translation on its last two axes.
    units : (str, str), optional
        Physical units of the image layer's axes.
    position : (str, str)
        The objects' (row, column) position columns in µm, as the assay declares them
        (``AssaySpec.positions[0]``); objects without a label image are drawn there.
    masks : bool
        Also one hidden Labels layer per mask of the result. Each Labels layer costs the
        viewer ≈ 1 s to build on a laptop, so the dock adds them only when asked.
    """
    def name(what: str) -> str:
        return result_layer_name(what, result.assay, result.image)

    common: dict[str, Any] = {"scale": tuple(scale), "translate": tuple(translate)}
    if units is not None:
        common["units"] = tuple(units)
    meta = {"histoquant": {"assay": result.assay, "image": result.image,
                           "pixel_size_um": result.pixel_size_um}}
    out: list[LayerData] = []
    if result.labels is not None:
        labels = np.asarray(result.labels)
        if labels.dtype == bool:
            labels = labels.astype(np.uint8)
        kwargs = {**common, "name": name("objects"), "metadata": meta, "opacity": 0.6}
        feats = _label_features(result.objects, labels)
        if feats is not None:
            kwargs["features"] = feats
            colours = class_colours(result.objects)
            if colours:
                # Objects coloured by class (kept vs rejected ...) instead of at random.
                cmap: dict[Any, Any] = {None: "transparent", 0: "transparent"}
                cmap.update({int(lab): colours[str(c)]
                             for lab, c in zip(feats["index"], feats["class"])})
                kwargs["colormap"] = cmap
        out.append((labels, kwargs, "labels"))
    for mask_name, mask in (result.masks or {}).items() if masks else ():
        mask = np.asarray(mask)
        data = mask.astype(np.uint8) if mask.dtype == bool else mask
        out.append((data, {**common, "name": name(mask_name), "metadata": meta,
                           "opacity": 0.5, "visible": False}, "labels"))
    cols = position if all(c in result.objects.columns for c in position) else None
    if result.labels is None and cols is not None and not result.objects.empty \
            and result.pixel_size_um:
        px = float(result.pixel_size_um)
        pts = result.objects[list(cols)].to_numpy(float) / px
        out.append((pts, {**common, "name": name("objects"),
                          "features": result.objects.reset_index(drop=True),
                          "metadata": meta, "size": 10.0 * px, "border_color": "yellow",
                          "face_color": "transparent", "symbol": "ring"}, "points"))
        colours = class_colours(result.objects)
        if colours:
            kwargs = out[-1][1]
            kwargs["border_color"] = [colours[str(c)] for c in result.objects["class"]]
    return out
