"""Pyramid levels and lazy reading of whole-slide files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from histoquant import Image, read_image
from histoquant.errors import ImageReadError
from histoquant.io import image_levels, write_ome_zarr


@pytest.fixture
def pyramid_tiff(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (256, 384, 3), dtype=np.uint8)
    path = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(data, subifds=2, tile=(64, 64), photometric="rgb", metadata={
            "axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
        tw.write(data[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb")
        tw.write(data[::4, ::4], subfiletype=1, tile=(64, 64), photometric="rgb")
    return path, data


def test_levels_of_a_pyramidal_tiff(pyramid_tiff):
    path, _ = pyramid_tiff
    assert image_levels(path) == [(256, 384), (128, 192), (64, 96)]


def test_level_has_scaled_pixel_size_and_its_own_pixels(pyramid_tiff):
    path, data = pyramid_tiff
    low = read_image(path, level=2)
    assert low.shape_yx == (64, 96)
    assert low.pixel_size_um == pytest.approx(2.0)
    assert low.rgb
    np.testing.assert_array_equal(np.asarray(low.data), data[::4, ::4])
    # an override is meant for full resolution and scales with the level too
    assert read_image(path, pixel_size_um=0.25, level=1).pixel_size_um == pytest.approx(0.5)


def test_lazy_reads_windows_without_loading(pyramid_tiff):
    path, data = pyramid_tiff
    img = read_image(path, lazy=True)
    assert not isinstance(img.data, np.ndarray)
    np.testing.assert_array_equal(np.asarray(img.data[70:90, 200:260]), data[70:90, 200:260])
    assert isinstance(read_image(path, lazy=False).data, np.ndarray)


def test_missing_level_is_a_read_error(pyramid_tiff, tmp_path):
    path, _ = pyramid_tiff
    with pytest.raises(ImageReadError, match="no pyramid level 3"):
        read_image(path, level=3)
    png = tmp_path / "a.png"
    from PIL import Image as PILImage

    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    with pytest.raises(ImageReadError, match="no pyramid level"):
        read_image(png, level=1)
    assert image_levels(png) == [(8, 8)]


def test_ome_zarr_levels(tmp_path):
    data = np.arange(64 * 80, dtype=np.uint16).reshape(64, 80)
    path = write_ome_zarr(Image(data, pixel_size_um=0.4), tmp_path / "a.ome.zarr", levels=3)
    assert image_levels(path) == [(64, 80), (32, 40), (16, 20)]
    low = read_image(path, level=1, lazy=True)
    assert low.pixel_size_um == pytest.approx(0.8)
    assert not isinstance(low.data, np.ndarray)
    assert np.asarray(low.data[:]).shape == (32, 40)


def test_lazy_channels_first_slide_is_read_by_window(tmp_path):
    # OME stores fluorescence channels first (T C Y X here, singleton T); lazily opened, a
    # window read must come back channels-last without loading the whole file
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, (1, 3, 96, 128), dtype=np.uint16)
    path = tmp_path / "fluo.ome.tif"
    tifffile.imwrite(path, data, tile=(32, 32), metadata={
        "axes": "TCYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65,
        "Channel": {"Name": ["DAPI", "GFP", "AF"]}})
    lazy = read_image(path, lazy=True)
    eager = read_image(path, lazy=False)
    assert lazy.axes == eager.axes == "YXC"
    assert lazy.data.shape == eager.data.shape == (96, 128, 3)
    assert not isinstance(lazy.data, np.ndarray)
    np.testing.assert_array_equal(lazy.data[10:40, 70:100], eager.data[10:40, 70:100])
    np.testing.assert_array_equal(lazy.data[5, :, 1], eager.data[5, :, 1])
    np.testing.assert_array_equal(lazy.channel("gfp"), eager.channel("gfp"))
    np.testing.assert_array_equal(np.asarray(lazy.data), data[0].transpose(1, 2, 0))


def test_truncated_tiff_is_refused_when_opened_lazily(pyramid_tiff, tmp_path):
    path, _ = pyramid_tiff
    raw = path.read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="truncated|could not be read"):
        read_image(cut, lazy=True)
