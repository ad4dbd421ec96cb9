"""Run any assay tile by tile over a large image, counting objects on tile seams once.

The image is cut into square *cores* that cover it without overlap. Each tile the assay sees is
its core grown by an overlap on every side, so an object near the core's edge is seen whole
(the overlap must be wider than the largest object). The regions handed to the assay are cut to
the core, and of the objects found only those whose centroid falls inside the core are kept;
since cores do not overlap, every object is counted by exactly one tile. Areas and lengths
measured inside the core-cut regions add up over tiles; every other summary column is
combined by the rule its assay declares (:class:`~histoquant.assays.contract.Measure`):
densities and fractions as ratios of the summed amounts, means of per-object values as means
over the stitched objects (see :func:`histoquant.aggregate.combine_tiles`).

Image-wide statistics: an assay whose spec has a ``calibrate`` (background, noise, thresholds,
stain colour, ...) has them measured once over the regions (the section's bounding box, read
whole or, beyond a pixel budget, at a lower resolution: :mod:`histoquant.calibration`) and
applied to every tile, so that each tile does not estimate its own from a fraction of the
image; the calibration is kept in :attr:`TiledResult.calibration`.

Memory is bounded by one tile (and the calibration's budget): pixels are read window by window
from lazy (zarr) images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .aggregate import combine_tiles
from .assays.base import AssaySpec
from .errors import HistoquantError, ImageReadError
from .io import Image
from .rois import Polygon, rasterize

__all__ = ["Window", "tile_grid", "RegionSource", "WholeImage", "MaskSource", "PolygonSource",
           "TiledResult", "run_tiled", "shift_objects"]

@dataclass(frozen=True)
class Window:
    """A tile: its core rows/cols ``[r0, r1) × [c0, c1)`` and the padded window it reads."""

    r0: int
    r1: int
    c0: int
    c1: int
    R0: int
    R1: int
    C0: int
    C1: int

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width of the padded window."""
        return self.R1 - self.R0, self.C1 - self.C0

    def core_mask(self) -> np.ndarray:
        """Boolean mask of the core inside the padded window.

        Returns
        -------
        ndarray of bool
            The padded window's shape, True on the core.
        """
        m = np.zeros(self.shape, dtype=bool)
        m[self.r0 - self.R0:self.r1 - self.R0, self.c0 - self.C0:self.c1 - self.C0] = True
        return m


def tile_grid(shape: tuple[int, int], tile_px: int, overlap_px: int,
              bounds: tuple[int, int, int, int] | None = None) -> list[Window]:
    """Tiles whose cores cover ``bounds`` (r0, r1, c0, c1; default the whole image).

    Cores are ``tile_px`` square (smaller at the far edges), padded by ``overlap_px`` on each
    side and clipped to the image.

    Parameters
    ----------
    shape : (int, int)
        The image's (Y, X) shape in px.
    tile_px : int
        Core side in px.
    overlap_px : int
        Padding on each side of a core, in px.
    bounds : (int, int, int, int), optional
        Box to cover, clipped to the image; None is the whole image.

    Returns
    -------
    list of Window
        The tiles, row by row.

    Raises
    ------
    HistoquantError
        ``tile_px`` below 1 or ``overlap_px`` below 0.
    """
    if tile_px < 1 or overlap_px < 0:
        raise HistoquantError(f"tile size must be >= 1 and overlap >= 0 pixels, got "
                              f"{tile_px} and {overlap_px}")
    h, w = shape
    r0, r1, c0, c1 = bounds if bounds is not None else (0, h, 0, w)
    r0, c0 = max(0, r0), max(0, c0)
    r1, c1 = min(h, r1), min(w, c1)
    out = []
    for a in range(r0, r1, tile_px):
        b = min(r1, a + tile_px)
        for c in range(c0, c1, tile_px):
            d = min(c1, c + tile_px)
            out.append(Window(a, b, c, d, max(0, a - overlap_px), min(h, b + overlap_px),
                              max(0, c - overlap_px), min(w, d + overlap_px)))
    return out


