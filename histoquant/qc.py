"""QC overlays: outlines of objects and regions, and a caption, drawn on a display image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["to_display_rgb", "draw_outlines", "draw_mask_outlines", "add_caption",
           "composite", "qc_mark_radius_px", "draw_cell_marks", "draw_point_marks",
           "CLASS_COLOURS", "REGION_COLOURS", "FLUORESCENT_CELL_COLOURS"]

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
CLASS_COLOURS = {
    "motor_neuron": (0, 158, 115),
    "other": (230, 159, 0),
    "gfp_cell": (0, 158, 115),
    "autofluorescent": (213, 94, 0),
    "covered": (0, 158, 115),
    "uncovered": (213, 94, 0),
    "positive": (240, 228, 66),
}
FLUORESCENT_CELL_COLOURS = {
    "gfp_cell": (0, 158, 115), "autofluorescent": (213, 94, 0), "no_nucleus": (240, 228, 66),
    "too_small": (150, 150, 150), "too_large": (150, 150, 150), "fibre": (86, 180, 233),
    "texture": (204, 121, 167), "low_contrast": (0, 114, 178), "edge": (150, 150, 150)}
"""Outline colour of each class of the fluorescent-cell engine in a QC picture (Okabe–Ito;
counted cells are also circled)."""
REGION_COLOURS = [(86, 180, 233), (204, 121, 167), (0, 114, 178), (240, 228, 66),
                  (230, 159, 0), (0, 158, 115)]


def to_display_rgb(image: np.ndarray, channels: Sequence[tuple[np.ndarray, tuple]] | None = None,
                   percentiles: tuple[float, float] = (0.5, 99.8)) -> np.ndarray:
    """Make an 8-bit RGB image for display.

    ``image`` as (Y, X, 3) is taken as RGB and scaled to 8 bit; as (Y, X) it is shown grey.
    With ``channels`` — pairs of (2D array, RGB colour) — each channel is contrast-stretched
    between the given percentiles and added in its colour, like a fluorescence composite.

    Parameters
    ----------
    image : numpy.ndarray
        (Y, X, 3) RGB or (Y, X) grey image; only its shape counts when ``channels`` are given.
    channels : sequence of (numpy.ndarray, tuple), optional
        (2D array, RGB colour) pairs of a composite.
    percentiles : (float, float)
        Low and high percentiles of each channel's contrast stretch.

    Returns
    -------
    numpy.ndarray
        (Y, X, 3) uint8 image.
    """
    if channels:
        shape = channels[0][0].shape
        out = np.zeros((*shape, 3), dtype=np.float32)
        for arr, colour in channels:
            out += _stretch(arr, percentiles)[..., None] * (np.asarray(colour, np.float32) / 255)
        return (np.clip(out, 0, 1) * 255).astype(np.uint8)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        if arr.dtype == np.uint8:
            return arr.copy()
        return (_stretch(arr, (0, 100)) * 255).astype(np.uint8)
    grey = (_stretch(arr, percentiles) * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def _stretch(arr: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    step = max(1, int(np.sqrt(arr.size / 1e6)))
    sample = arr[::step, ::step] if arr.ndim >= 2 else arr
    lo, hi = np.percentile(sample, percentiles)
    if hi <= lo:
        hi = lo + 1
    return np.clip((arr - lo) / (hi - lo), 0, 1)


def _boundaries(labels: np.ndarray, thickness_px: int) -> np.ndarray:
    if labels.dtype == bool or labels.max() <= 1:
        b = _inner_boundary(labels > 0)
    else:
        from skimage.segmentation import find_boundaries

        b = find_boundaries(labels, mode="inner")
    if thickness_px > 1:
        from scipy.ndimage import binary_dilation

        b = binary_dilation(b, iterations=thickness_px - 1) & (labels > 0)
    return b


def _inner_boundary(mask: np.ndarray) -> np.ndarray:
    """``find_boundaries(mask, mode="inner")`` for a binary mask, by four shifted ANDs.

    Region and positive-area masks are binary and as large as the QC image; grey-level
    dilation and erosion (what ``find_boundaries`` does for labels) cost several times more.
    The image edge is not a boundary, as with ``find_boundaries``' reflecting edges.
    """
    interior = mask.copy()
    interior[1:] &= mask[:-1]
    interior[:-1] &= mask[1:]
    interior[:, 1:] &= mask[:, :-1]
    interior[:, :-1] &= mask[:, 1:]
    return mask & ~interior


def draw_outlines(rgb: np.ndarray, labels: np.ndarray,
                  colours: Mapping[int, tuple[int, int, int]] | tuple[int, int, int],
                  thickness_px: int | None = None) -> np.ndarray:
    """Draw object outlines on ``rgb`` in place; ``colours`` maps label → RGB, or one colour.

    Parameters
    ----------
    rgb : numpy.ndarray
        (Y, X, 3) uint8 picture, changed in place.
    labels : numpy.ndarray
        Label image of the same (Y, X) shape.
    colours : mapping of int to RGB tuple, or RGB tuple
        Outline colour per label (a label without one is not drawn), or one for all.
    thickness_px : int, optional
        Outline width in pixels; about 1/1500 of the long side when not given.

    Returns
    -------
    numpy.ndarray
        ``rgb``.
    """
    if thickness_px is None:
        thickness_px = max(1, round(max(labels.shape) / 1500))
    b = _boundaries(labels, thickness_px)
    if isinstance(colours, tuple):
        rgb[b] = colours
        return rgb
    if not colours:
        return rgb
    lut = np.zeros((int(labels.max()) + 1, 3), dtype=np.uint8)
    has = np.zeros(len(lut), dtype=bool)
    for lab, colour in colours.items():
        if 0 < lab < len(lut):
            lut[lab] = colour
            has[lab] = True
    sel = b & has[labels]
    rgb[sel] = lut[labels[sel]]
    return rgb


def draw_mask_outlines(rgb: np.ndarray, masks: Mapping[str, np.ndarray],
                       thickness_px: int | None = None) -> np.ndarray:
    """Draw the outline of each named region mask on ``rgb`` in place, one colour each.

    Parameters
    ----------
    rgb : numpy.ndarray
        (Y, X, 3) uint8 picture, changed in place.
    masks : mapping of str to numpy.ndarray
        Region name → boolean mask of the picture's (Y, X) shape.
    thickness_px : int, optional
        Outline width in pixels; about 1/600 of the long side when not given.

    Returns
    -------
    numpy.ndarray
        ``rgb``.
    """
    if thickness_px is None:
        thickness_px = max(2, round(max(rgb.shape[:2]) / 600))
    for i, mask in enumerate(masks.values()):
        if mask.all():
            continue
        b = _boundaries(mask.astype(np.uint8), thickness_px)
        rgb[b] = REGION_COLOURS[i % len(REGION_COLOURS)]
    return rgb


def add_caption(rgb: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Return ``rgb`` with a white caption band of text lines added above it.

    Parameters
    ----------
    rgb : numpy.ndarray
        (Y, X, 3) uint8 picture.
    lines : sequence of str
        The caption, one entry per line.

    Returns
    -------
    numpy.ndarray
        A new, taller uint8 picture.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    h, w = rgb.shape[:2]
    size = int(np.clip(w / 45, 12, 48))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no scalable default font
        font = ImageFont.load_default()
    band = int(size * 1.35 * len(lines) + size * 0.6)
    canvas = PILImage.new("RGB", (w, h + band), "white")
    canvas.paste(PILImage.fromarray(np.ascontiguousarray(rgb)), (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((size // 2, int(size * 0.3 + i * size * 1.35)), line, fill="black", font=font)
    return np.asarray(canvas)


def composite(layers: Sequence[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    """Additive colour composite, each layer stretched between its 0.5 and 99.8 percentiles.

    Parameters
    ----------
    layers : sequence of (ndarray, (int, int, int))
        2D planes of one shape and the RGB colour each is shown in; the percentiles are read
        on a grid of about 512 × 512 samples.

    Returns
    -------
    ndarray
        (Y, X, 3) uint8.
    """
    shape = layers[0][0].shape
    planes = np.zeros((3, *shape), np.float32)
    for arr, colour in layers:
        sample = np.asarray(arr[:: max(1, shape[0] // 512), :: max(1, shape[1] // 512)],
                            np.float32)
        lo, hi = np.percentile(sample, (0.5, 99.8))
        scale = 1.0 / max(float(hi - lo), 1e-6)
        stretched = np.clip((np.asarray(arr, np.float32) - lo) * scale, 0, 1)
        for k in range(3):
            if colour[k]:
                planes[k] += stretched * (colour[k] / 255.0)
    np.clip(planes, 0, 1, out=planes)
    planes *= 255
    return np.ascontiguousarray(np.moveaxis(planes.astype(np.uint8), 0, -1))


def qc_mark_radius_px(equivalent_diameter_um: float, pixel_size_um: float, q: int) -> int:
    """Radius in QC display pixels of the circle drawn round a counted cell.

    The circle is the disk of the cell's own area (its equivalent diameter), drawn at the
    display's reduction ``q`` (display pixel = ``q`` image pixels), so a 15 µm cell gets a
    15 µm circle: the mark shows the object that was counted, not a fixed symbol. At least
    2 px, so a cell shrunk by a strong reduction still shows a ring.

    Parameters
    ----------
    equivalent_diameter_um : float
        The cell's equivalent diameter.
    pixel_size_um : float
        Image pixel size.
    q : int
        Display reduction factor.

    Returns
    -------
    int
        Radius in display pixels (at least 2).
    """
    return max(2, round(equivalent_diameter_um / 2 / pixel_size_um / q))


def draw_cell_marks(rgb: np.ndarray, objects: pd.DataFrame, pixel_size_um: float, q: int, *,
                    counted: str = "gfp_cell", crossed: str = "autofluorescent") -> np.ndarray:
    """Circle the counted objects and cross the rejected ones of one class, in place.

    Parameters
    ----------
    rgb : ndarray
        (Y, X, 3) uint8 display at reduction ``q``.
    objects : DataFrame
        Objects table with ``label``, ``class``, ``centroid_y_um``, ``centroid_x_um`` and
        ``equivalent_diameter_um`` (one mark per label).
    pixel_size_um : float
        Image pixel size.
    q : int
        Display reduction factor.
    counted, crossed : str
        Classes circled (at the object's own size, two rings) and crossed, in their
        :data:`CLASS_COLOURS`.

    Returns
    -------
    ndarray
        ``rgb``.
    """
    from skimage.draw import circle_perimeter, line

    px = pixel_size_um
    marked = objects.drop_duplicates("label") if len(objects) else objects
    marked = marked[marked["class"].isin([counted, crossed])] if len(marked) else marked
    for cls, y_um, x_um, d_um in zip(marked.get("class", []), marked.get("centroid_y_um", []),
                                     marked.get("centroid_x_um", []),
                                     marked.get("equivalent_diameter_um", [])):
        r = round(float(y_um) / px / q)
        c = round(float(x_um) / px / q)
        radius = qc_mark_radius_px(d_um, px, q)
        if cls == counted:
            # the cell's own disk, one ring inside the other so it reads on any background
            for rad in (radius, radius + 1):
                rr, cc = circle_perimeter(r, c, rad, shape=rgb.shape[:2])
                rgb[rr, cc] = CLASS_COLOURS[counted]
        else:
            k = max(2, round(radius / 1.4))
            for r0, c0, r1, c1 in ((r - k, c - k, r + k, c + k), (r - k, c + k, r + k, c - k)):
                rr, cc = line(r0, c0, r1, c1)
                ok = (rr >= 0) & (rr < rgb.shape[0]) & (cc >= 0) & (cc < rgb.shape[1])
                rgb[rr[ok], cc[ok]] = CLASS_COLOURS[crossed]
    return rgb


def draw_point_marks(rgb: np.ndarray, y_um: np.ndarray, x_um: np.ndarray, positive: np.ndarray,
                     pixel_size_um: float, q: int, *,
                     colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (
                         (240, 228, 66), (60, 60, 60))) -> np.ndarray:
    """Draw a small plus at each point, in the first colour where ``positive``, else the second.

    Parameters
    ----------
    rgb : ndarray
        (Y, X, 3) uint8 display at reduction ``q``.
    y_um, x_um : ndarray
        Point positions in µm.
    positive : ndarray of bool
        Which colour each point gets.
    pixel_size_um : float
        Image pixel size.
    q : int
        Display reduction factor.
    colours : pair of RGB
        Colours of positive and negative points (default yellow and dark grey).

    Returns
    -------
    ndarray
        ``rgb``.
    """
    rr = np.clip((np.asarray(y_um) / pixel_size_um / q).astype(int), 0, rgb.shape[0] - 1)
    cc = np.clip((np.asarray(x_um) / pixel_size_um / q).astype(int), 0, rgb.shape[1] - 1)
    yes = np.asarray(positive, bool)
    for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        r2 = np.clip(rr + dr, 0, rgb.shape[0] - 1)
        c2 = np.clip(cc + dc, 0, rgb.shape[1] - 1)
        rgb[r2[yes], c2[yes]] = colours[0]
        rgb[r2[~yes], c2[~yes]] = colours[1]
    return rgb
