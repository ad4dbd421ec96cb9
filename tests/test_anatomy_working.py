"""Reading an image at the working resolution: block means, lazy arrays, pyramid levels."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant import Image, read_image
from histoquant.anatomy.working import pyramid_downsamples, read_downsampled, tissue_signal


def _reference_block_mean(arr: np.ndarray, f: int) -> np.ndarray:
    h, w = -(-arr.shape[0] // f), -(-arr.shape[1] // f)
    out = np.zeros((h, w, *arr.shape[2:]))
    for i in range(h):
        for j in range(w):
            out[i, j] = arr[i * f:(i + 1) * f, j * f:(j + 1) * f].reshape(
                -1, *arr.shape[2:]).mean(axis=0)
    return out


def test_block_mean_with_partial_blocks():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (103, 77, 3), dtype=np.uint8)
    img = Image(arr, axes="YXC", pixel_size_um=1.0, rgb=True)
    got = read_downsampled(img, 4)
    assert got.shape == (26, 20, 3)
    np.testing.assert_allclose(got, _reference_block_mean(arr.astype(float), 4), rtol=1e-5)
    one = read_downsampled(img, 4, channel=1)
    np.testing.assert_allclose(one, got[..., 1], rtol=1e-6)


def test_block_mean_of_a_z_stack_projects_max():
    rng = np.random.default_rng(1)
    arr = rng.random((3, 40, 30)).astype(np.float32)
    img = Image(arr, axes="ZYX", pixel_size_um=1.0)
    np.testing.assert_allclose(read_downsampled(img, 5),
                               _reference_block_mean(arr.max(axis=0), 5), rtol=1e-5)


def test_lazy_zarr_array_is_read_in_bands(monkeypatch):
    import zarr

    from histoquant.anatomy import working

    rng = np.random.default_rng(2)
    arr = rng.integers(0, 4000, (300, 260), dtype=np.uint16)
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=arr.shape, dtype=arr.dtype,
                          chunks=(64, 64))
    z[...] = arr
    monkeypatch.setattr(working, "_BAND_BYTES", 64 * 260 * 4)  # force several bands
    img = Image(z, axes="YX", pixel_size_um=1.0)
    np.testing.assert_allclose(read_downsampled(img, 8),
                               _reference_block_mean(arr.astype(float), 8), rtol=1e-5)


def _write_pyramid(path, levels, pixel_size_um):
    import tifffile

    with tifffile.TiffWriter(path, ome=True) as tif:
        meta = {"axes": "YXS", "PhysicalSizeX": pixel_size_um, "PhysicalSizeY": pixel_size_um,
                "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
        tif.write(levels[0], subifds=len(levels) - 1, tile=(64, 64), photometric="rgb",
                  metadata=meta)
        for lev in levels[1:]:
            tif.write(lev, subfiletype=1, tile=(64, 64), photometric="rgb")


def test_pyramid_level_is_read_instead_of_level_0(tmp_path):
    base = np.full((256, 192, 3), 200, np.uint8)
    lev1 = np.full((128, 96, 3), 100, np.uint8)
    lev2 = np.full((64, 48, 3), 50, np.uint8)  # deliberately unlike the block mean of base
    path = tmp_path / "pyr.ome.tif"
    _write_pyramid(path, [base, lev1, lev2], 0.5)
    img = read_image(path)
    assert img.pixel_size_um == pytest.approx(0.5)
    assert pyramid_downsamples(img) == [1, 2, 4]
    assert np.allclose(read_downsampled(img, 8), 50)     # level 2, then 2 × 2 blocks
    assert np.allclose(read_downsampled(img, 6), 100)    # level 1 (6 = 2 × 3)
    assert np.allclose(read_downsampled(img, 3), 200)    # no level divides 3: level 0


def test_pyramid_anatomy_matches_in_memory(tmp_path):
    from skimage.transform import downscale_local_mean

    from histoquant.anatomy import find_sections
    from histoquant.measure.scores import dice
    from histoquant.synthetic.cord import cord_section

    ph = cord_section(2.5, seed=31, angle_deg=30.0, extras=False, margin_um=600)
    base = ph.image.data
    levels = [base]
    for _ in range(2):
        levels.append(downscale_local_mean(levels[-1], (2, 2, 1)).astype(np.uint8))
    path = tmp_path / "cord.ome.tif"
    _write_pyramid(path, levels, 2.5)
    img = read_image(path)
    slide = find_sections(img)
    assert slide.factor == 4
    s = slide.sections[0]
    assert dice(s.mask("grey_matter"), ph.truth(1)["grey_matter"]) >= 0.9
    assert s.mask("grey_matter").shape == base.shape[:2]


def test_fluorescence_picks_the_channel_with_tissue_contrast():
    from histoquant.synthetic.cord import cord_section

    ph = cord_section(20.0, seed=32, angle_deg=0.0, modality="fluorescence")
    rng = np.random.default_rng(3)
    noise = rng.normal(500, 20, ph.image.shape_yx).astype(np.float32)
    data = np.stack([noise, ph.image.data.astype(np.float32)], axis=-1)
    img = Image(data, axes="YXC", pixel_size_um=20.0, channel_names=("noise", "dapi"))
    assert tissue_signal(img, 1).channel == "dapi"
    assert tissue_signal(img, 1, channel="noise").channel == "noise"


def test_padding_of_a_large_lazy_image_is_found_on_the_coarse_grid():
    """A lazy image's padding is searched on 2 × 2 block means of its working image: the
    black and grey fills come out as padding to within one working pixel, and the section
    is found whole."""
    import zarr

    from histoquant.anatomy import find_sections
    from histoquant.anatomy.working import _COARSE_PADDING_MIN_PX
    from histoquant.measure.scores import dice
    from histoquant.synthetic.cord import cord_section

    ph = cord_section(5.0, seed=2, extras=False)
    rgb = np.asarray(ph.image.data).astype(np.int16)
    h, w = rgb.shape[:2]
    # the phantom's glass is one exact colour (it would be a fill itself); a scanned
    # slide's is not
    noise = np.random.default_rng(0).integers(-6, 7, (h, w, 1), dtype=np.int16)
    rgb = np.clip(rgb + noise, 0, 255).astype(np.uint8)
    left, top = 161, 97            # odd widths: the fills' edges fall inside coarse blocks
    canvas = np.zeros((h + top, w + left, 3), np.uint8)
    canvas[:top] = 128             # grey band on top, black on the left
    canvas[top:, left:] = rgb
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=canvas.shape,
                          dtype=canvas.dtype, chunks=(256, 256, 3))
    z[...] = canvas
    img = Image(z, axes="YXC", pixel_size_um=5.0, rgb=True)
    ws = tissue_signal(img, 2)
    assert min(ws.shape) >= 2 * _COARSE_PADDING_MIN_PX   # the coarse search is the one used
    truth = np.zeros(ws.shape, bool)
    truth[: top // 2, :] = True
    truth[:, : left // 2] = True
    # every fill pixel is padding, and at most two working pixels of the field beside it
    assert ws.valid is not None and not ws.valid[truth].any()
    assert (~ws.valid & ~truth).sum() <= 2 * (ws.shape[0] + ws.shape[1])
    slide = find_sections(img)
    assert len(slide.sections) == 1
    tissue = np.zeros(canvas.shape[:2], bool)
    tissue[top:, left:] = ph.truth(1)["tissue"]
    assert dice(slide.sections[0].mask("tissue"), tissue) >= 0.95
