"""Rays through binary masks: how far a ray runs inside, where it first meets the mask.

Widths across a centreline, end corrections and pericyte cover are all measured by
stepping along short rays through a mask. Each ray stops where its answer is known, so the
cost is the length actually walked (a few pixels per ray), not the longest ray of a batch.

A sample at sub-pixel position (row, col) reads the pixel whose centre is nearest (halves
round up); positions outside the image read background.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["padded_flat", "run_lengths", "first_hits"]


def padded_flat(mask: np.ndarray) -> np.ndarray:
    """Return ``mask`` with a one-pixel False border, raveled as uint8 (the form the rays read).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.

    Returns
    -------
    numpy.ndarray
        1D uint8 array of ``(Y + 2) * (X + 2)`` values.
    """
    return np.pad(np.asarray(mask, bool), 1).view(np.uint8).ravel()


@njit(cache=True, nogil=True)
def _read(flat, h, w, r, c):
    # nearest pixel in the padded image; everything outside reads the False border
    i = int(min(max(r + 1.5, 0.0), h + 1.0))
    j = int(min(max(c + 1.5, 0.0), w + 1.0))
    return flat[i * (w + 2) + j]


@njit(cache=True, nogil=True)
def _run_lengths(flat, h, w, origins, directions, caps, step, dist, border):
    for n in range(origins.shape[0]):
        r0, c0 = origins[n, 0], origins[n, 1]
        dr, dc = directions[n, 0], directions[n, 1]
        kmax = int(np.ceil(caps[n] / step)) + 2
        k = 1
        while k < kmax:
            if _read(flat, h, w, r0 + dr * k * step, c0 + dc * k * step) == 0:
                break
            k += 1
        dist[n] = (k - 0.5) * step
        fr = np.rint(r0 + dr * k * step)
        fc = np.rint(c0 + dc * k * step)
        border[n] = fr < 0 or fr >= h or fc < 0 or fc >= w


@njit(cache=True, nogil=True)
def _first_hits(flat, h, w, origins, directions, reach, step, out):
    for n in range(origins.shape[0]):
        r0, c0 = origins[n, 0], origins[n, 1]
        dr, dc = directions[n, 0], directions[n, 1]
        k = 0
        while k * step <= reach[n]:
            r = r0 + dr * k * step
            c = c0 + dc * k * step
            if _read(flat, h, w, r, c):
                out[n, 0] = r
                out[n, 1] = c
                break
            k += 1


def run_lengths(flat: np.ndarray, shape: tuple[int, int], origins: np.ndarray,
                directions: np.ndarray, caps: float | np.ndarray, step: float = 0.25
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return the distance (px) from each origin along its direction to the first pixel outside.

    Samples every ``step`` pixels; the edge lies half-way between the last inside sample and
    the first outside one. ``caps`` (a number or one per ray): a ray that is still inside
    after ``cap + 2·step`` stops there.

    Parameters
    ----------
    flat : numpy.ndarray
        The mask as :func:`padded_flat` gives it.
    shape : tuple of int
        Height and width of the mask (unpadded).
    origins : numpy.ndarray
        (N, 2) (row, col) start points in pixels.
    directions : numpy.ndarray
        (N, 2) unit (row, col) directions.
    caps : float or numpy.ndarray
        Longest run in pixels, one for all rays or one per ray.
    step : float
        Sampling step in pixels.

    Returns
    -------
    distance : numpy.ndarray
        Run length in pixels, one per ray.
    border : numpy.ndarray
        Boolean, True where the ray left the image rather than the mask.
    """
    n = len(origins)
    dist = np.zeros(n)
    border = np.zeros(n, bool)
    if n:
        caps = np.ascontiguousarray(np.broadcast_to(np.asarray(caps, np.float64), (n,)))
        _run_lengths(flat, shape[0], shape[1], np.ascontiguousarray(origins, np.float64),
                     np.ascontiguousarray(directions, np.float64), caps, float(step), dist,
                     border)
    return dist, border


def first_hits(flat: np.ndarray, shape: tuple[int, int], origins: np.ndarray,
               directions: np.ndarray, reach: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Return the first sample inside the mask along each ray, from the origin up to ``reach`` px.

    Parameters
    ----------
    flat : numpy.ndarray
        The mask as :func:`padded_flat` gives it.
    shape : tuple of int
        Height and width of the mask (unpadded).
    origins : numpy.ndarray
        (N, 2) (row, col) start points in pixels.
    directions : numpy.ndarray
        (N, 2) unit (row, col) directions.
    reach : numpy.ndarray
        How far each ray looks, in pixels.
    step : float
        Sampling step in pixels.

    Returns
    -------
    numpy.ndarray
        (N, 2) (row, col) of the first sample inside the mask; NaN where a ray meets none.
    """
    n = len(origins)
    out = np.full((n, 2), np.nan)
    if n:
        _first_hits(flat, shape[0], shape[1], np.ascontiguousarray(origins, np.float64),
                    np.ascontiguousarray(directions, np.float64),
                    np.ascontiguousarray(reach, np.float64), float(step), out)
    return out
