"""Modality detection and refusal; the statistics module's floors and clipped fits (issue #14)."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant import Image, ModalityError
from histoquant.assays import evans_blue as eb
from histoquant.io.modality import detect_modality
from histoquant.segment.statistics import (
    background_stats,
    block_any,
    block_mean,
    clipped_median_along,
    quantisation_step,
)
from histoquant.synthetic.artefacts import add_padding, as_fluorescence_rgb, to_uint8
from histoquant.synthetic.evans_blue import make_evans_blue_phantom


def _brightfield_rgb(seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((200, 200, 3), 230.0) + rng.normal(0, 4, (200, 200, 3))
    yy, xx = np.mgrid[:200, :200]
    for _ in range(20):
        cy, cx = rng.uniform(0, 200, 2)
        d = (yy - cy) ** 2 + (xx - cx) ** 2 < 64
        img[d] -= np.array([90, 120, 40])  # violet stain absorbs in every channel
    return np.clip(img, 0, 255).astype(np.uint8)


def test_fluorescence_rgb_export_is_detected_and_refused_by_nothing_fluorescent():
    image, _ = make_evans_blue_phantom((256, 256), 0.5, seed=0)
    chans = [image.channel(0), image.channel(1)]
    rgb = as_fluorescence_rgb(chans, ("R", "G"))
    m = detect_modality(rgb)
    assert m.kind == "fluorescence" and m.confidence > 0.8
    assert detect_modality(_brightfield_rgb()).kind == "brightfield"


def test_fluorescence_only_assay_refuses_brightfield_with_a_clear_message():
    img = Image(_brightfield_rgb(), axes="YXC", pixel_size_um=0.5, rgb=True)
    with pytest.raises(ModalityError, match=r"looks like brightfield.*--modality fluorescence"):
        eb.SPEC.run(img, channels={"evb": 0})
    # the override is obeyed
    ok = Image(_brightfield_rgb(), axes="YXC", pixel_size_um=0.5, rgb=True,
               modality="fluorescence")
    assert ok.modality == "fluorescence"
    eb.SPEC.run(ok, channels={"evb": 0})


def test_quantisation_step_and_noise_floor():
    assert quantisation_step(np.arange(0, 4096, 16, dtype=np.uint16)) == 16
    assert quantisation_step(np.arange(0, 255, dtype=np.uint8)) == 1
    assert quantisation_step(np.array([0.5, 1.25, 3.0])) == 0
    # a flat 8-bit background: MAD 0, but the SD is never below one grey level
    st = background_stats(np.full(1000, 7, np.uint8))
    assert st.sd == 1.0 and st.floored


def test_zero_clipped_channel_background_from_the_censored_fit():
    rng = np.random.default_rng(1)
    x = np.clip(np.round(rng.normal(0.5, 2.0, 200_000)), 0, 255)
    st = background_stats(x)
    assert st.method == "clipped" and st.clipped_fraction > 0.4
    assert abs(st.sd - 2.0) < 0.2 and abs(st.level - 0.5) < 0.2


def test_block_mean_partial_edge_blocks_average_their_pixels():
    a = np.arange(25, dtype=np.float32).reshape(5, 5)
    b = block_mean(a, 2)
    assert b.shape == (3, 3)
    assert b[2, 2] == a[4, 4]
    assert b[0, 2] == a[0:2, 4].mean()
    rgb = np.stack([a, 2 * a], -1)
    assert np.allclose(block_mean(rgb, 2)[..., 1], 2 * b)


def test_block_mean_factor_one_copies_unless_told_not_to():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    same = block_mean(img, 1, copy=False)
    assert same is img  # the vessel kernels' hot path: no full-size copy
    copied = block_mean(img, 1)
    assert copied is not img and np.array_equal(copied, img)
    as_float = block_mean(img.astype(np.uint8), 1, copy=False)
    assert as_float.dtype == np.float32 and np.array_equal(as_float, img)


def test_block_any_any_pixel_versus_min_fraction():
    """The one block_any: any True pixel by default, a share of the pixels when asked."""
    m = np.zeros((5, 5), bool)
    m[0, 0] = True  # 1 of 4 in block (0, 0)
    m[2:4, 2] = True  # 2 of 4 in block (1, 1)
    m[4, 4] = True  # the whole (1-pixel) corner block
    m[4, 0] = True  # 1 of the 2 pixels of edge block (2, 0)
    assert block_any(m, 2).tolist() == [[True, False, False], [False, True, False],
                                         [True, False, True]]
    assert block_any(m, 2, min_fraction=0.5).tolist() == [[False, False, False],
                                                          [False, True, False],
                                                          [True, False, True]]
    assert block_any(m, 2, min_fraction=0.75).sum() == 1  # the corner block only
    assert np.array_equal(block_any(m, 1, min_fraction=0.5), m)
    # equal to the half-pixels rule it replaces (block mean of the 0/1 mask ≥ 0.5)
    rng = np.random.default_rng(0)
    r = rng.random((203, 157)) < 0.5
    for f in (2, 3, 7, 16):
        old = block_mean(r.astype(np.uint8), f) >= 0.5
        assert np.array_equal(block_any(r, f, min_fraction=0.5), old)


def test_clipped_median_along_drops_bright_outliers_per_row():
    rows = np.array([[1, 2, 3, 2, 100, np.nan], [5, 5, 5, 5, 5, 5], [np.nan] * 6], np.float32)
    with np.errstate(all="ignore"):
        loc = clipped_median_along(rows, clip_sd=2.5)
    assert loc[0] == 2.0 and loc[1] == 5.0 and np.isnan(loc[2])


def test_evans_blue_on_an_8bit_zero_clipped_channel_is_measured_not_refused():
    """The 8-bit export of the phantom, clipped at its background: no dark_level error, and a
    noise estimate that is not the 0.29 rounding floor."""
    image, truth = make_evans_blue_phantom((384, 384), 0.5, seed=2, leak_area_pct=3.0)
    evb = image.channel(0)
    lo = float(np.median(evb))  # the export's black point at the background: ≈ 50 % zeros
    u8 = to_uint8(evb, lo=lo, hi=float(np.percentile(evb, 99.9)))
    assert (u8 == 0).mean() > 0.3
    res = eb.run(Image(u8, pixel_size_um=0.5))
    s = res.summary.iloc[0]
    assert res.extra["noise_sd"] >= 1.0
    assert any("clipped" in w for w in res.warnings)
    true_pct = 100 * float((truth["evb"] > 0).mean())
    assert s.evb_positive_area_pct < true_pct + 10


def test_padding_does_not_change_the_evans_blue_figures():
    image, _ = make_evans_blue_phantom((320, 320), 0.5, seed=3, leak_area_pct=3.0)
    data = np.stack([image.channel(0), image.channel(1)], -1).astype(np.uint16)
    clean = eb.run(Image(data, axes="YXC", pixel_size_um=0.5),
                   channels={"evb": 0, "vessel": 1}).summary.iloc[0]
    padded, _ = add_padding(data, 60, value=0)
    pad = eb.run(Image(padded, axes="YXC", pixel_size_um=0.5),
                 channels={"evb": 0, "vessel": 1})
    s = pad.summary.iloc[0]
    assert abs(s.region_area_mm2 - clean.region_area_mm2) / clean.region_area_mm2 < 0.01
    assert abs(s.evb_positive_area_pct - clean.evb_positive_area_pct) < 0.3
    # the noise estimate ignores the zeros of the canvas (they would make it ≈ 0); the coarse
    # background's edge tiles move with the canvas, hence 10 %
    assert abs(pad.extra["noise_sd"] - clean.noise_sd) / clean.noise_sd < 0.10


def test_evans_blue_phantom_as_padded_jpeg_rgb_export_gives_the_clean_figures():
    """The phantom saved as a real export is: 8-bit fluorescence RGB (R = EvB, G = vessels),
    JPEG (quality 75, chroma subsampled), on a grey canvas. Tolerances: the padding changes
    nothing (0.3 points); 8 bits and JPEG move the EvB+ area of the grey matter by ≤ 2.5
    points (the JPEG's chroma subsampling blends R with G along vessels)."""
    from histoquant.synthetic.artefacts import jpeg_roundtrip

    image, truth = make_evans_blue_phantom((512, 512), 0.5, seed=1, leak_area_pct=3.0)
    gm = truth["grey_matter"]
    clean = eb.run(image, {"grey_matter": gm}).summary.iloc[0]
    rgb = jpeg_roundtrip(as_fluorescence_rgb([image.channel(0), image.channel(1)], ("R", "G")),
                         quality=75)
    assert detect_modality(rgb).kind == "fluorescence"
    ch = {"evb": "R", "vessel": "G"}
    plain = eb.run(Image(rgb, axes="YXC", pixel_size_um=0.5, rgb=True), channels=ch)
    padded, _offset = add_padding(rgb, (40, 0, 60, 0), value=(38, 38, 38))
    pimg = Image(padded, axes="YXC", pixel_size_um=0.5, rgb=True)
    pad = eb.run(pimg, channels=ch)
    a, b = plain.summary.iloc[0], pad.summary.iloc[0]
    assert abs(a.evb_positive_area_pct - b.evb_positive_area_pct) < 0.3
    assert abs(a.region_area_mm2 - b.region_area_mm2) / a.region_area_mm2 < 0.01
    gm_p, _ = add_padding(gm, (40, 0, 60, 0), value=False)
    s = eb.run(pimg, {"grey_matter": gm_p}, channels=ch).summary.iloc[0]
    assert abs(s.evb_positive_area_pct - clean.evb_positive_area_pct) < 2.5
    assert abs(s.extravascular_area_pct - clean.extravascular_area_pct) < 2.5


def test_zeros_outside_a_round_field_of_view_do_not_enter_the_noise():
    """Zeroing outside a round field of view once halved a noise estimate (a vessel length
    went from −5 % to +84 %): with tissue_support the zeros are padding, not background."""
    from histoquant.segment.statistics import tissue_support
    from histoquant.synthetic.artefacts import round_field_of_view

    rng = np.random.default_rng(7)
    img = np.clip(np.round(rng.normal(40, 6, (400, 400))), 0, 255).astype(np.uint8)
    fov, inside = round_field_of_view(img, 0.45)
    naive = background_stats(fov.ravel())
    sup = tissue_support(fov)
    assert (sup == inside).mean() > 0.999
    good = background_stats(fov[sup])
    assert abs(good.sd - 6) < 0.5 and abs(good.level - 40) < 0.5
    assert naive.level < 30 or naive.sd > 10  # what the zeros did


def test_lower_half_sd_is_the_sd_of_a_normal_background_under_one_sided_signal():
    from histoquant.segment.statistics import lower_half_sd

    rng = np.random.default_rng(0)
    background = rng.normal(10.0, 2.0, 200_000)
    signal = rng.uniform(20, 60, 10_000)  # a bright 5 % minority that only adds
    assert lower_half_sd(background) == pytest.approx(2.0, rel=0.02)
    # with the background's level given, the bright tail moves the 10th percentile only by
    # the share it takes (0.1 / 0.95 of the background: 2 % low here)
    assert lower_half_sd(np.concatenate([background, signal]), level=10.0) == \
        pytest.approx(2.0, rel=0.03)
    assert lower_half_sd(np.array([])) == 0.0
