"""The scanline rasteriser gives what skimage.draw.polygon gives (pixel centres inside or on
the boundary), including for outlines with many vertices."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon as draw_polygon

from histoquant.rois import Polygon, mask_to_polygons, rasterize


def _reference(vertices, shape):
    mask = np.zeros(shape, bool)
    rr, cc = draw_polygon(vertices[:, 0], vertices[:, 1], shape=shape)
    mask[rr, cc] = True
    return mask


def _star(rng, n, snap):
    """A simple (not self-intersecting) polygon: vertices at sorted angles around a centre."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(2, 11, n)
    v = np.stack([10 + radius * np.sin(angles), 9 + radius * np.cos(angles)], axis=1)
    if snap == "int":
        v = np.round(v)
    elif snap == "half":  # ImageJ/QuPath outlines shifted by half a pixel
        v = np.floor(v) + 0.5
    return v


def _has_spike(v):
    """Snapping can fold an edge back onto the previous one (a zero-width spike) or make two
    edges cross; 'on the boundary' is then ill-defined, so such polygons are left out."""
    a = v - np.roll(v, 1, axis=0)
    b = np.roll(v, -1, axis=0) - v
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    if np.any((np.abs(cross) < 1e-12) & ((a * b).sum(axis=1) <= 0)):
        return True
    n = len(v)

    def orient(p, q, r):
        return np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            p1, p2, q1, q2 = v[i], v[(i + 1) % n], v[j], v[(j + 1) % n]
            if orient(p1, p2, q1) * orient(p1, p2, q2) <= 0 and \
                    orient(q1, q2, p1) * orient(q1, q2, p2) <= 0:
                return True
    return False


@pytest.mark.parametrize("snap", ["float", "half", "int"])
def test_random_polygons_match_skimage(snap):
    rng = np.random.default_rng(7)
    shape = (22, 20)
    for _ in range(400):
        v = _star(rng, int(rng.integers(3, 12)), snap)
        if len(np.unique(v, axis=0)) < 3 or _has_spike(v):
            continue
        np.testing.assert_array_equal(rasterize([Polygon(v)], shape), _reference(v, shape))


def test_rectangles_match_skimage():
    rng = np.random.default_rng(8)
    for _ in range(200):
        r0, c0 = rng.integers(-3, 15, 2)
        r1, c1 = r0 + rng.integers(1, 12), c0 + rng.integers(1, 12)
        v = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], float)
        np.testing.assert_array_equal(rasterize([Polygon(v)], (20, 20)),
                                      _reference(v, (20, 20)))


def test_traced_outline_with_many_vertices_and_a_hole():
    yy, xx = np.mgrid[:300, :280]
    rng = np.random.default_rng(3)
    radius = 110 + 12 * np.sin(7 * np.arctan2(yy - 150, xx - 140)) + rng.normal(0, 0.3, yy.shape)
    mask = np.hypot(yy - 150, xx - 140) < radius
    mask &= ~(np.hypot(yy - 150, xx - 140) < 20)
    polys = mask_to_polygons(mask)
    assert sum(len(p.exterior) for p in polys) > 1000
    np.testing.assert_array_equal(rasterize(polys, mask.shape), mask)
    outer = polys[0].exterior
    np.testing.assert_array_equal(rasterize([Polygon(outer)], mask.shape),
                                  _reference(outer, mask.shape))
