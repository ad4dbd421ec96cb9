"""Tube segmentation: multi-scale ridge filtering, hysteresis, half-maximum edges.

Used by the vasculature assay for endothelium and pericyte channels, and usable for any
bright, line-like structure (vessels, processes, fibres) in a fluorescence image.

Method
------
1. **Background.** A smooth background (a low percentile over ``background_radius_um``,
   computed on a reduced grid) is subtracted, so that an uneven background does not shift
   the vessel edges.
2. **Ridges at several scales.** A Hessian ridge filter (Sato by default; Frangi and
   Meijering from scikit-image as alternatives) is run at each scale in µm. Scales wider
   than two pixels are filtered on a block-averaged copy of the image (the response is
   smooth at that scale anyway), which keeps the cost per scale almost constant.
3. **Noise units.** Each scale's response is turned into a robust z-score (median and
   MAD of its positive values), so that one threshold means the same at every scale and
   in every image: the thresholds are in units of the response's own background spread,
   which makes them insensitive to the staining brightness of the image.
4. **Hysteresis.** Pixels above ``threshold_high`` seed vessels that grow through pixels
   above ``threshold_low``: faint stretches of a vessel stay attached to its bright parts
   while isolated faint noise does not.
5. **Edges at half maximum.** The ridge mask is narrower than a vessel and widens with
   contrast, so the vessel's outline is placed where the background-corrected intensity
   falls to ``edge_level_pct`` of the local centreline intensity (50 % = full width at
   half maximum), which does not depend on brightness.
6. **Ridge core** (``core_threshold``). Along an unevenly stained, irregular vessel the
   half-maximum outline breaks wherever the vessel is dimmer than half of a bright stretch
   nearby, although the ridge response follows it through. The centreline (Lee thinning) of
   the ridge-mask pixels above ``core_threshold`` noise units, widened to three pixels, is
   added to the outline where a piece of it joins two outlines (pieces sticking out of one
   outline only would add length in textured background, and so would the branches of a
   joining piece that end in the background: they are pruned first), so a vessel's
   connectivity is that of its ridge and its width that of its half-maximum outline (along
   a joining piece the width is unknown and reads as ≈ 3 px).
7. **Clean-up.** Small holes (a dim lumen) are filled, and so are holes of any size that
   are mostly above the half-maximum level (the flat top of a vessel wider than the
   scales, which gives no ridge: its outline was its rims and texture, full of holes, and
   its skeleton a mesh); objects smaller than ``min_area_um2`` (debris, vessels cut
   across) are removed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import ndimage as ndi

from .statistics import MAD_TO_SD, block_any, block_mean

__all__ = ["TubeSegmentation", "TubeStats", "subtract_background", "background_grid",
           "background_window", "ridge_zscore", "segment_tubes", "remove_small"]

RIDGE_FILTERS = ("sato", "frangi", "meijering")
# A scale wider than this many pixels is filtered on a block-averaged copy of the image, where
# it is still at least this wide: the Hessian of a Gaussian is well sampled from ~1.5 px on.
# (Grids where scales fall to 1 px were tried: phantoms did not change, but on DRIVE the
# thinnest vessels were lost, −1…−3 % more length error per image.)
_MIN_SIGMA_PX = 1.5


@dataclass
class TubeStats:
    """The image-wide statistics of one tube segmentation (what a tiled run shares).

    A whole image estimates them from its own pixels; a tile of a larger image is given those
    of the whole (:func:`segment_tubes` ``stats=``), so that its thresholds mean what they
    mean on the whole image.

    Attributes
    ----------
    background_grid : ndarray or None
        The smooth background on blocks of ``background_block_px`` pixels
        (:func:`background_grid`), before upsampling.
    background_block_px : int
        Block side of ``background_grid`` in pixels.
    noise : list of (float, float) or None
        Per ridge scale (in the order of ``scales_um``): median and robust SD of the positive
        ridge responses that turn the response into noise units; None where there were too
        few (the scale then answers 0).
    centreline_median : float or None
        Median background-corrected intensity of the ridge pixels in tubes: sets the level
        above which a large hole is a vessel's inside. None when no ridge was found.
    """

    background_grid: np.ndarray | None
    background_block_px: int
    noise: list[tuple[float, float] | None]
    centreline_median: float | None


@dataclass
class TubeSegmentation:
    """Result of :func:`segment_tubes`.

    Attributes
    ----------
    mask : ndarray of bool
        Final tube mask (half-maximum edges, holes filled, debris removed).
    ridges : ndarray of bool
        Hysteresis-thresholded ridge mask (thinner than the tubes).
    zscore : ndarray of float32
        Maximum over scales of the ridge response in noise units.
    corrected : ndarray of float32
        Background-subtracted, lightly smoothed intensity.
    stats : TubeStats or None
        The image-wide statistics used (estimated, or given).
    """

    mask: np.ndarray
    ridges: np.ndarray
    zscore: np.ndarray
    corrected: np.ndarray
    stats: TubeStats | None = None


def remove_small(mask: np.ndarray, min_px: float, connectivity: int = 2) -> np.ndarray:
    """Drop connected components of fewer than ``min_px`` pixels (8-connected by default).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    min_px : float
        Smallest component kept, in pixels.
    connectivity : int
        1 for 4-connected, 2 for 8-connected components.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    structure = ndi.generate_binary_structure(2, connectivity)
    labels, n = ndi.label(mask, structure=structure)
    if n == 0:
        return mask.copy()
    keep = _label_sizes(labels.ravel(), n) >= min_px
    keep[0] = False
    return keep[labels]


