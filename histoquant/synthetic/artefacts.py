"""What real images have and clean phantoms lack: padding, tile seams, JPEG, fluorescence RGB.

Each helper takes pixels (``(Y, X)`` or ``(Y, X, C)``) and returns new pixels (and, where the
geometry changes, the offset of the original inside the new array), so a phantom's truth can
be carried along. They are what a test needs to check that an assay measured on a padded,
JPEG-compressed RGB export of a phantom gives the figures of the clean phantom.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["add_padding", "add_tile_seams", "jpeg_roundtrip", "as_fluorescence_rgb",
           "round_field_of_view", "to_uint8"]


def add_padding(pixels: np.ndarray, width_px: int | tuple[int, int, int, int],
                value: float | tuple[float, ...] = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Put ``pixels`` on a canvas of one constant colour ``value``, ``width_px`` wide.

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X) or (Y, X, C).
    width_px : int or (top, bottom, left, right)
        Canvas width on each side, in pixels.
    value : float or tuple of float
        Canvas colour (one value, or one per channel): 0 for black, mid-grey for a
        slide-scanner export.

    Returns
    -------
    padded, (dy, dx) : numpy.ndarray, tuple of int
        The new pixels and where the original's (0, 0) lies in them.
    """
    t, b, left, r = (width_px,) * 4 if np.isscalar(width_px) else width_px
    pad = [(t, b), (left, r)] + [(0, 0)] * (pixels.ndim - 2)
    out = np.pad(pixels, pad, mode="constant")
    canvas = np.ones(out.shape[:2], bool)
    canvas[t:t + pixels.shape[0], left:left + pixels.shape[1]] = False
    out[canvas] = np.asarray(value, dtype=out.dtype)
    return out, (t, left)


def add_tile_seams(pixels: np.ndarray, tile_px: int, width_px: int = 2,
                   value: float | tuple[float, ...] = 0,
                   empty_tiles: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """Draw a mosaic's tile frames (lines ``width_px`` wide every ``tile_px``) and blank tiles.

    ``empty_tiles`` lists (row, column) of tiles set wholly to ``value``: a tile the scanner
    skipped.

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X) or (Y, X, C) image (not changed).
    tile_px : int
        Tile side in pixels.
    width_px : int
        Width of the frame lines in pixels.
    value : float or tuple of float
        Value of frames and blank tiles (one per channel, or one for all).
    empty_tiles : tuple of (int, int)
        (row, column) indices of blank tiles.

    Returns
    -------
    numpy.ndarray
        A copy with the frames and blank tiles drawn.
    """
    out = pixels.copy()
    v = np.asarray(value, dtype=out.dtype)
    for y in range(tile_px, out.shape[0], tile_px):
        out[y:y + width_px] = v
    for x in range(tile_px, out.shape[1], tile_px):
        out[:, x:x + width_px] = v
    for ty, tx in empty_tiles:
        out[ty * tile_px:(ty + 1) * tile_px, tx * tile_px:(tx + 1) * tile_px] = v
    return out


def round_field_of_view(pixels: np.ndarray, radius_fraction: float = 0.48,
                        value: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Set everything outside a centred disk to ``value``, as a round field of view.

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X) or (Y, X, C) image (not changed).
    radius_fraction : float
        Radius of the disk as a fraction of the image's shorter side.
    value : float
        Value outside the disk.

    Returns
    -------
    pixels : numpy.ndarray
        A copy with the outside set to ``value``.
    inside : numpy.ndarray
        Boolean (Y, X) mask of the disk.
    """
    ny, nx = pixels.shape[:2]
    yy, xx = np.mgrid[:ny, :nx]
    r = radius_fraction * min(ny, nx) * 2 / 2
    inside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 <= r ** 2
    out = pixels.copy()
    out[~inside] = value
    return out, inside


def to_uint8(pixels: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Scale linearly to 8 bits, ``lo`` → 0 and ``hi`` → 255 (clipped), as an export does.

    ``lo``/``hi`` default to the 0.1 and 99.9 percentiles of each channel. Values under ``lo``
    clip to 0: the zero-clipped background of real 8-bit exports.

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X) or (Y, X, C) image of any dtype.
    lo, hi : float, optional
        The values mapped to 0 and 255.

    Returns
    -------
    numpy.ndarray
        uint8 image of the same shape.
    """
    p = np.asarray(pixels, dtype=np.float64)
    if p.ndim == 2:
        p = p[..., None]
    out = np.empty(p.shape, np.uint8)
    for c in range(p.shape[-1]):
        a = np.percentile(p[..., c], 0.1) if lo is None else lo
        b = np.percentile(p[..., c], 99.9) if hi is None else hi
        scale = 255.0 / max(b - a, 1e-12)
        out[..., c] = np.clip(np.round((p[..., c] - a) * scale), 0, 255).astype(np.uint8)
    return out[..., 0] if np.ndim(pixels) == 2 else out


def as_fluorescence_rgb(channels: dict[str, np.ndarray] | list[np.ndarray],
                        colours: tuple[str, ...] = ("R", "G", "B")) -> np.ndarray:
    """Merge fluorescence channels into an 8-bit RGB export (a "composite" saved as RGB).

    Each channel (any dtype) is scaled to 8 bits with :func:`to_uint8` and put into the RGB
    plane named in ``colours`` (several into one plane add, clipped at 255). The background
    stays near black, as in every fluorescence export.

    Parameters
    ----------
    channels : dict of str to numpy.ndarray, or list of numpy.ndarray
        The (Y, X) channels, in order.
    colours : tuple of {"R", "G", "B"}
        The plane of each channel.

    Returns
    -------
    numpy.ndarray
        (Y, X, 3) uint8 image.
    """
    chans = list(channels.values()) if isinstance(channels, dict) else list(channels)
    shape = chans[0].shape[:2]
    rgb = np.zeros((*shape, 3), np.float64)
    for ch, colour in zip(chans, colours):
        rgb[..., "RGB".index(colour)] += to_uint8(ch)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def jpeg_roundtrip(pixels: np.ndarray, quality: int = 85) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode: block artefacts and 8-bit quantisation.

    ``pixels`` must be uint8 (Y, X) or (Y, X, 3): what a JPEG can hold.

    Parameters
    ----------
    pixels : numpy.ndarray
        uint8 image.
    quality : int
        JPEG quality (1–95).

    Returns
    -------
    numpy.ndarray
        The decoded uint8 image.
    """
    from PIL import Image as PILImage

    if pixels.dtype != np.uint8:
        raise ValueError("jpeg_roundtrip needs uint8 pixels; scale with to_uint8 first")
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(PILImage.open(buf)).copy()
