"""The one home of block reduction, robust statistics, background, noise and threshold floors.

Every assay's background level, noise estimate and automatic threshold come from here, so a fix
(padding left out, a noise floor, zero-clipped channels) reaches all of them at once.

Rules, and why:

**Block reduction** (:func:`block_sum`, :func:`block_mean`, :func:`block_counts`,
:func:`block_any`): ``factor × factor`` blocks from the top-left corner; the last row and column
of blocks may be partial, and a partial block's mean is the mean of **the pixels it holds**
(no edge replication, no zero fill: either would bias the edge blocks towards the border
pixels or towards 0).

**Robust location and scale** (:func:`robust_location_scale`): the median and ``MAD_TO_SD`` ×
the median absolute deviation, after iteratively dropping values more than ``clip_sd`` SDs
above the median (bright signal is a one-sided outlier of a background).

**Tissue only**: statistics are taken over tissue pixels: the caller's support mask minus
:func:`histoquant.segment.padding.find_padding` (padding, tile frames, the outside of a round
field of view). Zeros outside a field of view are one exact value: let in, they halve the
MAD and turn noise into signal.

**Quantisation floor** (:func:`quantisation_step`, :func:`noise_floor`): a noise SD below the
data's quantisation step (1 grey level for 8-bit and for 12-bit-in-16-bit data, 16 when a
12-bit camera is scaled into 16 bits) is never used. The rounding error alone has an SD of
step/√12 (0.29 levels), but that is only the noise of a signal already spread over many
levels; when the measured spread is below one step the data hold no measurable noise, and a
threshold 2.5 × 0.29 = 0.72 levels above the background turns every one-level JPEG ripple
into signal (an 8-bit lectin field was 47–54 % "positive" that way). The floor is one
step: a threshold of ``k`` SDs is then at least ``k`` grey levels above the background
(:func:`threshold_above`).

**Zero-clipped channels** (:func:`background_stats`): 8-bit exports clip the background of a
dim channel at 0 (or another minimum); ≈ 50 % of a tracer channel can be exact zeros. The
median and MAD of such data are 0, and a symmetric fit is impossible. When at least
``CLIP_FRACTION`` (20 %) of the tissue pixels sit at the minimum, the background is taken as
a normal distribution censored there: its mean and SD are fitted (probit regression) to the
empirical distribution function at the clip and above it, up to 75 % of the pixels (the
upper tail holds the signal). The fit uses only the fraction at the clip and the values above
it, which the clipping leaves intact.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike
from scipy.special import ndtri

__all__ = [
    "MAD_TO_SD", "P10_TO_SD", "lower_half_sd", "CLIP_FRACTION", "block_sum", "block_counts",
    "block_mean", "block_any", "robust_location_scale", "clipped_median_along",
    "sigma_clipped_background", "sample_pixels", "quantisation_step", "noise_floor",
    "BackgroundStats", "background_stats", "threshold_above", "tissue_support",
]

#: MAD × this = the SD of a normal distribution (1 / Φ⁻¹(0.75)).
MAD_TO_SD = 1.4826
#: Median − 10th percentile of a normal distribution, in SDs (−Φ⁻¹(0.1)): the spread of a
#: background from its lower half alone, when the upper half holds the signal.
P10_TO_SD = 1.2816
#: Share of tissue pixels at the minimum value from which a channel counts as clipped.
CLIP_FRACTION = 0.2
#: Upper end (cumulative share) of the background distribution used by the clipped fit.
_CLIP_FIT_UPPER = 0.75


# ------------------------------------------------------------------------------------------
# Block reduction
# ------------------------------------------------------------------------------------------


def block_sum(arr: np.ndarray, factor: int) -> np.ndarray:
    """Sum over ``factor × factor`` blocks of the first two axes; edge blocks may be partial.

    Booleans are counted (int32); float64 stays float64, everything else is summed in
    float32. Trailing axes (channels) are kept. Done as 2 × ``factor`` strided additions,
    several times faster than ``np.add.reduceat`` or a 4D reshape on large images.

    Parameters
    ----------
    arr : numpy.ndarray
        (Y, X) or (Y, X, C) array.
    factor : int
        Block side in pixels.

    Returns
    -------
    numpy.ndarray
        ``ceil(Y / factor) × ceil(X / factor)`` block sums (channels kept).
    """
    arr = np.asarray(arr)
    if arr.dtype == bool:
        dtype = np.int32
    elif arr.dtype == np.float64:
        dtype = np.float64
    else:
        dtype = np.float32
    return _block_reduce(arr, factor, dtype, np.add)


def block_counts(shape: tuple[int, ...], factor: int) -> np.ndarray:
    """Return the number of pixels in each block of :func:`block_sum` (smaller at the far edges).

    Parameters
    ----------
    shape : tuple of int
        Shape of the summed array (only the first two axes count).
    factor : int
        Block side in pixels.

    Returns
    -------
    numpy.ndarray
        Pixel count per block, of the shape :func:`block_sum` gives.
    """
    f = max(1, int(factor))
    ny = np.diff(np.append(np.arange(0, shape[0], f), shape[0]))
    nx = np.diff(np.append(np.arange(0, shape[1], f), shape[1]))
    return np.outer(ny, nx).astype(np.float32)


def block_mean(arr: np.ndarray, factor: int, *, copy: bool = True) -> np.ndarray:
    """Mean over ``factor × factor`` blocks, float32; a partial edge block averages its pixels.

    Works on (Y, X) and (Y, X, C) arrays; ``factor ≤ 1`` returns a float32 copy, or with
    ``copy=False`` the float32 input itself (no full-size copy on a hot path; the caller
    then must not write into the result).

    Parameters
    ----------
    arr : numpy.ndarray
        (Y, X) or (Y, X, C) array.
    factor : int
        Block side in pixels.
    copy : bool
        Whether ``factor ≤ 1`` on float32 input returns a copy.

    Returns
    -------
    numpy.ndarray
        float32 block means, ``ceil(Y / factor) × ceil(X / factor)`` (channels kept).
    """
    arr = np.asarray(arr)
    if int(factor) <= 1:
        return arr.astype(np.float32, copy=copy)
    s = block_sum(arr, factor)
    n = block_counts(arr.shape, factor)
    if s.ndim > 2:
        n = n.reshape(n.shape + (1,) * (s.ndim - 2))
    return (s / n).astype(np.float32, copy=False)


def block_any(mask: np.ndarray, factor: int, min_fraction: float | None = None) -> np.ndarray:
    """Boolean block reduction of ``mask`` over ``factor × factor`` blocks.

    Parameters
    ----------
    mask : numpy.ndarray
        2D mask (any dtype; non-zero is True).
    factor : int
        Block side in pixels; ``≤ 1`` returns a boolean copy.
    min_fraction : float, optional
        ``None`` (default): a block is True when it holds at least one True pixel (a mask
        drawn at low resolution must not lose thin structures). A number: a block is True
        when at least this share of its pixels is True (``0.5``: the majority rule, for a
        tissue mask whose edge blocks must be mostly tissue to count); a partial edge block
        counts the pixels it holds.

    Returns
    -------
    numpy.ndarray of bool
    """
    if min_fraction is None:
        return _block_reduce(np.asarray(mask, dtype=bool), factor, bool, np.logical_or)
    if int(factor) <= 1:
        return np.asarray(mask, bool).copy()
    return block_mean(np.asarray(mask, np.uint8), factor) >= min_fraction


def _block_reduce(arr: np.ndarray, f: int, dtype: DTypeLike, op: np.ufunc) -> np.ndarray:
    h, w = arr.shape[:2]
    rest = arr.shape[2:]
    f = max(1, int(f))
    ny, nx = -(-h // f), -(-w // f)
    rows = np.zeros((ny, w, *rest), dtype=dtype)
    for i in range(min(f, h)):
        part = arr[i::f]
        op(rows[: part.shape[0]], part, out=rows[: part.shape[0]])
    out = np.zeros((ny, nx, *rest), dtype=dtype)
    for j in range(min(f, w)):
        part = rows[:, j::f]
        op(out[:, : part.shape[1]], part, out=out[:, : part.shape[1]])
    return out


# ------------------------------------------------------------------------------------------
# Robust location and scale
# ------------------------------------------------------------------------------------------


def robust_location_scale(values: np.ndarray, clip_sd: float = 3.0,
                          iterations: int = 5) -> tuple[float, float]:
    """Return the median and MAD-based SD of ``values`` after iterative clipping of high outliers.

    Values more than ``clip_sd`` SDs above the median are dropped and the statistics
    recomputed, up to ``iterations`` times. Low values are kept: a background has no
    negative outliers that signal would create.

    Parameters
    ----------
    values : numpy.ndarray
        The sample (any shape; NaN is not expected).
    clip_sd : float
        Clip at the median plus this many SDs.
    iterations : int
        Most clipping rounds.

    Returns
    -------
    (location, sd) : tuple of float
        ``nan, nan`` when ``values`` is empty.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    n = v.size
    if n == 0:
        return float("nan"), float("nan")
    # Sorted once, every clipping round is a prefix of ``v``: its median is two look-ups and
    # its MAD a rank search, instead of two partitions of the whole sample per round.
    loc = _median_of_sorted(v[:n])
    sd = MAD_TO_SD * _mad_of_sorted(v[:n], loc)
    for _ in range(iterations):
        if sd <= 0:
            break
        m = min(n, int(np.searchsorted(v, loc + clip_sd * sd, side="right")))
        if m == n or m == 0:
            break
        n = m
        loc = _median_of_sorted(v[:n])
        sd = MAD_TO_SD * _mad_of_sorted(v[:n], loc)
    return loc, sd


