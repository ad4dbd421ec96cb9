"""Per-object measurements in physical units, and assignment of objects to regions.

Shared by the object assays (motor neurons, GFP+ cells). Every size is computed from the
pixels of a label image and converted with the pixel size:

- ``area_um2``: pixel count × pixel area;
- ``equivalent_diameter_um``: diameter of the disk of that area;
- ``feret_max_um`` / ``feret_min_um``: largest and smallest caliper width of the object —
  of the convex hull of the pixel squares (not of pixel centres, which would make a one-pixel
  object zero wide);
- ``solidity``: area / area of that hull;
- ``eccentricity``: of the ellipse with the same second moments (0 = circle, → 1 = line);
- ``centroid_y_um`` / ``centroid_x_um``: pixel-centre convention of the package (pixel
  ``(r, c)`` centred at ``(r · px, c · px)``), plus an optional offset;
- ``mean_<name>`` for every named intensity image.

The hull-based measures loop over objects in Python around SciPy's Qhull; the rest is
vectorised with ``bincount``. A 2 µs-per-pixel budget holds for tens of thousands of objects.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["OBJECT_COLUMNS", "measure_objects", "assign_regions", "hull_measures"]

OBJECT_COLUMNS = ("label", "centroid_y_um", "centroid_x_um", "area_um2",
                  "equivalent_diameter_um", "feret_max_um", "feret_min_um", "solidity",
                  "eccentricity")


def _boundary_pixels(labels: np.ndarray) -> np.ndarray:
    """Mask of object pixels with a 4-neighbour outside their object (or at the image edge)."""
    lab = labels
    b = np.zeros(lab.shape, bool)
    fg = lab > 0
    b[0, :] |= fg[0, :]
    b[-1, :] |= fg[-1, :]
    b[:, 0] |= fg[:, 0]
    b[:, -1] |= fg[:, -1]
    d = lab[1:, :] != lab[:-1, :]
    b[1:, :] |= d
    b[:-1, :] |= d
    d = lab[:, 1:] != lab[:, :-1]
    b[:, 1:] |= d
    b[:, :-1] |= d
    return b & fg


def hull_measures(points: np.ndarray) -> tuple[float, float, float]:
    """Return the area, largest and smallest caliper width of the convex hull of 2D ``points``.

    The smallest width of a convex polygon is attained with one side flush to an edge of the
    hull (rotating calipers), so it is the minimum over edges of the farthest vertex from the
    edge's line.

    Parameters
    ----------
    points : numpy.ndarray
        (N, 2) coordinates, N ≥ 3 and not all on a line.

    Returns
    -------
    area : float
        Hull area, in the squared unit of ``points``.
    feret_max : float
        Largest caliper (Feret) width.
    feret_min : float
        Smallest caliper (Feret) width.
    """
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    v = points[hull.vertices]
    area = float(hull.volume)
    diff = v[:, None, :] - v[None, :, :]
    feret_max = float(np.sqrt((diff ** 2).sum(-1).max()))
    edges = np.roll(v, -1, axis=0) - v
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    ok = lengths > 0
    normals = np.stack([-edges[ok, 1], edges[ok, 0]], axis=1) / lengths[ok, None]
    # Distance of every vertex to every edge line; the width for an edge is the largest.
    dist = np.abs(np.einsum("ejk,ek->ej", v[None, :, :] - v[ok][:, None, :], normals))
    feret_min = float(dist.max(axis=1).min()) if dist.size else 0.0
    return area, feret_max, feret_min


_CORNERS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def measure_objects(labels: np.ndarray, pixel_size_um: float, *,
                    intensities: Mapping[str, np.ndarray] | None = None,
                    offset_um: tuple[float, float] = (0.0, 0.0),
                    shape_measures: bool = True) -> pd.DataFrame:
    """One row per label of ``labels`` with its size and shape in µm.

    Parameters
    ----------
    labels : ndarray of int
        Label image (0 = background).
    pixel_size_um : float
        Pixel size of ``labels`` in µm.
    intensities : mapping of str to ndarray, optional
        Images of the same shape; adds ``mean_<name>`` per object.
    offset_um : (float, float)
        Added to the centroids (position of pixel (0, 0) in the full image, for a crop).
    shape_measures : bool
        Compute the hull measures (Feret diameters, solidity); skip them for speed when
        only sizes are wanted (the columns are then NaN).

    Returns
    -------
    DataFrame
        Columns :data:`OBJECT_COLUMNS` plus ``mean_<name>``; sorted by label.
    """
    px = float(pixel_size_um)
    lab = np.asarray(labels)
    n = int(lab.max()) if lab.size else 0
    names = list(intensities or {})
    # Counts, coordinate moments and intensity sums strip by strip: no full-size int64 or
    # float64 copies of the label image.
    counts, sy, sx, syy, sxx, sxy = (np.zeros(n + 1) for _ in range(6))
    sums = {name: np.zeros(n + 1) for name in names}
    xs = np.arange(lab.shape[1], dtype=np.float64)
    strip = max(1, 262_144 // max(1, lab.shape[1]))
    for r0 in range(0, lab.shape[0], strip):
        block = lab[r0:r0 + strip]
        f = block.ravel().astype(np.intp)
        ry = np.repeat(np.arange(r0, r0 + block.shape[0], dtype=np.float64), block.shape[1])
        rx = np.tile(xs, block.shape[0])
        counts += np.bincount(f, minlength=n + 1)
        sy += np.bincount(f, weights=ry, minlength=n + 1)
        sx += np.bincount(f, weights=rx, minlength=n + 1)
        syy += np.bincount(f, weights=ry * ry, minlength=n + 1)
        sxx += np.bincount(f, weights=rx * rx, minlength=n + 1)
        sxy += np.bincount(f, weights=ry * rx, minlength=n + 1)
        for name in names:
            vals = np.asarray(intensities[name][r0:r0 + strip], dtype=np.float64).ravel()
            sums[name] += np.bincount(f, weights=vals, minlength=n + 1)
    ids = np.nonzero(counts[1:])[0] + 1
    cols: dict[str, np.ndarray] = {"label": ids.astype(np.int64)}
    if len(ids) == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in OBJECT_COLUMNS})
        empty["label"] = empty["label"].astype(np.int64)
        for name in names:
            empty[f"mean_{name}"] = pd.Series(dtype=float)
        return empty
    c = counts[ids]
    cy, cx = sy[ids] / c, sx[ids] / c
    # Second central moments; + 1/12 is the variance of a uniform pixel square.
    vyy = syy[ids] / c - cy ** 2 + 1 / 12
    vxx = sxx[ids] / c - cx ** 2 + 1 / 12
    vxy = sxy[ids] / c - cy * cx
    tr, det = vyy + vxx, vyy * vxx - vxy ** 2
    disc = np.sqrt(np.maximum(tr ** 2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    cols["centroid_y_um"] = cy * px + offset_um[0]
    cols["centroid_x_um"] = cx * px + offset_um[1]
    area = c * px * px
    cols["area_um2"] = area
    cols["equivalent_diameter_um"] = 2 * np.sqrt(area / np.pi)
    feret_max = np.full(len(ids), np.nan)
    feret_min = np.full(len(ids), np.nan)
    solidity = np.full(len(ids), np.nan)
    if shape_measures:
        # The hull of a set of pixel squares is the hull of the outer corners of the leftmost
        # and rightmost pixel of each of its rows: four points per row and object.
        b = _boundary_pixels(lab)
        by, bx = np.nonzero(b)
        bl = lab[by, bx].astype(np.int64)
        key = bl * (lab.shape[0] + 1) + by
        order = np.lexsort((bx, key))
        key, by, bx, bl = key[order], by[order], bx[order], bl[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], len(key)] - 1
        ry, rl = by[starts].astype(np.float64), bl[starts]
        left, right = bx[starts] - 0.5, bx[ends] + 0.5
        pts = np.stack([np.stack([ry - 0.5, left], 1), np.stack([ry + 0.5, left], 1),
                        np.stack([ry - 0.5, right], 1), np.stack([ry + 0.5, right], 1)],
                       axis=1)  # (rows, 4, 2)
        bounds = np.searchsorted(rl, np.concatenate([ids, [n + 1]]))
        for k in range(len(ids)):
            corners = pts[bounds[k]:bounds[k + 1]].reshape(-1, 2)
            hull_area, fmax, fmin = hull_measures(corners)
            feret_max[k] = fmax * px
            feret_min[k] = fmin * px
            solidity[k] = min(1.0, c[k] / hull_area)
    cols["feret_max_um"] = feret_max
    cols["feret_min_um"] = feret_min
    cols["solidity"] = solidity
    cols["eccentricity"] = np.sqrt(np.clip(1 - l2 / np.maximum(l1, 1e-12), 0, 1))
    for name in names:
        cols[f"mean_{name}"] = sums[name][ids] / c
    return pd.DataFrame(cols)


def assign_regions(objects: pd.DataFrame, regions: Mapping[str, np.ndarray],
                   pixel_size_um: float) -> pd.DataFrame:
    """Give each object the region(s) its centroid lies in; drop objects outside every region.

    ``regions`` are boolean masks in the pixel grid of size ``pixel_size_um`` (the image's).
    An object whose centroid lies in two overlapping regions gets one row per region, so
    per-region counts are right; the ``region`` column is inserted first.

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per object, with ``centroid_y_um`` and ``centroid_x_um``.
    regions : mapping of str to numpy.ndarray
        Region name → boolean mask.
    pixel_size_um : float
        Pixel size of the masks in µm.

    Returns
    -------
    pandas.DataFrame
        The objects inside regions, with a ``region`` column first.
    """
    if not len(objects):
        out = objects.copy()
        out.insert(0, "region", pd.Series(dtype=object))
        return out
    px = float(pixel_size_um)
    parts = []
    for name, mask in regions.items():
        h, w = mask.shape
        r = np.clip(np.rint(objects["centroid_y_um"].to_numpy() / px).astype(np.int64), 0, h - 1)
        c = np.clip(np.rint(objects["centroid_x_um"].to_numpy() / px).astype(np.int64), 0, w - 1)
        inside = np.asarray(mask)[r, c]
        part = objects[inside].copy()
        part.insert(0, "region", name)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
