"""Tiled runs: every object counted once across tile seams, areas add up, memory per tile."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.io import Image, read_image
from histoquant.rois import Polygon
from histoquant.synthetic.slide import PhantomSection, PhantomSlide, phantom_slide
from histoquant.testing import BLOB_SPEC
from histoquant.tiling import (
    MaskSource,
    PolygonSource,
    WholeImage,
    run_tiled,
    tile_grid,
)

PX = 2.0


def _image(slide: PhantomSlide) -> Image:
    return Image(slide.render(), axes="YXC", pixel_size_um=slide.pixel_size_um, rgb=True,
                 metadata={"name": "slide"})


def test_grid_cores_partition_the_image():
    wins = tile_grid((250, 300), 64, 10)
    cover = np.zeros((250, 300), int)
    for w in wins:
        cover[w.r0:w.r1, w.c0:w.c1] += 1
        assert w.R0 == max(0, w.r0 - 10) and w.C1 == min(300, w.c1 + 10)
    assert (cover == 1).all()


@pytest.mark.parametrize("offset", [-0.4, 0.0, 0.5, 0.6])
def test_cell_on_a_tile_seam_is_counted_once(offset):
    # one cell centred on the seam between the first two tile cores (rows and cols 128)
    seam = 128 + offset
    section = PhantomSection((128, 128), (120, 120), np.array([[seam, seam], [60.0, 60.0]]))
    slide = PhantomSlide((256, 256), PX, [section], cell_radius_px=6)
    img = _image(slide)
    direct = BLOB_SPEC.run(img)
    tiled = run_tiled(BLOB_SPEC, img, WholeImage(), tile_px=128, overlap_px=20)
    assert tiled.n_tiles == 4
    assert int(direct.summary["n_blobs"].iloc[0]) == 2
    assert int(tiled.summary["n_blobs"].iloc[0]) == 2
    assert len(tiled.objects) == 2
    # positions come back in full-image µm, the same as measured in one piece
    got = tiled.objects.sort_values("y_um")[["y_um", "x_um"]].to_numpy()
    want = direct.objects.sort_values("y_um")[["y_um", "x_um"]].to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert tiled.objects["label"].tolist() == [1, 2]


def test_tiled_equals_whole_on_a_crowded_slide():
    slide = phantom_slide((600, 700), [(300, 350, 280, 330)], [120], pixel_size_um=PX,
                          cell_radius_um=10, seed=3)
    img = _image(slide)
    direct = BLOB_SPEC.run(img).summary.iloc[0]
    tiled = run_tiled(BLOB_SPEC, img, WholeImage(), tile_px=100, overlap_px=16)
    t = tiled.summary.iloc[0]
    assert int(t["n_blobs"]) == 120 == int(direct["n_blobs"])
    # area-like columns add up, area fractions combine exactly by region-area weights
    assert t["region_area_mm2"] == pytest.approx(600 * 700 * (PX / 1000) ** 2)
    assert t["positive_area_pct"] == pytest.approx(direct["positive_area_pct"], rel=1e-12)
    assert t["blob_density_per_mm2"] == pytest.approx(direct["blob_density_per_mm2"])
    assert len(tiled.objects) == 120


def test_regions_from_polygons_and_low_res_masks_agree_with_direct():
    slide = phantom_slide((400, 400), [(200, 200, 180, 180)], [60], pixel_size_um=PX,
                          cell_radius_um=8, seed=5)
    img = _image(slide)
    left = Polygon(np.array([[0, 0], [0, 199.5], [399.5, 199.5], [399.5, 0]]))
    direct = BLOB_SPEC.run(img, regions={"left": left.exterior})
    tiled = run_tiled(BLOB_SPEC, img, PolygonSource({"left": [left]}), tile_px=90,
                      overlap_px=12)
    assert int(tiled.summary["n_blobs"].iloc[0]) == int(direct.summary["n_blobs"].iloc[0])
    # a 4× coarser mask of the same half, upsampled per tile
    low = np.zeros((100, 100), bool)
    low[:, :50] = True
    masked = run_tiled(BLOB_SPEC, img, MaskSource({"left": low}, (4.0, 4.0)), tile_px=90,
                       overlap_px=12)
    assert masked.summary["region_area_mm2"].iloc[0] == pytest.approx(
        400 * 200 * (PX / 1000) ** 2)
    assert int(masked.summary["n_blobs"].iloc[0]) == int(direct.summary["n_blobs"].iloc[0])


def test_empty_tiles_are_skipped_and_bounds_limit_the_work():
    slide = phantom_slide((400, 800), [(200, 200, 150, 150)], [10], pixel_size_um=PX, seed=1)
    img = _image(slide)
    low = np.zeros((100, 200), bool)
    low[10:90, 10:90] = True  # the section only, in a 4× mask
    src = MaskSource({"tissue": low}, (4.0, 4.0))
    res = run_tiled(BLOB_SPEC, img, src, tile_px=100, overlap_px=10)
    assert res.n_tiles_skipped > 0
    assert int(res.summary["n_blobs"].iloc[0]) == 10
    bounded = run_tiled(BLOB_SPEC, img, src, tile_px=100, overlap_px=10,
                        bounds=src.bounds("tissue"))
    assert bounded.n_tiles + bounded.n_tiles_skipped < res.n_tiles + res.n_tiles_skipped
    assert int(bounded.summary["n_blobs"].iloc[0]) == 10


def test_lazy_pyramidal_slide_reads_by_tile(tmp_path):
    slide = phantom_slide((700, 900), [(200, 250, 150, 200), (500, 620, 150, 220)], [15, 25],
                          pixel_size_um=PX, seed=2)
    path = slide.write_ome_tiff(tmp_path / "s.ome.tif", tile=128, levels=3)
    img = read_image(path, lazy=True)
    assert not isinstance(img.data, np.ndarray)
    np.testing.assert_array_equal(np.asarray(img.data[100:300, 50:420]),
                                  slide.render(100, 300, 50, 420))
    low = read_image(path, level=2)
    np.testing.assert_array_equal(low.data, slide.render(step=4))
    res = run_tiled(BLOB_SPEC, img, WholeImage(), tile_px=256, overlap_px=20)
    assert int(res.summary["n_blobs"].iloc[0]) == 40
