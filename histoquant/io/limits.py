"""Limits on what an image file may claim: its size in pixels and its pixel size.

A small file can claim anything in its header: 200,000 × 200,000 pixels in a few hundred
bytes (a "decompression bomb"), 200,000 one-row strips, or a pixel size of 1e-5 µm that makes
an assay size its filters in millions of pixels. Every reader checks the header against the
limits below *before* it reads or allocates pixels, and refuses a file that breaks one with an
error naming the file, the claimed value and the limit; a batch records that error for the
image and goes on with the others.

All limits are module constants, documented in ``docs/architecture.md`` (Images) and
``docs/batch.md`` (Whole slides); change them here (``histoquant.io.limits.NAME = ...``) if a
real file needs more.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, PixelSizeError

__all__ = [
    "MAX_IN_MEMORY_PIXELS",
    "MAX_IMAGE_PIXELS",
    "MAX_COMPRESSION_RATIO",
    "RATIO_CHECK_BYTES",
    "PIXEL_SIZE_LIMITS_UM",
    "PIXEL_SIZE_USUAL_UM",
    "check_image_size",
    "check_pixel_size",
    "stored_bytes",
]

log = logging.getLogger(__name__)

#: Most pixels (Y × X × Z planes; channels not counted) an image may have to be read into
#: memory at once. Larger TIFF and OME-Zarr files are opened lazily (a zarr array read window
#: by window) and a batch measures them tile by tile; larger JPEG/PNG/BMP files, which cannot
#: be read in pieces, are refused. 4e8 pixels is a 20,000 × 20,000 image: 1.2 GB of 8-bit RGB.
#: An assay holds about 40 bytes per pixel at its peak (the RGB pixels, a float32 stain or
#: channel copy, two or three float32 filter temporaries, int32 labels and a few masks), so
#: 4e8 pixels is ≈ 16 GB — what a 24 GB analysis machine can give one image beside the system.
MAX_IN_MEMORY_PIXELS = 400_000_000

#: Most pixels (Y × X × Z) any image may claim, read lazily or not. The largest slide scan
#: histoquant is meant for is a whole 75 × 25 mm slide at 0.25 µm per pixel: 300,000 ×
#: 100,000 = 3e10 pixels; 5e10 leaves room for that and refuses headers larger than any slide.
MAX_IMAGE_PIXELS = 50_000_000_000

#: Most decoded bytes per byte of file. Microscope images compress 2–4× losslessly and 10–50×
#: as JPEG; blank glass reaches a few hundred. Deflate cannot exceed ≈ 1030×, so a file that
#: claims more than 1000× its size in pixels is a decompression bomb or a damaged header
#: (200,000² 8-bit pixels are 40 GB: a file under 40 MB cannot hold them). Checked only when
#: the decoded size exceeds :data:`RATIO_CHECK_BYTES`.
MAX_COMPRESSION_RATIO = 1000.0

#: Decoded sizes up to this many bytes are never refused for their compression ratio: a small
#: blank test image may compress better than any slide, and reading it costs nothing.
RATIO_CHECK_BYTES = 1 << 30

#: Pixel sizes (µm per pixel) outside this range are refused: below 10 nm is finer than any
#: light microscope samples (an assay would size its filters in millions of pixels), above
#: 1 mm a 4 mm spinal cord section spans four pixels. Such a value is a unit or metadata error.
PIXEL_SIZE_LIMITS_UM = (0.01, 1000.0)

#: Pixel sizes outside this range are accepted with a warning naming the file and the value:
#: histology of the spinal cord is imaged at about 0.1–10 µm per pixel (a 100× objective to a
#: slide overview). A value like 333.7 µm is typically 0.3337 µm written with the unit mm.
PIXEL_SIZE_USUAL_UM = (0.05, 50.0)


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if n < 1e12 else f"{n:.3g}"


def check_image_size(path: str | Path, shape: Iterable[int], dtype: np.dtype, axes: str, *,
                     file_bytes: int | None) -> int:
    """Refuse a header that claims more pixels than any slide, or more than its file holds.

    Parameters
    ----------
    path : str or Path
        The file, for the message.
    shape : sequence of int
        Shape the header claims (as stored, all axes).
    dtype : numpy dtype
        Pixel type the header claims.
    axes : str
        Axis letters of ``shape`` (``C`` and ``S`` are channels and not counted as pixels).
    file_bytes : int or None
        Bytes stored on disk (see :func:`stored_bytes`); ``None`` skips the ratio check.

    Returns
    -------
    int
        Pixels of the image (Y × X × planes, channels not counted).

    Raises
    ------
    ImageReadError
        When the image claims more than :data:`MAX_IMAGE_PIXELS` pixels, or more than
        :data:`MAX_COMPRESSION_RATIO` times its file size in decoded bytes (above
        :data:`RATIO_CHECK_BYTES`).
    """
    shape = tuple(int(n) for n in shape)
    axes = axes.upper()
    pixels = math.prod(n for n, a in zip(shape, axes) if a not in "CS")
    decoded = math.prod(shape) * np.dtype(dtype).itemsize
    dims = " × ".join(str(n) for n in shape)
    if pixels > MAX_IMAGE_PIXELS:
        raise ImageReadError(
            f"{path}: the header claims {dims} ({axes}) = {_fmt(pixels)} pixels, more than "
            f"the limit of {_fmt(MAX_IMAGE_PIXELS)} (a whole slide at 0.25 µm per pixel is "
            "3e10). The file is damaged or not a microscope image; it was not read.")
    if file_bytes is not None and decoded > RATIO_CHECK_BYTES and \
            decoded > MAX_COMPRESSION_RATIO * max(int(file_bytes), 1):
        raise ImageReadError(
            f"{path}: the header claims {dims} ({axes}) {np.dtype(dtype).name} pixels, "
            f"{_fmt(decoded)} bytes decoded, but the file holds only {_fmt(file_bytes)} bytes "
            f"(over {MAX_COMPRESSION_RATIO:g} times less, the limit). The header is damaged or "
            "the file is a decompression bomb; it was not read.")
    return pixels


def stored_bytes(path: str | Path) -> int:
    """Return the bytes a file (or every file under a folder, for OME-Zarr) takes.

    Parameters
    ----------
    path : str or pathlib.Path
        A file or folder.

    Returns
    -------
    int
        Size in bytes.
    """
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def check_pixel_size(value: float, source: str | Path, origin: str,
                     warnings: list[str] | None = None) -> float:
    """Validate a pixel size in µm: refuse the impossible, warn about the unusual.

    Parameters
    ----------
    value : float
        Pixel size in µm per pixel (at full resolution).
    source : str or Path
        The file (or ``"<array>"``), for the message.
    origin : str
        Where the value came from (``"OME PhysicalSizeX"``, ``"ImageJ calibration"``, ``"TIFF
        resolution tags"``, ``"--pixel-size / pixel_size_um"``, ...), for the message.
    warnings : list of str, optional
        A warning about an unusual value is appended here as well as logged.

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    PixelSizeError
        When ``value`` is not a finite positive number, or lies outside
        :data:`PIXEL_SIZE_LIMITS_UM`.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PixelSizeError(f"{source}: pixel size {value!r} (from {origin}) is not a "
                             "number") from None
    lo, hi = PIXEL_SIZE_LIMITS_UM
    if not math.isfinite(v) or v <= 0:
        raise PixelSizeError(f"{source}: pixel size {v} (from {origin}) must be a positive "
                             "number of µm per pixel")
    if not lo <= v <= hi:
        raise PixelSizeError(
            f"{source}: a pixel size of {v:.4g} µm (from {origin}) is outside the plausible "
            f"range {lo:g}–{hi:g} µm per pixel; the value is expected in µm per pixel (not "
            "nm, mm or pixels per µm). Fix the file's calibration or give --pixel-size.")
    ulo, uhi = PIXEL_SIZE_USUAL_UM
    if not ulo <= v <= uhi:
        msg = (f"{source}: pixel size {v:.4g} µm (from {origin}) is outside the usual "
               f"{ulo:g}–{uhi:g} µm per pixel; check the calibration's unit (mm for µm?)")
        log.warning("%s", msg)
        if warnings is not None:
            warnings.append(msg)
    return v
