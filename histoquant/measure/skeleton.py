"""Centreline lengths from a binary mask: skeleton, spur pruning, gap bridging, true lengths.

The skeleton graph (paths between junctions and ends) comes from ``skan``; this module adds
the geometry that turns pixel skeletons into centreline lengths in µm:

- **Thinning.** Lee's method (the same skeleton as scikit-image's ``method="lee"``, computed
  by :func:`histoquant.measure.thinning.thin_lee`, which visits only boundary pixels): Zhang's
  erodes the ends of diagonal tubes by several pixels.
- **Steps.** A skeleton is a chain of 8-connected pixels; counting each straight step as one
  pixel and each diagonal step as √2 pixels (what ``skan`` does) overestimates the length of
  a straight line by up to 8 % (at 22.5°) and by ≈ 4 % on average over orientations, because
  the staircase is longer than the line it follows. Each path's pixel chain is therefore
  smoothed with a Gaussian along the path (ends held by point reflection, so straight ends are
  not pulled in) before the Euclidean step lengths are summed. ``smoothing_um=0`` gives the
  plain 1/√2 chain length.
- **Ends.** The skeleton of a tube stops about one radius short of each end, and its last
  pixels bend towards a corner of the end. From a point 1.5 radii back, a ray along the path
  finds the mask edge (or the image border) and replaces the last stretch
  (``end_correction``). Ends reached through the image border are not free ends.
- **Junctions.** Skeletons cut corners at junctions and merge two crossing vessels into a
  short common stretch. Junction pixels closer than the sum of their inscribed radii form one
  branch point; its centre is where the branches' lines meet (least squares), and inside its
  zone every branch is replaced by a straight line to that centre (``junction_correction``).
- **Spurs.** Boundary noise makes short side branches. A terminal branch is pruned when the
  part of it that sticks out of the vessel it leaves (its length minus the radius at its
  junction) is shorter than ``min_spur_length_um``.
- **Gaps.** A free end that points at another piece of skeleton within ``max_gap_um``
  (within ``gap_angle_deg`` of its direction) is joined to it by a straight line: a vessel
  interrupted by a faint stretch is measured as one vessel.
- **Widths.** The mask's width across the smoothed centreline at every skeleton pixel (rays
  both ways), the median per path away from junctions.

The distance transform is needed only at skeleton pixels: :func:`.distance.distance_at`
searches outwards from each of them, ring by ring, and gives exactly the values of
``scipy.ndimage.distance_transform_edt`` there (a pixel more than 48 px from the background,
rare, falls back to a KD-tree of the background pixels bordering the mask). KD-trees
(``scipy.spatial.cKDTree``) of skeleton pixels serve the neighbour searches: skeleton pieces
within ``max_gap_um`` of a free end, and junction pixels close enough to form one branch
point.

Every skeleton pixel of every path carries the length it stands for (``entry_length_um``),
so that the length inside any region, or inside a pericyte mask, is a sum over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .distance import distance_at
from .rays import padded_flat, run_lengths

if TYPE_CHECKING:
    from scipy import sparse
    from skan.csr import Skeleton

__all__ = ["SkeletonTrace", "trace_skeleton", "chain_smoothed_length"]

BRANCH_TYPES = {0: "end-end", 1: "end-junction", 2: "junction-junction", 3: "loop"}


@dataclass
class SkeletonTrace:
    """A measured skeleton.

    Attributes
    ----------
    shape : (int, int)
        Image shape.
    pixel_size_um : float
        Pixel size.
    skeleton : ndarray of bool
        Final skeleton (pruned, gaps bridged).
    bridges : ndarray of bool
        Skeleton pixels added to bridge gaps.
    entry_path, entry_rc, entry_yx, entry_length_um, entry_end_um : ndarray
    entry_tangent, entry_radius_um : ndarray
        One entry per (path, pixel): path index, pixel (row, col), smoothed centreline
        position (row, col, sub-pixel), length in µm that the pixel stands for on that path
        (end corrections included), the end correction included in it, unit tangent
        (row, col), local vessel radius in µm (half the mask width across the centreline).
    paths : DataFrame
        One row per path: ``path`` (0-based), ``length_um`` (corrected), ``chain_length_um``
        (plain 1/√2 pixel steps), ``end_correction_um``, ``diameter_um``, ``branch_type``,
        ``n_free_ends``, ``start_row``, ``start_col``, ``end_row``, ``end_col``,
        ``centroid_row``, ``centroid_col`` (pixels).
    branch_points_rc : ndarray, shape (J, 2)
        Branch points (junction pixel clusters, merged when closer than their radii), in
        pixel coordinates.
    free_ends_rc : ndarray, shape (K, 2)
        Free ends (not on the image border).
    """

    shape: tuple[int, int]
    pixel_size_um: float
    skeleton: np.ndarray
    bridges: np.ndarray
    entry_path: np.ndarray
    entry_rc: np.ndarray
    entry_yx: np.ndarray
    entry_length_um: np.ndarray
    entry_end_um: np.ndarray
    entry_tangent: np.ndarray
    entry_radius_um: np.ndarray
    paths: pd.DataFrame
    branch_points_rc: np.ndarray
    free_ends_rc: np.ndarray

    @property
    def total_length_um(self) -> float:
        """Total corrected centreline length."""
        return float(self.entry_length_um.sum())

    def entries_in(self, mask: np.ndarray) -> np.ndarray:
        """Return, per entry, whether its pixel lies in ``mask``.

        Parameters
        ----------
        mask : numpy.ndarray
            Boolean mask of the traced image's shape.

        Returns
        -------
        numpy.ndarray
            Boolean, one value per entry.
        """
        if len(self.entry_rc) == 0:
            return np.zeros(0, bool)
        return np.asarray(mask)[self.entry_rc[:, 0], self.entry_rc[:, 1]]

    def length_in(self, mask: np.ndarray) -> float:
        """Return the centreline length (µm) whose pixels lie in ``mask``.

        Parameters
        ----------
        mask : numpy.ndarray
            Boolean mask of the traced image's shape.

        Returns
        -------
        float
            Length in µm.
        """
        return float(self.entry_length_um[self.entries_in(mask)].sum())

    def path_lengths_in(self, mask: np.ndarray) -> np.ndarray:
        """Return the length (µm) of each path inside ``mask``.

        Parameters
        ----------
        mask : numpy.ndarray
            Boolean mask of the traced image's shape.

        Returns
        -------
        numpy.ndarray
            One length per row of :attr:`paths`.
        """
        w = np.where(self.entries_in(mask), self.entry_length_um, 0.0)
        return np.bincount(self.entry_path, weights=w, minlength=len(self.paths))

    def label_image(self) -> np.ndarray:
        """Return skeleton pixels labelled with ``path + 1`` (junction pixels: one of their paths).

        Paths of length 0 (the middle of a crossing, folded into its arms) are left out.

        Returns
        -------
        numpy.ndarray
            Integer label image of the traced image's shape (0 off the skeleton).
        """
        n = len(self.paths)
        dtype = np.uint16 if n < 65535 else np.uint32
        out = np.zeros(self.shape, dtype)
        if len(self.entry_rc):
            keep = self.paths["length_um"].to_numpy()[self.entry_path] > 0
            rc = self.entry_rc[keep]
            out[rc[:, 0], rc[:, 1]] = (self.entry_path[keep] + 1).astype(dtype)
        return out


def _smooth_paths(coords: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                  sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smooth every path's pixel chain (ends held by point reflection).

    Returns smoothed coordinates and unit tangents, one row per path entry.
    """
    lengths = np.diff(indptr)
    n_entries = int(lengths.sum())
    pts = coords[indices].astype(np.float64)
    if sigma_px <= 0:
        smooth = pts
        m = 1
    else:
        m = int(np.ceil(3 * sigma_px))
    # padded layout: each path occupies lengths[i] + 2m slots
    plen = lengths + 2 * m
    pstart = np.concatenate([[0], np.cumsum(plen)[:-1]])
    path_of_slot = np.repeat(np.arange(len(lengths)), plen)
    j = np.arange(int(plen.sum())) - np.repeat(pstart, plen) - m  # local index, −m … n−1+m
    n = lengths[path_of_slot]
    first = indptr[:-1][path_of_slot]
    jj = np.clip(j, 0, n - 1)
    base = pts[first + jj]
    left = j < 0
    right = j >= n
    ref_l = pts[first + np.clip(-j, 0, n - 1)]
    ref_r = pts[first + np.clip(2 * (n - 1) - j, 0, n - 1)]
    end_l = pts[first]
    end_r = pts[first + n - 1]
    padded = base.copy()
    padded[left] = 2 * end_l[left] - ref_l[left]
    padded[right] = 2 * end_r[right] - ref_r[right]
    if sigma_px > 0:
        x = np.arange(-m, m + 1)
        kernel = np.exp(-0.5 * (x / sigma_px) ** 2)
        kernel /= kernel.sum()
        filt = ndi.convolve1d(padded, kernel, axis=0, mode="nearest")
    else:
        filt = padded
    interior = (j >= 0) & (j < n)
    slots = np.flatnonzero(interior)
    smooth = filt[slots]
    tangent = filt[slots + 1] - filt[slots - 1]
    norm = np.linalg.norm(tangent, axis=1, keepdims=True)
    tangent = np.divide(tangent, norm, out=np.zeros_like(tangent), where=norm > 0)
    assert len(smooth) == n_entries
    return smooth, tangent