class RegionSource:
    """Named regions that can be cut out at any window of the full-resolution image."""

    names: tuple[str, ...] = ()

    def window(self, win: Window) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        """``{name: bool mask}`` of the padded window of ``win``.

        Parameters
        ----------
        win : Window
            The tile.

        Returns
        -------
        dict of str to ndarray of bool
            One mask of the padded window's shape per region.
        """
        raise NotImplementedError

    def restrict(self, section: MaskSource) -> RegionSource:
        """Return these regions cut to the pixels of one section.

        Parameters
        ----------
        section : MaskSource
            The section's mask.

        Returns
        -------
        RegionSource
            A source whose windows hold these regions' masks, each cut to the section's pixels.
        """
        return _Restricted(self, section)


@dataclass
class WholeImage(RegionSource):
    """The whole image as one region (``image`` by default)."""

    name: str = "image"

    def __post_init__(self) -> None:
        """Name the one region."""
        self.names = (self.name,)

    def window(self, win: Window) -> dict[str, np.ndarray]:
        """Return the whole padded window of ``win`` as the one region.

        Parameters
        ----------
        win : Window
            The tile.

        Returns
        -------
        dict of str to ndarray of bool
            ``{name: all-True mask}`` of the padded window's shape.
        """
        return {self.name: np.ones(win.shape, dtype=bool)}


@dataclass
class MaskSource(RegionSource):
    """Regions as low-resolution masks (from an overview), enlarged by nearest neighbour.

    ``scale`` is the number of full-resolution pixels per mask pixel along Y and X, and
    ``origin`` the full-resolution pixel where the masks' top-left corner lies (a mask of one
    section's crop); outside the masks nothing belongs to the regions.
    """

    masks: Mapping[str, np.ndarray]
    scale: tuple[float, float]
    origin: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        """Hold the masks as booleans and name the regions after them."""
        self.masks = {k: np.asarray(v, dtype=bool) for k, v in self.masks.items()}
        self.names = tuple(self.masks)

    def window(self, win: Window) -> dict[str, np.ndarray]:
        """Return ``{name: bool mask}`` of the padded window of ``win``, enlarged.

        Parameters
        ----------
        win : Window
            The tile.

        Returns
        -------
        dict of str to ndarray of bool
            One mask of the padded window's shape per region; False outside the masks.
        """
        out = {}
        for name, m in self.masks.items():
            rows = np.floor((np.arange(win.R0, win.R1) - self.origin[0])
                            / self.scale[0]).astype(np.intp)
            cols = np.floor((np.arange(win.C0, win.C1) - self.origin[1])
                            / self.scale[1]).astype(np.intp)
            ok_r = (rows >= 0) & (rows < m.shape[0])
            ok_c = (cols >= 0) & (cols < m.shape[1])
            sel = m[np.ix_(np.clip(rows, 0, m.shape[0] - 1), np.clip(cols, 0, m.shape[1] - 1))]
            sel &= np.outer(ok_r, ok_c)
            out[name] = sel
        return out

    def bounds(self, name: str | None = None, pad: int = 1) -> tuple[int, int, int, int]:
        """Full-resolution bounding box (r0, r1, c0, c1) of one mask (or all), padded.

        Parameters
        ----------
        name : str, optional
            The mask; None takes all of them together.
        pad : int
            Margin added on each side, in mask px.

        Returns
        -------
        (int, int, int, int)
            Full-resolution (r0, r1, c0, c1); (0, 0, 0, 0) when the mask is empty. Not clipped to
            the image.
        """
        m = np.zeros(next(iter(self.masks.values())).shape, dtype=bool)
        for k, v in self.masks.items():
            if name is None or k == name:
                m |= v
        rr, cc = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if not len(rr):
            return (0, 0, 0, 0)
        sy, sx = self.scale
        oy, ox = self.origin
        return (oy + int(np.floor((rr[0] - pad) * sy)), oy + int(np.ceil((rr[-1] + 1 + pad) * sy)),
                ox + int(np.floor((cc[0] - pad) * sx)), ox + int(np.ceil((cc[-1] + 1 + pad) * sx)))


@dataclass
class PolygonSource(RegionSource):
    """Regions as polygons in full-resolution (row, col) pixel coordinates (ROI files)."""

    polygons: Mapping[str, Sequence[Polygon]]

    def __post_init__(self) -> None:
        """Name the regions after the polygon groups."""
        self.names = tuple(self.polygons)

    def window(self, win: Window) -> dict[str, np.ndarray]:
        """Return ``{name: bool mask}`` of the polygons rasterised in the window of ``win``.

        Parameters
        ----------
        win : Window
            The tile.

        Returns
        -------
        dict of str to ndarray of bool
            One mask of the padded window's shape per region.
        """
        off = np.array([win.R0, win.C0], dtype=float)
        out = {}
        for name, polys in self.polygons.items():
            shifted = [Polygon(p.exterior - off, [h - off for h in p.holes]) for p in polys]
            out[name] = rasterize(shifted, win.shape)
        return out


