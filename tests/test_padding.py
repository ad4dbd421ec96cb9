"""Padding, tile frames, empty tiles and the outside of a field of view (segment/padding.py)."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.segment.padding import find_padding
from histoquant.synthetic.artefacts import (
    add_padding,
    add_tile_seams,
    jpeg_roundtrip,
    round_field_of_view,
)


def _fluorescence_section(shape=(300, 400), seed=0, dtype=np.uint8):
    """A dark, noisy fluorescence field: background ≈ 12 with noise, bright blobs."""
    rng = np.random.default_rng(seed)
    img = rng.normal(12, 3, (*shape, 3))
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for _ in range(30):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 36, rng.integers(3)] += 120
    return np.clip(np.round(img), 0, 255).astype(dtype)


def test_padded_fluorescence_section_black_canvas():
    sec = _fluorescence_section()
    padded, (dy, dx) = add_padding(sec, (40, 60, 80, 20), value=0)
    truth = np.ones(padded.shape[:2], bool)
    truth[dy:dy + sec.shape[0], dx:dx + sec.shape[1]] = False
    m = find_padding(padded)
    assert m[truth].mean() > 0.999
    assert m[~truth].mean() < 0.001


def test_grey_padding_after_jpeg_keeps_tissue_and_takes_the_ripple():
    sec = _fluorescence_section(seed=1)
    padded, (dy, dx) = add_padding(sec, 48, value=(38, 38, 38))
    jp = jpeg_roundtrip(padded, quality=80)
    truth = np.ones(padded.shape[:2], bool)
    truth[dy:dy + sec.shape[0], dx:dx + sec.shape[1]] = False
    m = find_padding(jp)
    # the ripple of a JPEG block along the edge is padding too, up to one block (8 px)
    assert m[truth].mean() > 0.99
    assert m[~truth].mean() < 0.01
    # lossless tolerance would leave the ripple out
    m0 = find_padding(jp, tolerance=0)
    assert m0[truth].mean() < m[truth].mean()


def test_black_tile_in_a_mosaic_and_seams():
    sec = _fluorescence_section((320, 320), seed=2)
    mos = add_tile_seams(sec, tile_px=80, width_px=2, value=0, empty_tiles=((1, 2),))
    m = find_padding(mos)
    assert m[80:160, 160:240].all()  # the empty tile
    assert m[160:162, :].mean() > 0.95 and m[:, 240:242].mean() > 0.95  # the seams
    inner = np.ones(mos.shape[:2], bool)
    inner[80:162, 160:242] = False
    for k in range(80, 320, 80):
        inner[k:k + 2] = False
        inner[:, k:k + 2] = False
    assert m[inner].mean() < 0.001


def test_round_field_of_view_outside_is_padding():
    sec = _fluorescence_section((400, 400), seed=3).astype(np.uint16) * 16
    fov, inside = round_field_of_view(sec, 0.45)
    m = find_padding(fov)
    assert m[~inside].mean() > 0.999
    assert m[inside].mean() < 0.001


def test_zero_clipped_channel_is_not_padding():
    """Green clipped at zero over half the field while DAPI/CD31 vary there: tissue."""
    rng = np.random.default_rng(4)
    img = _fluorescence_section((300, 300), seed=4)
    g = np.clip(np.round(rng.normal(0, 3, (300, 300))), 0, 255)
    img[..., 1] = g.astype(np.uint8)
    assert (img[..., 1] == 0).mean() > 0.45
    assert find_padding(img).mean() == 0.0


def test_single_channel_clipped_noise_is_not_padding():
    rng = np.random.default_rng(5)
    g = np.clip(np.round(rng.normal(-3, 2.5, (400, 400))), 0, 255).astype(np.uint8)
    assert (g == 0).mean() > 0.85
    assert find_padding(g).mean() < 0.01


def test_no_padding_on_a_plain_field():
    img = _fluorescence_section(seed=6)
    assert not find_padding(img).any()
    assert not find_padding(img[..., 0].astype(np.float32)).any()


@pytest.mark.realdata
def test_real_fluorescent_sections_padding_fraction(shared_data):
    import imageio.v3 as iio

    folder = shared_data / "spinal_cord_fluorescent" / "nissl"
    for path in sorted(folder.glob("*.jpg")):
        px = iio.imread(path)
        m = find_padding(px)
        # every export here has a canvas: between 25 and 75 % of the picture, and never the
        # middle of the section
        assert 0.25 < m.mean() < 0.75, path.name
        cy, cx = px.shape[0] // 2, px.shape[1] // 2
        assert not m[cy - 20:cy + 20, cx - 20:cx + 20].any(), path.name
    lectin = shared_data / "vessels" / "tumour_cd31_ng2" / "lectin_cd31_1.jpg"
    if lectin.is_file():
        # green ≈ 45 % exact zeros, but DAPI and CD31 vary there: no padding
        assert find_padding(iio.imread(lectin)).mean() < 0.001
