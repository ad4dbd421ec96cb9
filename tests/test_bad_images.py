"""Hostile and damaged image files: refused up front, fast, naming the file — never a hang.

A header can claim anything: 200,000² pixels in a few hundred bytes, 200,000 one-row strips,
a pixel size of 1e-5 µm. Each is refused from the header before a pixel is read or allocated
(see ``histoquant/io/limits.py``). Every test is bounded in time with ``time.perf_counter``
(pytest-timeout is not a dependency): a regression shows as a failure, not a stuck run.
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from histoquant.errors import EmptyImageError, ImageReadError, PixelSizeError, RegionError
from histoquant.io import Image, limits, read_image
from histoquant.io.image import value_scale

# Seconds any refusal may take (they take well under one; a hang took minutes).
FAST_S = 5.0


class _Clock:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False


def _craft_tiff(path: Path, height: int, width: int, rows_per_strip: int | None = None) -> Path:
    """A classic TIFF whose header claims ``height × width`` 8-bit pixels, deflate-compressed,
    with every strip pointing at one tiny compressed blob: a few hundred bytes on disk for one
    strip, 1.6 MB for 200,000 one-row strips (their offset and byte-count tables)."""
    rps = height if rows_per_strip is None else rows_per_strip
    n = -(-height // rps)
    blob = zlib.compress(b"\0" * min(width * rps, 1 << 16))
    n_entries = 10
    arrays_at = 8 + 2 + n_entries * 12 + 4
    blob_at = arrays_at + (8 * n if n > 1 else 0)
    extra = bytearray()
    entries = []

    def add(tag: int, typ: int, count: int, value: bytes) -> None:
        if len(value) <= 4:
            entries.append(struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", tag, typ, count, arrays_at + len(extra)))
            extra.extend(value)

    add(256, 4, 1, struct.pack("<I", width))            # ImageWidth
    add(257, 4, 1, struct.pack("<I", height))           # ImageLength
    add(258, 3, 1, struct.pack("<H", 8))                # BitsPerSample
    add(259, 3, 1, struct.pack("<H", 8))                # Compression: deflate
    add(262, 3, 1, struct.pack("<H", 1))                # Photometric: black is zero
    add(273, 4, n, np.full(n, blob_at, "<u4").tobytes())  # StripOffsets
    add(277, 3, 1, struct.pack("<H", 1))                # SamplesPerPixel
    add(278, 4, 1, struct.pack("<I", rps))              # RowsPerStrip
    add(279, 4, n, np.full(n, len(blob), "<u4").tobytes())  # StripByteCounts
    add(284, 3, 1, struct.pack("<H", 1))                # PlanarConfiguration
    head = b"II*\0" + struct.pack("<IH", 8, n_entries) + b"".join(entries) + b"\0" * 4
    path.write_bytes(head + bytes(extra) + blob)
    return path


def _patch_png_size(data: bytes, height: int, width: int) -> bytes:
    """A PNG with its IHDR size replaced (and its CRC recomputed)."""
    assert data[12:16] == b"IHDR"
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return data[:12] + bytes(ihdr) + crc + data[33:]


def _patch_jpeg_size(data: bytes, height: int, width: int) -> bytes:
    """A baseline JPEG with its SOF0 frame size replaced."""
    i = data.index(b"\xff\xc0")
    return data[:i + 5] + struct.pack(">HH", height, width) + data[i + 9:]


def _rgb(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- decompression bombs ---


def test_tiff_header_claiming_200000_squared_is_refused_fast(tmp_path):
    path = _craft_tiff(tmp_path / "bomb.tif", 200_000, 200_000)
    assert path.stat().st_size < 1000
    for lazy in (None, True, False):
        with _Clock() as clock, pytest.raises(ImageReadError) as err:
            read_image(path, lazy=lazy)
        assert clock.seconds < FAST_S
        msg = str(err.value)
        assert str(path) in msg and "200000 × 200000" in msg and "decompression bomb" in msg
        assert f"{limits.MAX_COMPRESSION_RATIO:g}" in msg


def test_tiff_with_200000_one_row_strips_is_refused_fast(tmp_path):
    path = _craft_tiff(tmp_path / "strips.tif", 200_000, 200_000, rows_per_strip=1)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages[0].dataoffsets) == 200_000
    with _Clock() as clock, pytest.raises(ImageReadError, match="decompression bomb") as err:
        read_image(path, lazy=True)  # the batch's way of opening files
    assert clock.seconds < FAST_S
    assert str(path) in str(err.value)


def test_header_larger_than_any_slide_is_refused(tmp_path):
    path = _craft_tiff(tmp_path / "huge.tif", 4_000_000, 4_000_000)
    with _Clock() as clock, pytest.raises(ImageReadError, match="more than the limit") as err:
        read_image(path, lazy=True)
    assert clock.seconds < FAST_S
    assert str(path) in str(err.value) and "1.6e+13 pixels" in str(err.value)


def test_small_crafted_tiff_still_reads(tmp_path):
    """The crafted header is a valid TIFF: below the limits it reads as zeros."""
    image = read_image(_craft_tiff(tmp_path / "small.tif", 100, 100, rows_per_strip=1))
    assert image.shape_yx == (100, 100) and not np.asarray(image.data).any()


def test_png_bomb_is_refused_with_the_file(tmp_path):
    from PIL import Image as PILImage

    small = tmp_path / "small.png"
    PILImage.fromarray(_rgb(8, 8)).save(small)
    path = tmp_path / "bomb.png"
    path.write_bytes(_patch_png_size(small.read_bytes(), 100_000, 100_000))
    with _Clock() as clock, pytest.raises(ImageReadError) as err:
        read_image(path)
    assert clock.seconds < FAST_S
    assert str(path) in str(err.value) and "decompression bomb" in str(err.value)


def test_png_bomb_is_refused_by_histoquant_when_pillow_guard_is_off(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", None)
    small = tmp_path / "small.png"
    PILImage.fromarray(_rgb(8, 8)).save(small)
    path = tmp_path / "bomb.png"
    path.write_bytes(_patch_png_size(small.read_bytes(), 100_000, 100_000))
    with _Clock() as clock, pytest.raises(ImageReadError, match="decompression bomb") as err:
        read_image(path)
    assert clock.seconds < FAST_S
    assert "100000 × 100000" in str(err.value) and str(path) in str(err.value)


def test_jpeg_bomb_is_refused_with_the_file(tmp_path):
    from PIL import Image as PILImage

    small = tmp_path / "small.jpg"
    PILImage.fromarray(_rgb(16, 16)).save(small, quality=90)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(_patch_jpeg_size(small.read_bytes(), 60_000, 60_000))
    with _Clock() as clock, pytest.raises(ImageReadError) as err:
        read_image(path)
    assert clock.seconds < FAST_S
    assert str(path) in str(err.value)


def test_in_memory_limit_sends_tiff_lazy_and_refuses_png(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(limits, "MAX_IN_MEMORY_PIXELS", 64 * 64 - 1)
    tif = tmp_path / "big.tif"
    tifffile.imwrite(tif, _rgb(), photometric="rgb")
    image = read_image(tif)
    assert not isinstance(image.data, np.ndarray)  # a zarr array, read window by window
    np.testing.assert_array_equal(np.asarray(image.data[:8, :8]), _rgb()[:8, :8])
    with pytest.raises(ImageReadError, match="into memory") as err:
        read_image(tif, lazy=False)
    assert str(tif) in str(err.value)
    png = tmp_path / "big.png"
    PILImage.fromarray(_rgb()).save(png)
    with pytest.raises(ImageReadError, match="tiled") as err:
        read_image(png)
    assert str(png) in str(err.value) and "4,096 pixels" in str(err.value)


# ------------------------------------------------------------------ damaged files ---


def test_truncated_tiff_and_jpeg_name_the_file(tmp_path):
    from PIL import Image as PILImage

    tif = tmp_path / "cut.tif"
    tifffile.imwrite(tif, _rgb(256, 256), photometric="rgb")
    tif.write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    jpg = tmp_path / "cut.jpg"
    PILImage.fromarray(_rgb(256, 256)).save(jpg, quality=95)
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    for path in (tif, jpg):
        for lazy in (None, True):
            with pytest.raises(ImageReadError) as err:
                image = read_image(path, lazy=lazy)
                np.asarray(image.data[...])
            assert str(path) in str(err.value)


def test_unsupported_axes_message_names_the_file(tmp_path):
    # two stack axes neither of which is time (time points are read one at a time)
    path = tmp_path / "qz.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 16, 16), np.uint8), photometric="minisblack",
                     metadata={"axes": "QZYX"})
    with pytest.raises(ImageReadError, match="more than one stack axis") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_region_outside_the_image_names_the_files(tmp_path):
    from histoquant.assays.base import resolve_regions
    from histoquant.rois import Polygon, Region, write_regions

    roi = tmp_path / "other.geojson"
    write_regions([Region("far", [Polygon([[500, 500], [500, 600], [600, 550]])])], roi)
    image = Image(np.zeros((32, 32), np.uint8), pixel_size_um=1.0, path=tmp_path / "im.tif")
    with pytest.raises(RegionError, match="covers no pixel") as err:
        resolve_regions(image, roi)
    assert str(roi) in str(err.value) and "im.tif" in str(err.value)


# ---------------------------------------------------------------------- pixel size ---


def _ome(path: Path, size_um: float, unit: str = "µm", data: np.ndarray | None = None) -> Path:
    data = _rgb() if data is None else data
    tifffile.imwrite(path, data, photometric="rgb", ome=True,
                     metadata={"axes": "YXS", "PhysicalSizeX": size_um,
                               "PhysicalSizeXUnit": unit, "PhysicalSizeY": size_um,
                               "PhysicalSizeYUnit": unit})
    return path


def test_ome_pixel_size_of_1e_5_um_is_refused_up_front(tmp_path):
    path = _ome(tmp_path / "tiny_px.ome.tif", 1e-5)
    with _Clock() as clock, pytest.raises(PixelSizeError) as err:
        read_image(path)
    assert clock.seconds < FAST_S
    msg = str(err.value)
    assert str(path) in msg and "1e-05" in msg and "OME PhysicalSize" in msg
    # giving the pixel size is how a user gets past bad metadata
    assert read_image(path, 0.5).pixel_size_um == 0.5


def test_evans_blue_never_allocates_from_a_1e_5_um_pixel(tmp_path):
    from histoquant.assays.evans_blue import run

    data = np.random.default_rng(0).integers(0, 4000, (2, 64, 64), dtype=np.uint16)
    path = tmp_path / "evb.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 1e-5, "PhysicalSizeY": 1e-5,
        "Channel": {"Name": ["evb", "dapi"]}})
    with _Clock() as clock, pytest.raises(PixelSizeError, match="1e-05"):
        run(read_image(path))
    assert clock.seconds < FAST_S


def test_pixel_size_in_mm_warns_naming_file_and_value(tmp_path, caplog):
    path = _ome(tmp_path / "mm.ome.tif", 0.3337, unit="mm")
    with caplog.at_level(logging.WARNING):
        image = read_image(path)
    assert image.pixel_size_um == pytest.approx(333.7)
    (warning,) = image.metadata["warnings"]
    assert str(path) in warning and "333.7" in warning
    assert any(str(path) in r.getMessage() and "333.7" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_usual_pixel_size_gives_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        image = read_image(_ome(tmp_path / "ok.ome.tif", 0.5))
    assert image.metadata["warnings"] == [] and not caplog.records


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0, 1e-5, 1e5])
def test_bad_given_pixel_size_is_refused_before_reading(tmp_path, value):
    path = _ome(tmp_path / "ok.ome.tif", 0.5)
    with pytest.raises(PixelSizeError) as err:
        read_image(path, value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e-5", "abc"])
def test_cli_pixel_size_is_checked_when_parsed(tmp_path, value, capsys):
    from histoquant.cli import main
    from histoquant.testing import BLOB_SPEC, register

    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        image = _ome(tmp_path / "ok.ome.tif", 0.5)
        for argv in (["blobs", str(image)], ["batch", str(tmp_path)]):
            with pytest.raises(SystemExit) as stop:
                main([*argv, "-o", str(tmp_path / "out"), "--pixel-size", value])
            assert stop.value.code == 2
            assert "--pixel-size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------- float images ---


def test_value_scale_follows_the_data():
    assert value_scale(np.array([0, 0.5, 1.0], np.float32)) == 1.0
    assert value_scale(np.array([0, 17, 254], np.float32)) == 255.0
    assert value_scale(np.array([0, 300, 4095], np.float64)) == 65535.0
    assert value_scale(np.array([0, 2.5, 7.25], np.float32)) == 7.25
    assert value_scale(np.array([np.nan, 3, 200], np.float32)) == 255.0
    assert value_scale(np.array([7], np.uint16)) == 65535.0
    assert value_scale(np.array([7], np.uint8)) == 255.0


def test_float_rgb_0_255_counts_the_same_motor_neurons_as_uint8(tmp_path):
    from histoquant.assays.motor_neurons import run
    from histoquant.synthetic.nissl import nissl_phantom

    image, truth = nissl_phantom((900, 900), 0.5, seed=3, motor_neuron_density_per_mm2=60.0)
    assert image.dtype == np.uint8 and truth.n_motor_neurons >= 5
    want = run(image).summary["n_motor_neurons"].sum()
    path = tmp_path / "float.ome.tif"
    tifffile.imwrite(path, np.asarray(image.data, np.float32), photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    as_float = read_image(path)
    assert as_float.dtype == np.float32 and as_float.rgb and as_float.max_value() == 255.0
    got = run(as_float).summary["n_motor_neurons"].sum()
    assert want >= 5 and got == want


def test_nan_pixels_are_a_clear_error_naming_the_file(tmp_path):
    from histoquant.assays.motor_neurons import run

    data = np.full((64, 64, 3), 200.0, np.float32)
    data[10:20, 10:20] = np.nan
    path = tmp_path / "nan.ome.tif"
    tifffile.imwrite(path, data, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    image = read_image(path)
    with pytest.raises(EmptyImageError, match="NaN") as err:
        run(image)
    assert str(path) in str(err.value)
    with pytest.raises(EmptyImageError, match="NaN") as err:
        image.channel(0)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------------------- batch ---


def test_bomb_in_a_batch_fails_alone_and_fast(tmp_path, monkeypatch):
    from histoquant.batch import run_batch
    from histoquant.synthetic.study import write_phantom_study
    from histoquant.testing import BLOB_SPEC, register

    register(monkeypatch, BLOB_SPEC)
    folder = tmp_path / "study"
    truth = write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(8, 12),
                                animals_per_group=1, levels=("L3",), slide_every=0, seed=2)
    (folder / "bad").mkdir()
    _craft_tiff(folder / "bad" / "bomb.tif", 200_000, 200_000, rows_per_strip=1)
    _ome(folder / "bad" / "tiny_px.ome.tif", 1e-5)
    sheet = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    rows = [{"file": f"bad/{n}", "animal": "R01", "group": sheet.loc[0, "group"],
             "level": "L5", "section": str(i)}
            for i, n in enumerate(["bomb.tif", "tiny_px.ome.tif"], start=1)]
    pd.concat([sheet, pd.DataFrame(rows)]).fillna("").to_csv(folder / "samples.csv",
                                                            index=False)
    out = tmp_path / "out"
    with _Clock() as clock:
        report = run_batch(folder, out, jobs=1)
    assert not report.ok
    errors = pd.read_csv(out / "errors.csv")
    assert dict(zip(errors["file"], errors["error"])) == {
        "bad/bomb.tif": "ImageReadError", "bad/tiny_px.ome.tif": "PixelSizeError"}
    assert errors["message"].str.contains("decompression bomb").any()
    sections = pd.read_csv(out / "sections.csv")
    assert set(sections["file"]) == set(truth["file"])  # every good image measured
    assert clock.seconds < 90
