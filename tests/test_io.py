"""Image reading: formats, axes, pixel size with units, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from histoquant import Image, read_image
from histoquant.errors import (
    ChannelError,
    EmptyImageError,
    ImageReadError,
    PixelSizeError,
)
from histoquant.io import as_image, check_not_empty, write_imagej_tiff, write_ome_tiff
from histoquant.io.pixel_size import length_to_um, resolution_to_um
from histoquant.io.writers import write_ome_zarr


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)


@pytest.mark.parametrize(("unit", "value", "expected"), [
    ("nm", 346.0, 0.346), ("µm", 0.5, 0.5), ("um", 0.5, 0.5), ("micron", 2.0, 2.0),
    ("mm", 0.001, 1.0), ("cm", 1e-4, 1.0), ("\\u00B5m", 0.25, 0.25), ("μm", 0.7, 0.7),
])
def test_length_units(unit, value, expected):
    assert length_to_um(value, unit) == pytest.approx(expected)


def test_unknown_unit_is_unknown_not_guessed():
    assert length_to_um(1.0, "furlong") is None
    assert resolution_to_um(2.0, "pixel") is None


def test_screen_dpi_is_not_a_calibration():
    assert resolution_to_um(72, "inch") is None
    assert resolution_to_um(25400 / 0.5, "inch") == pytest.approx(0.5)


def test_ome_tiff_pixel_size_units_and_channel_names(tmp_path):
    data = np.arange(2 * 30 * 20, dtype=np.uint16).reshape(2, 30, 20)
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 650.0, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 650.0, "PhysicalSizeYUnit": "nm",
        "Channel": {"Name": ["DAPI", "GFP"]}})
    img = read_image(path)
    assert img.axes == "YXC"
    assert img.shape_yx == (30, 20)
    assert img.pixel_size_um == pytest.approx(0.65)
    assert img.channel_names == ("DAPI", "GFP")
    np.testing.assert_array_equal(img.channel("gfp"), data[1])
    assert img.channel_index("dapi") == 0


def test_imagej_tiff_calibration(tmp_path, rgb):
    path = write_imagej_tiff(Image(rgb, axes="YXC", pixel_size_um=0.346, rgb=True),
                             tmp_path / "ij.tif")
    img = read_image(path)
    assert img.rgb and img.axes == "YXC"
    assert img.pixel_size_um == pytest.approx(0.346, rel=1e-4)


def test_tiff_resolution_tags_in_cm(tmp_path):
    path = tmp_path / "cm.tif"
    # 0.25 µm/px = 40000 px/cm
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(40000, 40000),
                     resolutionunit="CENTIMETER")
    assert read_image(path).pixel_size_um == pytest.approx(0.25)


def test_tiff_without_calibration_has_no_pixel_size(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    img = read_image(path)
    assert img.pixel_size_um is None
    with pytest.raises(PixelSizeError, match="--pixel-size"):
        img.require_pixel_size()


def test_caller_pixel_size_wins_and_is_logged(tmp_path, rgb, caplog):
    image = Image(rgb, axes="YXC", pixel_size_um=0.5, rgb=True)
    path = write_ome_tiff(image, tmp_path / "x.ome.tif")
    with caplog.at_level("WARNING"):
        img = read_image(path, pixel_size_um=0.25)
    assert img.pixel_size_um == 0.25
    assert "overrides" in caplog.text


def test_anisotropic_pixels_refused(tmp_path):
    path = tmp_path / "aniso.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(40000, 20000),
                     resolutionunit="CENTIMETER")
    with pytest.raises(PixelSizeError, match="anisotropic"):
        read_image(path)
    assert read_image(path, pixel_size_um=0.3).pixel_size_um == 0.3


def test_ome_zarr_round_trip(tmp_path):
    data = np.random.default_rng(1).integers(0, 4000, (3, 32, 48, 2), dtype=np.uint16)
    img = Image(data, axes="ZYXC", pixel_size_um=0.8, z_step_um=2.0,
                channel_names=("vessel", "evb"))
    path = write_ome_zarr(img, tmp_path / "s.ome.zarr", levels=2)
    back = read_image(path)
    assert back.axes == "ZYXC"
    assert back.pixel_size_um == pytest.approx(0.8)
    assert back.z_step_um == pytest.approx(2.0)
    assert back.channel_names == ("vessel", "evb")
    np.testing.assert_array_equal(np.asarray(back.data), data)
    np.testing.assert_array_equal(back.channel("evb"), data[..., 1].max(axis=0))


def test_png_and_jpeg(tmp_path, rgb):
    from PIL import Image as PILImage

    PILImage.fromarray(rgb).save(tmp_path / "a.png")
    PILImage.fromarray(rgb).save(tmp_path / "a.jpg", dpi=(72, 72))
    png = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(png.data, rgb)
    assert png.rgb and png.pixel_size_um is None
    assert read_image(tmp_path / "a.jpg").pixel_size_um is None


def test_sixteen_bit_kept(tmp_path):
    data = np.full((10, 10), 4095, np.uint16)
    data[0, 0] = 65535
    tifffile.imwrite(tmp_path / "u16.tif", data)
    img = read_image(tmp_path / "u16.tif")
    assert img.dtype == np.uint16 and img.max_value() == 65535


@pytest.mark.parametrize("content", [b"", b"not a tiff at all", b"II*\x00\x08\x00\x00\x00"])
def test_corrupt_files_raise_image_read_error(tmp_path, content):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="bad.tif"):
        read_image(path)


def test_truncated_tiff(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, (300, 300), dtype=np.uint8)
    path = tmp_path / "trunc.tif"
    tifffile.imwrite(path, data)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="trunc.tif"):
        read_image(path)


def test_truncated_jpeg(tmp_path, rgb):
    from PIL import Image as PILImage

    path = tmp_path / "t.jpg"
    PILImage.fromarray(np.repeat(np.repeat(rgb, 8, 0), 8, 1)).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(ImageReadError):
        read_image(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.tif")
    (tmp_path / "x.docx").write_bytes(b"PK")
    with pytest.raises(ImageReadError, match="unknown image format"):
        read_image(tmp_path / "x.docx")


def test_channel_errors():
    img = as_image(np.zeros((5, 5, 2), np.uint16), 1.0)
    with pytest.raises(ChannelError, match="no channel named 'gfp'"):
        img.channel("gfp")
    with pytest.raises(ChannelError, match="out of range"):
        img.channel(3)
    with pytest.raises(ChannelError, match="RGB"):
        as_image(np.zeros((5, 5), np.uint8), 1.0).require_rgb()


def test_nan_and_blank_images():
    arr = np.ones((6, 6), np.float32)
    arr[2, 2] = np.nan
    with pytest.raises(EmptyImageError, match="NaN"):
        as_image(arr, 1.0).channel(0)
    with pytest.raises(EmptyImageError, match="blank"):
        check_not_empty(np.zeros((4, 4)))
    with pytest.raises(EmptyImageError, match="no pixels"):
        check_not_empty(np.zeros((0, 4)))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "abc", 5000])
def test_invalid_pixel_sizes(bad):
    with pytest.raises(PixelSizeError):
        as_image(np.zeros((4, 4)), bad)


@pytest.mark.realdata
def test_real_nissl_cortex_pixel_size(shared_data):
    for path in sorted((shared_data / "nissl_cortex" / "raw").glob("*.tif")):
        img = read_image(path)
        assert img.rgb
        assert img.pixel_size_um == pytest.approx(0.346, abs=5e-4)


@pytest.mark.realdata
def test_real_gfp_dapi_pixel_size(shared_data):
    img = read_image(shared_data / "gfp_dapi" / "tie2cre_mtmg_e13_5.tif")
    assert img.pixel_size_um == pytest.approx(0.496, abs=5e-4)
    assert img.n_channels == 3 and not img.rgb
    assert img.shape_yx == (1024, 1024)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from histoquant.io import atomic_path

    with atomic_path(tmp_path / "t.txt") as tmp:
        tmp.write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_time_points_are_not_z_planes(tmp_path, caplog):
    """OME T is time, not depth: the first time point is measured, with a warning; a real
    Z-stack stays a Z-stack."""
    import logging

    import tifffile

    from histoquant.io import read_image

    t0 = np.zeros((64, 64), np.uint16)
    t0[10:20, 10:20] = 1000
    t1 = np.zeros_like(t0)
    t1[40:50, 40:50] = 1000
    meta = {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(tmp_path / "t.ome.tif", np.stack([t0, t1]), ome=True,
                     metadata={"axes": "TYX", **meta})
    tifffile.imwrite(tmp_path / "z.ome.tif", np.stack([t0, t1]), ome=True,
                     metadata={"axes": "ZYX", **meta})
    with caplog.at_level(logging.WARNING):
        timed = read_image(tmp_path / "t.ome.tif")
    assert timed.axes == "YX"
    assert (np.asarray(timed.data) == t0).all()  # not a projection of both moments
    assert timed.metadata["time_points"] == 2
    assert any("2 time points" in w and "t.ome.tif" in w for w in timed.metadata["warnings"])
    assert "2 time points" in caplog.text
    stack = read_image(tmp_path / "z.ome.tif")
    assert stack.axes == "ZYX" and stack.data.shape == (2, 64, 64)


def test_time_points_lazy_read_the_first(tmp_path):
    import tifffile

    from histoquant.io import read_image

    data = np.stack([np.full((32, 32), 7, np.uint16), np.full((32, 32), 9, np.uint16)])
    tifffile.imwrite(tmp_path / "t.ome.tif", data, ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    image = read_image(tmp_path / "t.ome.tif", lazy=True)
    assert image.axes == "YX"
    assert int(np.asarray(image.data[:, :]).max()) == 7