@dataclass
class _Restricted(RegionSource):
    inner: RegionSource
    section: MaskSource

    def __post_init__(self) -> None:
        self.names = self.inner.names

    def window(self, win: Window) -> dict[str, np.ndarray]:
        keep = np.zeros(win.shape, dtype=bool)
        for m in self.section.window(win).values():
            keep |= m
        return {k: v & keep for k, v in self.inner.window(win).items()}


@dataclass
class TiledResult:
    """Combined tables of a tiled run, and what it cost."""

    summary: pd.DataFrame
    objects: pd.DataFrame
    n_tiles: int
    n_tiles_skipped: int
    warnings: list[str] = field(default_factory=list)
    saturated_px: int = 0
    measured_px: int = 0
    #: The image-wide statistics every tile was measured with (``spec.calibrate``; plain
    #: JSON data for run.json), or None when the assay has no calibration.
    calibration: dict | None = None


def shift_objects(objects: pd.DataFrame, dy_px: float, dx_px: float, pixel_size_um: float,
                  positions: Sequence[tuple[str, str]] = (("centroid_y_um", "centroid_x_um"),)
                  ) -> pd.DataFrame:
    """Move the µm position columns ``positions`` of ``objects`` by (dy, dx) pixels.

    Parameters
    ----------
    objects : DataFrame
        An objects table (not changed).
    dy_px, dx_px : float
        Shift along rows and columns, in px.
    pixel_size_um : float
        Pixel size in µm.
    positions : sequence of (str, str)
        (row, column) pairs of µm columns to move; a pair missing from ``objects`` is skipped.

    Returns
    -------
    DataFrame
        A shifted copy of ``objects``.
    """
    out = objects.copy()
    for ry, rx in positions:
        if ry in out.columns and rx in out.columns:
            out[ry] = out[ry] + dy_px * pixel_size_um
            out[rx] = out[rx] + dx_px * pixel_size_um
    return out


def _tile_image(image: Image, win: Window, modality: str | None = None) -> Image:
    try:
        if image.axes.startswith("Z"):
            data = np.asarray(image.data[:, win.R0:win.R1, win.C0:win.C1])
        else:
            data = np.asarray(image.data[win.R0:win.R1, win.C0:win.C1])
    except MemoryError:
        raise
    except Exception as exc:  # a tile that cannot be decoded: a damaged or truncated file
        raise ImageReadError(
            f"{image.source}: pixels of rows {win.R0}-{win.R1}, columns {win.C0}-{win.C1} "
            f"could not be read ({type(exc).__name__}: {exc}); the file may be damaged or "
            "truncated: re-copy or re-export it.") from exc
    meta = {k: v for k, v in image.metadata.items() if k not in ("multiscales", "_padding")}
    meta.update(name=image.name, tile_origin_yx=(win.R0, win.C0))
    return Image(data, axes=image.axes, pixel_size_um=image.pixel_size_um,
                 channel_names=image.channel_names, rgb=image.rgb, z_step_um=image.z_step_um,
                 path=image.path, metadata=meta, modality=modality)


