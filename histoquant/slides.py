"""Whole slides: a low-resolution overview read in bounded memory, and the sections on it.

A slide scan holds several spinal cord sections on a bright (brightfield) or dark
(fluorescence) background. :func:`overview` reads a small version of the slide — from a pyramid
level when the file has one, otherwise by averaging blocks of the full-resolution pixels a
window at a time — and :func:`find_sections` labels each piece of tissue on it as a section.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .errors import EmptyImageError
from .io import Image, image_levels, read_image
from .segment.statistics import block_mean

__all__ = ["Overview", "overview", "read_region", "find_sections", "display_rgb",
           "saturated_pct"]

log = logging.getLogger(__name__)


@dataclass
class Overview:
    """A reduced copy of an image and how it maps onto the full-resolution pixels.

    Attributes
    ----------
    data : ndarray
        (y, x) or (y, x, c) pixels, Z projected by maximum; float32 in the source's value range.
    scale : tuple of float
        Full-resolution pixels per overview pixel along Y and X.
    full_shape : tuple of int
        Height and width of the full-resolution image.
    pixel_size_um : float or None
        Pixel size of the overview.
    rgb : bool
        Whether the source is brightfield RGB.
    dtype_max : float
        Value of full brightness of the source: its integer type's maximum, or the scale
        float data are on (see :func:`histoquant.io.image.value_scale`).
    """

    data: np.ndarray
    scale: tuple[float, float]
    full_shape: tuple[int, int]
    pixel_size_um: float | None
    rgb: bool
    dtype_max: float

    def to_full(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Convert overview pixel coordinates to full-resolution pixel coordinates (pixel centres).

        Parameters
        ----------
        rows, cols : numpy.ndarray
            Overview pixel coordinates.

        Returns
        -------
        rows, cols : numpy.ndarray
            Full-resolution coordinates of the same points.
        """
        sy, sx = self.scale
        return (np.asarray(rows) + 0.5) * sy - 0.5, (np.asarray(cols) + 0.5) * sx - 0.5


