"""Stain separation for brightfield images: optical density and one-stain colour deconvolution.

Beer–Lambert: a stain of concentration ``c`` with unit optical-density colour ``v`` turns the
light ``I0`` into ``I = I0 · 10^(-c v)`` per channel, so the optical density
``OD = -log10(I / I0)`` is ``c v`` and the stain amount is the projection ``c = OD · v``
(``|v| = 1``). For one stain that projection is the least-squares colour deconvolution
(Ruifrok & Johnston 2001), without a residual channel.

The images can be larger than memory allows to convert to float at once, so
:func:`stain_density` works in row strips and can average blocks of pixels as it goes
(``factor``): it never holds more than one strip of float data beside its output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ChannelError, EmptyImageError
from ..io.image import value_scale
from .statistics import block_mean

__all__ = ["CRESYL_VIOLET_OD", "unit_vector", "estimate_white", "estimate_stain_vector",
           "stain_density", "optical_density"]

#: Optical-density colour of cresyl violet (R, G, B), unit length. Measured as the mean
#: direction of the darkest 1 % of pixels (by OD sum) of four real Nissl fields: two of rat
#: cortex (0.64, 0.75, 0.18; 0.66, 0.73, 0.18), a spinal ventral horn (0.53, 0.79, 0.31) and
#: spinal white matter (0.57, 0.76, 0.31). No published cresyl-violet vector exists; the
#: haematoxylin-like (0.65, 0.70, 0.29) of Ruifrok & Johnston is close to it.
CRESYL_VIOLET_OD = (0.60, 0.76, 0.24)

# Below this many grey levels (of 255) a pixel is called saturated dark: its OD is unreliable.
_DARK_FLOOR = 1.0


def unit_vector(v: Sequence[float]) -> np.ndarray:
    """Return ``v`` scaled to unit length (float64).

    Parameters
    ----------
    v : sequence of float
        A 3-vector (an OD colour).

    Returns
    -------
    numpy.ndarray
        The unit 3-vector.

    Raises
    ------
    ChannelError
        For a zero vector or one that is not 3 long.
    """
    a = np.asarray(v, dtype=np.float64).ravel()
    n = float(np.linalg.norm(a)) if a.size == 3 else 0.0
    if a.size != 3 or not np.isfinite(n) or n == 0:
        raise ChannelError(f"a stain vector needs three finite numbers (R, G, B) not all zero; "
                           f"got {list(np.ravel(v))}")
    return a / n


def _sample(rgb: ArrayLike, max_pixels: int = 250_000) -> np.ndarray:
    """Return a strided subsample of an RGB array (works on lazy arrays) as (N, 3) float32."""
    h, w = rgb.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    return np.asarray(rgb[::step, ::step, :3], dtype=np.float32).reshape(-1, 3)


def estimate_white(rgb: ArrayLike, percentile: float = 99.0) -> np.ndarray:
    """Return the per-channel intensity of unstained light (``I0``).

    The ``percentile`` of each channel over a subsample: on a slide with glass in the field
    that is the glass, in a field full of tissue it is the palest neuropil — either way the
    density is then measured relative to it, and the background correction of the assay
    removes what remains. Never above the full-brightness value, never below 1 (on an 8- or
    16-bit scale). Float pixels are on the scale their values show (0–1, 0–255 or 0–65535,
    see :func:`histoquant.io.image.value_scale`), not assumed to be 0–1.

    Parameters
    ----------
    rgb : array_like
        (Y, X, 3) RGB image (a lazy array is read by subsample).
    percentile : float
        Percentile of each channel taken as white.

    Returns
    -------
    numpy.ndarray
        Three intensities, on the image's scale.
    """
    s = _sample(rgb)
    dtype = np.asarray(rgb[:1, :1]).dtype
    if np.issubdtype(dtype, np.floating) and not np.isfinite(s).all():
        raise EmptyImageError("the image holds NaN or infinite values; fill or mask them "
                              "before analysis")
    top = value_scale(s, dtype)
    white = np.percentile(s, percentile, axis=0)
    return np.clip(white, 1e-6 if top == 1.0 else 1.0, top).astype(np.float64)


def optical_density(pixels: np.ndarray, white: Sequence[float]) -> np.ndarray:
    """Return the optical density ``-log10(I / I0)`` per channel (float32), clipped at 0.

    Values at or below ``_DARK_FLOOR`` grey levels (of 255) are treated as that floor, so a
    saturated pixel gives a large finite density rather than infinity.

    Parameters
    ----------
    pixels : numpy.ndarray
        (..., 3) RGB values.
    white : sequence of float
        ``I0`` per channel (:func:`estimate_white`).

    Returns
    -------
    numpy.ndarray
        float32 OD of the shape of ``pixels``.
    """
    white = np.asarray(white, dtype=np.float32)
    floor = np.float32(_DARK_FLOOR / 255.0) * white.max()
    p = np.maximum(np.asarray(pixels, dtype=np.float32), floor)
    od = -np.log10(p / white)
    return np.maximum(od, 0, out=od)


def estimate_stain_vector(rgb: ArrayLike, white: Sequence[float] | None = None,
                          fraction: float = 0.01,
                          fallback: Sequence[float] = CRESYL_VIOLET_OD) -> np.ndarray:
    """Return the stain's OD colour measured in this image (one-stain Macenko-like estimate).

    The mean OD direction of the ``fraction`` of pixels with the largest OD (excluding
    saturated ones): in a Nissl section those are Nissl bodies and glial nuclei, which carry
    the purest stain colour. Falls back to ``fallback`` when the image has too little stain
    for a stable estimate (fewer than 200 stained pixels, or a direction more than 25° from the
    fallback, which means the darkest pixels are not the stain — dust, pigment, a fold).

    Parameters
    ----------
    rgb : array_like
        (Y, X, 3) RGB image (a lazy array is read by subsample).
    white : sequence of float, optional
        ``I0`` per channel; estimated (:func:`estimate_white`) when not given.
    fraction : float
        Share of the stained pixels, the densest, whose colour is averaged.
    fallback : sequence of float
        The OD colour used when the estimate is unstable.

    Returns
    -------
    numpy.ndarray
        Unit OD 3-vector of the stain.
    """
    white = estimate_white(rgb) if white is None else np.asarray(white, np.float64)
    od = optical_density(_sample(rgb), white)
    total = od.sum(axis=1)
    stained = total > 0.15 * 3
    fb = unit_vector(fallback)
    if stained.sum() < 200:
        return fb
    cut = np.quantile(total[stained], 1.0 - fraction)
    top = od[stained & (total >= cut) & (total < 3 * np.log10(255.0) * 0.95)]
    if len(top) < 50:
        return fb
    v = unit_vector(top.mean(axis=0))
    if np.degrees(np.arccos(np.clip(v @ fb, -1, 1))) > 25.0:
        return fb
    return v


def _lut_density(block: np.ndarray, white: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Stain density of a uint8 block through per-channel lookup tables (fast path)."""
    levels = np.maximum(np.arange(256, dtype=np.float64), _DARK_FLOOR)
    out = None
    for c in range(3):
        lut = (np.maximum(-np.log10(levels / white[c]), 0.0) * v[c]).astype(np.float32)
        term = lut[block[..., c]]
        if out is None:
            out = term
        else:
            out += term
    return out