def run_tiled(
    spec: AssaySpec,
    image: Image,
    regions: RegionSource,
    *,
    params: Any = None,
    channels: Mapping[str, str | int] | None = None,
    tile_px: int = 4096,
    overlap_px: int = 200,
    bounds: tuple[int, int, int, int] | None = None,
    progress: Callable[[float, str], None] | None = None,
    run_kwargs: Mapping[str, Any] | None = None,
) -> TiledResult:
    """Run ``spec`` over tiles of ``image`` and combine the results as one measurement.

    Parameters
    ----------
    spec : AssaySpec
        The assay.
    image : Image
        Full-resolution image; a lazy (zarr) image is read one padded tile at a time.
    regions : RegionSource
        Where to measure; tiles whose core holds none of it are skipped.
    params, channels
        Passed to ``spec.run`` (and ``spec.calibrate``).
    tile_px : int
        Core size in pixels.
    overlap_px : int
        Context added on each side; must exceed the diameter of the largest object.
    bounds : tuple, optional
        Only tiles covering (r0, r1, c0, c1) — the bounding box of one section.
    progress : callable, optional
        ``progress(fraction, message)`` after each tile.
    run_kwargs : mapping, optional
        More keyword arguments for every tile's ``spec.run`` (a learned model's
        ``model=``, see :func:`histoquant.learn.assay_models.run_kwargs`).

    Returns
    -------
    TiledResult
        Summary with one row per region (plus the columns the assay reports), objects in
        full-image coordinates with labels numbered 1, 2, ... in tile order.
    """
    px = image.require_pixel_size()
    # An assay for one modality checks it on the whole image, once (a tile of background
    # alone says little); the tiles inherit it.
    modality = image.modality if set(spec.modalities) != {"brightfield", "fluorescence"} \
        else None
    windows = tile_grid(image.shape_yx, tile_px, overlap_px, bounds)
    summaries, objects, warnings = [], [], []
    calibration = None
    extra: dict[str, Any] = dict(run_kwargs or {})
    if spec.calibrate is not None and windows:
        # Once for the whole region: each tile alone would estimate its own background,
        # noise and thresholds from a fraction of the image.
        more = {} if bounds is None else {"bounds": bounds}
        calibration = spec.calibrate(image, regions, params, channels=channels, **more)
        warnings.extend(calibration.get("warnings", []))
        extra["calibration"] = calibration
    skipped = 0
    saturated = measured = 0
    top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else None
    for i, win in enumerate(windows):
        core = win.core_mask()
        masks = {k: m & core for k, m in regions.window(win).items()}
        masks = {k: m for k, m in masks.items() if m.any()}
        if not masks:
            skipped += 1
            continue
        tile = _tile_image(image, win, modality)
        if top is not None:
            hit = tile.data >= top
            if tile.axes.endswith("C"):
                hit = hit.any(axis=-1)
            if tile.axes.startswith("Z"):
                hit = hit.any(axis=0)
            inside = np.zeros(win.shape, dtype=bool)
            for m in masks.values():
                inside |= m
            saturated += int((hit & inside).sum())
            measured += int(inside.sum())
        result = spec.run(tile, regions=masks, params=params, channels=channels, **extra)
        warnings.extend(f"tile {win.r0},{win.c0}: {w}" for w in result.warnings)
        summaries.append(result.summary.assign(tile=i))
        obj = result.objects
        if len(obj):
            ry, rx = spec.positions[0]
            if ry not in obj.columns or rx not in obj.columns:
                raise HistoquantError(
                    f"assay {spec.name!r} reports objects without its declared position "
                    f"columns {ry!r}, {rx!r} (AssaySpec.positions); it cannot be run tile by "
                    "tile")
            rr = np.floor(obj[ry].to_numpy(float) / px + 0.5) + win.R0
            cc = np.floor(obj[rx].to_numpy(float) / px + 0.5) + win.C0
            keep = (rr >= win.r0) & (rr < win.r1) & (cc >= win.c0) & (cc < win.c1)
            obj = shift_objects(obj[keep], win.R0, win.C0, px, spec.positions)
            objects.append(obj)
        if progress is not None:
            progress((i + 1) / len(windows), f"tile {i + 1}/{len(windows)}")
    objs = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame(
        columns=["image", "region"])
    summary = _combine(spec, summaries, objs, image.name)
    if len(objs):
        if "label" in objs.columns:
            objs["label"] = np.arange(1, len(objs) + 1)
        if "image" in objs.columns:
            objs["image"] = image.name
    return TiledResult(summary=summary, objects=objs, n_tiles=len(windows) - skipped,
                       n_tiles_skipped=skipped, warnings=warnings, saturated_px=saturated,
                       measured_px=measured, calibration=calibration)


def _combine(spec: AssaySpec, summaries: list[pd.DataFrame], objects: pd.DataFrame,
             name: str) -> pd.DataFrame:
    if not summaries:
        return pd.DataFrame(columns=["image", "region"])
    table = pd.concat(summaries, ignore_index=True)
    table["image"] = name
    out = combine_tiles(table, objects, spec.measure, by=("image", "region"))
    return out.reset_index(drop=True)
