"""Pixel features at a fixed physical scale, for the pixel classifier.

The features are ilastik's: Gaussian-smoothed intensity, gradient magnitude and the two
Hessian eigenvalues at several scales (:func:`skimage.feature.multiscale_basic_features`),
per input plane. What makes them transferable between images:

- **Scales in µm.** The scales are given in µm (``sigma_min_um`` … ``sigma_max_um``). A model
  works at one pixel size (the one it was trained at); every image is rescaled to it before
  the features are computed (:func:`rescale_planes`), so a soma of 20 µm covers the same
  number of feature pixels whatever the microscope's magnification.
- **Input planes that do not depend on bit depth or exposure** (:func:`prepare_planes`):

  - *brightfield RGB*: stain optical densities (Beer–Lambert, relative to the slide's own
    white, :mod:`histoquant.segment.stain`): the density of the stain estimated from the
    image (one-stain colour deconvolution) and the OD of each colour channel. OD is a ratio
    to the white, so an 8-bit JPEG and a 16-bit TIFF of the same slide give the same values.
  - *fluorescence* (one plane per channel; an RGB export of fluorescence is three channels,
    as ``image.modality`` says) and grey-level brightfield: intensity normalised per image,
    ``(x - p1) / (p90 - p1)`` of the image's non-padding pixels
    (:func:`histoquant.segment.statistics.sample_pixels`, padding from
    :func:`histoquant.segment.padding.find_padding`), so 0–255 and 0–65535 data, or one
    exposure and a brighter one, look alike. The upper end is the 90th percentile, the bulk
    of the bright tissue, not the brightest 0.5 % (somata, tile seams, dust), whose level
    says little about the tissue's: on the mouse sections of docs/learning.md the grey-matter
    Dice of a model trained on two sections rose on all 4 stains with p90 instead of p99.5
    (TH 0.24 → 0.66 on one). ``FeatureSpec.intensity_range`` changes it. A channel holding
    almost nothing (its p90 − p1 below 2 % of full scale) is scaled by that 2 % instead:
    its noise is not blown up into a signal; and a channel whose p99.5 − p1 is below 2 % in
    every training image (the empty red plane of a blue fluorescence JPEG) is left out of
    the model unless named in ``channels``: JPEG colour bleed in it differs from image to
    image and would be learned as if it meant something.

The normalisation is measured once per image (on all of it) and then applied to any part,
so features computed in tiles equal features of the whole image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ChannelError, ParamsError, PixelSizeError
from ..io.image import Image, as_image
from ..segment.padding import padding_of_image
from ..segment.stain import estimate_stain_vector, estimate_white, optical_density, stain_density
from ..segment.statistics import sample_pixels

__all__ = ["FeatureSpec", "PlaneNormaliser", "prepare_planes", "rescale_planes",
           "plane_features", "LOW_SIGNAL_FRACTION"]

#: A fluorescence channel whose robust range is below this share of full scale is scaled by
#: this share instead (so an empty channel's noise stays small); one whose p99.5 − p1 is below
#: it in every training image holds no signal and is left out of the model.
LOW_SIGNAL_FRACTION = 0.02
_SIGNAL_PERCENTILE = 99.5
#: Gaussian support used by scikit-image (``truncate``), in sigmas.
_TRUNCATE = 4.0
#: Pixels the gradient and Hessian (finite differences) reach beyond the Gaussian support.
_STENCIL_PX = 3


@dataclass(frozen=True)
class FeatureSpec:
    """Which features, at which physical scales.

    Parameters
    ----------
    sigma_min_um, sigma_max_um : float
        Smallest and largest Gaussian scale, µm.
    num_sigma : int or None
        Number of scales, log-spaced between the two; ``None``: powers of 2 from
        ``sigma_min_um`` (scikit-image's rule).
    intensity, edges, texture : bool
        Smoothed intensity, gradient magnitude, Hessian eigenvalues (per scale and plane).
    channels : tuple of str or int, or None
        Channels used for fluorescence or grey-level images (names or indices); ``None``: all.
        Ignored for brightfield RGB, whose planes are the stain densities.
    intensity_range : (float, float)
        Percentiles of each channel's non-padding pixels mapped to 0 and 1 (fluorescence and
        grey level).
    """

    sigma_min_um: float = 1.0
    sigma_max_um: float = 16.0
    num_sigma: int | None = None
    intensity: bool = True
    edges: bool = True
    texture: bool = True
    channels: tuple[str | int, ...] | None = None
    intensity_range: tuple[float, float] = (1.0, 90.0)

    def __post_init__(self) -> None:
        """Check the scales and that at least one feature family is on."""
        lo_p, hi_p = (float(p) for p in self.intensity_range)
        if not 0 <= lo_p < hi_p <= 100:
            raise ParamsError(f"intensity_range needs two percentiles 0 <= low < high <= 100; "
                              f"got {self.intensity_range}")
        lo, hi = float(self.sigma_min_um), float(self.sigma_max_um)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
            raise ParamsError(f"feature scales need 0 < sigma_min_um <= sigma_max_um; got "
                              f"{self.sigma_min_um}, {self.sigma_max_um}")
        if self.num_sigma is not None and int(self.num_sigma) < 1:
            raise ParamsError(f"num_sigma must be at least 1, got {self.num_sigma}")
        if not (self.intensity or self.edges or self.texture):
            raise ParamsError("at least one of intensity, edges, texture must be on")

    def sigmas_um(self) -> np.ndarray:
        """Return the scales in µm (scikit-image's spacing).

        Returns
        -------
        numpy.ndarray
            The Gaussian sigmas, µm, ascending.
        """
        lo, hi = float(self.sigma_min_um), float(self.sigma_max_um)
        n = self.num_sigma if self.num_sigma is not None else int(np.log2(hi) - np.log2(lo) + 1)
        return np.logspace(np.log2(lo), np.log2(hi), num=n, base=2, endpoint=True)

    def margin_px(self, pixel_size_um: float) -> int:
        """Return how far (px) a feature at a pixel depends on its neighbours.

        The largest Gaussian's support (4 sigmas) plus the finite-difference stencils: a tile
        read with at least this margin gives the features of the whole image in its interior.

        Parameters
        ----------
        pixel_size_um : float
            The pixel size the features are computed at.

        Returns
        -------
        int
            Margin in pixels.
        """
        return int(np.ceil(_TRUNCATE * self.sigma_max_um / pixel_size_um)) + _STENCIL_PX

    def per_plane(self) -> int:
        """Return the number of features per input plane.

        Returns
        -------
        int
            Features per plane.
        """
        per_sigma = int(self.intensity) + int(self.edges) + 2 * int(self.texture)
        return per_sigma * len(self.sigmas_um())

    def feature_names(self, planes: list[str]) -> list[str]:
        """Return one name per feature, in the order :func:`plane_features` stacks them.

        Parameters
        ----------
        planes : list of str
            Names of the input planes.

        Returns
        -------
        list of str
            ``"<plane>:<kind>@<sigma>um"`` per feature.
        """
        kinds = (["intensity"] if self.intensity else []) + (["edges"] if self.edges else []) \
            + (["hessian1", "hessian2"] if self.texture else [])
        return [f"{p}:{k}@{s:.3g}um" for p in planes for s in self.sigmas_um() for k in kinds]

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain JSON-able values.

        Returns
        -------
        dict
            The fields, ``channels`` as a list or None.
        """
        d = asdict(self)
        d["channels"] = None if self.channels is None else list(self.channels)
        d["intensity_range"] = [float(p) for p in self.intensity_range]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Rebuild a spec from :meth:`to_dict`.

        Parameters
        ----------
        d : dict
            The fields.

        Returns
        -------
        FeatureSpec
            The spec.
        """
        known = {k: d[k] for k in ("sigma_min_um", "sigma_max_um", "num_sigma", "intensity",
                                   "edges", "texture", "channels", "intensity_range") if k in d}
        if known.get("channels") is not None:
            known["channels"] = tuple(known["channels"])
        if "intensity_range" in known:
            known["intensity_range"] = tuple(known["intensity_range"])
        return cls(**known)


@dataclass
class PlaneNormaliser:
    """How one image's pixels become the classifier's input planes (measured on the image).

    Parameters
    ----------
    kind : {"stain_od", "intensity"}
        Brightfield RGB optical densities, or normalised intensities per channel.
    channels : list of int
        Channel indices used (``"intensity"``).
    names : list of str
        One name per output plane.
    low, scale : list of float
        Per channel: ``(x - low) / scale`` (``"intensity"``).
    white, stain_vector : list of float
        The slide's white and the stain's OD colour (``"stain_od"``).
    signal : list of bool
        Per channel: whether its robust range reaches :data:`LOW_SIGNAL_FRACTION` of full
        scale (``"intensity"``); a channel without signal in any training image is left out
        of a model.
    """

    kind: str
    names: list[str]
    channels: list[int] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    white: list[float] = field(default_factory=list)
    stain_vector: list[float] = field(default_factory=list)
    signal: list[bool] = field(default_factory=list)

    def subset(self, keep: list[int]) -> PlaneNormaliser:
        """Return the normaliser of the planes ``keep`` only (``"intensity"``).

        Parameters
        ----------
        keep : list of int
            Positions (in :attr:`channels`) of the planes to keep.

        Returns
        -------
        PlaneNormaliser
            The same measurement, fewer planes.
        """
        if self.kind != "intensity":
            raise ParamsError("only intensity planes can be chosen")
        return PlaneNormaliser("intensity", [self.names[i] for i in keep],
                               channels=[self.channels[i] for i in keep],
                               low=[self.low[i] for i in keep],
                               scale=[self.scale[i] for i in keep],
                               signal=[self.signal[i] for i in keep])

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Return the input planes of a (Y, X) or (Y, X, C) block of the image's pixels.

        Parameters
        ----------
        pixels : numpy.ndarray
            Raw pixels of (part of) the image the normaliser was measured on.

        Returns
        -------
        numpy.ndarray
            float32 (n_planes, Y, X).
        """
        px = np.asarray(pixels)
        if px.ndim == 2:
            px = px[..., None]
        if self.kind == "stain_od":
            rgb = px[..., :3]
            dens = stain_density(rgb, self.stain_vector, self.white)
            od = optical_density(rgb, self.white)
            return np.concatenate([dens[None], np.moveaxis(od, -1, 0)]).astype(np.float32)
        out = np.empty((len(self.channels), *px.shape[:2]), np.float32)
        for i, (c, lo, sc) in enumerate(zip(self.channels, self.low, self.scale, strict=True)):
            out[i] = (px[..., c].astype(np.float32) - np.float32(lo)) / np.float32(sc)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the normaliser's kind and plane names (what a model needs to check inputs).

        Returns
        -------
        dict
            ``kind``, ``names`` and ``channels``.
        """
        return {"kind": self.kind, "names": list(self.names), "channels": list(self.channels)}


def _is_brightfield_rgb(image: Image) -> bool:
    return image.n_channels == 3 and image.rgb and image.modality == "brightfield"


def prepare_planes(image: Image | np.ndarray, spec: FeatureSpec,
                   kind: str | None = None) -> tuple[np.ndarray, PlaneNormaliser]:
    """Return the image's input planes, normalised per image (see the module doc).

    Parameters
    ----------
    image : Image or numpy.ndarray
        The image (Z is max-projected).
    spec : FeatureSpec
        Which channels (fluorescence, grey level).
    kind : {"stain_od", "intensity"}, optional
        Force the kind of planes (a model trained on brightfield RGB asks for ``"stain_od"``);
        from ``image.modality`` when not given.

    Returns
    -------
    planes : numpy.ndarray
        float32 (n_planes, Y, X).
    normaliser : PlaneNormaliser
        What was measured, to apply to other parts of the same image.

    Raises
    ------
    ChannelError
        A channel named in ``spec`` is not in the image, or stain planes are asked of an image
        that is not RGB.
    """
    image = as_image(image)
    pixels = image.plane()
    if kind is None:
        kind = "stain_od" if _is_brightfield_rgb(image) else "intensity"
    if kind == "stain_od":
        if pixels.ndim != 3 or pixels.shape[2] < 3:
            raise ChannelError(f"{image.source}: the model reads brightfield RGB stain "
                               f"densities, but this image has {image.n_channels} channel(s)")
        rgb = pixels[..., :3]
        white = estimate_white(rgb)
        v = estimate_stain_vector(rgb, white)
        norm = PlaneNormaliser("stain_od", ["stain_od", "od_R", "od_G", "od_B"],
                               white=[float(x) for x in white],
                               stain_vector=[float(x) for x in v])
        return norm.apply(pixels), norm
    if kind != "intensity":
        raise ParamsError(f"unknown plane kind {kind!r}: 'stain_od' or 'intensity'")
    chans = (list(range(image.n_channels)) if spec.channels is None
             else [image.channel_index(c) for c in spec.channels])
    if not chans:
        raise ChannelError(f"{image.source}: no channel to compute features on")
    pad = padding_of_image(image)
    keep = ~pad if pad.any() and not pad.all() else None
    top = image.max_value()
    low, scale, signal = [], [], []
    for c in chans:
        plane = pixels[..., c] if pixels.ndim == 3 else pixels
        s = sample_pixels(plane, keep).astype(np.float64)
        lo, hi, peak = (np.percentile(s, [*spec.intensity_range, _SIGNAL_PERCENTILE])
                        if s.size else (0.0, top, top))
        low.append(float(lo))
        scale.append(float(max(hi - lo, LOW_SIGNAL_FRACTION * top)))
        # a channel of sparse bright objects on a dark ground has signal though its p90 is low
        signal.append(bool(peak - lo >= LOW_SIGNAL_FRACTION * top))
    names = [image.channel_names[c] if image.n_channels > 1 else "intensity" for c in chans]
    norm = PlaneNormaliser("intensity", names, channels=chans, low=low, scale=scale,
                           signal=signal)
    return norm.apply(pixels), norm


def rescale_planes(planes: np.ndarray, factor: float,
                   shape: tuple[int, int] | None = None) -> np.ndarray:
    """Resample (n, Y, X) planes by ``factor`` (or to ``shape``), bilinear, anti-aliased down.

    Parameters
    ----------
    planes : numpy.ndarray
        (n, Y, X) float planes.
    factor : float
        Output pixels per input pixel along each axis (image pixel size / model pixel size).
    shape : (rows, cols), optional
        Exact output shape (overrides ``factor``'s rounding).

    Returns
    -------
    numpy.ndarray
        float32 (n, Y', X').
    """
    from skimage.transform import resize

    h, w = planes.shape[1:]
    if shape is None:
        shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    if tuple(shape) == (h, w):
        return planes.astype(np.float32, copy=False)
    down = shape[0] < h
    out = np.empty((planes.shape[0], *tuple(shape)), np.float32)
    for i, p in enumerate(planes):
        out[i] = resize(p, shape, order=1, mode="reflect", anti_aliasing=down,
                        preserve_range=True)
    return out


def plane_features(planes: np.ndarray, spec: FeatureSpec, pixel_size_um: float) -> np.ndarray:
    """Multiscale features of the input planes at ``pixel_size_um``.

    Parameters
    ----------
    planes : numpy.ndarray
        (n, Y, X) float32 input planes (:func:`prepare_planes`), at ``pixel_size_um``.
    spec : FeatureSpec
        The features and their scales in µm.
    pixel_size_um : float
        Pixel size of ``planes``.

    Returns
    -------
    numpy.ndarray
        float32 (Y, X, n × spec.per_plane()), ordered as :meth:`FeatureSpec.feature_names`.

    Raises
    ------
    PixelSizeError
        When the pixel size is not a positive number.
    """
    from skimage.feature import multiscale_basic_features

    if pixel_size_um is None or not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
        raise PixelSizeError(f"features at a physical scale need a pixel size, got "
                             f"{pixel_size_um!r}")
    sig = spec.sigmas_um() / float(pixel_size_um)
    out = []
    for p in planes:
        f = multiscale_basic_features(
            np.ascontiguousarray(p, dtype=np.float32), intensity=spec.intensity,
            edges=spec.edges, texture=spec.texture, sigma_min=float(sig[0]),
            sigma_max=float(sig[-1]), num_sigma=len(sig), workers=1)
        out.append(f.astype(np.float32, copy=False))
    return np.concatenate(out, axis=-1)
