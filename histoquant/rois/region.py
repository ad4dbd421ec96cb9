"""Named regions in image coordinates and the one way histoquant rasterises them.

Coordinates
-----------
Polygon vertices are ``(row, col)`` in pixels, with the centre of pixel ``(r, c)`` at
``(r, c)`` — the convention of scikit-image and napari. A pixel belongs to a polygon when its
centre lies inside it. ImageJ and QuPath put pixel corners on integers; their readers and
writers in this package shift by half a pixel so that a region drawn in either program covers
the same pixels here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..errors import RegionError

__all__ = ["Region", "Polygon", "rasterize", "normalize_regions", "mask_to_polygons",
           "IMAGE_REGION"]

IMAGE_REGION = "image"


@dataclass
class Polygon:
    """A polygon with optional holes; vertices are (N, 2) arrays of (row, col)."""

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Check the vertices (at least 3 points of 2 coordinates) and store them as floats."""
        self.exterior = _as_vertices(self.exterior)
        self.holes = [_as_vertices(h) for h in self.holes]


def _as_vertices(v: ArrayLike) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
        raise RegionError(f"a polygon needs at least 3 (row, col) vertices, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise RegionError("polygon vertices must be finite numbers")
    return v


@dataclass
class Region:
    """A named region given as polygons, a mask, or both.

    Parameters
    ----------
    name : str
        Region name (``grey_matter``, ``ventral_horn_left``, or anything the user drew).
    polygons : list of Polygon
        Outline(s) in (row, col) pixel coordinates.
    mask : ndarray of bool, optional
        Full-resolution mask; when given it is used as is.
    properties : dict
        Extra information carried along (colour, classification, section index).
    """

    name: str
    polygons: list[Polygon] = field(default_factory=list)
    mask: np.ndarray | None = None
    properties: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the name and the 2D mask; turn vertex arrays into :class:`Polygon` objects."""
        if not self.name or not isinstance(self.name, str):
            raise RegionError(f"a region needs a non-empty name, got {self.name!r}")
        self.polygons = [p if isinstance(p, Polygon) else Polygon(p) for p in self.polygons]
        if self.mask is None and not self.polygons:
            raise RegionError(f"region {self.name!r} has neither polygons nor a mask")
        if self.mask is not None:
            self.mask = np.asarray(self.mask).astype(bool, copy=False)
            if self.mask.ndim != 2:
                raise RegionError(f"region {self.name!r}: mask must be 2D")

    def to_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Rasterise to a boolean mask of ``shape`` (Y, X).

        Parameters
        ----------
        shape : tuple of int
            Height and width of the image.

        Returns
        -------
        numpy.ndarray
            Boolean mask; the stored mask itself when the region has one.

        Raises
        ------
        RegionError
            When a stored mask does not have ``shape``.
        """
        if self.mask is not None:
            if self.mask.shape != tuple(shape):
                raise RegionError(
                    f"region {self.name!r}: mask shape {self.mask.shape} does not match the "
                    f"image shape {tuple(shape)}"
                )
            return self.mask
        return rasterize(self.polygons, shape)

    def to_polygons(self) -> list[Polygon]:
        """Return the outlines of the region (traced from the mask when no polygons are stored).

        Returns
        -------
        list of Polygon
            The region's polygons, in pixel coordinates.
        """
        if self.polygons:
            return self.polygons
        return mask_to_polygons(self.mask)


def rasterize(polygons: Iterable[Polygon], shape: tuple[int, int]) -> np.ndarray:
    """Return a boolean mask of the pixels whose centres lie inside any polygon (holes excluded).

    Centres exactly on an edge count as inside, as in ``skimage.draw.polygon``, whose result
    this reproduces; a scanline fill keeps the cost proportional to the rows times the edges
    crossing them instead of the bounding box times all the vertices, which matters for
    outlines traced along pixel edges (thousands of vertices).

    Parameters
    ----------
    polygons : iterable of Polygon
        The polygons, in (row, col) pixel coordinates.
    shape : tuple of int
        Height and width of the mask.

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) mask.
    """
    mask = np.zeros(shape, dtype=bool)
    for poly in polygons:
        part = _fill_polygon(poly.exterior, shape)
        for hole in poly.holes:
            part &= ~_fill_polygon(hole, shape)
        mask |= part
    return mask


def _fill_polygon(vertices: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre is inside (even-odd rule) or on the boundary of one polygon."""
    h, w = int(shape[0]), int(shape[1])
    v = np.asarray(vertices, dtype=float)
    r0, c0 = v[:, 0], v[:, 1]
    r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
    # Each edge crosses the centre line of the rows in [min r, max r) (half-open, so a vertex
    # shared by two edges is crossed once); horizontal edges cross none.
    first = np.maximum(np.ceil(np.minimum(r0, r1)), 0).astype(np.int64)
    last = np.minimum(np.ceil(np.maximum(r0, r1)) - 1, h - 1).astype(np.int64)
    n = np.where(r0 == r1, 0, np.maximum(last - first + 1, 0))
    out = np.zeros((h, w), dtype=bool)
    total = int(n.sum())
    if total:
        edge = np.repeat(np.arange(len(v)), n)
        rows = first[edge] + np.arange(total) - np.repeat(np.cumsum(n) - n, n)
        xs = c0[edge] + (rows - r0[edge]) * (c1[edge] - c0[edge]) / (r1[edge] - r0[edge])
        order = np.lexsort((xs, rows))
        rows, xs = rows[order], xs[order]
        # Every row is crossed an even number of times; inside lies between pairs, which are
        # disjoint, so each is filled once (no image-sized scratch array).
        start = np.clip(np.floor(xs[0::2]).astype(np.int64) + 1, 0, w)
        stop = np.clip(np.ceil(xs[1::2]).astype(np.int64), 0, w)
        for r, a, b in zip(rows[0::2].tolist(), start.tolist(), stop.tolist()):
            if b > a:
                out[r, a:b] = True
    _mark_edge_centres(out, r0, c0, r1, c1)
    return out


def _mark_edge_centres(out: np.ndarray, r0: np.ndarray, c0: np.ndarray, r1: np.ndarray,
                       c1: np.ndarray) -> None:
    """Set the pixels whose centre lies exactly on an edge (r0, c0)–(r1, c1)."""
    h, w = out.shape
    flat = r0 == r1
    # Horizontal edges on a row of centres: every centre between their ends.
    on_row = flat & (r0 == np.round(r0)) & (r0 >= 0) & (r0 < h)
    lo = np.maximum(np.ceil(np.minimum(c0, c1)), 0).astype(np.int64)
    hi = np.minimum(np.floor(np.maximum(c0, c1)), w - 1).astype(np.int64)
    for r, a, b in zip(r0[on_row].astype(np.int64).tolist(), lo[on_row].tolist(),
                       hi[on_row].tolist()):
        if b >= a:
            out[r, a: b + 1] = True
    # Other edges: the centre rows they pass, where they pass exactly through a centre.
    first = np.maximum(np.ceil(np.minimum(r0, r1)), 0).astype(np.int64)
    last = np.minimum(np.floor(np.maximum(r0, r1)), h - 1).astype(np.int64)
    n = np.where(flat, 0, np.maximum(last - first + 1, 0))
    total = int(n.sum())
    if not total:
        return
    edge = np.repeat(np.arange(len(r0)), n)
    rows = first[edge] + np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    cs = c0[edge] + (rows - r0[edge]) * (c1[edge] - c0[edge]) / (r1[edge] - r0[edge])
    hit = np.abs(cs - np.round(cs)) < 1e-9
    cols = np.round(cs[hit]).astype(np.int64)
    rows = rows[hit]
    inside = (cols >= 0) & (cols < w)
    out[rows[inside], cols[inside]] = True


def mask_to_polygons(mask: np.ndarray, tolerance_px: float = 0.0) -> list[Polygon]:
    """Trace the outlines of a mask as polygons (holes assigned to their enclosing outline).

    The outline runs along pixel edges, half a pixel outside the centres of boundary pixels,
    so that :func:`rasterize` gives the mask back.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    tolerance_px : float
        Douglas–Peucker simplification tolerance in pixels; 0 keeps every vertex (and the
        exact round trip).

    Returns
    -------
    list of Polygon
        One polygon per connected piece, with its holes.
    """
    from skimage.measure import find_contours, label, regionprops

    mask = np.asarray(mask, dtype=bool)
    out: list[Polygon] = []
    lab = label(mask, connectivity=1)
    for prop in regionprops(lab):
        r0, c0, _r1, _c1 = prop.bbox
        sub = np.pad(prop.image, 1)
        contours = find_contours(sub.astype(np.uint8), 0.5)
        if not contours:
            continue
        offset = np.array([r0 - 1, c0 - 1], dtype=float)
        contours = [_pixel_edge_contour(c) + offset for c in contours]
        if tolerance_px > 0:
            from skimage.measure import approximate_polygon

            contours = [approximate_polygon(c, tolerance_px) for c in contours]
        contours = [c for c in contours if len(c) >= 3]
        if not contours:
            continue
        areas = [abs(_signed_area(c)) for c in contours]
        outer = int(np.argmax(areas))
        holes = [c for i, c in enumerate(contours) if i != outer]
        out.append(Polygon(contours[outer], holes))
    return out


def _pixel_edge_contour(c: np.ndarray) -> np.ndarray:
    # A contour at level 0.5 runs half a pixel outside boundary pixel centres, except at
    # convex corners where it cuts diagonally through the centre-to-centre midpoint; growing
    # it by a hair keeps those boundary pixels inside when rasterised by centre.
    centre = c.mean(axis=0)
    d = c - centre
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    norm[norm == 0] = 1
    return c + 1e-3 * d / norm


def _signed_area(c: np.ndarray) -> float:
    y, x = c[:, 0], c[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def normalize_regions(
    regions: Mapping[str, object] | Iterable[Region] | np.ndarray | None,
    shape: tuple[int, int],
    *,
    source: str | None = None,
) -> dict[str, np.ndarray]:
    """Turn any accepted region description into ``{name: bool mask}``.

    Accepted: ``None`` (the whole image as region ``"image"``), a list of :class:`Region`,
    a mapping name → Region / mask / polygon vertices, or a label image (each label a region
    named ``region_<label>``).

    Parameters
    ----------
    regions : mapping, iterable of Region, ndarray or None
        The regions.
    shape : tuple of int
        Height and width of the image.
    source : str, optional
        Where the regions come from (the region file and the image), named in every error
        message so that a batch's error table says which file to fix.

    Returns
    -------
    dict of str to numpy.ndarray
        A boolean mask of ``shape`` per region name.

    Raises
    ------
    RegionError
        When the regions are empty, do not match the image's shape, or one covers no pixel.
    """
    shape = tuple(int(s) for s in shape)
    where = f"{source}: " if source else ""
    if regions is None:
        return {IMAGE_REGION: np.ones(shape, dtype=bool)}
    if isinstance(regions, np.ndarray):
        if regions.shape != shape:
            raise RegionError(f"{where}region label image shape {regions.shape} != image "
                              f"{shape}")
        out = {f"region_{int(v)}": regions == v for v in np.unique(regions) if v != 0}
        if not out:
            raise RegionError(f"{where}the region label image is empty")
        return out
    items: list[Region] = []
    if isinstance(regions, Mapping):
        for name, value in regions.items():
            if isinstance(value, Region):
                items.append(value if value.name == name else Region(name, value.polygons,
                                                                     value.mask,
                                                                     value.properties))
            elif isinstance(value, np.ndarray) and value.ndim == 2 and value.shape == shape \
                    and value.dtype == bool:
                items.append(Region(name, mask=value))
            else:
                items.append(Region(name, polygons=[Polygon(value)]))
    else:
        items = list(regions)
    if not items:
        raise RegionError(f"{where}an empty list of regions was given; give None to measure "
                          "the whole image")
    out: dict[str, np.ndarray] = {}
    for region in items:
        mask = region.to_mask(shape)
        out[region.name] = out[region.name] | mask if region.name in out else mask
    for name, mask in out.items():
        if not mask.any():
            raise RegionError(
                f"{where}region {name!r} covers no pixel of the image (shape {shape}); check "
                "that it was drawn on this image and at this resolution"
            )
    return out
