"""The image at the working resolution: read a pyramid level or block-average in chunks.

A whole-slide scan can be 20k × 20k pixels or more; the anatomy needs only ≈ 10 µm pixels.
:func:`read_downsampled` therefore never holds the full-resolution image: it reads the
coarsest pyramid level of the file that is still at least as fine as asked (OME-TIFF
sub-resolutions, OME-Zarr multiscales) and block-averages the rest of the way, or, with no
pyramid, block-averages the array band by band (a zarr/dask array is then read chunk by
chunk).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import ChannelError, EmptyImageError
from ..io.image import Image
from ..segment.statistics import block_counts, block_mean, block_sum

__all__ = ["WorkingImage", "read_downsampled", "tissue_signal", "pyramid_downsamples",
           "padding_mask"]

log = logging.getLogger(__name__)

# Peak size of one band of the full-resolution image held while block-averaging.
_BAND_BYTES = 64 * 1024**2


@dataclass
class WorkingImage:
    """The tissue signal of an image at the working resolution.

    Attributes
    ----------
    signal : ndarray of float32
        Tissue signal, ≈ 0 on empty slide and larger where there is more tissue: summed
        optical density for brightfield, intensity above background for fluorescence.
    display : ndarray of uint8
        RGB image at the same resolution, for QC overlays.
    factor : int
        Full-resolution pixels per working pixel along each axis.
    full_shape : tuple of int
        Full-resolution (height, width).
    brightfield : bool
        True when ``signal`` is optical density from an RGB image.
    channel : str
        What the signal was made from (``"RGB optical density"`` or a channel name).
    background : float
        Raw level subtracted from a fluorescence channel (0 for brightfield).
    valid : ndarray of bool, optional
        The imaged field: False on padding, frames and empty fills (None = all imaged).
        ``signal`` keeps the padding's own level there: use it only inside ``valid``.
    """

    signal: np.ndarray
    display: np.ndarray
    factor: int
    full_shape: tuple[int, int]
    brightfield: bool
    channel: str
    background: float = 0.0
    valid: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the working image, in working pixels."""
        return self.signal.shape  # type: ignore[return-value]