def chain_smoothed_length(rc: np.ndarray, pixel_size_um: float,
                          smoothing_um: float = 1.0) -> float:
    """Return the length in µm of one ordered pixel chain, smoothed as in :func:`trace_skeleton`.

    Parameters
    ----------
    rc : numpy.ndarray
        (N, 2) (row, col) pixels of the chain, in order.
    pixel_size_um : float
        Pixel size in µm.
    smoothing_um : float
        Gaussian smoothing of the chain along its length, in µm.

    Returns
    -------
    float
        Length in µm.
    """
    rc = np.asarray(rc)
    indptr = np.array([0, len(rc)])
    sm, _ = _smooth_paths(rc, indptr, np.arange(len(rc)),
                          _sigma_px(smoothing_um, pixel_size_um))
    return float(np.linalg.norm(np.diff(sm, axis=0), axis=1).sum() * pixel_size_um)


def _sigma_px(smoothing_um: float, pixel_size_um: float) -> float:
    if smoothing_um <= 0:
        return 0.0
    # at least one pixel: below that the staircase of an 8-connected chain is not averaged out
    return max(1.0, smoothing_um / pixel_size_um)


def _run_length(inside: np.ndarray, origins: np.ndarray, directions: np.ndarray,
                max_px: float | np.ndarray, step: float = 0.25, *, with_border: bool = False,
                flat: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Distance (px) from each origin along its direction to the first pixel outside.

    Samples every ``step`` pixels and takes the pixel each sample falls in, so the edge of a
    mask lies half-way between an inside and an outside pixel centre. The image border
    counts as an edge; with ``with_border`` a second array says which runs ended there.
    ``max_px`` (a number or one per origin) caps each run (see :func:`.rays.run_lengths`).
    """
    if flat is None:
        flat = padded_flat(inside)
    out, border = run_lengths(flat, inside.shape, origins, directions, max_px, step)
    return (out, border) if with_border else out


def _point_back(arc, ip, paths, sign, back_px):
    """Entry index at ``back_px`` along each path from its end (sign −1: start, +1: end)."""
    out = np.empty(len(paths), np.int64)
    for j, i in enumerate(paths):
        a, b = int(ip[i]), int(ip[i + 1])
        seg = arc[a:b]
        if sign > 0:
            d = seg[-1] - seg
            idx = np.flatnonzero(d >= back_px[j])
            out[j] = a + (idx[-1] if idx.size else 0)
        else:
            d = seg - seg[0]
            idx = np.flatnonzero(d >= back_px[j])
            out[j] = a + (idx[0] if idx.size else b - a - 1)
    return out


def _median_by_group(values: np.ndarray, groups: np.ndarray, select: np.ndarray,
                     n_groups: int) -> np.ndarray:
    """Median of ``values[select]`` per group (NaN for a group with none selected)."""
    out = np.full(n_groups, np.nan)
    v, g = values[select], groups[select]
    if v.size == 0:
        return out
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    lo = v[starts + (ends - starts - 1) // 2]
    hi = v[starts + (ends - starts) // 2]
    out[g[starts]] = 0.5 * (lo + hi)
    return out


def _on_border(rc: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return (rc[:, 0] == 0) | (rc[:, 1] == 0) | (rc[:, 0] == shape[0] - 1) | \
        (rc[:, 1] == shape[1] - 1)


def _skan(skel: np.ndarray) -> Skeleton:
    """Skan's ``Skeleton(skel)``, with the pixel graph built here.

    The graph is the one skan builds (8-neighbour edges of length 1 or √2; among junction
    pixels only a minimum spanning tree), so paths, degrees and lengths are skan's; skan
    builds it with Python loops over every pixel, which was most of its cost.
    """
    from skan.csr import PathGraph, Skeleton

    adj, coords = _pixel_graph(skel)
    return Skeleton.from_path_graph(PathGraph.from_graph(adj=adj, node_coordinates=coords,
                                                         spacing=1.0))


_SQRT2 = float(np.sqrt(2.0))


def _pixel_graph(skel: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Adjacency (CSR, raster-ordered nodes) and (row, col) coordinates of skeleton pixels."""
    from scipy import sparse
    from scipy.sparse import csgraph

    padded = np.pad(np.asarray(skel, bool), 1)
    w = padded.shape[1]
    nodes = np.flatnonzero(padded)
    n = nodes.size
    offsets = np.array([-w - 1, -w, -w + 1, -1, 1, w - 1, w, w + 1])
    steps = np.array([_SQRT2, 1.0, _SQRT2, 1.0, 1.0, _SQRT2, 1.0, _SQRT2])
    neighbours = nodes[:, None] + offsets
    present = padded.ravel()[neighbours]
    degree = present.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(degree)]).astype(np.int32)
    indices = np.searchsorted(nodes, neighbours[present]).astype(np.int32)
    data = np.broadcast_to(steps, present.shape)[present]
    graph = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
    # as skan: edges between junction pixels (degree ≥ 3) are thinned to a spanning tree
    junction = degree >= 3
    keep = junction[np.repeat(np.arange(n), degree)] & junction[indices]
    if keep.any():
        sub = graph.copy()
        sub.data = np.where(keep, sub.data, 0.0)
        sub.eliminate_zeros()
        tree = csgraph.minimum_spanning_tree(sub)
        graph = graph - (sub - (tree + tree.T))
    rr, cc = np.divmod(nodes, w)
    return graph, np.stack([rr - 1, cc - 1], axis=1)