def _yx_block(data: ArrayLike, axes: str, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Read rows r0:r1, cols c0:c1 of a (Z)YX(C) array as (y, x[, c]), Z max-projected."""
    if axes.startswith("Z"):
        block = np.asarray(data[:, r0:r1, c0:c1])
        return block.max(axis=0)
    return np.asarray(data[r0:r1, c0:c1])


def _reduce(image: Image, f: int, bounds: tuple[int, int, int, int] | None = None,
            block_px: int = 2048) -> np.ndarray:
    """Block-average a window of ``image`` by ``f``, reading ``block_px``-sized pieces."""
    h, w = image.shape_yx
    r0, r1, c0, c1 = bounds if bounds is not None else (0, h, 0, w)
    if f == 1:
        return _yx_block(image.data, image.axes, r0, r1, c0, c1).astype(np.float32)
    step = max(f, (block_px // f) * f)
    rows = []
    for a in range(r0, r1, step):
        row = [block_mean(_yx_block(image.data, image.axes, a, min(r1, a + step), b,
                                     min(c1, b + step)), f)
               for b in range(c0, c1, step)]
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def _pyramid(image: Image) -> list[tuple[float, float]]:
    """Downsample (Y, X) of each pyramid level of the image's file; [(1, 1)] without one."""
    if image.path is None or image.metadata.get("levels", 1) <= 1:
        return [(1.0, 1.0)]
    try:
        levels = image_levels(image.path)
    except Exception:  # an unreadable pyramid only costs speed: use full resolution
        return [(1.0, 1.0)]
    h, w = image.shape_yx
    return [(h / lh, w / lw) for lh, lw in levels]


def read_region(image: Image, bounds: tuple[int, int, int, int] | None = None,
                factor: int = 1) -> tuple[np.ndarray, tuple[float, float]]:
    """Pixels of a window of ``image`` reduced about ``factor`` times, in bounded memory.

    Reads the coarsest pyramid level that is not coarser than ``factor`` (when the file has
    levels), then averages blocks of it.

    Parameters
    ----------
    image : Image
        Full-resolution image (in memory or lazy).
    bounds : tuple of int, optional
        (r0, r1, c0, c1) in full-resolution pixels; default the whole image.
    factor : int
        Wanted reduction.

    Returns
    -------
    data : ndarray of float32
        (y, x[, c]) pixels, Z max-projected.
    scale : tuple of float
        Full-resolution pixels per returned pixel along Y and X.
    """
    h, w = image.shape_yx
    r0, r1, c0, c1 = bounds if bounds is not None else (0, h, 0, w)
    r0, c0, r1, c1 = max(0, r0), max(0, c0), min(h, r1), min(w, c1)
    levels = _pyramid(image)
    best = 0
    for i, (dy, dx) in enumerate(levels):
        if max(dy, dx) <= factor + 1e-6:
            best = i
    source = image
    dy, dx = levels[best]
    if best:
        source = read_image(image.path, level=best, lazy=True,
                            channel_names=image.channel_names or None)
    sh, sw = source.shape_yx
    window = (int(np.floor(r0 / dy)), min(sh, int(np.ceil(r1 / dy))),
              int(np.floor(c0 / dx)), min(sw, int(np.ceil(c1 / dx))))
    f = max(1, round(factor / max(dy, dx)))
    data = _reduce(source, f, window)
    return data, ((r1 - r0) / data.shape[0], (c1 - c0) / data.shape[1])


def overview(image: Image, max_px: int = 2048) -> Overview:
    """Return a reduced copy of ``image`` whose longer side is at most about ``max_px`` pixels.

    Uses the coarsest pyramid level of the file that is still fine enough, then averages
    blocks of it; memory stays bounded by ``max_px`` whatever the slide size.

    Parameters
    ----------
    image : Image
        Full-resolution image (in memory or lazy).
    max_px : int
        Longest side of the overview in pixels.

    Returns
    -------
    Overview
    """
    full = image.shape_yx
    factor = max(1, int(np.ceil(max(full) / max_px)))
    data, scale = read_region(image, None, factor)
    px = image.pixel_size_um * scale[1] if image.pixel_size_um else None
    return Overview(data=data, scale=scale, full_shape=full, pixel_size_um=px, rgb=image.rgb,
                    dtype_max=_full_scale(image, data))


def _full_scale(image: Image, data: np.ndarray) -> float:
    """Full brightness of ``image``: an in-memory float image's own scale, else the overview's.

    Float pixels may hold 0–1, 0–255 or 0–65535 values. The overview's block means are no
    longer whole numbers, so for a lazy float image the scale is inferred from the overview
    (its maximum when above 1) rather than reading the full-resolution slide again.
    """
    from .io.image import value_scale

    if isinstance(image.data, np.ndarray) or not np.issubdtype(image.dtype, np.floating):
        return image.max_value()
    return value_scale(data, image.dtype)


def find_sections(view: Overview, *, min_area_mm2: float = 1.0, smooth_um: float = 20.0,
                  max_sections: int = 64) -> np.ndarray:
    """Label each piece of tissue on a slide overview as one section.

    Tissue is told from the slide background by Otsu's threshold on the mean of the channels
    after a Gaussian blur of ``smooth_um``, moved to the midpoint between the median background
    and the median tissue values: darker than that on a brightfield (RGB) slide, brighter on a
    fluorescence slide. Holes are filled,
    gaps narrower than ``smooth_um`` closed, and pieces smaller than ``min_area_mm2`` dropped
    (dust, debris, torn fragments).

    Parameters
    ----------
    view : Overview
        Slide overview with a pixel size.
    min_area_mm2 : float
        Smallest section kept. A rat lumbar cord section is 9–11 mm² (3.8–4.1 ×
        2.9–3.6 mm; Watson et al. 2009, The Spinal Cord); 1 mm² keeps damaged or partial
        sections and drops debris.
    smooth_um : float
        Blur and closing scale.
    max_sections : int
        More pieces than this means the background was not found; an error is raised.

    Returns
    -------
    ndarray of int32
        Label image at overview resolution, sections numbered 1, 2, ... in reading order
        (top to bottom by rows of sections, left to right within a row).

    Raises
    ------
    EmptyImageError
        When no section is found.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops
    from skimage.morphology import disk

    px = view.pixel_size_um or 1.0
    grey = view.data.mean(axis=-1) if view.data.ndim == 3 else view.data
    grey = grey.astype(np.float32) / max(view.dtype_max, 1e-12)
    sigma = max(0.5, smooth_um / px / 2)
    blurred = ndi.gaussian_filter(grey, sigma)
    lo, hi = np.percentile(blurred, [1, 99])
    # relative to the brightest signal, not the type's range: 12-bit data in 16-bit files
    contrast = (hi - lo) / max(abs(hi), 1e-12)
    if contrast < 0.02:
        raise EmptyImageError("no tissue section found: the slide is blank (contrast "
                              f"{contrast:.3f})")
    t = threshold_otsu(blurred)
    # brightfield tissue absorbs light on a bright slide; fluorescent tissue glows on black
    side = blurred < t if view.rgb else blurred > t
    # Otsu's cut is pulled towards the stained cells; the midpoint between the typical
    # background and typical tissue (unblurred values: blurred cells darken the tissue around
    # them) puts the blurred tissue edge where it really is
    if side.any() and (~side).any():
        t = 0.5 * (float(np.median(grey[side])) + float(np.median(grey[~side])))
    tissue = blurred < t if view.rgb else blurred > t
    radius = max(1, round(smooth_um / px / 2))
    # pad by reflection so that tissue running off the image edge is not eaten by the closing
    padded = np.pad(tissue, radius + 1, mode="reflect")
    padded = ndi.binary_closing(padded, structure=disk(radius))
    tissue = ndi.binary_fill_holes(padded[radius + 1:-radius - 1, radius + 1:-radius - 1])
    lab = label(tissue, connectivity=2)
    min_px = min_area_mm2 * 1e6 / px**2
    props = [p for p in regionprops(lab) if p.area >= min_px]
    if not props:
        raise EmptyImageError(
            f"no tissue section of at least {min_area_mm2} mm² found on the slide; lower "
            "slides.min_section_area_mm2 in the study file if the sections are smaller")
    if len(props) > max_sections:
        raise EmptyImageError(
            f"{len(props)} separate pieces of tissue found; the slide background could not be "
            "told from tissue. Give regions (ROI file) or set slides.split_sections: false")
    heights = np.median([p.bbox[2] - p.bbox[0] for p in props])

    def reading_order(p):
        r, c = p.centroid
        return (int(r // max(heights, 1)), c)

    out = np.zeros(lab.shape, dtype=np.int32)
    for i, p in enumerate(sorted(props, key=reading_order), start=1):
        out[lab == p.label] = i
    return out


def display_rgb(data: np.ndarray, rgb: bool, dtype_max: float) -> np.ndarray:
    """Return 8-bit RGB for QC pictures: RGB as is, one channel grey, several as a colour composite.

    Parameters
    ----------
    data : numpy.ndarray
        (Y, X) or (Y, X, C) pixels.
    rgb : bool
        Whether 3 channels are RGB.
    dtype_max : float
        Full-brightness value of the data.

    Returns
    -------
    numpy.ndarray
        (Y, X, 3) uint8 picture.
    """
    from .qc import to_display_rgb

    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 3 and rgb:
        return np.clip(arr / max(dtype_max, 1e-12) * 255, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return to_display_rgb(arr)
    colours = [(0, 255, 0), (255, 0, 255), (0, 128, 255), (255, 128, 0)]
    if arr.shape[-1] == 1:
        return to_display_rgb(arr[..., 0])
    return to_display_rgb(arr[..., 0], channels=[(arr[..., i], colours[i % 4])
                                                 for i in range(min(arr.shape[-1], 4))])


def saturated_pct(data: np.ndarray, dtype: np.dtype) -> float:
    """Return the percentage of pixels at the top of an integer type in any channel (0 for floats).

    Parameters
    ----------
    data : numpy.ndarray
        (Y, X) or (Y, X, C) pixels.
    dtype : numpy.dtype
        The data type of the original image.

    Returns
    -------
    float
        Percentage of pixels (0–100).
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return 0.0
    arr = np.asarray(data)
    top = np.iinfo(dtype).max
    hit = arr >= top
    if arr.ndim == 3:
        hit = hit.any(axis=-1)
    return float(hit.mean() * 100.0)