@njit(cache=True, nogil=True)
def _label_sizes(labels, n):
    # np.bincount would first copy the int32 labels to int64: slow on very large images
    sizes = np.zeros(n + 1, np.int64)
    for v in labels:
        sizes[v] += 1
    return sizes


def hysteresis(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Return the pixels above ``low`` connected (4-neighbours) to a pixel above ``high``.

    Same result as :func:`skimage.filters.apply_hysteresis_threshold`, without its per-label
    sums. Four-connectivity keeps growth from hopping along diagonal noise.

    Parameters
    ----------
    values : numpy.ndarray
        (Y, X) image.
    low, high : float
        The two thresholds, ``low ≤ high``.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    weak = values > low
    labels, n = ndi.label(weak)
    if n == 0:
        return weak
    keep = np.zeros(n + 1, bool)
    keep[labels[values > high]] = True
    keep[0] = False
    return keep[labels]


def _interp_axis(small: np.ndarray, ratio: float, n_out: int, axis: int,
                 lag: float = 0.0) -> np.ndarray:
    """Linear interpolation along ``axis`` (0 or 1) from a grid of blocks ``ratio`` times wider.

    Block centres are kept in place; beyond the outermost centres the edge value is held.
    ``lag`` (output lines): the output grid starts that many lines before the input's
    (grids aligned on a larger image, cut at different places by a tile's edge).
    """
    n_in = small.shape[axis]

    def take(start: int, stop: int | None = None, step: int | None = None,
             ) -> tuple[slice, slice]:
        sl = slice(start, stop, step)
        return (sl, slice(None)) if axis == 0 else (slice(None), sl)

    k = round(ratio)
    if abs(ratio - k) < 1e-9 and k >= 1:
        # integer ratio: output line k·i + j mixes input lines i and i ± 1 with weights fixed
        # per phase j, so each phase is two scaled slices (no gathers)
        padded = np.concatenate([small[take(0, 1)], small, small[take(n_in - 1, n_in)]],
                                axis=axis)
        shape = list(small.shape)
        shape[axis] = k * n_in
        out = np.empty(shape, np.float32)
        for j in range(k):
            t = (j + 0.5) / k - 0.5
            lo, hi, w_hi = (0, 1, 1.0 + t) if t < 0 else (1, 2, t)
            dst = out[take(j, None, k)]
            np.multiply(padded[take(lo, lo + n_in)], np.float32(1.0 - w_hi), out=dst)
            if w_hi:
                dst += padded[take(hi, hi + n_in)] * np.float32(w_hi)
        if lag == 0:
            return out[take(0, n_out)]
        if float(lag).is_integer():
            # the same lines, shifted; beyond the ends the edge lines are held already
            idx = np.clip(np.arange(n_out) - int(lag), 0, k * n_in - 1)
            return np.take(out, idx, axis=axis)
    if lag:
        x = (np.arange(n_out, dtype=np.float64) - lag + 0.5) / ratio - 0.5
    else:
        x = (np.arange(n_out, dtype=np.float64) + 0.5) / ratio - 0.5
    i0 = np.clip(np.floor(x).astype(np.int64), 0, n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = np.clip(x - i0, 0.0, 1.0).astype(np.float32)
    shape = (-1, 1) if axis == 0 else (1, -1)
    return (np.take(small, i0, axis=axis) * (1 - w).reshape(shape)
            + np.take(small, i1, axis=axis) * w.reshape(shape))


def _resample_grid(small: np.ndarray, f_from: int, f_to: int,
                   full_shape: tuple[int, int], start_from: tuple[int, int] = (0, 0),
                   start_to: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Bilinear resampling from the grid of ``f_from``-pixel blocks to that of ``f_to``.

    Grids are block-reduced versions of a full image of ``full_shape``; block centres are
    kept in place. A grid's first block starts at pixel ``start`` (row, col) of the image
    (:func:`_grid_start`; the pixels before it are left out of the grid).
    """
    shape = tuple(-(-(n - a) // f_to) for n, a in zip(full_shape, start_to)) if f_to > 1 \
        else tuple(full_shape)
    if f_from == f_to and tuple(start_from) == tuple(start_to):
        return small[: shape[0], : shape[1]]
    ratio = f_from / f_to
    lag = [(a - b) / f_to for a, b in zip(start_from, start_to)]
    # columns first, on the few coarse rows; then whole rows, written contiguously
    cols = _interp_axis(np.asarray(small, np.float32), ratio, shape[1], 1, lag[1])
    return np.ascontiguousarray(_interp_axis(cols, ratio, shape[0], 0, lag[0]),
                                dtype=np.float32)


def _grid_start(origin_yx: tuple[int, int], f: int) -> tuple[int, int]:
    """First pixel of a block grid of ``f`` px aligned on the whole image, in a tile at ``origin``.

    Block grids (the ridge filter's reduced copies, the neighbourhoods of :func:`_near`) are
    laid on the whole image from its pixel (0, 0); a tile cut anywhere lays its grids on
    the same blocks, so that away from its edges it computes what the whole image does.
    """
    return int(-origin_yx[0] % f), int(-origin_yx[1] % f)


def _upsample(small: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a block-reduced image back to ``shape`` (block centres kept)."""
    return _resample_grid(small, f, 1, shape)


def subtract_background(image: np.ndarray, pixel_size_um: float, radius_um: float,
                        percentile: float = 20.0) -> np.ndarray:
    """Subtract a smooth background: a low percentile over ``radius_um``, on a reduced grid.

    The percentile (not the minimum) keeps the estimate steady in noise; the window is wide
    enough that it reaches between vessels, so vessels do not raise it.

    Parameters
    ----------
    image : numpy.ndarray
        (Y, X) image, vessels bright.
    pixel_size_um : float
        Pixel size in µm.
    radius_um : float
        Radius of the background window in µm.
    percentile : float
        Percentile of the window taken as background.

    Returns
    -------
    numpy.ndarray
        float32 image minus its background.
    """
    img = np.asarray(image, dtype=np.float32)
    bg, f = background_grid(img, pixel_size_um, radius_um, percentile)
    return img - _upsample(bg, f, img.shape)


def background_grid(image: np.ndarray, pixel_size_um: float, radius_um: float,
                    percentile: float = 20.0) -> tuple[np.ndarray, int]:
    """Return the smooth background of :func:`subtract_background` on its reduced grid.

    Parameters
    ----------
    image : numpy.ndarray
        (Y, X) image, vessels bright.
    pixel_size_um : float
        Pixel size in µm.
    radius_um : float
        Radius of the background window in µm.
    percentile : float
        Percentile of the window taken as background.

    Returns
    -------
    grid : numpy.ndarray
        float32 background of blocks of ``block_px`` pixels (block centres at
        ``i × block_px + (block_px − 1) / 2``).
    block_px : int
        Block side, a quarter of the radius in pixels.
    """
    img = np.asarray(image, dtype=np.float32)
    radius_px = radius_um / pixel_size_um
    f = max(1, int(radius_px // 4))
    small = block_mean(img, f, copy=False)
    size = max(3, int(2 * radius_px / f) | 1)
    bg = ndi.percentile_filter(small, percentile, size=size, mode="reflect")
    return ndi.uniform_filter(bg, size=size, mode="reflect"), f


def background_window(grid: np.ndarray, block_px: int, offset_yx: tuple[int, int],
                      shape: tuple[int, int]) -> np.ndarray:
    """Return the upsampled background of a window of the image whose grid is ``grid``.

    Window pixel ``(y, x)`` is pixel ``offset + (y, x)`` of that image; inside it the values
    are those :func:`subtract_background` subtracts there, bit for bit (the same bilinear
    weights between the same block centres), so a tile of the image is corrected exactly as
    the whole. Beyond the outermost block centres the edge values are held.

    Parameters
    ----------
    grid : numpy.ndarray
        Block grid of the whole image (:func:`background_grid`).
    block_px : int
        Its block side in pixels.
    offset_yx : tuple of int
        The window's first pixel in the grid's image.
    shape : tuple of int
        The window's shape.

    Returns
    -------
    numpy.ndarray
        float32 background of the window.
    """
    f = max(1, int(block_px))
    grid = np.asarray(grid, np.float32)
    sub = []
    for axis, (off, n) in enumerate(zip(offset_yx, shape)):
        n_in = grid.shape[axis]
        # blocks from one before the window's first to one after its last: each output pixel
        # then lies between the same two block centres as in the whole image
        q0 = min(max(0, off // f - 1), n_in - 1)
        q1 = max(min(n_in, -(-(off + n) // f) + 1), q0 + 1)
        sub.append((q0, q1, off - q0 * f, n))
    (r0, r1, sr, nr), (c0, c1, sc, nc) = sub
    small = grid[r0:r1, c0:c1]
    if f == 1:
        idx_r = np.clip(np.arange(sr, sr + nr), 0, small.shape[0] - 1)
        idx_c = np.clip(np.arange(sc, sc + nc), 0, small.shape[1] - 1)
        return np.ascontiguousarray(small[np.ix_(idx_r, idx_c)], dtype=np.float32)
    cols = _interp_axis(small, float(f), small.shape[1] * f, 1)
    cols = _take_clipped(cols, sc, nc, 1)
    rows = _interp_axis(cols, float(f), small.shape[0] * f, 0)
    return np.ascontiguousarray(_take_clipped(rows, sr, nr, 0), dtype=np.float32)


def _take_clipped(a: np.ndarray, start: int, n: int, axis: int) -> np.ndarray:
    """``a[start:start + n]`` along ``axis``, indices beyond ``a`` held at its edge."""
    if start >= 0 and start + n <= a.shape[axis]:
        sl = slice(start, start + n)
        return a[sl] if axis == 0 else a[:, sl]
    idx = np.clip(np.arange(start, start + n), 0, a.shape[axis] - 1)
    return np.take(a, idx, axis=axis)


def _gauss1d(img: np.ndarray, sigma: float, axis: int, order: int = 0,
             mode: str = "constant", truncate: float = 4.0,
             out: np.ndarray | None = None) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d`` with float32 output, fast along axis 0 too.

    SciPy filters along axis 0 by gathering each column with a stride of a whole row, which
    is ~4× slower than along rows on large images. Along axis 0 the image is filtered in
    strips of columns copied to contiguous memory: the same numbers, ~2.5× faster.
    """
    if out is None:
        out = np.empty(img.shape, np.float32)
    kw = {"sigma": sigma, "order": order, "mode": mode, "cval": 0.0, "truncate": truncate}
    if axis == 1 or img.shape[1] <= _STRIP:
        return ndi.gaussian_filter1d(img, axis=axis, output=out, **kw)
    for src, dst in _strips(img.shape[0], img.shape[1]):
        np.copyto(src, img[:, dst])
        out[:, dst] = ndi.gaussian_filter1d(src, axis=0, output=src, **kw)
    return out


def _strips(h: int, w: int) -> Iterator[tuple[np.ndarray, slice]]:
    """(reused contiguous buffer, column slice) for each strip of ``_STRIP`` columns.

    One buffer for all strips: a fresh array per strip would be mapped from the system
    (and page-faulted in) every time.
    """
    buf = np.empty((h, _STRIP), np.float32)
    for j in range(0, w, _STRIP):
        width = min(_STRIP, w - j)
        yield (buf if width == _STRIP else np.empty((h, width), np.float32)), \
            slice(j, j + width)


def _dilate_cross(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``binary_dilation`` by the 4-neighbour cross, ``iterations`` times, by shifted ORs."""
    out = np.array(mask, dtype=bool)
    for _ in range(iterations):
        prev = out.copy()
        out[1:] |= prev[:-1]
        out[:-1] |= prev[1:]
        out[:, 1:] |= prev[:, :-1]
        out[:, :-1] |= prev[:, 1:]
    return out


def _max_filter(img: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.maximum_filter(img, size, mode="constant")``, axis 0 in column strips."""
    out = ndi.maximum_filter1d(img, size, axis=1, mode="constant")
    if out.shape[1] <= _STRIP:
        return ndi.maximum_filter1d(out, size, axis=0, mode="constant")
    for src, dst in _strips(*out.shape):
        np.copyto(src, out[:, dst])
        out[:, dst] = ndi.maximum_filter1d(src, size, axis=0, output=src, mode="constant")
    return out


_STRIP = 64  # columns per strip: a 64-column strip of a few thousand rows fits in cache


# Below this σ (px) a sampled second-derivative-of-Gaussian kernel is a poor one; the Hessian
# is then built as scikit-image builds it, from two first-derivative passes at σ/√2.
_SAMPLED_SIGMA_PX = 1.5


def _hessian_composed(img: np.ndarray, sigma: float,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Hrr, Hrc, Hcc) as ``skimage.feature.hessian_matrix(..., use_gaussian_derivatives=True)``.

    Truncated at 8 σ/√2 (scikit-image uses 100 σ/√2 for σ ≤ 1, which adds only taps below
    1e-13 of the peak).
    """
    s = sigma / np.sqrt(2.0)

    def g(a, order0, order1):
        a = _gauss1d(a, s, axis=1, order=order1, truncate=8.0)
        return _gauss1d(a, s, axis=0, order=order0, truncate=8.0)

    d_r, d_c = g(img, 1, 0), g(img, 0, 1)
    return g(d_r, 1, 0), g(d_r, 0, 1), g(d_c, 0, 1)


def _sato_bright(img: np.ndarray, sigma: float) -> np.ndarray:
    """Sato tubeness of bright ridges at one scale, as ``skimage.filters.sato``.

    ``σ² · max(−λ_min, 0)``, λ_min the smaller Hessian eigenvalue (closed form in 2D). The
    Hessian comes from six 1D Gaussian-derivative passes (scikit-image convolves ten times:
    two first-derivative passes at σ/√2 per element), in float32, outside the image = 0.
    """
    if sigma < _SAMPLED_SIGMA_PX:
        hrr, hrc, hcc = _hessian_composed(img, sigma)
    else:
        g = _gauss1d
        tmp = g(img, sigma, axis=1, order=0)
        hrr = g(tmp, sigma, axis=0, order=2)
        g(img, sigma, axis=1, order=2, out=tmp)
        hcc = g(tmp, sigma, axis=0, order=0)
        g(img, sigma, axis=1, order=1, out=tmp)
        hrc = g(tmp, sigma, axis=0, order=1)
        del tmp
    # −λ_min = −(hrr + hcc)/2 + sqrt(((hrr − hcc)/2)² + hrc²), computed in place
    hrc *= hrc
    half_sum = hrr + hcc
    half_sum *= -0.5
    hrr -= hcc
    hrr *= 0.5
    hrr *= hrr
    hrr += hrc
    np.sqrt(hrr, out=hrr)
    hrr += half_sum
    np.maximum(hrr, 0.0, out=hrr)
    hrr *= np.float32(sigma * sigma)
    return hrr


def _robust_noise(resp: np.ndarray, mask: np.ndarray | None) -> tuple[float, float] | None:
    """Median and MAD_TO_SD·MAD of the positive responses inside ``mask`` (None: too few)."""
    vals = resp[mask] if mask is not None else resp.ravel()
    step = max(1, vals.size // 2_000_000)
    vals = vals[::step]
    vals = vals[vals > 0]
    if vals.size < 16:
        return None
    med = float(np.median(vals))
    mad = MAD_TO_SD * float(np.median(np.abs(vals - med)))
    if not mad > 0:
        mad = float(np.std(vals))
    if not mad > 0:
        return None
    return med, mad


def _to_z(resp: np.ndarray, noise: tuple[float, float] | None) -> np.ndarray:
    """(response − median) / SD, or zeros when the noise is unknown."""
    if noise is None:
        return np.zeros_like(resp, dtype=np.float32)
    out = resp.astype(np.float32, copy=True)
    out -= noise[0]
    out /= noise[1]
    return out


def ridge_zscore(image: np.ndarray, pixel_size_um: float, scales_um: Sequence[float], *,
                 method: str = "sato", mask: np.ndarray | None = None,
                 noise: Sequence[tuple[float, float] | None] | None = None,
                 record: list | None = None,
                 origin_yx: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Return the multi-scale bright-ridge response in noise units (maximum over scales).

    Parameters
    ----------
    image : ndarray
        2D image, ridges bright.
    pixel_size_um : float
        Pixel size.
    scales_um : sequence of float
        Gaussian scales of the Hessian in µm; a tube of diameter *d* answers best at
        σ ≈ d/2.
    method : {"sato", "frangi", "meijering"}
        scikit-image ridge filter.
    mask : ndarray of bool, optional
        Pixels whose responses set the noise statistics (the analysed regions).
    noise : sequence, optional
        Per scale, the (median, SD) to use instead of estimating them (a tile of a larger
        image, given the whole image's; ``None`` entries answer 0).
    record : list, optional
        Filled with the per-scale (median, SD) used, in the order of ``scales_um``.
    origin_yx : tuple of int
        Where ``image`` lies in a larger image (a tile): the reduced copies are laid on
        that image's blocks.

    Returns
    -------
    numpy.ndarray
        float32 ridge response, in robust SDs above the median of the positive responses.
    """
    from skimage import filters

    if method not in RIDGE_FILTERS:
        raise ValueError(f"method must be one of {RIDGE_FILTERS}, not {method!r}")
    fn = getattr(filters, method)
    img = np.asarray(image, dtype=np.float32)
    # Coarse scales first: their maximum is carried down grid by grid, so only the finest
    # grid is upsampled to full size.
    factors = [max(1, int(s_um / pixel_size_um // _MIN_SIGMA_PX)) for s_um in scales_um]
    if noise is not None and len(noise) != len(scales_um):
        raise ValueError(f"noise gives {len(noise)} scales, scales_um {len(scales_um)}")
    used: list[tuple[float, float] | None] = [None] * len(scales_um)
    best, f_best, a_best = None, None, (0, 0)
    for f, s_um, k in sorted(zip(factors, scales_um, range(len(factors))),
                             key=lambda t: -t[0]):
        s_px = s_um / pixel_size_um
        a = _grid_start(origin_yx, f)
        small = block_mean(img[a[0]:, a[1]:], f, copy=False)
        # outside the image is background (0 after background subtraction): a vessel along
        # the border is not mirrored into a double-width one
        if method == "sato":
            resp = _sato_bright(small, s_px / f)
        else:
            resp = fn(small, sigmas=[s_px / f], black_ridges=False, mode="constant", cval=0.0)
            resp = np.asarray(resp, dtype=np.float32)
        if noise is None:
            small_mask = None
            if mask is not None:
                small_mask = block_mean(mask[a[0]:, a[1]:].astype(np.float32), f) > 0.5 \
                    if f > 1 else mask
            used[k] = _robust_noise(resp, small_mask)
        else:
            used[k] = None if noise[k] is None else (float(noise[k][0]), float(noise[k][1]))
        z = _to_z(resp, used[k])
        del resp
        if best is not None:
            best = _resample_grid(best, f_best, f, img.shape, a_best, a)
            np.maximum(best, z[: best.shape[0], : best.shape[1]], out=best)
        else:
            best = z
        f_best, a_best = f, a
    if record is not None:
        record[:] = used
    return _resample_grid(best, f_best, 1, img.shape, a_best)


def fill_padding(image: np.ndarray, padding: np.ndarray, pixel_size_um: float,
                 radius_um: float) -> np.ndarray:
    """Return the image with its padding replaced by a smooth continuation of the image around it.

    Padding (a round field of view's zeros, a canvas) is not tissue. Left at 0 it makes a
    step at the field's edge that the background subtraction cannot follow (its low
    percentile dips to 0 there), so the edge answers as a bright ridge all round the field
    (+17–22 % length on DRIVE photographs zeroed outside their field of view, with the noise
    statistics already restricted to the field). The fill is the local mean of the image on
    the background's grid (blocks of ``radius_um``/4), carried outwards from the nearest
    block with image in it: flat, so it adds no ridges and no step.

    Parameters
    ----------
    image : numpy.ndarray
        (Y, X) image.
    padding : numpy.ndarray
        Boolean (Y, X) padding mask.
    pixel_size_um : float
        Pixel size in µm.
    radius_um : float
        Radius of the background window in µm (as in :func:`subtract_background`).

    Returns
    -------
    numpy.ndarray
        float32 image; a copy when anything was filled.
    """
    img = np.asarray(image, dtype=np.float32)
    pad = np.asarray(padding, bool)
    if not pad.any() or pad.all():
        return img
    f = max(1, int(radius_um / pixel_size_um // 4))
    inside = (~pad).astype(np.float32)
    den = block_mean(inside, f, copy=False)
    num = block_mean(np.where(pad, np.float32(0), img), f, copy=False)
    have = den > 0.25
    small = np.where(have, num / np.maximum(den, 1e-6), 0).astype(np.float32)
    # each empty block takes the value of the nearest block with image in it
    idx = ndi.distance_transform_edt(~have, return_distances=False, return_indices=True)
    small = small[idx[0], idx[1]]
    out = img.copy()
    out[pad] = _upsample(small, f, img.shape)[pad]
    return out


def _near(mask: np.ndarray, reach_px: int, origin_yx: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Pixels within about ``reach_px`` (at least that, at most twice) of ``mask``.

    Found on a grid of blocks of ``reach_px``/2 (a block touching the mask and its
    neighbours two blocks away): a few passes over a small image instead of two maximum
    filters over the whole one.
    """
    f = max(1, reach_px // 2)
    # a tile lays its blocks on the whole image's (its first block begins before it), so
    # that its neighbourhood is the whole image's
    before = (int(origin_yx[0] % f), int(origin_yx[1] % f))
    if any(before):
        mask = np.pad(mask, ((before[0], 0), (before[1], 0)))
    small = block_any(mask, f)
    for _ in range(2):
        small = _dilate_square(small)
    h, w = mask.shape
    out = np.repeat(np.repeat(small, f, axis=0)[:h], f, axis=1)[:, :w]
    return out[before[0]:, before[1]:] if any(before) else out


def _dilate_square(mask: np.ndarray) -> np.ndarray:
    """``binary_dilation`` by the 3 × 3 square, by shifted ORs (rows, then columns)."""
    out = np.array(mask, dtype=bool)
    prev = out.copy()
    out[1:] |= prev[:-1]
    out[:-1] |= prev[1:]
    prev = out.copy()
    out[:, 1:] |= prev[:, :-1]
    out[:, :-1] |= prev[:, 1:]
    return out


def _joining_pieces(pieces: np.ndarray, objects: np.ndarray, n_objects: int) -> np.ndarray:
    """Return the connected pieces of ``pieces`` that touch at least two labelled objects.

    ``objects`` holds the objects' labels 1…``n_objects`` (0 elsewhere). Core pieces that
    only stick out of one vessel add length where the outline has none (textured
    background, the shoulders of a wide vessel); pieces that join two outlines are the dim
    stretches of a vessel, which keep the network connected. (8-connectivity.)
    """
    plab, n_p = ndi.label(pieces, structure=np.ones((3, 3), bool))
    if n_p == 0:
        return pieces
    # object pixels next to a piece: few, so their neighbours are gathered by index rather
    # than by filtering whole label images
    rr, cc = np.nonzero((objects > 0) & _dilate_square(pieces))
    if rr.size == 0:
        return np.zeros_like(pieces)
    h, w = plab.shape
    obj = objects[rr, cc].astype(np.int64)
    codes = []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            # clipped at the image edge onto the object pixel itself, which is no piece
            v = plab[np.clip(rr + dr, 0, h - 1), np.clip(cc + dc, 0, w - 1)].astype(np.int64)
            codes.append(v[v > 0] * (n_objects + 1) + obj[v > 0])
    pairs = np.unique(np.concatenate(codes))
    n_touch = np.bincount(pairs // (n_objects + 1), minlength=n_p + 1)
    keep = n_touch >= 2
    keep[0] = False
    return keep[plab]


def _prune_dangling(line: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Return a one-pixel-wide ``line`` without its branches that end anywhere but at an anchor.

    Leaves (pixels with at most one 8-neighbour on the line) that are not anchors are
    removed, and their neighbours checked again, until every leaf left is an anchor: what
    remains is the union of the paths between anchors, and the loops. Removing a leaf never
    disconnects the rest. One pass over the pixels, then work in proportion to the pixels
    removed (rounds of skan path pruning would rebuild the graph once per level of
    branching). A branch pixel touching three pixels of a path is no leaf and stays: it lies
    within the 3 px the path is widened to.
    """
    rows = np.flatnonzero(line.any(axis=1))
    if rows.size == 0:
        return line.copy()
    cols = np.flatnonzero(line.any(axis=0))
    # only the box around the line: the work array is then as small as the line
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    out = np.zeros_like(line)
    out[box] = _prune_leaves(np.ascontiguousarray(line[box]),
                             np.ascontiguousarray(anchor[box]))
    return out


@njit(cache=True, nogil=True)
def _prune_leaves(line, anchor):
    h, w = line.shape
    out = line.copy()
    deg = np.zeros((h, w), np.int8)
    stack = []
    for r in range(h):
        for c in range(w):
            if out[r, c]:
                k = 0
                for dr in range(-1, 2):
                    for dc in range(-1, 2):
                        rr, cc = r + dr, c + dc
                        if (dr or dc) and 0 <= rr < h and 0 <= cc < w and out[rr, cc]:
                            k += 1
                deg[r, c] = k
                if k <= 1 and not anchor[r, c]:
                    stack.append((r, c))
    while stack:
        r, c = stack.pop()
        if not out[r, c]:
            continue
        out[r, c] = False
        for dr in range(-1, 2):
            for dc in range(-1, 2):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < h and 0 <= cc < w and out[rr, cc]:
                    deg[rr, cc] -= 1
                    if deg[rr, cc] <= 1 and not anchor[rr, cc]:
                        stack.append((rr, cc))
    return out


def _fill_holes(tube: np.ndarray, bright: np.ndarray, max_hole_px: float,
                reach_px: int, origin_yx: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``tube`` with its holes filled: those under ``max_hole_px``, and the bright ones.

    A hole (a 4-connected piece of background) is filled when it is smaller than
    ``max_hole_px`` (a dim lumen, noise; a piece touching the image border too, as
    :func:`remove_small` of the background would), or when it does not touch the image
    border, at least half of its pixels are ``bright`` (the inside of a vessel) and none is
    further than about ``reach_px`` (at most twice that) from the tube: a region enclosed
    by a long loop of vessel (a field of view ringed by an artefact) is not a vessel's
    inside. One labelling serves both.
    """
    background = ~tube
    labels, n = ndi.label(background)
    if n == 0:
        return tube.copy()
    sizes = _label_sizes(labels.ravel(), n)
    fill = sizes < max_hole_px
    n_bright = np.bincount(labels[bright & background], minlength=n + 1)
    inner = n_bright >= 0.5 * sizes
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    inner[edge] = False
    inner[0] = False
    if inner.any():
        # only the candidates' pixels are gathered (few), not all the background far away
        far = inner[labels]
        far &= ~_near(tube, reach_px, origin_yx)
        inner[labels[far]] = False
    fill |= inner
    fill[0] = False
    return tube | fill[labels]


def segment_tubes(
    image: np.ndarray,
    pixel_size_um: float,
    *,
    scales_um: Sequence[float] = (1.5, 3.0, 6.0),
    method: str = "sato",
    threshold_low: float = 3.0,
    threshold_high: float = 8.0,
    edge_level_pct: float = 50.0,
    background_radius_um: float = 50.0,
    min_area_um2: float = 50.0,
    max_hole_um2: float = 30.0,
    mask: np.ndarray | None = None,
    core_threshold: float | None = None,
    padding: np.ndarray | None = None,
    stats: TubeStats | None = None,
    background: np.ndarray | None = None,
    origin_yx: tuple[int, int] = (0, 0),
) -> TubeSegmentation:
    """Segment bright tubes (vessels, pericyte processes) in a 2D fluorescence image.

    Parameters
    ----------
    image : ndarray
        2D image, tubes bright.
    pixel_size_um : float
        Pixel size in µm.
    scales_um : sequence of float
        Ridge-filter scales in µm.
    method : {"sato", "frangi", "meijering"}
        Ridge filter.
    threshold_low, threshold_high : float
        Hysteresis thresholds in noise units of the ridge response.
    edge_level_pct : float
        Tube edge at this percentage of the local centreline intensity above background.
    background_radius_um : float
        Window of the background estimate; wider than the largest vessel and than the gaps
        between vessels.
    min_area_um2 : float
        Smaller objects are removed.
    max_hole_um2 : float
        Holes up to this area are filled (a dim lumen, a noisy pixel).
    mask : ndarray of bool, optional
        Pixels that set the noise statistics (e.g. the union of the analysed regions).
    core_threshold : float or None
        When given, the centreline (3 px wide) of the ridge-mask pixels above this many
        noise units is added to the half-maximum outline wherever it joins two outlines,
        so that a vessel whose outline breaks at a dim stretch stays one connected vessel.
        ``None``: no core.
    padding : ndarray of bool, optional
        Pixels that are not image (padding, the outside of a round field of view): filled
        with a smooth continuation of the image around them (:func:`fill_padding`), left
        out of the noise statistics, and never part of a tube.
    stats : TubeStats, optional
        Image-wide statistics to apply instead of estimating them from ``image`` (a tile of
        a larger image: the whole image's noise per scale and centreline level); with
        ``background``.
    background : ndarray, optional
        With ``stats``: the smooth background of this image's pixels
        (:func:`background_window` of the whole image's grid).
    origin_yx : tuple of int
        Where ``image`` lies in a larger image (a tile's first pixel): the block grids of
        the ridge filter and of the neighbourhoods are laid on that image's blocks, so that
        a tile computes, away from its edges, what the whole image computes.

    Returns
    -------
    TubeSegmentation
        With ``stats``: those given, or those estimated (``background_grid`` included).
    """
    px = float(pixel_size_um)
    img = np.asarray(image, dtype=np.float32)
    if padding is not None and np.any(padding):
        padding = np.asarray(padding, bool)
        img = fill_padding(img, padding, px, background_radius_um)
        mask = ~padding if mask is None else (np.asarray(mask, bool) & ~padding)
    else:
        padding = None
    if (stats is None) != (background is None):
        raise ValueError("segment_tubes: give stats and background together")
    if stats is None:
        # the image's own statistics (a whole image, or calibrating one)
        bg_grid, bg_f = background_grid(img, px, background_radius_um)
        corrected = img - _upsample(bg_grid, bg_f, img.shape)
        noise: list = []
        z = ridge_zscore(corrected, px, scales_um, method=method, mask=mask, record=noise,
                         origin_yx=origin_yx)
        stats = TubeStats(bg_grid, bg_f, noise, None)
        estimate = True
    else:
        if tuple(background.shape) != img.shape:
            raise ValueError(f"background {background.shape} is not the image's {img.shape}")
        corrected = img - background
        z = ridge_zscore(corrected, px, scales_um, method=method, noise=stats.noise,
                         origin_yx=origin_yx)
        estimate = False
    ridges = hysteresis(z, threshold_low, threshold_high)
    # light smoothing so that the half-maximum edge follows the tube, not the noise
    smooth_px = max(0.5, 0.5 * min(scales_um) / px)
    corrected = _gauss1d(_gauss1d(corrected, smooth_px, axis=1, mode="reflect", truncate=3.0),
                         smooth_px, axis=0, mode="reflect", truncate=3.0)
    if not ridges.any():
        empty = np.zeros(img.shape, bool)
        return TubeSegmentation(empty, ridges, z, corrected, stats)
    # local centreline intensity: the brightest ridge pixel within about one large radius
    half = max(1, round(2.0 * max(scales_um) / px))
    peak = _max_filter(np.where(ridges, corrected, np.float32(0)), 2 * half + 1)
    tube = (peak > 0) & (corrected >= (edge_level_pct / 100.0) * peak)
    del peak
    # kept for the hole filling below, before the outline is cut back to the ridges
    half_max = tube.copy()
    # Around a faint seed the half-maximum level is near the noise, and the outline would
    # wander into it; keep outlines within the smallest scale of a ridge pixel.
    grow = max(1, int(np.ceil(min(scales_um) / px)))
    tube &= _dilate_cross(ridges, grow)
    # The ridge mask only seeds: at coarse scales it reaches well past a bright vessel's
    # edge, so the outline is the half-maximum one. Keep the parts connected to a ridge.
    labels, n = ndi.label(tube, structure=np.ones((3, 3), bool))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[ridges])] = True
    keep[0] = False
    tube = keep[labels]
    if padding is not None:
        tube &= ~padding
    if core_threshold is not None:
        from ..measure.thinning import thin_lee

        # The ridge's centreline keeps a vessel connected where its half-maximum outline
        # breaks (a dim stretch next to a bright one); 3 px wide, so that it stays
        # 4-connected through hole filling and thinning. Only where the ridge joins two
        # outlines is it needed: thinning that neighbourhood alone costs a fraction of
        # thinning the whole ridge mask.
        core = ridges & (z > np.float32(core_threshold))
        labels *= tube  # the outlines' own labels (components are unchanged by the filter)
        joins = _joining_pieces(core & ~tube, labels, n)
        if joins.any():
            # A centreline stops about a half-width short of where its mask is cut, and the
            # ridge mask is up to ≈ 2 large scales wide on each side: the neighbourhood
            # reaches that far into the outlines so that the centreline meets them.
            near = core & _near(joins, half + 2, origin_yx)
            # Only the centreline between outlines joins them: its side branches that end
            # in the background (the ridge mask's own spurs, texture, stubs beside a
            # bright vessel) join nothing, and kept with the piece they added length and a
            # free end each (0.2–0.9 % of the length on DRIVE, 0.8 % on the vesselNN stack,
            # 22 of 279 free ends on a tumour CD31 field [measured]).
            line = thin_lee(near) & ~tube
            line = _prune_dangling(line, line & _dilate_square(tube))
            tube |= _joining_pieces(_dilate_cross(line, 1) & ~tube, labels, n)
    del labels
    px2 = px * px
    # Holes inside a vessel wider than the ridge scales: its flat top gives no ridge, so the
    # outline, kept near ridge pixels, is cut back to its rims and the texture inside, and
    # the skeleton ran round every hole (vesselNN with the default scales: 60–80 µm vessels,
    # +54 % length, a mesh inside each wide vessel). A hole that is mostly above the
    # half-maximum level of its own centrelines, and at least as bright as that level of
    # the image's typical centreline, is vessel and is filled whatever its size; the space
    # between capillaries, below half their maximum, stays open.
    if estimate:
        ridge_px = corrected[ridges & tube]
        stats.centreline_median = float(np.median(ridge_px)) if ridge_px.size else None
        del ridge_px
    med = stats.centreline_median
    level = (edge_level_pct / 100.0) * med if med is not None else np.inf
    bright = half_max & (corrected >= np.float32(level))
    del half_max
    if padding is not None:
        bright &= ~padding
    tube = _fill_holes(tube, bright, max_hole_um2 / px2, half, origin_yx)
    if padding is not None:
        tube &= ~padding
    if min_area_um2 > 0:
        tube = remove_small(tube, min_area_um2 / px2)
    return TubeSegmentation(tube, ridges & tube, z, corrected, stats)
