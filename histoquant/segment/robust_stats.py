"""Robust location and spread of a background that bright signal occupies in part.

The median and the median absolute deviation (MAD, scaled by 1.4826 to equal the SD of a
normal distribution) ignore a minority of outliers; clipping values far above the median and
recomputing removes the upward pull that a large bright minority (a big leak) still exerts.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["MAD_TO_SD", "robust_location_scale", "clipped_median_along", "sample_pixels"]

# One definition of each, in segment.statistics; kept importable from here.
from .statistics import MAD_TO_SD, robust_location_scale, sample_pixels


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

