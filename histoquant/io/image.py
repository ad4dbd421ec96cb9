"""The image object every assay takes: pixels, axes, channel names and pixel size."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ChannelError, EmptyImageError, PixelSizeError

__all__ = ["Image", "as_image", "ChannelSpec", "value_scale"]

log = logging.getLogger(__name__)

ChannelSpec = "str | int"

_VALID_AXES = ("YX", "YXC", "ZYX", "ZYXC")


@dataclass
class Image:
    """A microscope image with its physical pixel size.

    Parameters
    ----------
    data : array_like
        Pixel values with axes ``axes``. A NumPy array, or a lazy array (zarr, dask) for large
        files: only the parts an assay asks for are read.
    axes : {"YX", "YXC", "ZYX", "ZYXC"}
        Axis order of ``data``. Channels are always last.
    pixel_size_um : float or None
        Edge length of one pixel in micrometres (X and Y are equal; anisotropic pixels are
        refused by the readers). ``None`` when the file does not say and the caller did not give
        one.
    channel_names : tuple of str
        One name per channel (``("R", "G", "B")`` for brightfield RGB).
    rgb : bool
        True for a brightfield colour image (three 8/16-bit channels meant as red, green, blue).
    z_step_um : float or None
        Distance between Z planes in micrometres, when known.
    path : Path or None
        File the image was read from.
    metadata : dict
        Anything else the reader found worth keeping (format, original axes, bit depth).
    modality : {"brightfield", "fluorescence"} or None
        Light background and absorbing stain, or dark background and emitting stain. ``None``
        (the default) detects it from the pixels on first use
        (:func:`histoquant.io.modality.detect_modality`, cached; the evidence is in
        ``metadata["modality_evidence"]``); a value given here overrides the detection.
    """

    data: Any
    axes: str = "YX"
    pixel_size_um: float | None = None
    channel_names: tuple[str, ...] = ()
    rgb: bool = False
    z_step_um: float | None = None
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # a property below: detected lazily unless given (not in repr/eq: reading it may detect)
    modality: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check the axes, the data's shape against them, the pixel size and channel names."""
        if self.axes not in _VALID_AXES:
            raise ValueError(f"axes must be one of {_VALID_AXES}, not {self.axes!r}")
        if len(self.data.shape) != len(self.axes):
            raise ValueError(
                f"data has {len(self.data.shape)} dimensions but axes {self.axes!r} names "
                f"{len(self.axes)}"
            )
        if self.pixel_size_um is not None:
            # the hard range only: a pyramid level or a reduced copy may have an unusual size
            self.pixel_size_um = _check_pixel_size(self.pixel_size_um, self.source)
        n = self.n_channels
        if not self.channel_names:
            self.channel_names = ("R", "G", "B") if self.rgb and n == 3 else tuple(
                f"C{i}" for i in range(n)
            )
        if len(self.channel_names) != n:
            raise ValueError(
                f"{len(self.channel_names)} channel names given for {n} channels"
            )
        self.channel_names = tuple(str(c) for c in self.channel_names)

    @property
    def source(self) -> str:
        """Name used in messages: the file path, or ``"<array>"``."""
        return str(self.path) if self.path is not None else "<array>"

    @property
    def name(self) -> str:
        """Image name for tables: the file stem, or ``metadata['name']``, or ``"image"``."""
        if "name" in self.metadata:
            return str(self.metadata["name"])
        if self.path is not None:
            return _stem(self.path)
        return "image"

    @property
    def known_modality(self) -> str | None:
        """The modality if given or already detected, else None (reading it never detects).

        Pass it on when copying an image (``dataclasses.replace(img, ...,
        modality=img.known_modality)``): ``replace`` would otherwise read ``modality`` and
        detect it, reading pixels of a lazy whole slide for nothing.
        """
        return self.__dict__.get("_modality")

    @property
    def n_channels(self) -> int:
        """Number of channels (1 for a single-channel image)."""
        return int(self.data.shape[-1]) if self.axes.endswith("C") else 1

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Height and width in pixels."""
        i = self.axes.index("Y")
        return int(self.data.shape[i]), int(self.data.shape[i + 1])

    @property
    def dtype(self) -> np.dtype:
        """Data type of the pixels."""
        return np.dtype(self.data.dtype)

    def with_pixel_size(self, pixel_size_um: float | None) -> Image:
        """Return a copy with ``pixel_size_um`` replaced (logged when it overrides the file).

        Parameters
        ----------
        pixel_size_um : float or None
            The new pixel size in µm, checked against the plausible range; None keeps the
            image as it is.

        Returns
        -------
        Image
            A copy with the new pixel size (``self`` when ``pixel_size_um`` is None).
        """
        if pixel_size_um is None:
            return self
        from .limits import check_pixel_size

        warnings = list(self.metadata.get("warnings", []))
        pixel_size_um = check_pixel_size(pixel_size_um, self.source,
                                         "the pixel size given (--pixel-size / pixel_size_um)",
                                         warnings)
        if self.pixel_size_um is not None and not np.isclose(
            self.pixel_size_um, pixel_size_um, rtol=1e-3
        ):
            log.warning(
                "%s: pixel size %.4g µm given overrides %.4g µm from the file",
                self.source,
                pixel_size_um,
                self.pixel_size_um,
            )
        return replace(self, pixel_size_um=pixel_size_um, modality=self.known_modality,
                       metadata={**self.metadata, "warnings": warnings})

    def require_pixel_size(self) -> float:
        """Return the pixel size in µm, or raise :class:`PixelSizeError` saying how to give it.

        Returns
        -------
        float
            The pixel size in µm.

        Raises
        ------
        PixelSizeError
            When the pixel size is unknown.
        """
        if self.pixel_size_um is None:
            raise PixelSizeError(
                f"{self.source}: the pixel size is unknown (the file has no OME PhysicalSize or "
                "calibrated resolution tags). Give it with --pixel-size UM on the command line, "
                "pixel_size_um=... in Python, a 'pixel_size_um' column in the sample sheet, or "
                "the layer scale in napari."
            )
        return self.pixel_size_um

    def channel_index(self, spec: str | int) -> int:
        """Return the index of a channel given by name (case-insensitive) or integer index.

        Parameters
        ----------
        spec : str or int
            A channel name, an index, or an index written as digits (``"1"``).

        Returns
        -------
        int
            The 0-based channel index.

        Raises
        ------
        ChannelError
            When no channel has that name or the index is out of range.
        """
        n = self.n_channels
        if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.isdigit()):
            i = int(spec)
            if not 0 <= i < n:
                raise ChannelError(
                    f"{self.source}: channel index {i} is out of range; the image has {n} "
                    f"channel(s): {self._channel_list()}"
                )
            return i
        lowered = [c.lower() for c in self.channel_names]
        if str(spec).lower() in lowered:
            return lowered.index(str(spec).lower())
        raise ChannelError(
            f"{self.source}: no channel named {spec!r}; the image has {self._channel_list()}. "
            "Name a channel by one of these names or by its index (0-based)."
        )

    def _channel_list(self) -> str:
        return ", ".join(f"{i}={c}" for i, c in enumerate(self.channel_names))

    def channel(self, spec: str | int, projection: str = "max") -> np.ndarray:
        """Return one channel as a 2D float32 array, projecting Z when there is one.

        Parameters
        ----------
        spec : str or int
            Channel name or index.
        projection : {"max", "mean", "sum"}
            How a Z-stack is reduced to 2D.

        Returns
        -------
        numpy.ndarray
            The (Y, X) channel as float32, checked to hold no NaN or infinite value.
        """
        i = self.channel_index(spec)
        arr = self.data[..., i] if self.axes.endswith("C") else self.data
        arr = np.asarray(arr)
        if "Z" in self.axes:
            arr = _project(arr, projection)
        return check_finite(arr.astype(np.float32, copy=False), self.source)

    def plane(self, projection: str = "max") -> np.ndarray:
        """Return the image as a 2D (Y, X) or (Y, X, C) NumPy array, projecting Z.

        Parameters
        ----------
        projection : {"max", "mean", "sum"}
            How a Z-stack is reduced to 2D.

        Returns
        -------
        numpy.ndarray
            The pixels in their own data type, loaded into memory.
        """
        arr = np.asarray(self.data)
        if "Z" in self.axes:
            arr = _project(arr, projection)
        return arr

    def require_rgb(self) -> np.ndarray:
        """Return the (Y, X, 3) RGB array of a brightfield image.

        Returns
        -------
        numpy.ndarray
            The RGB pixels in their own data type (Z projected by maximum).

        Raises
        ------
        ChannelError
            When the image does not have 3 channels.
        """
        if self.n_channels != 3:
            raise ChannelError(
                f"{self.source}: a brightfield RGB image is needed, but this image has "
                f"{self.n_channels} channel(s) ({self._channel_list()}). Export the slide as "
                "RGB colour, not grayscale or a single channel."
            )
        return self.plane()

    def max_value(self) -> float:
        """Return the value of full brightness: the integer type's maximum, or the data's scale.

        Float pixels are not assumed to lie in 0–1: a float image holding 0–255 values is on
        the 8-bit scale (see :func:`value_scale`). The scale of a float image is computed once
        (from a strided sample of at most about a million pixels) and kept in
        ``metadata["value_scale"]``.

        Returns
        -------
        float
            The full-brightness value (255.0 for 8-bit data, 65535.0 for 16-bit data).
        """
        if not np.issubdtype(self.dtype, np.floating):
            return dtype_max(self.dtype)
        if "value_scale" not in self.metadata:
            self.metadata["value_scale"] = value_scale(_strided_sample(self.data), self.dtype)
        return float(self.metadata["value_scale"])


def dtype_max(dtype: np.dtype) -> float:
    """Return the saturation value of an image dtype: its integer maximum, or 1.0.

    A 12-bit camera's 4095 is not assumed: a 16-bit type saturates at 65535.

    Parameters
    ----------
    dtype : numpy.dtype
        The pixel type.

    Returns
    -------
    float
        255.0, 65535.0 (and so on) for integer types; 1.0 for booleans and floats.
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 1.0
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


