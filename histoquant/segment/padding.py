"""Padding, tile frames, empty tiles, the outside of a field of view: never tissue.

Real images arrive padded: a whole section exported on a grey or black canvas, a mosaic with an
empty (black) tile, a round field of view with zeros outside, tiles framed by a thin line of one
colour. Those pixels hold one constant value **in every channel at once**; statistics that let
them in (a background level, a noise estimate, a threshold) are pulled towards that value (a
round field of view's zeros made a noise estimate small enough to turn noise into vessels).

What counts as padding here, and why:

- **One colour, all channels at once.** A fluorescence channel clipped at zero can be ≈ 50 %
  exact zeros over real background while its other channels (DAPI, CD31) vary there: that is
  tissue, not padding. A candidate colour is a whole pixel (all channels) seen often.
- **Solid.** Padding is flat over whole windows of ``w × w`` pixels (``w`` ≈ 1/64 of the
  image's short side, 9–31 px). Clipped noise is not: even at 95 % zeros a 15 × 15 window
  is all zero with a probability of 1e-5. The solid cores are then grown back to the pixels
  of the same colour (within ``tolerance``) at most ``w`` pixels away, which restores the exact
  edge of the padding and the JPEG ripple along it, without flooding into clipped tissue
  background far away.
- **Where padding is.** A solid area of the colour is padding when it touches the image
  border (canvas, outside of a field of view) or when it is a large rectangle inside the
  image (an empty tile: rectangularity ≥ 0.9 in its own principal axes, and at least
  ``min_area_fraction`` of the image). Thin frames and seams are 1-D runs of the colour along
  a row or a column at least a quarter of the image long.

Tolerance: lossless data keep padding exactly constant, so 0 grey levels. JPEG smears an edge
over its 8 × 8 block: next to padding the values ripple by a few levels. For 8-bit data the
ripple is measured (pixels a few levels off the padding colour in the band along the exact
padding); the growth stays within ``w`` px of the solid core whatever the tolerance, so a dark
tissue background next to black padding loses at most a thin band.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

if TYPE_CHECKING:
    from ..io.image import Image

__all__ = ["find_padding", "padding_window_px", "padding_of_image"]

#: Largest tolerance (grey levels of 8-bit data) the JPEG-ripple estimate may return.
_MAX_JPEG_TOLERANCE = 6
#: At most this many candidate colours are examined (the most frequent first).
_MAX_COLOURS = 4
#: Sample size (pixels) for finding the frequent colours.
_SAMPLE = 250_000


def padding_window_px(shape: tuple[int, ...]) -> int:
    """Return the side (px) of the window that must be flat for an area to count as solid padding.

    About 1/64 of the short side of the image, odd, between 9 and 31 px: small enough for
    the padding of a 600-px export, large enough that clipped noise never passes.

    Parameters
    ----------
    shape : tuple of int
        Shape of the image (the first two axes count).

    Returns
    -------
    int
        The window side in pixels.
    """
    w = int(min(shape[0], shape[1]) // 64)
    w = max(9, min(31, w))
    return w | 1


def padding_of_image(image: Image, projection: str = "max") -> np.ndarray:
    """Return :func:`find_padding` of an :class:`~histoquant.io.image.Image` (all channels, Z max).

    Cached in ``image.metadata["_padding"]`` (keyed by the image's shape) so the assays and
    the statistics of one image compute it once.

    Parameters
    ----------
    image : Image
        The image.
    projection : {"max", "mean", "sum"}
        How a Z-stack is reduced to 2D.

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) padding mask.
    """
    cache = image.metadata.get("_padding")
    if cache is not None and cache.shape == tuple(image.shape_yx):
        return cache
    mask = find_padding(image.plane(projection))
    image.metadata["_padding"] = mask
    return mask


def find_padding(pixels: np.ndarray, *, tolerance: float | None = None,
                 min_area_fraction: float = 0.002) -> np.ndarray:
    """Boolean (Y, X) mask of padding, tile frames, empty tiles and the outside of a field of view.

    Areas of one constant value (in every channel at once), connected to the image border or
    forming large flat rectangles: never tissue.

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X) or (Y, X, C) array, any dtype.
    tolerance : float or None
        How far (grey levels, in every channel) a pixel may lie from the padding colour and
        still be padding, near the solid padding. ``None``: from the data: 0 for lossless
        integer or float data, a few levels for 8-bit data whose padding edges ripple as JPEG
        blocks do.
    min_area_fraction : float
        Smallest area (fraction of the image) of a padding area or empty tile; thin frames and
        seams are found as long runs instead.

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) mask, True on padding.
    """
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[..., None]
    if px.ndim != 3:
        raise ValueError(f"pixels must be (Y, X) or (Y, X, C), not shape {np.shape(pixels)}")
    ny, nx = px.shape[:2]
    out = np.zeros((ny, nx), bool)
    if ny < 3 or nx < 3:
        return out
    w = padding_window_px(px.shape)
    n_min = max(1, int(min_area_fraction * ny * nx))
    for colour in _frequent_colours(px, n_min):
        exact = _equal_to(px, colour, 0.0)
        if not exact.any():
            continue
        core = _solid(exact, w)
        core = _keep_padding_like(core, n_min, w)
        runs = _long_runs(exact, max(32, min(ny, nx) // 4))
        if not core.any() and not runs.any():
            continue
        tol = (tolerance if tolerance is not None
               else _estimate_tolerance(px, colour, exact, core))
        near = _equal_to(px, colour, float(tol)) if tol > 0 else exact
        grown = near & _dilate(core, w) if core.any() else np.zeros_like(out)
        out |= grown | _runs_of_padding(runs, core)
    return out


def _frequent_colours(px: np.ndarray, n_min: int) -> list[np.ndarray]:
    """Whole-pixel colours that cover at least ``n_min`` pixels (estimated from a sample)."""
    ny, nx, nc = px.shape
    step = max(1, int(np.sqrt(ny * nx / _SAMPLE)))
    sub = px[::step, ::step].reshape(-1, nc)
    # The border is added in full: a thin canvas may be rare in the strided sample.
    border = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]]).reshape(-1, nc)
    colours, counts = _unique_rows(sub)
    frac = counts / sub.shape[0]
    keep = frac * ny * nx >= n_min
    bcol, bcount = _unique_rows(border)
    order = np.argsort(-counts)
    chosen = [colours[i] for i in order if keep[i]][:_MAX_COLOURS]
    # a colour that covers ≥ 5 % of the border is a canvas candidate even if rare inside
    for i in np.argsort(-bcount):
        if bcount[i] < 0.05 * border.shape[0] or len(chosen) >= 2 * _MAX_COLOURS:
            break
        if not any(np.array_equal(bcol[i], c) for c in chosen):
            chosen.append(bcol[i])
    return [c for c in chosen if np.all(np.isfinite(c.astype(np.float64)))]


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (pixels) and their counts; packs a pixel into one integer when it fits.

    ``np.unique(axis=0)`` sorts structured records, ten times slower than sorting integers.
    """
    rows = np.ascontiguousarray(rows)
    size = rows.dtype.itemsize
    nbytes = rows.shape[1] * size
    if nbytes <= 8 and (8 - nbytes) % size == 0:
        # zero-fill each pixel to 8 bytes and read it as one unsigned integer
        filled = np.zeros((rows.shape[0], 8 // size), rows.dtype)
        filled[:, :rows.shape[1]] = rows
        keys = filled.view(np.uint64).ravel()
        _, first, counts = np.unique(keys, return_index=True, return_counts=True)
        return rows[first], counts
    return np.unique(rows, axis=0, return_counts=True)


def _equal_to(px: np.ndarray, colour: np.ndarray, tol: float) -> np.ndarray:
    if tol <= 0:
        return np.all(px == colour, axis=-1)
    diff = np.abs(px.astype(np.float32) - colour.astype(np.float32))
    return np.all(diff <= tol, axis=-1)


def _solid(mask: np.ndarray, w: int) -> np.ndarray:
    """Union of the ``w × w`` windows lying wholly inside ``mask`` (a square opening)."""
    m = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    # The image border counts as inside: padding along an edge stays padding to the edge.
    eroded = ndi.minimum_filter(m, size=w, mode="nearest")
    return ndi.maximum_filter(eroded, size=w, mode="constant", cval=0).astype(bool)


def _keep_padding_like(core: np.ndarray, n_min: int, w: int) -> np.ndarray:
    """Keep solid areas that touch the border, or are large rectangles inside the image."""
    if not core.any():
        return core
    lab, n = ndi.label(core)
    if n == 0:
        return core
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    edge = np.zeros(n + 1, bool)
    for side in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        edge[np.unique(side)] = True
    keep = np.zeros(n + 1, bool)
    slices = ndi.find_objects(lab)
    for i in range(1, n + 1):
        if sizes[i] < max(n_min, w * w):
            continue
        if edge[i] or _rectangularity(lab[slices[i - 1]] == i) >= 0.9:
            keep[i] = True
    keep[0] = False
    return keep[lab]


def _rectangularity(obj: np.ndarray) -> float:
    """Area over the area of the bounding box in the object's own principal axes."""
    yy, xx = np.nonzero(obj)
    if yy.size < 3:
        return 0.0
    c = np.stack([yy - yy.mean(), xx - xx.mean()])
    _, vecs = np.linalg.eigh(np.cov(c))
    best = 0.0
    # A rectangle's principal axes are its sides (a square's are any pair: try both the
    # eigen-axes and the image axes, and keep the tightest box).
    for axes in (vecs.T, np.eye(2)):
        p = axes @ c
        box = (np.ptp(p[0]) + 1) * (np.ptp(p[1]) + 1)
        best = max(best, yy.size / box)
    return float(best)


def _long_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """Pixels of ``mask`` in horizontal or vertical runs of at least ``min_len`` pixels."""
    out = np.zeros_like(mask)
    for axis in (0, 1):
        m = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
        # a run of length ≥ L passes the 1-D erosion of size L; dilating back restores it
        er = ndi.minimum_filter1d(m, size=min_len, axis=axis, mode="constant", cval=0)
        if er.any():
            out |= ndi.maximum_filter1d(er, size=min_len, axis=axis, mode="constant",
                                        cval=0).astype(bool)
    return out & mask


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Dilation by a (2r + 1)-square, separable (fast on large masks)."""
    return ndi.maximum_filter(mask.view(np.uint8), size=2 * r + 1, mode="constant",
                              cval=0).astype(bool)


def _runs_of_padding(runs: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Return the runs that are frames or seams: touching the image border or the solid padding.

    A flat, JPEG-smoothed slide background also holds long runs of one exact colour, inside
    the tile; a frame or seam line runs to the edge of the image or of the padding.
    """
    if not runs.any():
        return runs
    lab, n = ndi.label(runs)
    ok = np.zeros(n + 1, bool)
    for side in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        ok[np.unique(side)] = True
    if core.any():
        ok[np.unique(lab[_dilate(core, 1)])] = True
    ok[0] = False
    return ok[lab]


def _estimate_tolerance(px: np.ndarray, colour: np.ndarray, exact: np.ndarray,
                        core: np.ndarray) -> float:
    """0 for lossless data; the JPEG ripple (a few grey levels) for 8-bit data that has it.

    In the band of one JPEG block (8 px) around the solid padding, lossy 8-bit data shows many
    pixels 1 to a few levels off the padding colour (the ripple inside the padding's edge
    blocks); beside lossless padding, pixels that close to its colour are no commoner than
    pixels a little further (the tissue's own spread): the ripple is recognised by ≥ 3 times
    more pixels 1–6 levels off than 7–12 levels off.
    """
    if px.dtype != np.uint8 or not core.any():
        return 0.0
    band = _dilate(core, 8) & ~exact
    if not band.any():
        return 0.0
    dev = np.abs(px[band].astype(np.int16) - colour.astype(np.int16)).max(axis=-1)
    small = (dev >= 1) & (dev <= _MAX_JPEG_TOLERANCE)
    mid = (dev > _MAX_JPEG_TOLERANCE) & (dev <= 2 * _MAX_JPEG_TOLERANCE)
    if small.sum() < max(20, 3 * mid.sum()):
        return 0.0
    # the ripple's extent: the level that 90 % of the small deviations stay within
    return float(np.clip(np.percentile(dev[small], 90), 1, _MAX_JPEG_TOLERANCE))
