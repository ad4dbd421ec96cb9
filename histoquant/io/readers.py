"""Readers: TIFF, OME-TIFF, ImageJ TIFF, JPEG/PNG and OME-Zarr into :class:`Image`."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ImageReadError, PixelSizeError
from . import limits
from .image import Image, _check_pixel_size

if TYPE_CHECKING:
    from tifffile import TiffFile, TiffFrame, TiffPage
from .limits import check_image_size, check_pixel_size, stored_bytes
from .pixel_size import length_to_um, resolution_to_um

__all__ = ["read_image", "IMAGE_SUFFIXES", "is_image_file", "image_levels"]

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".svs")
PLAIN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PLAIN_SUFFIXES + ZARR_SUFFIXES

# Files whose decoded pixels exceed this (or whose pixels exceed
# limits.MAX_IN_MEMORY_PIXELS) are opened lazily (a zarr store over the TIFF tiles).
LAZY_BYTES = 2 * 1024**3


def is_image_file(path: str | Path) -> bool:
    """Return True when ``path`` has a suffix :func:`read_image` understands.

    Parameters
    ----------
    path : str or pathlib.Path
        A file or folder name (it need not exist).

    Returns
    -------
    bool
        Whether the suffix is one of :data:`IMAGE_SUFFIXES`.
    """
    name = Path(path).name.lower()
    return name.endswith(IMAGE_SUFFIXES)


def read_image(
    path: str | Path,
    pixel_size_um: float | None = None,
    *,
    channel_names: list[str] | tuple[str, ...] | None = None,
    level: int = 0,
    lazy: bool | None = None,
    modality: str | None = None,
) -> Image:
    """Read an image file with its pixel size.

    Parameters
    ----------
    path : str or Path
        TIFF (plain, ImageJ, OME), JPEG, PNG, or an OME-Zarr folder.
    pixel_size_um : float, optional
        Pixel size in µm. Overrides the file's value (a disagreement is logged).
    channel_names : sequence of str, optional
        Channel names, overriding the file's.
    level : int
        Pyramid level of a multi-resolution TIFF or OME-Zarr (0 = full resolution). The pixel
        size (the file's or ``pixel_size_um``, both meant for level 0) is scaled to the level.
    lazy : bool, optional
        True keeps the pixels on disk (a zarr array read window by window), False loads them;
        by default TIFF and OME-Zarr files with more than
        :data:`~histoquant.io.limits.MAX_IN_MEMORY_PIXELS` pixels or 2 GB of pixels are opened
        lazily.
    modality : {"brightfield", "fluorescence"}, optional
        What the image is. By default it is detected from the pixels when first needed
        (``image.modality``; see :mod:`histoquant.io.modality`); give it to override.

    Returns
    -------
    Image

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, corrupt or truncated; when its header claims
        more pixels than :data:`~histoquant.io.limits.MAX_IMAGE_PIXELS` or more decoded bytes
        than :data:`~histoquant.io.limits.MAX_COMPRESSION_RATIO` times its size (a
        decompression bomb); or when it must be read into memory (JPEG, PNG, BMP, or
        ``lazy=False``) and has more than ``MAX_IN_MEMORY_PIXELS`` pixels. Checked from the
        header, before any pixel is read.
    PixelSizeError
        When the file's pixels are anisotropic and no pixel size is given, or a pixel size
        (the file's, or ``pixel_size_um``) is outside
        :data:`~histoquant.io.limits.PIXEL_SIZE_LIMITS_UM`. One outside
        :data:`~histoquant.io.limits.PIXEL_SIZE_USUAL_UM` is logged as a warning and kept in
        ``image.metadata["warnings"]``.
    """
    path = Path(path)
    if pixel_size_um is not None:
        # refuse NaN, 0 or 1e-5 before opening the file; unusual values warn in _finish
        _check_pixel_size(pixel_size_um, str(path))
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder")
    name = path.name.lower()
    if level < 0:
        raise ImageReadError(f"{path}: pyramid level must be 0 or more, not {level}")
    given = pixel_size_um is not None
    try:
        image = _dispatch(path, name, lenient=False, level=level, lazy=lazy, given=given)
    except PixelSizeError:
        if pixel_size_um is None:
            raise
        # The caller's pixel size replaces the file's anisotropic one.
        image = _dispatch(path, name, lenient=True, level=level, lazy=lazy, given=given)
    if pixel_size_um is not None and level:
        pixel_size_um = pixel_size_um * image.metadata.get("downsample", 1.0)
    image = _finish(image, path, pixel_size_um, channel_names)
    if modality is not None:
        image.modality = modality
    return image


def image_levels(path: str | Path) -> list[tuple[int, int]]:
    """Return the height and width of every pyramid level of an image file, full resolution first.

    A file without a pyramid has one level. Reads metadata only.

    Parameters
    ----------
    path : str or pathlib.Path
        The image file (or OME-Zarr folder).

    Returns
    -------
    list of (int, int)
        ``(height, width)`` in pixels of each level.

    Raises
    ------
    ImageReadError
        When the file cannot be read as an image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder")
    name = path.name.lower()
    try:
        if _is_zarr(path, name):
            import zarr

            group = zarr.open_group(str(path), mode="r")
            attrs = dict(group.attrs)
            ms = attrs.get("ome", attrs).get("multiscales") or [{}]
            axes = "".join((a["name"] if isinstance(a, dict) else a).upper()
                           for a in ms[0].get("axes", []))
            out = []
            for ds in ms[0].get("datasets", []):
                shape = group[ds["path"]].shape
                out.append((int(shape[axes.index("Y")]), int(shape[axes.index("X")])))
            if not out:
                raise ImageReadError(f"{path}: a zarr folder without OME-NGFF 'multiscales'")
            return out
        if name.endswith(TIFF_SUFFIXES):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                axes = series.axes.upper()
                return [(int(lv.shape[axes.index("Y")]), int(lv.shape[axes.index("X")]))
                        for lv in series.levels]
        return [read_image(path).shape_yx]
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path}: could not be read as an image ({type(exc).__name__}: "
                             f"{exc})") from exc


def _is_zarr(path: Path, name: str) -> bool:
    return name.endswith(ZARR_SUFFIXES) or (path.is_dir() and (
        (path / ".zattrs").exists() or (path / "zarr.json").exists()))


def _dispatch(path: Path, name: str, lenient: bool, level: int = 0,
              lazy: bool | None = None, given: bool = False) -> Image:
    try:
        if _is_zarr(path, name):
            image = _read_zarr(path, lenient, level, lazy, given)
        elif name.endswith(TIFF_SUFFIXES):
            image = _read_tiff(path, lenient, level, lazy, given)
        elif name.endswith(PLAIN_SUFFIXES):
            if level:
                raise ImageReadError(f"{path}: has no pyramid level {level} (one level only)")
            image = _read_plain(path, lenient, given)
        else:
            raise ImageReadError(
                f"{path}: unknown image format {path.suffix!r}; histoquant reads "
                f"{', '.join(IMAGE_SUFFIXES)}"
            )
    except (ImageReadError, PixelSizeError):
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(
            f"{path}: could not be read as an image ({type(exc).__name__}: {exc}). The file "
            "may be corrupt or truncated; re-export or re-copy it."
        ) from exc
    return image


def _file_pixel_size(value: float | None, path: Path, origin: str, given: bool,
                     warnings: list[str]) -> float | None:
    """Check a full-resolution pixel size read from a file against the limits.

    When the caller gives a pixel size it replaces the file's, so an impossible file value is
    then only logged: giving ``--pixel-size`` is how a user gets past bad metadata.
    """
    if value is None:
        return None
    if given:
        lo, hi = limits.PIXEL_SIZE_LIMITS_UM
        if not (np.isfinite(value) and lo <= value <= hi):
            log.info("%s: the file's pixel size %.4g µm (from %s) is implausible; the pixel "
                     "size given replaces it", path, value, origin)
            return None
        return float(value)
    return check_pixel_size(value, path, origin, warnings)


def _check_in_memory(path: Path, pixels: int, lazy_possible: bool) -> None:
    """Refuse to read more than MAX_IN_MEMORY_PIXELS into memory (before allocating them)."""
    if pixels > limits.MAX_IN_MEMORY_PIXELS:
        how = ("open it lazily (read_image(..., lazy=True)) or measure it with `histoquant "
               "batch`, which reads it tile by tile") if lazy_possible else (
            "convert it to a tiled (pyramidal) TIFF or OME-Zarr, which histoquant reads tile "
            "by tile")
        raise ImageReadError(
            f"{path}: {pixels:,} pixels are more than the {limits.MAX_IN_MEMORY_PIXELS:,} "
            f"histoquant reads into memory at once; {how}.")


def _finish(image: Image, path: Path, pixel_size_um: float | None,
            channel_names: list[str] | tuple[str, ...] | None) -> Image:
    if channel_names is not None:
        if len(channel_names) != image.n_channels:
            raise ImageReadError(
                f"{path}: {len(channel_names)} channel names given but the image has "
                f"{image.n_channels} channel(s)"
            )
        image.channel_names = tuple(str(c) for c in channel_names)
    if image.data.size == 0:
        raise ImageReadError(f"{path}: the image has no pixels (shape {image.data.shape})")
    return image.with_pixel_size(pixel_size_um) if pixel_size_um is not None else image


def _isotropic(sx: float | None, sy: float | None, path: Path,
               lenient: bool = False) -> float | None:
    if lenient:
        return None
    if sx is None and sy is None:
        return None
    if sx is None or sy is None:
        return sx if sx is not None else sy
    if not np.isclose(sx, sy, rtol=0.01):
        raise PixelSizeError(
            f"{path}: pixels are anisotropic (X {sx:.4g} µm, Y {sy:.4g} µm). histoquant "
            "measures in square pixels: resample the image to square pixels, or give "
            "--pixel-size to override if the metadata is wrong."
        )
    return float(sx)


class LazyView:
    """A lazy array seen with some axes fixed and the rest reordered; reads only what is asked.

    Indexing a zarr array with an integer, or transposing it with NumPy, reads all of it; a
    whole slide stored channels-first (OME ``CYX``) or with singleton T/Z axes would be loaded
    whole just to put its channels last. This view keeps the pixels on disk and maps each
    request to the stored order.
    """

    def __init__(self, base: Any, fixed: dict[int, int], order: list[int]):
        self.base = base
        self.fixed = dict(fixed)  # stored axis -> index taken
        self.order = list(order)  # view axis i is stored axis order[i]
        self.shape = tuple(int(base.shape[a]) for a in self.order)
        self.dtype = np.dtype(base.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        arr = self[...]
        return arr.astype(dtype) if dtype is not None else arr

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:i] + (slice(None),) * fill + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim:
            raise IndexError(f"too many indices for an array of {self.ndim} dimensions")
        stored: list[Any] = [slice(None)] * len(self.base.shape)
        for a, i in self.fixed.items():
            stored[a] = i
        for view_axis, a in enumerate(self.order):
            stored[a] = key[view_axis]
        block = np.asarray(self.base[tuple(stored)])
        # axes of ``block``: stored axes that were sliced (not fixed, not integer-indexed)
        kept = [a for a in range(len(self.base.shape))
                if a not in self.fixed and not isinstance(stored[a], (int, np.integer))]
        want = [a for a in self.order if a in kept]
        perm = [kept.index(a) for a in want]
        return np.transpose(block, perm) if perm != list(range(len(perm))) else block


def _to_channels_last(arr: Any, axes: str, path: Path | str = "<array>",
                      warnings: list[str] | None = None) -> tuple[Any, str]:
    """Squeeze singleton T/Q/I axes and move channels last; returns (array, axes).

    ``path`` names the file in the error raised for axes histoquant cannot use. Time is not
    depth: of several time points (OME ``T``) the first is measured, with a warning appended
    to ``warnings`` — projecting them as a Z-stack would merge different moments into one
    section. Other non-singleton stack axes (tifffile's ``Q``/``I`` for an unnamed page
    sequence) are taken as Z.
    """
    axes = axes.upper().replace("S", "C")
    arr_axes = list(axes)
    shape = list(arr.shape)
    keep = []
    for ax, n in zip(arr_axes, shape):
        if ax == "T" and n > 1:
            keep.append(False)
            note = (f"{path}: holds {n} time points (OME axis T); the first is measured. "
                    "Export the time point to measure as its own file to choose another.")
            log.warning("%s", note)
            if warnings is not None:
                warnings.append(note)
        else:
            keep.append(not (ax in "TQIRE" and n == 1))
    lazy = not isinstance(arr, np.ndarray)
    index = tuple(slice(None) if k else 0 for k in keep)
    if not all(keep) and not lazy:
        arr = arr[index]
    stored = [i for i, k in enumerate(keep) if k]  # stored axis of each remaining axis
    arr_axes = [a for a, k in zip(arr_axes, keep) if k]
    arr_axes = ["Z" if a in "TQIRE" else a for a in arr_axes]
    if arr_axes.count("Z") > 1:
        raise ImageReadError(f"{path}: more than one stack axis in {''.join(axes)} (shape "
                             f"{tuple(arr.shape)}): not supported; export one Z-stack or one "
                             "time point per file")
    if arr_axes.count("C") > 1:
        # RGB samples inside channels (C, S): fold into one channel axis is ambiguous
        raise ImageReadError(f"{path}: both channel and sample axes in {axes}: not supported; "
                             "export the channels or the RGB samples, not both")
    order = [a for a in ("Z", "Y", "X", "C") if a in arr_axes]
    if set(arr_axes) - set(order):
        raise ImageReadError(f"{path}: unsupported axes {axes}")
    perm = [arr_axes.index(a) for a in order]
    if lazy:
        if perm != list(range(len(perm))) or not all(keep):
            arr = LazyView(arr, {i: 0 for i, k in enumerate(keep) if not k},
                           [stored[p] for p in perm])
    elif perm != list(range(len(perm))):
        arr = np.transpose(np.asarray(arr), perm)
    return arr, "".join(order)


def _read_tiff(path: Path, lenient: bool, level: int = 0, lazy: bool | None = None,
               given: bool = False) -> Image:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        if level >= len(series.levels):
            raise ImageReadError(f"{path}: has no pyramid level {level} "
                                 f"({len(series.levels)} level(s))")
        sub = series.levels[level]
        downsample = _downsample(series.shape, sub.shape, axes)
        page = series.pages[0] if series.pages else tif.pages[0]
        # Everything below the header is checked before a pixel is read or allocated: the
        # calibration (a pixel size of 1e-5 µm), the claimed size (200,000² pixels in a few
        # hundred bytes) and whether it fits in memory.
        warnings: list[str] = []
        pixel_size, z_step, names, origin = _tiff_calibration(tif, page, path, lenient)
        pixel_size = _file_pixel_size(pixel_size, path, origin, given, warnings)
        if pixel_size is not None:
            pixel_size *= downsample
        pixels = check_image_size(path, sub.shape, sub.dtype, axes,
                                  file_bytes=stored_bytes(path))
        nbytes = int(np.prod(sub.shape)) * sub.dtype.itemsize
        big = pixels > limits.MAX_IN_MEMORY_PIXELS or nbytes > LAZY_BYTES
        if lazy or (lazy is None and big):
            import zarr

            _check_complete(path, series.levels[level].pages)
            store = series.aszarr(level=level)
            arr = zarr.open(store, mode="r")
        else:
            _check_in_memory(path, pixels, lazy_possible=True)
            arr = sub.asarray()
        photometric = getattr(page, "photometric", None)
        metadata = {
            "format": "ome-tiff" if tif.is_ome else ("imagej-tiff" if tif.is_imagej else "tiff"),
            "original_axes": axes,
            "levels": len(series.levels),
            "level": level,
            "downsample": downsample,
            "warnings": warnings,
        }
        colours = _tiff_channel_colours(tif)
        if colours:
            metadata["channel_colors"] = colours
    arr, axes = _to_channels_last(arr, axes, path, warnings)
    if any(a == "T" and n > 1 for a, n in zip(metadata["original_axes"].upper(), series.shape)):
        metadata["time_points"] = int(series.shape[metadata["original_axes"].upper().index("T")])
    n_channels = arr.shape[-1] if axes.endswith("C") else 1
    rgb = bool(
        n_channels == 3
        and (photometric == tifffile.PHOTOMETRIC.RGB or "S" in metadata["original_axes"])
    )
    if names and len(names) != n_channels:
        names = ()
    return Image(arr, axes=axes, pixel_size_um=pixel_size, channel_names=tuple(names or ()),
                 rgb=rgb, z_step_um=z_step, path=path, metadata=metadata)


def _check_complete(path: Path, pages: Sequence[TiffPage | TiffFrame | None]) -> None:
    """Refuse a TIFF whose pixel data runs past the end of the file (a truncated copy).

    A lazily opened file is otherwise only found truncated when the missing tiles are read,
    deep inside a measurement.
    """
    size = path.stat().st_size
    end = 0
    for page in pages:
        if page is None:
            continue
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        if offsets:
            end = max(end, max(int(o) + int(c) for o, c in zip(offsets, counts)))
    if end > size:
        raise ImageReadError(
            f"{path}: the file is truncated ({size} bytes, but its pixel data runs to {end} "
            "bytes); re-copy or re-export it.")


def _ome_colour(value: Any) -> str | None:
    """Return an OME ``Color`` (a signed 32-bit RGBA integer) as ``#rrggbb``."""
    try:
        v = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return f"#{(v >> 24) & 255:02x}{(v >> 16) & 255:02x}{(v >> 8) & 255:02x}"


def _tiff_channel_colours(tif: TiffFile) -> list[str | None]:
    """Each channel's display colour from ImageJ LUTs or OME ``Color`` (empty: none recorded).

    Colours are only evidence of what a channel holds (see
    :mod:`histoquant.io.channel_roles`); a damaged entry is dropped, never an error.
    """
    import tifffile

    from .channel_roles import lut_colour

    if tif.is_ome and tif.ome_metadata:
        try:
            img = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
            img = img[0] if isinstance(img, list) else img
            ch = img["Pixels"].get("Channel")
            ch = ch if isinstance(ch, list) else [ch] if ch else []
            colours = [_ome_colour(c.get("Color")) if isinstance(c, dict) and "Color" in c
                       else None for c in ch]
            return colours if any(colours) else []
        except (KeyError, TypeError, ValueError):
            return []
    if tif.is_imagej:
        luts = (tif.imagej_metadata or {}).get("LUTs")
        if isinstance(luts, (list, tuple)) and luts:
            return [lut_colour(lut) for lut in luts]
    return []


def _tiff_calibration(tif: TiffFile, page: TiffPage, path: Path, lenient: bool,
                      ) -> tuple[float | None, float | None, tuple, str]:
    """Pixel size (µm, full resolution), Z step, channel names and where the size came from."""
    import tifffile

    names: tuple = ()
    if tif.is_ome and tif.ome_metadata:
        try:
            meta = tifffile.xml2dict(tif.ome_metadata)
            img = meta["OME"]["Image"]
            img = img[0] if isinstance(img, list) else img
            pix = img["Pixels"]

            def _len(key):
                if key not in pix:
                    return None
                return length_to_um(float(pix[key]), pix.get(key + "Unit", "µm"))

            sx, sy, sz = _len("PhysicalSizeX"), _len("PhysicalSizeY"), _len("PhysicalSizeZ")
            ch = pix.get("Channel")
            if ch is not None:
                ch = ch if isinstance(ch, list) else [ch]
                names = tuple(c.get("Name", f"C{i}") for i, c in enumerate(ch))
            return _isotropic(sx, sy, path, lenient), sz, names, "OME PhysicalSizeX/Y"
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: unreadable OME metadata (%s); trying resolution tags", path, exc)
    z_step = None
    unit = None
    if tif.is_imagej:
        ij = tif.imagej_metadata or {}
        unit = ij.get("unit")
        if unit in (None, "", "pixel", "pixels"):
            unit = None
        if ij.get("spacing") and unit:
            z_step = length_to_um(float(ij["spacing"]), unit)
        labels = ij.get("Labels")
        if isinstance(labels, (list, tuple)) and labels:
            names = tuple(str(s) for s in labels)
    tags = page.tags
    origin = "ImageJ calibration" if unit is not None else "TIFF resolution tags"
    if "XResolution" not in tags:
        return None, z_step, names, origin
    if unit is None:
        res_unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2
        unit = {2: "inch", 3: "cm"}.get(int(res_unit))
        if unit is None:
            return None, z_step, names, origin

    def _res(tag):
        if tag not in tags:
            return None
        num, den = tags[tag].value
        return resolution_to_um(num / den if den else 0.0, unit)

    return (_isotropic(_res("XResolution"), _res("YResolution"), path, lenient), z_step, names,
            origin)


def _read_plain(path: Path, lenient: bool, given: bool = False) -> Image:
    import warnings as _warnings

    from PIL import Image as PILImage

    # Pillow refuses images over 2 × PIL.Image.MAX_IMAGE_PIXELS (≈ 179 Mpx by default) with a
    # DecompressionBombError and warns above half that; histoquant checks the size from the
    # header itself (below), so the warning is silenced and the error reworded, naming the file.
    # PIL.Image.MAX_IMAGE_PIXELS is left as the user set it (it is process-wide).
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(path)
    except PILImage.DecompressionBombError as exc:
        limit = 2 * (PILImage.MAX_IMAGE_PIXELS or 0)
        raise ImageReadError(
            f"{path}: Pillow refuses this image as a possible decompression bomb ({exc}); its "
            f"limit is {limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS × 2). Convert a real image "
            "this large to a tiled TIFF or OME-Zarr, which histoquant reads tile by tile.",
        ) from exc
    with im:
        w, h = im.size
        bands = len(im.getbands())
        # the header's size, before load() allocates: a PNG of a few KB can claim 10⁵ × 10⁵
        pixels = check_image_size(path, (h, w, bands), np.uint8, "YXC",
                                  file_bytes=stored_bytes(path))
        _check_in_memory(path, pixels, lazy_possible=False)
        im.load()
        dpi = im.info.get("dpi")
        mode = im.mode
        if mode in ("P", "PA", "CMYK", "YCbCr", "LA", "RGBA"):
            im = im.convert("RGB")
            mode = "RGB"
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., :3]
    pixel_size = None
    warnings: list[str] = []
    if dpi:
        pixel_size = _isotropic(resolution_to_um(float(dpi[0]), "inch"),
                                resolution_to_um(float(dpi[1]), "inch"), path, lenient)
        pixel_size = _file_pixel_size(pixel_size, path, "the file's dpi", given, warnings)
    axes = "YXC" if arr.ndim == 3 else "YX"
    return Image(arr, axes=axes, pixel_size_um=pixel_size, rgb=arr.ndim == 3, path=path,
                 metadata={"format": path.suffix.lower().lstrip("."), "warnings": warnings})


