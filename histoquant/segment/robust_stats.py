"""Robust location and spread of a background that bright signal occupies in part.

The median and the median absolute deviation (MAD, scaled by 1.4826 to equal the SD of a
normal distribution) ignore a minority of outliers; clipping values far above the median and
recomputing removes the upward pull that a large bright minority (a big leak) still exerts.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["MAD_TO_SD", "robust_location_scale", "clipped_median_along", "sample_pixels"]

MAD_TO_SD = 1.4826


def robust_location_scale(values: np.ndarray, clip_sd: float = 3.0,
                          iterations: int = 5) -> tuple[float, float]:
    """Median and MAD-based SD of ``values`` after iterative clipping of high outliers.

    Values more than ``clip_sd`` SDs above the median are dropped and the statistics
    recomputed, up to ``iterations`` times. Low values are kept: a background has no
    negative outliers that signal would create.

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
    """The ``k``-th smallest (0-based) element of the union of sorted ``a`` and ``b``."""
    # Binary search for how many of the k + 1 smallest come from ``a``.
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


def clipped_median_along(values: np.ndarray, clip_sd: float = 2.5,
                         iterations: int = 5) -> np.ndarray:
    """Row-wise :func:`robust_location_scale` location of a 2D array holding NaN for gaps."""
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


def sample_pixels(arr: np.ndarray, mask: np.ndarray | None = None,
                  max_samples: int = 250_000) -> np.ndarray:
    """A regular (deterministic) subsample of the pixels of ``arr`` inside ``mask``.

    Strides the image so that about ``max_samples`` pixels of the mask are kept: enough for a
    median to 0.3 % of an SD, and fast on whole-slide images.
    """
    n = int(mask.sum()) if mask is not None else arr.size
    step = max(1, int(np.sqrt(n / max_samples)))
    sub = arr[::step, ::step]
    if mask is None:
        return sub.ravel()
    return sub[mask[::step, ::step]]