def _path_ends(sk):
    ip, ind = sk.paths.indptr, sk.paths.indices
    return ind[ip[:-1]], ind[ip[1:] - 1]


def _prune_spurs(skel, dist_px, px, min_spur_um, max_rounds=4):
    """Prune short terminal branches; returns the skeleton and its skan graph (or None)."""
    shape = skel.shape
    sk = None
    for _ in range(max_rounds):
        if not skel.any():
            return skel, None
        sk = _skan(skel)
        if sk.n_paths == 0 or min_spur_um <= 0:
            return skel, sk
        src, dst = _path_ends(sk)
        deg = sk.degrees
        coords = sk.coordinates.astype(np.int64)
        tip_src = (deg[src] == 1) & (deg[dst] > 2)
        tip_dst = (deg[dst] == 1) & (deg[src] > 2)
        spur = tip_src | tip_dst
        tip = np.where(tip_src, src, dst)
        junction = np.where(tip_src, dst, src)
        free = ~_on_border(coords[tip], shape)
        lengths = sk.path_lengths()
        jr = dist_px[coords[junction, 0], coords[junction, 1]]
        prune = spur & free & ((lengths - jr) * px < min_spur_um)
        if not prune.any():
            return skel, sk
        ip, ind = sk.paths.indptr, sk.paths.indices
        for i in np.flatnonzero(prune):
            ids = ind[ip[i]:ip[i + 1]]
            ids = ids[deg[ids] <= 2]
            skel[coords[ids, 0], coords[ids, 1]] = False
    return skel, None