def _downsample(shape0: tuple, shape: tuple, axes: str) -> float:
    """How many level-0 pixels one pixel of a lower level spans (along X)."""
    i = axes.upper().index("X")
    return float(shape0[i]) / float(shape[i])


def _read_zarr(path: Path, lenient: bool, level: int = 0, lazy: bool | None = None,
               given: bool = False) -> Image:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    multiscales = ome.get("multiscales")
    if not multiscales:
        raise ImageReadError(f"{path}: a zarr folder without OME-NGFF 'multiscales' metadata")
    ms = multiscales[0]
    axes_meta = ms.get("axes", [])
    axes = "".join((a["name"] if isinstance(a, dict) else a).upper() for a in axes_meta)
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes_meta]
    if level >= len(ms["datasets"]):
        raise ImageReadError(f"{path}: has no pyramid level {level} "
                             f"({len(ms['datasets'])} level(s))")
    dataset = ms["datasets"][level]
    arr = group[dataset["path"]]
    downsample = _downsample(group[ms["datasets"][0]["path"]].shape, arr.shape, axes)
    scale = None
    for tr in dataset.get("coordinateTransformations", []):
        if tr.get("type") == "scale":
            scale = tr["scale"]
    sx = sy = sz = None
    if scale is not None:
        def _axis(name):
            if name not in axes:
                return None
            i = axes.index(name)
            return length_to_um(float(scale[i]), units[i] or "µm") if units[i] else None

        sx, sy, sz = _axis("X"), _axis("Y"), _axis("Z")
    names: tuple = ()
    omero = ome.get("omero") or attrs.get("omero")
    colours: list[str | None] = []
    if omero and "channels" in omero:
        names = tuple(c.get("label", f"C{i}") for i, c in enumerate(omero["channels"]))
        colours = [f"#{c['color']}" if isinstance(c.get("color"), str) else None
                   for c in omero["channels"]]
    warnings: list[str] = []
    pixel_size = _isotropic(sx, sy, path, lenient)
    if pixel_size is not None:
        # the scale is this level's; the limits are meant for full resolution
        full = _file_pixel_size(pixel_size / downsample, path, "OME-Zarr scale", given,
                                warnings)
        pixel_size = full * downsample if full is not None else None
    folder = path / str(dataset["path"])
    pixels = check_image_size(path, arr.shape, arr.dtype, axes,
                              file_bytes=stored_bytes(folder) if folder.is_dir() else None)
    nbytes = int(np.prod(arr.shape)) * arr.dtype.itemsize
    big = pixels > limits.MAX_IN_MEMORY_PIXELS or nbytes > LAZY_BYTES
    if not (lazy or (lazy is None and big)):
        _check_in_memory(path, pixels, lazy_possible=True)
    data = arr if (lazy or (lazy is None and big)) else arr[...]
    data, axes = _to_channels_last(data, axes, path, warnings)
    n_channels = data.shape[-1] if axes.endswith("C") else 1
    if names and len(names) != n_channels:
        names = ()
    return Image(data, axes=axes, pixel_size_um=pixel_size, channel_names=names,
                 rgb=bool(attrs.get("histoquant", {}).get("rgb", False)), z_step_um=sz,
                 path=path, metadata={"format": "ome-zarr", "levels": len(ms["datasets"]),
                                      "level": level, "downsample": downsample,
                                      "multiscales": json.loads(json.dumps(ms)),
                                      "warnings": warnings,
                                      **({"channel_colors": colours} if any(colours)
                                         else {})})
