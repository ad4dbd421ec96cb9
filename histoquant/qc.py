"""QC overlays: outlines of objects and regions, and a caption, drawn on a display image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["to_display_rgb", "draw_outlines", "draw_mask_outlines", "add_caption",
           "CLASS_COLOURS", "REGION_COLOURS"]

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