def stain_density(rgb: ArrayLike, stain_vector: Sequence[float] = CRESYL_VIOLET_OD,
                  white: Sequence[float] | None = None, *, factor: int = 1,
                  strip_pixels: int = 1 << 18) -> np.ndarray:
    """Amount of one stain per pixel (optical-density units), optionally block-averaged.

    Parameters
    ----------
    rgb : array_like, shape (Y, X, 3)
        Brightfield RGB image, any integer or float dtype; NumPy, Zarr or Dask (read strip
        by strip).
    stain_vector : sequence of 3 float
        OD colour of the stain (made unit length).
    white : sequence of 3 float, optional
        Light intensity without stain per channel; :func:`estimate_white` when omitted.
    factor : int
        Average ``factor × factor`` blocks: the output is ``ceil(Y/factor) × ceil(X/factor)``.
        Averaging OD (not intensity) keeps the density additive.
    strip_pixels : int
        About how many pixels are converted at a time (whole rows, a multiple of ``factor``);
        bounds the temporary memory.

    Returns
    -------
    ndarray of float32
        Stain density, ≥ 0 where the pixel is darker than ``white``.
    """
    if len(rgb.shape) != 3 or rgb.shape[2] < 3:
        raise ChannelError(f"an RGB image (Y, X, 3) is needed, got shape {tuple(rgb.shape)}")
    v = unit_vector(stain_vector)
    white = estimate_white(rgb) if white is None else np.asarray(white, dtype=np.float64)
    factor = max(1, int(factor))
    h, w = int(rgb.shape[0]), int(rgb.shape[1])
    ho, wo = -(-h // factor), -(-w // factor)
    out = np.empty((ho, wo), dtype=np.float32)
    strip = max(factor, (max(1, strip_pixels // max(w, 1)) // factor) * factor)
    is_u8 = np.dtype(rgb.dtype) == np.uint8
    for r0 in range(0, h, strip):
        r1 = min(h, r0 + strip)
        block = np.asarray(rgb[r0:r1, :, :3])
        if is_u8:
            dens = _lut_density(block, white, v)
        else:
            if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
                raise EmptyImageError("the image holds NaN or infinite values; fill or mask "
                                      "them before analysis")
            dens = optical_density(block, white) @ v.astype(np.float32)
        if factor > 1:
            dens = block_mean(dens, factor)
        out[r0 // factor: r0 // factor + dens.shape[0]] = dens
    return out