def read_downsampled(image: Image, factor: int, channel: int | None = None) -> np.ndarray:
    """Return the block mean of ``image`` over ``factor`` × ``factor`` pixel blocks, as float32.

    Partial blocks at the right and bottom edges are averaged over the pixels they hold.
    Z stacks are max-projected.

    Parameters
    ----------
    image : Image
        The image (read from its pyramid level when one matches ``factor``).
    factor : int
        Block side in pixels.
    channel : int, optional
        The channel to read; every channel when not given.

    Returns
    -------
    numpy.ndarray
        (ceil(H/f), ceil(W/f)) for one channel, or (.., .., C) for every channel when
        ``channel`` is None and the image has channels.
    """
    factor = max(1, int(factor))
    level = _pyramid_level(image, factor)
    if level is not None:
        data, axes, d = level
        log.debug("%s: reading pyramid level with downsample %d", image.source, d)
        return _read_block_mean_in_bands(data, axes, factor // d, channel)
    return _read_block_mean_in_bands(image.data, image.axes, factor, channel)


def _read_block_mean_in_bands(data: Any, axes: str, f: int, channel: int | None
                              ) -> np.ndarray:
    """Block mean of a possibly lazy (dask / zarr / memory-mapped) array, read band by band.

    Not a second block mean: the arithmetic is :func:`~histoquant.segment.statistics.block_sum`
    / :func:`~histoquant.segment.statistics.block_counts`. What this adds is the reading: a
    whole slide is never loaded at once (bands of whole blocks, ``_BAND_BYTES`` each), one
    channel is picked and a Z stack max-projected while reading, and sums are float64 so that
    the large blocks of a whole-slide overview stay exact.
    """
    y = axes.index("Y")
    H, W = int(data.shape[y]), int(data.shape[y + 1])
    has_c = axes.endswith("C")
    n_c = int(data.shape[-1]) if has_c and channel is None else 1
    h, w = math.ceil(H / f), math.ceil(W / f)
    out = np.zeros((h, w, n_c), dtype=np.float64)
    nz = int(data.shape[0]) if axes.startswith("Z") else 1
    row_bytes = W * n_c * nz * max(np.dtype(data.dtype).itemsize, 4)
    band = f * max(1, _BAND_BYTES // max(row_bytes * f, 1))
    for r0 in range(0, H, band):
        r1 = min(H, r0 + band)
        index: list = [slice(None)] * len(axes)
        index[y] = slice(r0, r1)
        if has_c and channel is not None:
            index[-1] = channel
        blk = np.asarray(data[tuple(index)])
        if axes.startswith("Z"):
            blk = blk.max(axis=0)
        blk = blk.astype(np.float32, copy=False)
        if blk.ndim == 2:
            blk = blk[..., None]
        rows = r1 - r0
        hb = math.ceil(rows / f)
        # the one block reduction (segment.statistics), band by band so that a lazy slide
        # is read a band at a time; float64 sums keep whole-slide blocks exact
        sums = block_sum(blk.astype(np.float64, copy=False), f)
        out[r0 // f: r0 // f + hb] = sums / block_counts((rows, W), f)[..., None]
    out = out.astype(np.float32)
    return out[..., 0] if n_c == 1 else out


def pyramid_downsamples(image: Image) -> list[int]:
    """Return the integer downsampling factors of the pyramid levels in ``image``'s file.

    Parameters
    ----------
    image : Image
        An image read from a file.

    Returns
    -------
    list of int
        The factors, 1 (full resolution) first; ``[1]`` when there is no usable pyramid.
    """
    levels = _open_levels(image)
    return [d for _, _, d in levels] if levels else [1]


def _pyramid_level(image: Image, factor: int) -> tuple[Any, str, int] | None:
    if factor < 2:
        return None
    levels = _open_levels(image)
    best = None
    for data, axes, d in levels:
        if 1 < d <= factor and factor % d == 0 and (best is None or d > best[2]):
            best = (data, axes, d)
    return best


def _open_levels(image: Image) -> list[tuple[Any, str, int]]:
    """(lazy array, axes channels-last, downsample) of each pyramid level of the file."""
    path = image.path
    if path is None or int(image.metadata.get("levels", 1) or 1) < 2:
        return []
    try:
        if image.metadata.get("format") == "ome-zarr":
            raw = _zarr_levels(Path(path), image.metadata.get("multiscales", {}))
        else:
            raw = _tiff_levels(Path(path))
    except Exception as exc:  # a pyramid we cannot read is only a missed shortcut
        log.info("%s: pyramid levels not usable (%s); block-averaging level 0", path, exc)
        return []
    from ..io.readers import _to_channels_last

    H, W = image.shape_yx
    out = []
    for arr, axes in raw:
        if "Z" in image.axes and "Z" not in axes.upper().replace("T", "Z"):
            continue
        try:
            arr2, axes2 = _to_channels_last(arr, axes)
        except Exception:
            continue
        if axes2 != image.axes:
            continue
        yi = axes2.index("Y")
        h, w = int(arr2.shape[yi]), int(arr2.shape[yi + 1])
        d = round(H / h)
        if d < 1 or math.ceil(H / d) != h or math.ceil(W / d) != w:
            continue
        out.append((arr2, axes2, d))
    return out


def _tiff_levels(path: Path) -> list[tuple[Any, str]]:
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        n = len(series.levels)
        axes = series.axes
    out = []
    for i in range(n):
        # A zarr view opens the file itself and reads only the tiles asked for.
        store = tifffile.imread(path, aszarr=True, series=0, level=i)
        out.append((zarr.open(store, mode="r"), axes))
    return out


def _zarr_levels(path: Path, ms: dict) -> list[tuple[Any, str]]:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    axes = "".join((a["name"] if isinstance(a, dict) else a).upper()
                   for a in ms.get("axes", []))
    return [(group[d["path"]], axes) for d in ms.get("datasets", [])]


def tissue_signal(image: Image, factor: int, channel: int | str | None = None
                  ) -> WorkingImage:
    """Read ``image`` at ``factor`` and turn it into a tissue signal.

    Padding first: constant fills and frames around a stitched or rotated field (black,
    grey or white borders, empty tiles) hold no tissue, so they are found (see
    :func:`padding_mask`), recorded as ``valid == False`` and left out of the statistics.

    RGB with no channel named: brightfield or fluorescence is ``image.modality`` (detected
    from the pixels by :func:`histoquant.io.modality.detect_modality`, or given by the
    user). Brightfield: summed optical density against the brightest
    part of the slide. Fluorescence exported as RGB (a stain in one or two colour planes,
    on a dark field): the colour plane whose tissue stands out best, as for a multi-channel
    image. Otherwise one fluorescence channel minus its background (a low percentile of the
    imaged field); with several channels and none named, the one whose tissue stands out
    best (largest Otsu between-class variance ratio over the imaged field) is used, and its
    name recorded in ``channel``.

    Parameters
    ----------
    image : Image
        The image.
    factor : int
        Downsampling factor to the working resolution.
    channel : int or str, optional
        The channel holding the tissue stain; chosen as above when not given.

    Returns
    -------
    WorkingImage
        The tissue signal, its valid (imaged) pixels and how it was made.
    """
    full_shape = image.shape_yx
    rgb_image = image.rgb and image.n_channels == 3
    if rgb_image and channel is None:
        rgb = read_downsampled(image, factor)
        pad = _working_padding(image, factor, rgb)
        scale = 255.0 / float(max(image.max_value(), 1.0))
        display = np.clip(rgb * scale, 0, 255).astype(np.uint8)
        if image.modality_from(display, pad) == "brightfield":
            # the slide's white: a dark fill (black padding) is no reference, but the glass
            # itself can be flat enough to pass for a fill, so bright fills stay in
            lum = rgb.mean(axis=-1)
            ref = ~pad | (lum >= np.median(lum))
            white = np.percentile(rgb[ref], 99.5, axis=0)
            white = np.maximum(white, 1.0)
            od = -np.log10(np.clip(rgb, 1.0, None) / white)
            signal = np.clip(od, 0, None).sum(axis=-1).astype(np.float32)
            _check_signal(signal, image)
            return WorkingImage(signal, display, factor, full_shape, True,
                                "RGB optical density", valid=~pad)
        planes = [(i, rgb[..., i]) for i in range(3)]
    else:
        planes = None
        pad = None
        display = None
    if planes is None:
        if image.n_channels == 1 or not image.axes.endswith("C"):
            raw = read_downsampled(image, factor, None)
            raw = raw if raw.ndim == 2 else raw[..., 0]
            planes = [(0, raw)]
            pad = _working_padding(image, factor, raw)
        else:
            # padding is one colour in every channel at once: found on all of them
            stack = read_downsampled(image, factor)
            pad = _working_padding(image, factor, stack)
            idxs = ([image.channel_index(channel)] if channel is not None
                    else list(range(image.n_channels)))
            planes = [(i, stack[..., i]) for i in idxs]
    best = None
    for idx, raw in planes:
        valid = ~pad
        vals = raw[valid] if valid.any() else raw.ravel()
        bg = float(np.percentile(vals, 1.0))
        sig = raw - np.float32(bg)
        score = (_separability(sig[valid] if valid.any() else sig,
                               float(image.max_value())) if len(planes) > 1 else 1.0)
        if best is None or score > best[0]:
            best = (score, idx, sig, bg, valid)
    if best is None:  # pragma: no cover - n_channels >= 1 always
        raise ChannelError(f"{image.source}: no channel to read")
    _, idx, signal, bg, valid = best
    name = image.channel_names[idx]
    if rgb_image and channel is None:
        name = f"{('red', 'green', 'blue')[idx]} plane of the RGB image (fluorescence)"
    if len(planes) > 1:
        log.info("%s: anatomy uses %s (best tissue contrast)", image.source, name)
    from ..qc import to_display_rgb

    _check_signal(signal, image)
    if display is None:
        display = to_display_rgb(signal)
    return WorkingImage(signal.astype(np.float32), display, factor, full_shape, False, name,
                        bg, valid=valid)


# Images in memory up to this many pixels are checked for padding at full resolution (exact
# fill colours, one-pixel frame lines); larger or lazy ones on the block means.
_FULL_RES_PADDING_PX = 40_000_000
# Working images whose short side is at least twice this are searched for padding on 2 × 2
# block means (the padding search's window is then still ≥ 9 px: 1/64 of the short side).
_COARSE_PADDING_MIN_PX = 300


def padding_mask(pixels: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """Return padding, frames and empty fills of an image (True = not imaged).

    :func:`histoquant.segment.padding.find_padding`, plus fills at full scale in every
    channel (a white canvas wedge left by rotating an export) connected to the border:
    never tissue in fluorescence or brightfield, and too narrow in places for the solid-
    window test. 8-bit data given as block means are rounded back to 8 bit first, so a fill
    stays exactly one value.

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X) or (Y, X, C) image (or block means of one).
    max_value : float
        Full-brightness value of the data.

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) mask.
    """
    from ..segment.padding import find_padding

    arr = np.asarray(pixels)
    if max_value == 255.0 and arr.dtype != np.uint8:
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    pad = np.asarray(find_padding(arr), bool)
    full = arr >= max_value
    full = full.all(axis=-1) if full.ndim == 3 else full
    if full.any():
        lab, _ = ndi.label(full)
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        pad |= np.isin(lab, edge[edge > 0])
    return pad


def _working_padding(image: Image, factor: int, working: np.ndarray) -> np.ndarray:
    """Return padding at the working resolution.

    A working pixel touching any padding is padding (a block mixing a fill with tissue has
    neither's value).
    """
    H, W = image.shape_yx
    mx = float(max(image.max_value(), 1.0))
    in_memory = isinstance(image.data, np.ndarray)   # a lazy file is never read whole
    if (factor > 1 and in_memory and H * W <= _FULL_RES_PADDING_PX
            and image.axes in ("YX", "YXC")):
        full = padding_mask(np.asarray(image.data), mx)
        h, w = working.shape[:2]
        full = np.pad(full, ((0, h * factor - H), (0, w * factor - W)), constant_values=True)
        return full.reshape(h, factor, w, factor).any(axis=(1, 3))
    h, w = working.shape[:2]
    if min(h, w) >= 2 * _COARSE_PADDING_MIN_PX:
        # a large working image (a lazy whole slide): the fills are searched on 2 × 2 block
        # means (a constant fill stays exact, and padding is never narrower than tens of
        # working pixels), four times fewer pixels; the one-pixel growth below then covers
        # the half block along its edge
        coarse = padding_mask(block_mean(working, 2), mx)
        pad = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:h, :w]
    else:
        pad = padding_mask(working, mx)
    if factor > 1 and pad.any() and not pad.all():
        pad = ndi.binary_dilation(pad)
    return pad


def _separability(sig: np.ndarray, max_value: float = 1.0) -> float:
    """Return a channel's tissue contrast: Otsu's between-class SD as a fraction of full scale.

    Absolute, not relative to the channel's own spread: an almost empty colour plane of a
    JPEG (values 0–3) splits cleanly into two classes of noise, but its classes differ by
    a few levels, while a stained plane's differ by tens.
    """
    from skimage.filters import threshold_otsu

    v = np.asarray(sig, np.float64).ravel()
    if v.size > 400_000:
        v = v[:: v.size // 400_000]
    if np.ptp(v) == 0:
        return 0.0
    t = threshold_otsu(v)
    a, b = v[v <= t], v[v > t]
    if not len(a) or not len(b):
        return 0.0
    w = len(a) * len(b) / v.size**2
    return float(np.sqrt(w) * abs(b.mean() - a.mean()) / max(max_value, 1e-12))


def _check_signal(signal: np.ndarray, image: Image) -> None:
    if not np.isfinite(signal).all():
        raise EmptyImageError(f"{image.source}: the image holds NaN or infinite values")
