"""Per-object measurements in µm on shapes with known geometry, and region assignment."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from histoquant.measure.objects import OBJECT_COLUMNS, assign_regions, measure_objects


def _shapes(scale: int = 1) -> np.ndarray:
    """Disk r=20, rectangle 20×60 and an L shape, drawn at ``scale`` pixels per unit."""
    s = scale
    lab = np.zeros((200 * s, 300 * s), np.int32)
    lab[disk((50 * s, 50 * s), 20 * s, shape=lab.shape)] = 1
    lab[10 * s:30 * s, 200 * s:260 * s] = 2
    lab[100 * s:180 * s, 150 * s:170 * s] = 3      # L: vertical bar
    lab[160 * s:180 * s, 170 * s:230 * s] = 3      # L: foot
    return lab


def test_sizes_of_known_shapes_in_um():
    df = measure_objects(_shapes(), 0.5).set_index("label")
    assert list(df.reset_index().columns[:len(OBJECT_COLUMNS)]) == list(OBJECT_COLUMNS)
    # Disk of radius 10 µm.
    assert df.loc[1, "area_um2"] == pytest.approx(np.pi * 100, rel=0.01)
    assert df.loc[1, "equivalent_diameter_um"] == pytest.approx(20.0, rel=0.01)
    assert df.loc[1, "feret_max_um"] == pytest.approx(20.5, abs=0.5)
    assert df.loc[1, "eccentricity"] < 0.05
    assert df.loc[1, "solidity"] > 0.95
    # Rectangle 10 × 30 µm: calipers exact on pixel squares.
    assert df.loc[2, "area_um2"] == pytest.approx(300.0)
    assert df.loc[2, "feret_min_um"] == pytest.approx(10.0)
    assert df.loc[2, "feret_max_um"] == pytest.approx(np.hypot(10, 30))
    assert df.loc[2, "solidity"] == pytest.approx(1.0)
    assert df.loc[2, "centroid_y_um"] == pytest.approx(19.5 * 0.5)
    assert df.loc[2, "centroid_x_um"] == pytest.approx(229.5 * 0.5)
    # L shape: area 2800 px, hull area of the L's corner polygon.
    hull = 80 * 20 + 60 * 20 + 0.5 * 60 * 60
    assert df.loc[3, "solidity"] == pytest.approx(2800 / hull, rel=0.01)


def test_measures_do_not_depend_on_resolution():
    coarse = measure_objects(_shapes(1), 1.0).set_index("label")
    fine = measure_objects(_shapes(2), 0.5).set_index("label")
    for col in ("area_um2", "equivalent_diameter_um", "feret_max_um", "feret_min_um",
                "solidity", "centroid_y_um"):
        np.testing.assert_allclose(fine[col], coarse[col], rtol=0.03, atol=0.3,
                                   err_msg=col)


def test_eccentricity_of_an_ellipse():
    lab = np.zeros((200, 200), np.int32)
    lab[ellipse(100, 100, 20, 60, shape=lab.shape)] = 7
    df = measure_objects(lab, 1.0)
    assert df["label"].tolist() == [7]
    assert df.loc[0, "eccentricity"] == pytest.approx(np.sqrt(1 - (20 / 60) ** 2), abs=0.01)


def test_intensity_means_offset_and_empty():
    lab = np.zeros((20, 20), np.int32)
    lab[2:5, 2:5] = 1
    lab[10:15, 10:12] = 2
    img = np.arange(400, dtype=float).reshape(20, 20)
    df = measure_objects(lab, 2.0, intensities={"od": img}, offset_um=(100.0, 10.0))
    assert df["mean_od"].tolist() == pytest.approx([img[2:5, 2:5].mean(),
                                                    img[10:15, 10:12].mean()])
    assert df.loc[0, "centroid_y_um"] == pytest.approx(100.0 + 3 * 2.0)
    assert df.loc[0, "centroid_x_um"] == pytest.approx(10.0 + 3 * 2.0)
    empty = measure_objects(np.zeros((5, 5), np.int32), 1.0, intensities={"od": img[:5, :5]})
    assert len(empty) == 0 and "mean_od" in empty.columns


def test_single_pixel_object_has_a_width():
    lab = np.zeros((5, 5), np.int32)
    lab[2, 2] = 1
    df = measure_objects(lab, 1.0)
    assert df.loc[0, "feret_min_um"] == pytest.approx(1.0)
    assert df.loc[0, "feret_max_um"] == pytest.approx(np.sqrt(2))


def test_assign_regions_by_centroid():
    df = measure_objects(_shapes(), 0.5)
    left = np.zeros((200, 300), bool)
    left[:, :180] = True
    top = np.zeros((200, 300), bool)
    top[:60] = True
    out = assign_regions(df, {"left": left, "top": top}, 0.5)
    assert out.columns[0] == "region"
    got = sorted(zip(out["region"], out["label"]))
    # Disk: left and top; rectangle: top only; L (centroid x ≈ 176 px): left only.
    assert got == [("left", 1), ("left", 3), ("top", 1), ("top", 2)]