def value_scale(values: Any, dtype: Any = None) -> float:
    """Value of full brightness of pixels: their type's maximum, or the scale float data are on.

    Integer (and boolean) types saturate at their maximum (255, 65535). Float data are on the
    scale their finite values show: 1.0 when they lie within 0–1; 255 or 65535 when they are
    whole numbers that fit that range (an 8- or 16-bit image converted to float); otherwise
    their maximum. Assuming 1.0 for every float image would make a float image holding 0–255
    values look saturated white, and a brightfield assay would find no stain in it.

    Parameters
    ----------
    values : array_like
        The pixels, or a representative sample of them.
    dtype : numpy dtype, optional
        The image's type (default: that of ``values``).

    Returns
    -------
    float
    """
    dtype = np.dtype(dtype if dtype is not None else np.asarray(values).dtype)
    if not np.issubdtype(dtype, np.floating):
        return dtype_max(dtype)
    arr = np.asarray(values)
    finite = arr[np.isfinite(arr)] if arr.size else arr
    if finite.size == 0:
        return 1.0
    top = float(finite.max())
    if top <= 1.0:
        return 1.0
    if top <= 65535.0 and bool(np.all(finite == np.round(finite))):
        return 255.0 if top <= 255.0 else 65535.0
    return top


def _strided_sample(data: Any, max_pixels: int = 1 << 20) -> np.ndarray:
    """Return a strided sample of (Z)YX(C) pixels; reads every pixel only for a small image."""
    if isinstance(data, np.ndarray) and data.size <= 4 * max_pixels:
        return data
    shape = data.shape
    step = max(1, int(np.ceil(np.sqrt(np.prod(shape[:2]) / max_pixels))))
    return np.asarray(data[(slice(None, None, step),) * min(2, len(shape))])