def _bridge_gaps(skel, mask, dist_px, px, max_gap_um, angle_deg, sk=None, support=None):
    """Join free ends to skeleton pieces they point at, within ``max_gap_um``.

    With ``support``, a bridge is drawn only where at least half of its pixels outside the
    mask lie in it (a gap in the staining along a ridge the image still shows, not a
    straight line across background).

    Returns the skeleton, the bridge pixels, and the skan graph when nothing changed.
    """
    from scipy.spatial import cKDTree
    from skimage.draw import line

    bridges = np.zeros(skel.shape, bool)
    if max_gap_um <= 0 or not skel.any():
        return skel, bridges, sk
    if sk is None:
        sk = _skan(skel)
    if sk.n_paths == 0:
        return skel, bridges, sk
    coords = sk.coordinates.astype(np.int64)
    deg = sk.degrees
    src, dst = _path_ends(sk)
    ip, ind = sk.paths.indptr, sk.paths.indices
    labels, _ = ndi.label(skel, structure=np.ones((3, 3), bool))
    comp = labels[coords[:, 0], coords[:, 1]]
    tree = cKDTree(coords)
    gap_px = max_gap_um / px
    cos_min = np.cos(np.deg2rad(angle_deg))
    used = np.zeros(len(coords), bool)
    ends = []
    for i in range(sk.n_paths):
        ids = ind[ip[i]:ip[i + 1]]
        for pos, node in ((0, src[i]), (len(ids) - 1, dst[i])):
            if deg[node] != 1 or src[i] == dst[i]:
                continue
            back = min(len(ids) - 1, max(3, round(2 * dist_px[tuple(coords[node])])))
            other = ids[back] if pos == 0 else ids[len(ids) - 1 - back]
            ends.append((node, coords[node] - coords[other]))
    end_nodes = np.array([e[0] for e in ends], dtype=np.int64)
    for node, direction in ends:
        if used[node] or _on_border(coords[node][None], skel.shape)[0]:
            continue
        norm = np.linalg.norm(direction)
        if norm == 0:
            continue
        direction = direction / norm
        cand = np.array(tree.query_ball_point(coords[node], gap_px), dtype=np.int64)
        if cand.size == 0:
            continue
        cand = cand[comp[cand] != comp[node]]
        if cand.size == 0:
            continue
        vec = coords[cand] - coords[node]
        dist = np.linalg.norm(vec, axis=1)
        cos = (vec @ direction) / np.maximum(dist, 1e-9)
        ok = cos >= cos_min
        if not ok.any():
            continue
        best = cand[ok][np.argmin(dist[ok])]
        rr, cc = line(*coords[node], *coords[best])
        if support is not None:
            out = ~mask[rr, cc]
            if out.any() and support[rr[out], cc[out]].mean() < 0.5:
                continue
        skel[rr, cc] = True
        bridges[rr, cc] = True
        used[node] = True
        # an end that was reached is done, so the gap is not bridged twice
        near = end_nodes[np.linalg.norm(coords[end_nodes] - coords[best], axis=1) <= 2.0]
        used[near] = True
        comp[comp == comp[best]] = comp[node]
    changed = bool(bridges.any())
    bridges &= ~mask
    return skel, bridges, (None if changed else sk)


