"""Find every cord cross-section of an image and work out its anatomy."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import RegionError
from ..io.image import Image, as_image
from ..progress import Progress
from .grey_matter import _BUTTERFLY_ONLY, find_canal, segment_grey_matter
from .grey_matter import _RING_UM as _GREY_RING_UM
from .orientation import reflect_dice, symmetry_axis, ventral_cues
from .params import AnatomyParams
from .quality import section_quality
from .regions import REGION_NAMES, SectionAnatomy, Window, region_key
from .tissue import find_tissue
from .working import WorkingImage, pyramid_downsamples, read_downsampled, tissue_signal

if TYPE_CHECKING:
    from ..rois import Region

__all__ = ["SlideAnatomy", "find_sections", "auto_regions"]

log = logging.getLogger(__name__)


@dataclass
class SlideAnatomy:
    """Every section found in one image.

    Attributes
    ----------
    image_name : str
        Name of the image (file stem).
    full_shape : tuple of int
        Full-resolution (height, width).
    factor : int
        Full-resolution pixels per working pixel.
    pixel_size_um : float or None
        Full-resolution pixel size; None when the image did not say (areas are then NaN).
    assumed_pixel_size_um : float or None
        When the pixel size was unknown: the value assumed from the section width to pick
        the working resolution.
    working : WorkingImage
        Tissue signal and display image at the working resolution.
    sections : list of SectionAnatomy
        Sections numbered top-to-bottom, left-to-right.
    status : str
        ``"ok"``, ``"no_tissue"`` (nothing above the slide) or ``"no_section"`` (tissue,
        but no piece large and thick enough to be a cord section).
    warnings : list of str
        Things worth a look.
    classifier : dict or None
        The pixel classifier that gave the tissue and grey matter
        (:func:`~histoquant.anatomy.learned.classify_working`'s record), or None.
    """

    image_name: str
    full_shape: tuple[int, int]
    factor: int
    pixel_size_um: float | None
    assumed_pixel_size_um: float | None
    working: WorkingImage
    sections: list[SectionAnatomy] = field(default_factory=list)
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)
    #: What a pixel classifier did in place of the thresholds (see
    #: :mod:`histoquant.anatomy.learned`); ``None`` when none ran.
    classifier: dict[str, Any] | None = None

    @property
    def working_pixel_size_um(self) -> float | None:
        """Pixel size of the working image in µm (None when the pixel size is unknown)."""
        px = self.pixel_size_um or self.assumed_pixel_size_um
        return px * self.factor if px else None

    def key(self, name: str, section: SectionAnatomy) -> str:
        """Return the table name of a section's region (see :func:`region_key`).

        Parameters
        ----------
        name : str
            The region's name (e.g. ``"ventral_horn_left"``).
        section : SectionAnatomy
            The section it belongs to.

        Returns
        -------
        str
            The plain name for a lone section, ``s<k>_<name>`` otherwise.
        """
        return region_key(name, section.index, len(self.sections))

    def masks(self, names: tuple[str, ...] = REGION_NAMES, window: Window | None = None
              ) -> dict[str, np.ndarray]:
        """Return full-resolution masks of every section's regions (or of a window).

        Parameters
        ----------
        names : tuple of str
            The region names to include.
        window : Window, optional
            ``((row_start, row_stop), (col_start, col_stop))``; the whole image when not given.

        Returns
        -------
        dict of str to numpy.ndarray
            ``{key: boolean mask}``, keys as :meth:`key` gives them.
        """
        return {self.key(n, s): s.mask(n, window) for s in self.sections for n in names}

    def label_image(self, window: Window | None = None) -> np.ndarray:
        """Return full-resolution region labels ``10 * section + code`` for the image or a window.

        Parameters
        ----------
        window : Window, optional
            ``((row_start, row_stop), (col_start, col_stop))``; the whole image when not given.

        Returns
        -------
        numpy.ndarray
            uint8 labels (uint16 beyond 24 sections); 0 outside every section.
        """
        dtype = np.uint8 if len(self.sections) <= 24 else np.uint16
        (r0, r1), (c0, c1) = window or ((0, self.full_shape[0]), (0, self.full_shape[1]))
        out = np.zeros((min(r1, self.full_shape[0]) - max(r0, 0),
                        min(c1, self.full_shape[1]) - max(c0, 0)), dtype=dtype)
        for s in self.sections:
            codes = s.label_window(window)
            sel = codes > 0
            out[sel] = (10 * s.index + codes[sel]).astype(dtype)
        return out

    def regions(self, names: tuple[str, ...] = REGION_NAMES) -> list[Region]:
        """Return every section's regions as :class:`~histoquant.rois.Region` polygons.

        Parameters
        ----------
        names : tuple of str
            The region names to include.

        Returns
        -------
        list of Region
            Polygons in full-resolution pixel coordinates, named as :meth:`key` gives them.
        """
        out = []
        for s in self.sections:
            out.extend(s.regions(names, len(self.sections)))
        return out


def _aligned_factor(image: Image, factor: int, at_least: bool = False) -> int:
    """Move ``factor`` to a multiple of the coarsest pyramid level at or below it.

    That level can then be read instead of the full image (the nearest multiple, or the next
    one up with ``at_least``).
    """
    levels = [d for d in pyramid_downsamples(image) if d <= factor]
    d = max(levels) if levels else 1
    return d * max(1, math.ceil(factor / d) if at_least else round(factor / d))


def _estimate_pixel_size(image: Image, params: AnatomyParams) -> float:
    """Guess the pixel size from the largest tissue body.

    The body's major axis is assumed ``params.cord_width_um`` wide.
    """
    from skimage.measure import label, regionprops

    H, W = image.shape_yx
    f0 = _aligned_factor(image, max(1, math.ceil(max(H, W) / 600)))
    width = params.cord_width_um
    ws = tissue_signal(image, f0)
    # the tissue as the anatomy finds it, at a provisional scale (the image's long side
    # taken as 2.5 cord widths): the scale only sets smoothing and opening sizes here
    guess = width * 2.5 / (max(H, W))
    pieces = find_tissue(ws.signal, guess * f0, brightfield=ws.brightfield,
                         background=ws.background, min_section_area_mm2=0.0,
                         valid=ws.valid, size_scale=params.size_scale)
    # the largest body kept as a section (roots and meninges trimmed off), else the tissue
    m = max(pieces.sections, key=np.sum) if pieces.sections else pieces.tissue
    if not m.any():
        return width / max(H, W) * 2
    m = ndi.binary_fill_holes(ndi.binary_opening(m, iterations=2))
    props = [p for p in regionprops(label(m)) if p.area > 0]
    if not props:
        return width / max(H, W) * 2
    big = max(props, key=lambda p: p.area)
    return width / (big.axis_major_length * f0)


def find_sections(image: Image | np.ndarray, params: AnatomyParams | Mapping | None = None,
                  *, channel: int | str | None = None, pixel_size_um: float | None = None,
                  progress: Progress | None = None, model: Any = None) -> SlideAnatomy:
    """Find the cord cross-sections of an image and their regions.

    Parameters
    ----------
    image : Image or ndarray
        A brightfield Nissl RGB image, or a fluorescence image with tissue contrast (DAPI,
        autofluorescence, a vessel marker). May be lazy (zarr) and pyramidal: only a
        downsampled version is read.
    params : AnatomyParams or dict, optional
        Working resolution, ventral override, mirroring, section size limits...
    channel : int or str, optional
        Fluorescence channel to use; by default RGB optical density for brightfield, else
        the channel with the best tissue contrast.
    pixel_size_um : float, optional
        Pixel size override. Without any pixel size the anatomy still runs (the working
        resolution is chosen from the section's size) but areas are NaN.
    progress : callable, optional
        ``progress(fraction, message)``.
    model : PixelClassifier, optional
        A pixel classifier with a grey-matter class: its tissue (every class but
        background) and grey matter replace the thresholds; the rest runs on them unchanged
        (:mod:`histoquant.anatomy.learned`).

    Returns
    -------
    SlideAnatomy
        Sections (possibly none: see ``status``).
    """
    image = as_image(image, pixel_size_um)
    if not isinstance(params, AnatomyParams):
        params = AnatomyParams.from_dict(dict(params or {}))
    px = image.pixel_size_um
    assumed = None
    if px is None:
        assumed = _estimate_pixel_size(image, params)
        log.warning("%s: pixel size unknown; assuming %.3g µm from a %.0f µm wide section "
                    "(areas not reported)", image.source, assumed, params.cord_width_um)
    use_px = px or assumed
    factor = _aligned_factor(image, max(1, round(params.working_pixel_size_um / use_px)))
    if progress:
        progress(0.05, "reading the image at working resolution")
    ws = tissue_signal(image, factor, channel)
    wpx = use_px * factor
    learned = None
    if model is not None:
        from .learned import classify_working

        if progress:
            progress(0.07, "pixel classifier")
        learned = classify_working(model, image, factor, use_px)
    pieces = find_tissue(ws.signal, wpx, brightfield=ws.brightfield, background=ws.background,
                         min_section_area_mm2=params.section_area_floor_mm2, valid=ws.valid,
                         size_scale=params.size_scale,
                         classified=None if learned is None else learned.tissue)
    slide = SlideAnatomy(image.name, image.shape_yx, factor, px, assumed, ws)
    if learned is not None:
        slide.classifier = learned.record
        if learned.tissue is None:
            slide.warnings.append("the pixel classifier has no background class: the tissue "
                                  "is found by the classical threshold, the grey matter by "
                                  "the classifier")
    if px is None:
        slide.warnings.append(
            f"pixel size unknown: assumed {assumed:.3g} µm from a "
            f"{params.cord_width_um:.0f} µm wide section; areas not reported")
    if not pieces.contrast_ok:
        slide.status = "no_tissue"
        slide.warnings.append("no tissue found (no contrast between tissue and slide)")
        return slide
    if not pieces.sections:
        slide.status = "no_section"
        slide.warnings.append("tissue found, but no piece large enough to be a cord "
                              f"section (≥ {params.section_area_floor_mm2:.2g} mm²)")
        return slide
    n = len(pieces.sections)
    for i, mask in enumerate(pieces.sections, start=1):
        if progress:
            progress(0.1 + 0.85 * (i - 1) / n, f"section {i} of {n}")
        slide.sections.append(_analyse(ws, mask, i, wpx, px is not None, params,
                                       None if learned is None else learned.grey))
    if progress:
        progress(1.0, f"{n} section(s)")
    return slide


# Ventral grey matter never reaches the cord's surface: the ventral and lateral funiculi lie
# between (≈ 300 µm thick in the mouse atlas drawings of the lumbar cord) [U].
_VENTRAL_WHITE_UM = 100.0
# ... unless the section found is the butterfly alone (white matter as faint as the slide):
# the ventral horns then make the surface, and a trim would take a large share of them [U].
_MAX_TRIM_SHARE = 0.3


def _trim_ventral_surface(grey: np.ndarray, sec: np.ndarray, is_ventral: np.ndarray,
                          wpx: float) -> np.ndarray:
    """Grey matter without what touches the section's surface on the ventral side.

    A bright ventral root bundle (ChAT: motor axons) or a fibre-rich ventral white matter
    joins the grey matter where it is as bright as it; ventral grey matter lies deep, so
    the grey matter within 100 µm of the ventral surface is dropped, then the pieces cut
    off from the main grey matter (a root block) with it. Not when the section is the
    butterfly alone (grey matter ≥ 80 % of it, or a trim that would take more than 30 % of
    the ventral grey matter): the ventral horns then make its surface.
    """
    ventral_grey = grey & is_ventral
    if not ventral_grey.any() or float(grey.sum()) >= _BUTTERFLY_ONLY * float(sec.sum()):
        return grey
    depth = ndi.distance_transform_edt(np.pad(sec, 1))[1:-1, 1:-1] * wpx
    cut = ventral_grey & (depth < _VENTRAL_WHITE_UM)
    if float(cut.sum()) > _MAX_TRIM_SHARE * float(ventral_grey.sum()):
        return grey
    kept = grey & ~cut
    lab, n = ndi.label(kept)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        kept = np.isin(lab, 1 + np.flatnonzero(sizes >= 0.1 * sizes.max()))
    return kept


def _analyse(ws: WorkingImage, full_mask: np.ndarray, index: int, wpx: float,
             calibrated: bool, params: AnatomyParams,
             classified_grey: np.ndarray | None = None) -> SectionAnatomy:
    rows, cols = np.nonzero(full_mask)
    # the crop reaches beyond the section by the ring the grey-matter threshold samples
    pad = 3 + math.ceil(_GREY_RING_UM / wpx)
    r0, c0 = max(0, rows.min() - pad), max(0, cols.min() - pad)
    r1 = min(full_mask.shape[0], rows.max() + pad + 1)
    c1 = min(full_mask.shape[1], cols.max() + pad + 1)
    touches = rows.min() == 0 or cols.min() == 0 or rows.max() == full_mask.shape[0] - 1 \
        or cols.max() == full_mask.shape[1] - 1
    sec = full_mask[r0:r1, c0:c1]
    sig = ws.signal[r0:r1, c0:c1]
    field = None if ws.valid is None else ws.valid[r0:r1, c0:c1]
    grey = segment_grey_matter(sig, sec, wpx, contrast=params.grey_matter_contrast,
                               brightfield=ws.brightfield, field=field,
                               classified=None if classified_grey is None
                               else classified_grey[r0:r1, c0:c1]).mask
    ventral = params.ventral_angle
    if ventral == "auto":
        axis = symmetry_axis(grey, sec, wpx)
    elif params.ventral_is_hint:
        axis = symmetry_axis(grey, sec, wpx, angle_range=(ventral - 45.0, ventral + 45.0))
    else:
        axis = symmetry_axis(grey, sec, wpx, fixed_angle=float(ventral))
    canal = find_canal(sig, sec, grey, axis.point, axis.direction, wpx)
    canal_rc = np.asarray(canal.rc)
    from skimage.morphology import convex_hull_image

    filled = ndi.binary_fill_holes(sec)
    hull = convex_hull_image(filled)
    if ventral == "auto":
        sign, conf, cues = ventral_cues(grey, sec, canal_rc, axis.direction, wpx, hull)
        source = "auto"
    else:
        want = np.deg2rad(float(ventral))
        want_v = np.array([np.cos(want), np.sin(want)])
        sign = 1.0 if axis.direction @ want_v >= 0 else -1.0
        conf, cues = 1.0, {}
        source = "hint" if params.ventral_is_hint else "user"
    v = sign * axis.direction
    angle = float(np.degrees(np.arctan2(v[1], v[0])))
    right = np.array([-v[1], v[0]])    # image right when the section is turned dorsal up
    if params.mirrored:
        right = -right                 # ... then the animal's right is on the image right
    rr, cc = np.indices(sec.shape)
    d_r, d_c = rr - canal_rc[0], cc - canal_rc[1]
    is_ventral = d_r * v[0] + d_c * v[1] > 0
    m_r, m_c = rr - axis.point[0], cc - axis.point[1]
    is_left = m_r * right[0] + m_c * right[1] > 0   # animal's left: image right, unmirrored
    codes = np.zeros(sec.shape, np.uint8)
    codes[sec] = 1
    grey = _trim_ventral_surface(grey, sec, is_ventral, wpx)
    g = grey & sec & ~canal.lumen
    codes[g & is_ventral & is_left] = 2
    codes[g & is_ventral & ~is_left] = 3
    codes[g & ~is_ventral & is_left] = 4
    codes[g & ~is_ventral & ~is_left] = 5
    codes[canal.lumen & sec] = 6

    f = ws.factor
    area = float(wpx**2 / 1e6) if calibrated else float("nan")
    n_t = int(sec.sum())
    n_g = int(g.sum())
    solidity = float(filled.sum() / max(hull.sum(), 1))
    coords = np.argwhere(sec).astype(float) - canal_rc
    width = float(np.ptp(coords @ right)) + 1 if len(coords) else 0.0
    height = float(np.ptp(coords @ v)) + 1 if len(coords) else 0.0
    symmetry = reflect_dice(g, axis.point, axis.direction)
    frac = n_g / n_t if n_t else float("nan")
    quality, parts, flags = section_quality(
        symmetry=symmetry, grey_fraction=frac, grey_range=params.grey_fraction_range_pct,
        solidity=solidity, aspect=width / height if height else 0.0,
        orientation_confidence=conf, orientation_user=source != "auto",
        canal_found=canal.found, touches_edge=bool(touches),
        min_orientation_confidence=params.min_orientation_confidence,
        min_quality=params.min_quality)
    if n_g == 0:
        flags.insert(0, "no_grey_matter")
    metrics: dict[str, Any] = {
        "tissue_area_mm2": n_t * area,
        "grey_matter_area_mm2": n_g * area,
        "white_matter_area_mm2": int((codes == 1).sum()) * area,
        "grey_matter_fraction": frac,
        "ventral_horn_left_area_mm2": int((codes == 2).sum()) * area,
        "ventral_horn_right_area_mm2": int((codes == 3).sum()) * area,
        "dorsal_horn_left_area_mm2": int((codes == 4).sum()) * area,
        "dorsal_horn_right_area_mm2": int((codes == 5).sum()) * area,
        "width_um": width * wpx if calibrated else float("nan"),
        "height_um": height * wpx if calibrated else float("nan"),
        "symmetry": symmetry,
        "solidity": solidity,
        **{f"quality_{k}": v_ for k, v_ in parts.items()},
        **{f"cue_{k}": v_ for k, v_ in cues.items()},
    }
    # working (row, col) -> full-resolution pixel coordinates
    canal_full = ((canal_rc[0] + r0) * f + (f - 1) / 2.0, (canal_rc[1] + c0) * f + (f - 1) / 2.0)
    return SectionAnatomy(
        index=index, codes=codes, offset=(int(r0), int(c0)), factor=f,
        full_shape=ws.full_shape, canal_rc=canal_full, canal_found=canal.found,
        ventral=(float(v[0]), float(v[1])), angle_deg=angle, orientation_confidence=conf,
        orientation_source=source, mirrored=params.mirrored, quality=quality, flags=flags,
        metrics=metrics)


def auto_regions(image: Image, names: tuple[str, ...] = (),
                 params: AnatomyParams | Mapping | None = None) -> dict[str, np.ndarray]:
    """Full-resolution masks of anatomical regions, for ``regions="auto"`` in every assay.

    Parameters
    ----------
    image : Image
        The image the assay measures.
    names : tuple of str
        Region names wanted (``grey_matter``, ``ventral_horn_left``, ...); empty = all.
    params : AnatomyParams or dict, optional
        Anatomy parameters (defaults: automatic orientation, not mirrored).

    Returns
    -------
    dict of str to ndarray of bool
        With one section, keyed by the plain names; with several, ``s<k>_<name>``.

    Raises
    ------
    RegionError
        When no cord section is found, or none of the wanted regions covers any pixel.
    """
    names = tuple(names) or REGION_NAMES
    bad = [n for n in names if n not in REGION_NAMES]
    if bad:
        raise RegionError(f"regions='auto' cannot make {', '.join(bad)}; the anatomy finds "
                          f"{', '.join(REGION_NAMES)}")
    slide = find_sections(image, params)
    if not slide.sections:
        raise RegionError(
            f"{image.source}: regions='auto' found no spinal cord section "
            f"({slide.status}: {'; '.join(slide.warnings)}). Check the image and channel, "
            "or draw the regions and pass them as a region file.")
    out: dict[str, np.ndarray] = {}
    for s in slide.sections:
        if s.flags:
            log.warning("%s: section %d flagged (%s), quality %.2f", image.source, s.index,
                        ", ".join(s.flags), s.quality)
        for n in names:
            m = s.mask(n)
            if m.any():
                out[slide.key(n, s)] = m
            else:
                log.warning("%s: section %d has no %s", image.source, s.index, n)
    if not out:
        raise RegionError(f"{image.source}: regions='auto' found sections but none of "
                          f"{', '.join(names)} in them")
    return out


def read_display(image: Image, max_size_px: int) -> tuple[np.ndarray, int]:
    """Return an RGB uint8 display image of at most ``max_size_px`` on the long side.

    Parameters
    ----------
    image : Image
        The image (RGB, or fluorescence channels shown as colours).
    max_size_px : int
        Longest side of the display image, in pixels.

    Returns
    -------
    rgb : numpy.ndarray
        The (Y, X, 3) uint8 display image.
    factor : int
        The downsampling factor from the full image.
    """
    H, W = image.shape_yx
    f = max(1, math.ceil(max(H, W) / max_size_px))
    f = _aligned_factor(image, f, at_least=True) if f > 1 else f
    if image.rgb and image.n_channels == 3:
        rgb = read_downsampled(image, f)
        scale = 255.0 / float(max(image.max_value(), 1.0))
        return np.clip(rgb * scale, 0, 255).astype(np.uint8), f
    ws = tissue_signal(image, f)
    return ws.display, f