def check_finite(arr: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Raise EmptyImageError when a float array holds NaN or infinite values.

    Parameters
    ----------
    arr : numpy.ndarray
        The pixels.
    source : str
        The image's name, for the message.

    Returns
    -------
    numpy.ndarray
        ``arr`` itself, when it is finite.

    Raises
    ------
    EmptyImageError
        When a float array holds a NaN or an infinite value.
    """
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise EmptyImageError(
            f"{source}: {bad} pixel(s) are NaN or infinite. Fill or mask them before analysis "
            "(for example replace NaN with the background value)."
        )
    return arr


def check_not_empty(arr: np.ndarray, source: str = "<array>") -> None:
    """Raise EmptyImageError for an image with no pixels or a single constant value.

    Parameters
    ----------
    arr : numpy.ndarray
        The pixels.
    source : str
        The image's name, for the message.

    Raises
    ------
    EmptyImageError
        When ``arr`` is empty or every pixel has the same value.
    """
    if arr.size == 0:
        raise EmptyImageError(f"{source}: the image has no pixels (shape {arr.shape}).")
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if lo == hi:
        raise EmptyImageError(
            f"{source}: the image is blank (every pixel is {lo:g}); there is nothing to measure. "
            "Check the exposure and that the right file or channel was chosen."
        )


def _project(arr: np.ndarray, projection: str) -> np.ndarray:
    if projection == "max":
        return arr.max(axis=0)
    if projection == "mean":
        return arr.mean(axis=0)
    if projection == "sum":
        return arr.sum(axis=0)
    raise ValueError(f"projection must be 'max', 'mean' or 'sum', not {projection!r}")


def _check_pixel_size(value: float, source: str) -> float:
    """Refuse a pixel size that is not a number, not positive or outside the hard limits.

    Only :data:`~histoquant.io.limits.PIXEL_SIZE_LIMITS_UM`: an Image may be a pyramid level
    or a reduced copy, whose pixels are legitimately coarser than a microscope's.
    """
    from .limits import PIXEL_SIZE_LIMITS_UM

    try:
        value = float(value)
    except (TypeError, ValueError):
        raise PixelSizeError(f"{source}: pixel size {value!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise PixelSizeError(f"{source}: pixel size must be a positive number of µm, not {value}")
    lo, hi = PIXEL_SIZE_LIMITS_UM
    if not lo <= value <= hi:
        raise PixelSizeError(
            f"{source}: a pixel size of {value:.4g} µm is implausible for a microscope image "
            f"(outside {lo:g}–{hi:g} µm); the value is expected in µm per pixel (not pixels "
            "per µm, nm or mm)."
        )
    return value


def _stem(path: Path) -> str:
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _get_modality(self: Image) -> str:
    """Brightfield or fluorescence: as given, else detected from the pixels once and cached."""
    kind = self.__dict__.get("_modality")
    if kind is None:
        from .modality import detect_modality

        found = detect_modality(self)
        kind = found.kind
        self.__dict__["_modality"] = kind
        self.metadata["modality_evidence"] = found.evidence
        self.metadata["modality_confidence"] = found.confidence
    return kind


def _modality_from(self: Image, pixels: np.ndarray, padding: np.ndarray | None = None) -> str:
    """Return the modality as given or already found, else detected from ``pixels`` and cached.

    For a caller that already holds a reduced copy of the whole image (the anatomy's working
    image): detecting on it costs no read of the full-resolution file, where the plain
    property samples windows of level 0.
    """
    kind = self.__dict__.get("_modality")
    if kind is None:
        from .modality import detect_modality

        found = detect_modality(pixels, padding)
        kind = found.kind
        self.__dict__["_modality"] = kind
        self.metadata["modality_evidence"] = found.evidence
        self.metadata["modality_confidence"] = found.confidence
    return kind


def _set_modality(self: Image, value: str | None) -> None:
    if isinstance(value, property):  # the dataclass default seen through the class
        value = None
    from .modality import check_modality

    self.__dict__["_modality"] = check_modality(value)


# A dataclass field backed by a property: Image(..., modality=...) and replace() set it, reading
# it detects the modality on first use.
Image.modality = property(_get_modality, _set_modality)  # type: ignore[assignment]
Image.modality_from = _modality_from  # type: ignore[attr-defined]


def as_image(
    image: Image | np.ndarray,
    pixel_size_um: float | None = None,
    *,
    rgb: bool | None = None,
    channel_names: tuple[str, ...] | None = None,
) -> Image:
    """Wrap an array as an :class:`Image`, or apply a pixel-size override to an Image.

    A 2D array is one channel; a 3D array is (Y, X, C) — RGB when it has 3 channels and
    no channel names are given, unless ``rgb=False``.

    Parameters
    ----------
    image : Image or numpy.ndarray
        An image, or a (Y, X) or (Y, X, C) array.
    pixel_size_um : float, optional
        Pixel size in µm; for an Image it overrides the file's (see
        :meth:`Image.with_pixel_size`).
    rgb : bool, optional
        Whether a 3-channel array is RGB; guessed when not given.
    channel_names : tuple of str, optional
        Names of the array's channels.

    Returns
    -------
    Image
        The wrapped image.

    Raises
    ------
    ChannelError
        When the array is neither 2D nor 3D.
    """
    if isinstance(image, Image):
        return image.with_pixel_size(pixel_size_um)
    arr = np.asarray(image)
    if arr.ndim == 2:
        axes = "YX"
    elif arr.ndim == 3:
        axes = "YXC"
    else:
        raise ChannelError(
            f"an array of shape {arr.shape} is ambiguous; wrap it in histoquant.Image with "
            "explicit axes (YX, YXC, ZYX or ZYXC)"
        )
    if rgb is None:
        rgb = axes == "YXC" and arr.shape[-1] == 3 and channel_names is None
    return Image(
        arr,
        axes=axes,
        pixel_size_um=pixel_size_um,
        channel_names=tuple(channel_names or ()),
        rgb=bool(rgb),
    )
