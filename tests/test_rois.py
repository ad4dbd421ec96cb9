"""Regions: rasterisation convention, file round trips, bad region input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.draw import disk

from histoquant.errors import RegionError
from histoquant.rois import (
    Polygon,
    Region,
    mask_to_polygons,
    normalize_regions,
    rasterize,
    read_regions,
    write_regions,
)

SHAPE = (120, 140)


@pytest.fixture
def regions():
    mask = np.zeros(SHAPE, bool)
    mask[10:60, 20:90] = True
    mask[30:40, 40:50] = False  # a hole
    rr, cc = disk((90, 60), 15)
    mask[rr, cc] = True  # a second part
    return [
        Region("grey_matter", mask=mask),
        Region("ventral_horn_left", polygons=[Polygon([[70, 80], [70, 130.4], [115.6, 128],
                                                        [100, 85.2]])]),
    ]


def test_pixel_centre_convention():
    # a square from -0.5 to 2.5 covers exactly pixels 0..2 (centres inside)
    square = Polygon([[-0.5, -0.5], [-0.5, 2.5], [2.5, 2.5], [2.5, -0.5]])
    mask = rasterize([square], (5, 5))
    assert mask.sum() == 9 and mask[:3, :3].all()


def test_holes_are_excluded():
    outer = [[0, 0], [0, 20], [20, 20], [20, 0]]
    hole = [[5, 5], [5, 15], [15, 15], [15, 5]]
    mask = rasterize([Polygon(outer, [hole])], (25, 25))
    assert not mask[10, 10] and mask[2, 2]


@pytest.mark.parametrize("suffix", [".zip", ".geojson"])
def test_round_trip_gives_same_masks(tmp_path, regions, suffix):
    path = write_regions(regions, tmp_path / f"regions{suffix}")
    back = {r.name: r for r in read_regions(path)}
    assert set(back) == {"grey_matter", "ventral_horn_left"}
    for region in regions:
        np.testing.assert_array_equal(back[region.name].to_mask(SHAPE), region.to_mask(SHAPE))


def test_single_roi_file(tmp_path, regions):
    path = write_regions([regions[1]], tmp_path / "vh.roi")
    (back,) = read_regions(path)
    assert back.name == "ventral_horn_left"
    np.testing.assert_array_equal(back.to_mask(SHAPE), regions[1].to_mask(SHAPE))


def test_qupath_geojson_coordinates_are_pixel_corners(tmp_path):
    # QuPath: a 10×10 px square annotation from (x=0,y=0) to (x=10,y=10) covers 100 pixels
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}}
    path = tmp_path / "q.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    (region,) = read_regions(path)
    assert region.name == "Tumor"
    mask = region.to_mask((20, 20))
    assert mask.sum() == 100 and mask[:10, :10].all()


def test_mask_to_polygons_round_trip():
    rng = np.random.default_rng(3)
    mask = np.zeros((80, 80), bool)
    for _ in range(6):
        rr, cc = disk(tuple(rng.integers(10, 70, 2)), int(rng.integers(3, 12)), shape=mask.shape)
        mask[rr, cc] = True
    np.testing.assert_array_equal(rasterize(mask_to_polygons(mask), mask.shape), mask)


def test_normalize_none_is_whole_image():
    masks = normalize_regions(None, (4, 5))
    assert list(masks) == ["image"] and masks["image"].all()


def test_region_outside_image_is_an_error():
    far = Region("far", polygons=[Polygon([[500, 500], [500, 600], [600, 600]])])
    with pytest.raises(RegionError, match="covers no pixel"):
        normalize_regions([far], (50, 50))


def test_bad_region_inputs(tmp_path):
    with pytest.raises(RegionError):
        Polygon([[0, 0], [1, 1]])
    with pytest.raises(RegionError):
        Region("x")
    with pytest.raises(RegionError, match="no such region file"):
        read_regions(tmp_path / "missing.zip")
    (tmp_path / "broken.geojson").write_text("{not json")
    with pytest.raises(RegionError, match="broken.geojson"):
        read_regions(tmp_path / "broken.geojson")
    (tmp_path / "line.geojson").write_text(json.dumps({"type": "Feature", "geometry": {
        "type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "properties": {}}))
    with pytest.raises(RegionError, match="no area"):
        read_regions(tmp_path / "line.geojson")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(RegionError, match="bad.zip"):
        read_regions(tmp_path / "bad.zip")
    with pytest.raises(RegionError, match="mask shape"):
        Region("m", mask=np.ones((3, 3), bool)).to_mask((4, 4))