@dataclass
class _Clusters:
    node_cluster: np.ndarray  # per skeleton node: junction cluster index or -1
    centres: np.ndarray  # (J, 2) px
    reach: np.ndarray  # (J,) px: radius of each junction zone


def _junction_clusters(coords: np.ndarray, deg: np.ndarray, dist_px: np.ndarray) -> _Clusters:
    """Junction pixels grouped into branch points; each with a centre and a zone radius.

    Junction pixels closer than the sum of their distances to the mask edge belong to one
    branch point (a crossing in projection at more than ≈ 45° gives two junctions joined by
    a short path). The zone reaches as far as the widest inscribed circle of its junctions.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    node_cluster = np.full(len(coords), -1, np.int64)
    jn = np.flatnonzero(deg > 2)
    if jn.size == 0:
        return _Clusters(node_cluster, np.zeros((0, 2)), np.zeros(0))
    pts = coords[jn].astype(float)
    rad = dist_px[coords[jn, 0], coords[jn, 1]].astype(float)
    tree = cKDTree(pts)
    pairs = tree.query_pairs(r=max(1.5, 2.0 * float(rad.max())), output_type="ndarray")
    if len(pairs):
        d = np.linalg.norm(pts[pairs[:, 0]] - pts[pairs[:, 1]], axis=1)
        pairs = pairs[d <= np.maximum(1.5, (rad[pairs[:, 0]] + rad[pairs[:, 1]]))]
    else:
        pairs = np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(pts), len(pts)))
    n, lab = connected_components(graph, directed=False)
    centres = np.zeros((n, 2))
    np.add.at(centres, lab, pts)
    centres /= np.bincount(lab, minlength=n)[:, None]
    spread = np.linalg.norm(pts - centres[lab], axis=1) + rad
    reach = np.zeros(n)
    np.maximum.at(reach, lab, spread)
    node_cluster[jn] = lab
    return _Clusters(node_cluster, centres, reach + 0.5)


def _zone_exits(smooth: np.ndarray, ip: np.ndarray, ind: np.ndarray, clusters: _Clusters,
                ) -> dict[int, tuple[int, int, int, int]]:
    """For each path: the index where it leaves the zone at its start and at its end."""
    nc = clusters.node_cluster
    src_c = nc[ind[ip[:-1]]]
    dst_c = nc[ind[ip[1:] - 1]]
    exits = {}
    for i in np.flatnonzero((src_c >= 0) | (dst_c >= 0)):
        a, b = int(ip[i]), int(ip[i + 1])
        n = b - a
        pts = smooth[a:b]
        ks, kd = int(src_c[i]), int(dst_c[i])
        e_s, e_d = 0, n - 1
        if ks >= 0:
            far = np.linalg.norm(pts - clusters.centres[ks], axis=1) >= clusters.reach[ks]
            e_s = int(np.argmax(far)) if far.any() else n - 1
        if kd >= 0:
            far = np.linalg.norm(pts - clusters.centres[kd], axis=1) >= clusters.reach[kd]
            e_d = int(n - 1 - np.argmax(far[::-1])) if far.any() else 0
        exits[int(i)] = (ks, kd, e_s, e_d)
    return exits


def _refine_centres(smooth: np.ndarray, tangent: np.ndarray, ip: np.ndarray,
                    exits: dict[int, tuple[int, int, int, int]], clusters: _Clusters,
                    ) -> np.ndarray:
    """Junction centres as the least-squares crossing point of the branches' lines.

    Outside its zone each branch follows its true centreline; extended straight into the
    zone, the branches meet where the vessels join, which the skeleton's junction pixel
    misses at oblique branchings. Falls back to the pixel centre when the branches are
    nearly parallel or the crossing point lies outside the zone.
    """
    n = len(clusters.centres)
    A = np.zeros((n, 2, 2))
    bvec = np.zeros((n, 2))
    count = np.zeros(n, np.int64)
    eye = np.eye(2)
    for i, (ks, kd, e_s, e_d) in exits.items():
        a = int(ip[i])
        for k, e, inside_path in ((ks, e_s, e_s < e_d), (kd, e_d, e_s < e_d)):
            if k < 0 or not inside_path:
                continue
            t = tangent[a + e]
            p = smooth[a + e]
            proj = eye - np.outer(t, t)
            A[k] += proj
            bvec[k] += proj @ p
            count[k] += 1
    out = clusters.centres.copy()
    for k in np.flatnonzero(count >= 2):
        w = np.linalg.eigvalsh(A[k])
        if w[0] < 0.1 * count[k]:
            continue
        x = np.linalg.solve(A[k], bvec[k])
        if np.linalg.norm(x - clusters.centres[k]) <= clusters.reach[k]:
            out[k] = x
    return out


def _rectify_junctions(step: np.ndarray, smooth: np.ndarray, tangent: np.ndarray,
                       ip: np.ndarray, ind: np.ndarray, clusters: _Clusters, px: float,
                       ) -> np.ndarray:
    """Straighten every path inside junction zones (in place); returns entries in zones.

    Inside a zone the skeleton bends towards the junction and, at a crossing, merges two
    vessels into one short stretch; the true centrelines run straight into the junction.
    The part of a path inside the zone of a junction at its end is scaled to the straight
    distance from where it leaves the zone to the junction centre. A path between two
    junctions of one branch point (the middle of a crossing) gets length 0; a path shorter
    than its two zones gets the straight distance between their centres.
    """
    exits = _zone_exits(smooth, ip, ind, clusters)
    centres = _refine_centres(smooth, tangent, ip, exits, clusters)
    clusters.centres = centres
    in_zone = np.zeros(len(smooth), bool)
    for i, (ks, kd, e_s, e_d) in exits.items():
        a, b = int(ip[i]), int(ip[i + 1])
        n = b - a
        if n < 2:
            continue
        pts = smooth[a:b]
        st = step[a:b - 1]  # n - 1 steps of this path
        tg = tangent[a:b]
        if ks >= 0 and kd >= 0 and (ks == kd or e_s >= e_d):
            straight = 0.0 if ks == kd else float(np.linalg.norm(centres[ks] - centres[kd])) * px
            total = float(st.sum())
            st *= straight / total if total > 0 else 0.0
            if ks != kd:
                _straighten(pts, tg, st, 0, n - 1, centres[ks], centres[kd])
            in_zone[a:b] = True
            continue
        if ks >= 0 and e_s > 0:
            arc = float(st[:e_s].sum())
            straight = float(np.linalg.norm(pts[e_s] - centres[ks])) * px
            if arc > 0:
                st[:e_s] *= straight / arc
            _straighten(pts, tg, st, 0, e_s, centres[ks], pts[e_s].copy())
            in_zone[a:a + e_s] = True
        if kd >= 0 and e_d < n - 1:
            arc = float(st[e_d:].sum())
            straight = float(np.linalg.norm(pts[e_d] - centres[kd])) * px
            if arc > 0:
                st[e_d:] *= straight / arc
            _straighten(pts, tg, st, e_d, n - 1, pts[e_d].copy(), centres[kd])
            in_zone[a + e_d + 1:b] = True
    return in_zone


def _straighten(pts: np.ndarray, tg: np.ndarray, st: np.ndarray, i0: int, i1: int,
                p0: np.ndarray, p1: np.ndarray) -> None:
    """Put entries i0..i1 of a path on the straight line p0 → p1 (spaced by their steps)."""
    d = np.asarray(p1, float) - np.asarray(p0, float)
    norm = float(np.linalg.norm(d))
    if norm == 0:
        return
    arc = np.concatenate([[0.0], np.cumsum(st[i0:i1])])
    total = arc[-1]
    frac = arc / total if total > 0 else np.linspace(0, 1, len(arc))
    pts[i0:i1 + 1] = p0 + frac[:, None] * d
    tg[i0:i1 + 1] = d / norm


def trace_skeleton(
    mask: np.ndarray,
    pixel_size_um: float,
    *,
    min_spur_length_um: float = 4.0,
    smoothing_um: float = 1.0,
    end_correction: bool = True,
    junction_correction: bool = True,
    max_gap_um: float = 0.0,
    gap_angle_deg: float = 45.0,
    gap_support: np.ndarray | None = None,
) -> SkeletonTrace:
    """Skeletonise a tube mask and measure its centreline lengths in µm.

    Parameters
    ----------
    mask : ndarray of bool
        Tube mask (vessels, pericytes).
    pixel_size_um : float
        Pixel size in µm.
    min_spur_length_um : float
        Terminal branches sticking out of their parent by less than this are pruned.
    smoothing_um : float
        Gaussian σ along each path before summing steps (at least one pixel; 0 = plain
        1/√2 steps).
    end_correction : bool
        Extend each end along the vessel to the mask edge or the image border (the skeleton
        stops about a radius short of it).
    junction_correction : bool
        Replace the skeleton inside each junction zone by straight lines from where the
        branches leave the zone to the junction centre (skeletons cut corners at junctions
        and merge crossings).
    max_gap_um : float
        Bridge gaps up to this length from a free end to a skeleton it points at (0 = off).
    gap_angle_deg : float
        Largest angle between an end's direction and the bridge.
    gap_support : ndarray of bool, optional
        Where a bridge may run: a bridge is drawn only when at least half of its pixels
        outside ``mask`` lie in ``gap_support`` (e.g. the pixels where a ridge filter still
        answers). ``None``: anywhere.

    Returns
    -------
    SkeletonTrace
    """
    from .thinning import thin_lee

    px = float(pixel_size_um)
    mask = np.asarray(mask, dtype=bool)
    shape = mask.shape
    if mask.any():
        # Lee's thinning keeps the ends of diagonal tubes (Zhang's erodes them by several px)
        skel = thin_lee(mask)
    else:
        skel = np.zeros(shape, bool)
    distance_px = _skeleton_distance(mask, skel)
    skel, sk = _prune_spurs(skel, distance_px, px, min_spur_length_um)
    skel, bridges, sk = _bridge_gaps(skel, mask, distance_px, px, max_gap_um, gap_angle_deg,
                                     sk, gap_support)
    return _measure(skel, bridges, mask, distance_px, px, smoothing_um, end_correction,
                    junction_correction, sk)


def _skeleton_distance(mask: np.ndarray, skel: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) to the nearest background pixel, at skeleton pixels only.

    Everything else reads 0 (see :func:`.distance.distance_at`: the exact distance
    transform where it is needed, for a fraction of the cost of a whole-image transform).
    """
    out = np.zeros(mask.shape, np.float32)
    rr, cc = np.nonzero(skel)
    if len(rr):
        out[rr, cc] = distance_at(mask, rr, cc)
    return out