def clipped_median_along(values: np.ndarray, clip_sd: float = 2.5,
                         iterations: int = 5) -> np.ndarray:
    """Return the row-wise :func:`robust_location_scale` location of a 2D array with NaN for gaps.

    The float32 median of each row after iteratively setting values more than ``clip_sd``
    MAD-based SDs above it to NaN; a row whose spread is 0, or that would lose every value,
    keeps its values. All-NaN rows give NaN.

    Parameters
    ----------
    values : numpy.ndarray
        (N, M) array; NaN marks a missing value.
    clip_sd : float
        Clip at the median plus this many SDs.
    iterations : int
        Most clipping rounds.

    Returns
    -------
    numpy.ndarray
        float32 location of each of the N rows.
    """
    v = np.array(values, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        loc = np.nanmedian(v, axis=-1)
        for _ in range(iterations):
            sd = MAD_TO_SD * np.nanmedian(np.abs(v - loc[:, None]), axis=-1)
            high = v > (loc + clip_sd * sd)[:, None]
            # keep rows whose spread is 0 or whose whole row would go
            high &= (sd > 0)[:, None]
            high &= (np.isfinite(v) & ~high).any(axis=-1)[:, None]
            if not high.any():
                break
            v[high] = np.nan
            loc = np.nanmedian(v, axis=-1)
    return loc.astype(np.float32)


def _median_of_sorted(v: np.ndarray) -> float:
    n = v.size
    return float(0.5 * (v[(n - 1) // 2] + v[n // 2]))


def _mad_of_sorted(v: np.ndarray, loc: float) -> float:
    """Median of ``|v - loc|`` for sorted ``v``: the deviations are two sorted runs."""
    i = int(np.searchsorted(v, loc, side="left"))
    below = loc - v[:i][::-1]  # ascending
    above = v[i:] - loc  # ascending
    n = v.size
    return float(0.5 * (_kth_of_two(below, above, (n - 1) // 2)
                        + _kth_of_two(below, above, n // 2)))


def _kth_of_two(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Return the ``k``-th smallest (0-based) element of the union of sorted ``a`` and ``b``."""
    lo, hi = max(0, k + 1 - b.size), min(k + 1, a.size)
    while lo < hi:
        i = (lo + hi) // 2
        j = k + 1 - i
        if j > 0 and i < a.size and b[j - 1] > a[i]:
            lo = i + 1
        else:
            hi = i
    i, j = lo, k + 1 - lo
    last_a = a[i - 1] if i > 0 else -np.inf
    last_b = b[j - 1] if j > 0 else -np.inf
    return float(max(last_a, last_b))


def lower_half_sd(values: np.ndarray, level: float | None = None) -> float:
    """SD of a background from the values below its level: (level − 10th percentile) / 1.2816.

    For data whose signal only adds (stained somata on flattened neuropil, bright cells on a
    dark background), the lower half of the distribution is background alone.

    Parameters
    ----------
    values : ndarray
        Pixel values (any shape).
    level : float, optional
        The background level (default: the median of ``values``).

    Returns
    -------
    float
        Never negative.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0
    if level is None:
        p10, level = np.percentile(v, [10, 50])
    else:
        p10 = np.percentile(v, 10)
    return float(max(0.0, (float(level) - float(p10)) / P10_TO_SD))


def sigma_clipped_background(values: np.ndarray, *, n_iter: int = 6, clip: float = 3.0,
                             max_samples: int = 250_000) -> tuple[float, float]:
    """Return the level and spread of the background among ``values`` by iterative sigma clipping.

    Objects are the bright tail; clipping at median + ``clip`` × robust σ and repeating
    converges to the background mode as long as background is a sizeable share of the values.
    The spread is ``MAD_TO_SD`` × the median absolute deviation (σ of a normal
    distribution), and never less than that of the values below the level (the one-sided
    clip trims the upper tail of the noise too). Unlike :func:`background_stats` (one
    channel's tissue pixels, quantisation floor, zero-clipped channels) this is for a
    residual that is already background-subtracted (nuclei, GFP objects).

    Parameters
    ----------
    values : numpy.ndarray
        The values (any shape; NaN and infinite values are ignored).
    n_iter : int
        Most clipping rounds.
    clip : float
        Clip at the level plus this many σ.
    max_samples : int
        At most this many values are used (a regular subsample).

    Returns
    -------
    level, sigma : float
        ``0.0, 0.0`` when no value is finite.
    """
    v = np.asarray(values, np.float32).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 0.0
    if v.size > max_samples:
        # an evenly strided subsample: as good as a random one for a median, and far cheaper
        v = v[:: -(-v.size // max_samples)]
    level, sigma = float(np.median(v)), 0.0
    for _ in range(n_iter):
        sigma = MAD_TO_SD * float(np.median(np.abs(v - level)))
        if sigma <= 0:
            break
        keep = v < level + clip * sigma
        if keep.all() or keep.sum() < 16:
            break
        v = v[keep]
        level = float(np.median(v))
    # a one-sided clip trims the upper tail of the noise too; the lower side is untouched
    lower = v[v <= level]
    if lower.size > 16:
        sigma = max(sigma, MAD_TO_SD * float(np.median(level - lower)))
    return level, sigma


def sample_pixels(arr: np.ndarray, mask: np.ndarray | None = None,
                  max_samples: int = 250_000) -> np.ndarray:
    """Return a regular (deterministic) subsample of the pixels of ``arr`` inside ``mask``.

    Strides the image so that about ``max_samples`` pixels of the mask are kept: enough for a
    median to 0.3 % of an SD, and fast on whole-slide images.

    Parameters
    ----------
    arr : numpy.ndarray
        (Y, X) image.
    mask : numpy.ndarray, optional
        Boolean (Y, X) mask of the pixels to sample; every pixel when not given.
    max_samples : int
        About how many pixels to keep.

    Returns
    -------
    numpy.ndarray
        1D array of the sampled values.
    """
    n = int(mask.sum()) if mask is not None else arr.size
    step = max(1, int(np.sqrt(n / max(max_samples, 1))))
    sub = arr[::step, ::step]
    if mask is None:
        return sub.ravel()
    return sub[mask[::step, ::step]]


# ------------------------------------------------------------------------------------------
# Quantisation, noise floor, clipped backgrounds, thresholds
# ------------------------------------------------------------------------------------------


def quantisation_step(values: np.ndarray, dtype: np.dtype | None = None) -> float:
    """Return the data's quantisation step: the greatest common divisor of its value differences.

    1 for 8-bit data and for 12-bit data stored in 16 bits; 16 for 12-bit data scaled into 16
    bits (every value a multiple of 16 apart). Float data holding only integers (a
    projection or a converted copy) also have step 1; genuinely continuous data have none
    (0.0). ``dtype`` is the original data type when ``values`` were already converted.

    Parameters
    ----------
    values : numpy.ndarray
        A sample of the pixel values (a few thousand distinct levels are plenty).
    dtype : numpy.dtype, optional
        Data type of the image the values come from.

    Returns
    -------
    float
        The step in grey levels; 0.0 for continuous data.
    """
    v = np.asarray(values).ravel()
    v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
    if v.size == 0:
        return 0.0
    u = np.unique(v)
    if u.size < 2:
        kind = np.dtype(dtype or v.dtype).kind
        return 1.0 if kind in "ui" else 0.0
    d = np.diff(u.astype(np.float64))
    if not np.all(d == np.round(d)) or not np.all(u == np.round(u)):
        return 0.0
    g = int(np.gcd.reduce(d.astype(np.int64)))
    return float(max(g, 1))


def noise_floor(step: float) -> float:
    """Return the smallest noise SD ever used: one quantisation step (see the module notes).

    Parameters
    ----------
    step : float
        The quantisation step (:func:`quantisation_step`).

    Returns
    -------
    float
        ``step``, or 0.0 for continuous data.
    """
    return float(step) if step > 0 else 0.0


@dataclass(frozen=True)
class BackgroundStats:
    """Background level and noise of a channel's tissue pixels, and how they were found.

    Attributes
    ----------
    level : float
        Background mean (median for a symmetric background; the fitted mean for a clipped one,
        which may lie below the clip).
    sd : float
        Noise SD, never below ``floor``.
    raw_sd : float
        The SD as measured, before the floor.
    step : float
        Quantisation step of the data (0 for continuous data).
    floor : float
        The SD floor applied (one step).
    clipped_fraction : float
        Share of the pixels at the minimum value.
    method : str
        ``"mad"`` (median and MAD with high-outlier clipping) or ``"clipped"`` (censored normal
        fit for a zero-clipped channel).
    n : int
        Number of pixels used.
    """

    level: float
    sd: float
    raw_sd: float
    step: float
    floor: float
    clipped_fraction: float
    method: str
    n: int

    @property
    def floored(self) -> bool:
        """True when the noise floor, not the data, set the SD."""
        return self.raw_sd < self.floor


def background_stats(values: np.ndarray, *, step: float | None = None,
                     dtype: np.dtype | None = None, clip_sd: float = 3.0,
                     clip_fraction: float = CLIP_FRACTION) -> BackgroundStats:
    """Background level and noise SD of tissue pixel values, robust to signal and clipping.

    Parameters
    ----------
    values : numpy.ndarray
        Tissue pixel values (padding already left out; see :func:`tissue_support`).
    step : float, optional
        Quantisation step; measured from ``values`` when omitted.
    dtype : numpy.dtype, optional
        Data type of the image (for the step of a constant sample).
    clip_sd : float
        High-outlier clipping of the symmetric estimate (SDs above the median).
    clip_fraction : float
        Share of the pixels at the minimum from which the channel is treated as clipped.

    Returns
    -------
    BackgroundStats
    """
    orig_dtype = np.dtype(dtype) if dtype is not None else np.asarray(values).dtype
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if step is None:
        step = quantisation_step(v, orig_dtype)
    floor = noise_floor(step)
    if v.size == 0:
        nan = float("nan")
        return BackgroundStats(nan, nan, nan, step, floor, 0.0, "mad", 0)
    lo = float(v.min())
    at_min = float(np.mean(v <= lo))
    if at_min >= clip_fraction and v.size >= 20:
        fit = _censored_normal(v, lo, step)
        if fit is not None:
            level, sd = fit
            return BackgroundStats(level, max(sd, floor), sd, step, floor, at_min, "clipped",
                                   int(v.size))
    level, sd = robust_location_scale(v, clip_sd=clip_sd)
    return BackgroundStats(level, max(sd, floor), sd, step, floor, at_min, "mad", int(v.size))


def _censored_normal(v: np.ndarray, clip: float, step: float) -> tuple[float, float] | None:
    """Mean and SD of a normal distribution censored at ``clip``, from its lower 75 %.

    Probit regression: at each value ``x`` from the clip upwards, the empirical share of
    pixels ≤ ``x`` is Φ((x' − μ)/σ), where x' is the upper edge of the quantisation bin
    (x + step/2); a straight line through (Φ⁻¹(F), x') gives σ (slope) and μ (intercept).
    Only the fraction at the clip and the values above it enter; the bright upper quarter
    (signal) does not.
    """
    v = np.sort(v)
    n = v.size
    if step > 0:
        levels = np.unique(v)
        levels = levels[:64]
        cdf = np.searchsorted(v, levels, side="right") / n
        xs = levels + step / 2
    else:
        probs = np.linspace(np.mean(v <= clip), _CLIP_FIT_UPPER, 10)
        xs = np.quantile(v, probs)
        cdf = np.searchsorted(v, xs, side="right") / n
    use = cdf < 1.0
    below = use & (cdf <= _CLIP_FIT_UPPER)
    # at least two points: the clip and the next level even when it passes 75 %
    if below.sum() < 2:
        below = use & (np.arange(cdf.size) < 2)
    if below.sum() < 2:
        return None
    z = ndtri(cdf[below])
    x = xs[below]
    slope, intercept = np.polyfit(z, x, 1)
    if not (np.isfinite(slope) and slope > 0):
        return None
    return float(intercept), float(slope)


def threshold_above(stats: BackgroundStats, k: float) -> float:
    """Return ``level + k × sd``: with the SD floor, never fewer than ``k`` steps above the level.

    Parameters
    ----------
    stats : BackgroundStats
        A channel's background level and noise.
    k : float
        How many SDs above the level.

    Returns
    -------
    float
        The threshold, in the channel's grey levels.
    """
    return float(stats.level + k * stats.sd)


def tissue_support(pixels: np.ndarray, support: np.ndarray | None = None,
                   padding: np.ndarray | None = None) -> np.ndarray:
    """Return the pixels statistics may use: ``support`` (or everything) minus the padding.

    ``pixels`` is the whole image, (Y, X) or (Y, X, C) — all channels, so that a channel clipped
    at zero is not taken for padding where the others still vary. ``padding`` may be given
    when already computed. When the padding would leave nothing, the support is returned
    unchanged (an image that is all one colour is for the caller's emptiness checks).

    Parameters
    ----------
    pixels : numpy.ndarray
        The image, (Y, X) or (Y, X, C).
    support : numpy.ndarray, optional
        Boolean (Y, X) mask of the pixels of interest (tissue); every pixel when not given.
    padding : numpy.ndarray, optional
        Boolean (Y, X) padding mask (:func:`~histoquant.segment.padding.find_padding`);
        computed when not given.

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) mask.
    """
    if padding is None:
        from .padding import find_padding

        padding = find_padding(pixels)
    shape = padding.shape
    base = np.ones(shape, bool) if support is None else np.asarray(support, bool)
    out = base & ~padding
    return out if out.any() else base

