"""ImageJ composite (shape) ROIs read as ImageJ fills them: disjoint pieces, holes, islands."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.rois import read_regions
from histoquant.rois.formats import _composite_path


def _rect(r0, c0, r1, c1):
    """Closed rectangle path in ImageJ (x, y) order."""
    return np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1]], dtype=np.float32)


def _write_composite(path, rings, name="comp"):
    import roifile

    roi = roifile.ImagejRoi.frompoints(rings[0], name=name)
    roi.roitype = roifile.ROI_TYPE.RECT
    roi.multi_coordinates = _composite_path(rings)
    roi.shape_roi_size = len(roi.multi_coordinates)
    roi.subpixel_coordinates = None
    roi.integer_coordinates = None
    roi.n_coordinates = 0
    path.write_bytes(roi.tobytes())
    return path


def test_nine_disjoint_rectangles_are_nine_pieces(tmp_path):
    rings = [_rect(10 + 40 * i, 10 + 40 * j, 30 + 40 * i, 30 + 40 * j)
             for i in range(3) for j in range(3)]
    (region,) = read_regions(_write_composite(tmp_path / "nine.roi", rings))
    assert len(region.polygons) == 9
    assert all(not p.holes for p in region.polygons)
    mask = region.to_mask((140, 140))
    assert mask.sum() == pytest.approx(9 * 20 * 20, rel=0.02)


def test_ring_with_a_hole_and_an_island_in_it(tmp_path):
    rings = [_rect(0, 0, 100, 100), _rect(20, 20, 80, 80), _rect(40, 40, 60, 60),
             _rect(0, 120, 30, 150)]  # outline, its hole, an island in the hole, a separate piece
    (region,) = read_regions(_write_composite(tmp_path / "ring.roi", rings))
    mask = region.to_mask((110, 160))
    want = 100 * 100 - 60 * 60 + 20 * 20 + 30 * 30
    assert mask.sum() == pytest.approx(want, rel=0.03)
    assert mask[50, 50] and not mask[30, 30] and mask[10, 10] and mask[15, 135]
    assert sorted(len(p.holes) for p in region.polygons) == [0, 0, 1]


def test_composite_round_trip_keeps_the_area(tmp_path):
    from histoquant.rois import write_regions

    rings = [_rect(0, 0, 100, 100), _rect(20, 20, 80, 80), _rect(0, 120, 30, 150)]
    (region,) = read_regions(_write_composite(tmp_path / "a.roi", rings))
    write_regions([region], tmp_path / "b.zip")
    (again,) = read_regions(tmp_path / "b.zip")
    shape = (110, 160)
    assert (again.to_mask(shape) == region.to_mask(shape)).all()