def _empty_trace(shape: tuple[int, int], px: float, skel: np.ndarray, bridges: np.ndarray,
                 ) -> SkeletonTrace:
    cols = ["path", "length_um", "chain_length_um", "end_correction_um", "diameter_um",
            "branch_type", "n_free_ends", "start_row", "start_col", "end_row", "end_col",
            "centroid_row", "centroid_col"]
    return SkeletonTrace(shape, px, skel, bridges, np.zeros(0, np.int64),
                         np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros(0),
                         np.zeros(0), np.zeros((0, 2)),
                         np.zeros(0), pd.DataFrame(columns=cols), np.zeros((0, 2)),
                         np.zeros((0, 2), np.int64))


def _measure(skel: np.ndarray, bridges: np.ndarray, mask: np.ndarray, dist_px: np.ndarray,
             px: float, smoothing_um: float, end_correction: bool, junction_correction: bool,
             sk: Skeleton | None = None) -> SkeletonTrace:
    shape = skel.shape
    if not skel.any():
        return _empty_trace(shape, px, skel, bridges)
    if sk is None:
        sk = _skan(skel)
    if sk.n_paths == 0:
        return _empty_trace(shape, px, skel, bridges)
    coords = sk.coordinates.astype(np.int64)
    deg = sk.degrees
    ip, ind = sk.paths.indptr, sk.paths.indices
    n_paths = sk.n_paths
    counts = np.diff(ip)
    entry_path = np.repeat(np.arange(n_paths), counts)
    entry_rc = coords[ind]
    smooth, tangent = _smooth_paths(coords, ip, ind, _sigma_px(smoothing_um, px))
    step = np.linalg.norm(np.diff(smooth, axis=0), axis=1) * px
    same = entry_path[1:] == entry_path[:-1]
    step = np.where(same, step, 0.0)
    chain = sk.path_lengths() * px
    inside = mask
    # local radius: half the width of the mask across the smoothed centreline (measured
    # before junction zones are straightened, where a cross-section runs into the branch)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    reach = float(dist_px.max()) + 2.0
    # one cap for all: twice the widest inscribed radius (a cross-section that meets the
    # skeleton obliquely, or runs into a branch, is longer than twice the local distance)
    cap = 2.0 * float(dist_px.max()) + 2.0
    flat = padded_flat(inside)
    width = (_run_length(inside, smooth, normal, cap, step=0.5, flat=flat)
             + _run_length(inside, smooth, -normal, cap, step=0.5, flat=flat))
    radius = 0.5 * width * px
    clusters = _junction_clusters(coords, deg, dist_px)
    in_zone = np.zeros(len(entry_path), bool)
    if junction_correction:
        in_zone = _rectify_junctions(step, smooth, tangent, ip, ind, clusters, px)
    entry_len = np.zeros(len(entry_path))
    entry_len[:-1] += 0.5 * step
    entry_len[1:] += 0.5 * step
    # ends: the skeleton stops short of an end; extend it along its own direction to the
    # mask edge (a flat cut or a rounded tip alike) or to the image border
    first = ip[:-1]
    last = ip[1:] - 1
    src, dst = ind[first], ind[last]
    correction = np.zeros(n_paths)
    entry_end = np.zeros(len(entry_path))
    n_free = np.zeros(n_paths, np.int64)
    free_nodes = []
    arc = np.concatenate([[0.0], np.cumsum(step)]) / px  # px along the concatenated paths
    for pos, node, sign in ((first, src, -1.0), (last, dst, 1.0)):
        is_end = (deg[node] == 1) & (src != dst)
        k = pos[is_end]
        # The last stretch of a skeleton bends towards a corner of the end (a flat cut, or an
        # oblique cut by the image border), so the ray starts a little back from the end,
        # where the skeleton still follows the vessel, and replaces that last stretch.
        back_px = 1.5 * dist_px[coords[node[is_end], 0], coords[node[is_end], 1]] + 1.0
        q = _point_back(arc, ip, np.flatnonzero(is_end), sign, back_px)
        dist, at_border = _run_length(inside, smooth[q], sign * tangent[q],
                                      reach + float(back_px.max(initial=0.0)),
                                      with_border=True, flat=flat)
        on_border = _on_border(coords[node[is_end]], shape)
        at_border |= on_border
        is_free = is_end.copy()
        is_free[is_end] = ~at_border
        n_free += is_free
        free_nodes.append(node[is_free])
        if end_correction and is_end.any():
            # a skeleton that already reaches the border needs no extension
            # (never negative: the skeleton lies inside the mask, so a shorter ray means the
            # skeleton curved at its end, not that it overshot)
            add = np.where(on_border, 0.0,
                           np.maximum(dist - np.abs(arc[k] - arc[q]), 0.0)) * px
            np.add.at(entry_len, k, add)
            np.add.at(entry_end, k, add)
            correction[is_end] += add
    free_nodes = np.unique(np.concatenate(free_nodes))
    # diameter per path, away from junctions where the cross-section runs into the branch
    arc = np.concatenate([[0.0], np.cumsum(step)])
    arc_from_start = arc - arc[first][entry_path]
    arc_to_end = arc[last][entry_path] - arc
    j_src = deg[src][entry_path] > 2
    j_dst = deg[dst][entry_path] > 2
    r_src = radius[first][entry_path]
    r_dst = radius[last][entry_path]
    away = ~((j_src & (arc_from_start < 1.5 * r_src + px)) |
             (j_dst & (arc_to_end < 1.5 * r_dst + px)))
    valid = inside[entry_rc[:, 0], entry_rc[:, 1]]
    use = away & valid & ~in_zone
    # median per path: robust to cross-sections that run along a branch or a crossing
    mean_r = _median_by_group(radius, entry_path, use, n_paths)
    fallback = _median_by_group(radius, entry_path, valid, n_paths)
    mean_r = np.where(np.isfinite(mean_r), mean_r, fallback)
    # bridged pixels lie outside the mask: give them their path's radius
    radius = np.where(valid, radius, np.nan_to_num(mean_r[entry_path]))
    kind = np.full(n_paths, 2)
    kind[(deg[src] == 1) | (deg[dst] == 1)] = 1
    kind[(deg[src] == 1) & (deg[dst] == 1)] = 0
    kind[src == dst] = 3
    length = np.bincount(entry_path, weights=entry_len, minlength=n_paths)
    cr = np.bincount(entry_path, weights=entry_rc[:, 0], minlength=n_paths) / counts
    cc = np.bincount(entry_path, weights=entry_rc[:, 1], minlength=n_paths) / counts
    paths = pd.DataFrame({
        "path": np.arange(n_paths),
        "length_um": length,
        "chain_length_um": chain,
        "end_correction_um": correction,
        "diameter_um": 2 * mean_r,
        "branch_type": [BRANCH_TYPES[k] for k in kind],
        "n_free_ends": n_free,
        "start_row": coords[src, 0], "start_col": coords[src, 1],
        "end_row": coords[dst, 0], "end_col": coords[dst, 1],
        "centroid_row": cr, "centroid_col": cc,
    })
    return SkeletonTrace(
        shape=shape, pixel_size_um=px, skeleton=skel, bridges=bridges,
        entry_path=entry_path, entry_rc=entry_rc, entry_yx=smooth, entry_length_um=entry_len,
        entry_end_um=entry_end,
        entry_tangent=tangent.astype(np.float32), entry_radius_um=radius.astype(np.float32),
        paths=paths, branch_points_rc=clusters.centres,
        free_ends_rc=coords[free_nodes],
    )
