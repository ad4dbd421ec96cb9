"""Vasculature assay: lengths, coverage and diameters against phantom truth; real images.

Phantom truth comes from the curves of :mod:`histoquant.synthetic.vessels`, never from pixels.
Real images (DRIVE fundus photographs, vesselNN two-photon stack) are read from
``../shared/data`` and skipped when it is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from histoquant.assays.vasculature import SPEC, VasculatureParams, run
from histoquant.errors import ChannelError, EmptyImageError, PixelSizeError
from histoquant.io import Image, read_image
from histoquant.measure.skeleton import trace_skeleton
from histoquant.rois import Region
from histoquant.synthetic.vessels import (
    Curve,
    _render_family,
    _resample,
    make_example,
    make_vessel_network,
    render_vessels,
    vessel_phantom,
    vessel_truth,
)

PX = 0.5
FIELD = (512.0, 512.0)


@pytest.fixture(scope="module")
def phantom():
    image, truth, net = vessel_phantom(FIELD, PX, seed=3, dapi=True)
    return image, truth, net, run(image)


# ------------------------------------------------------------------------ phantom itself

def test_phantom_truth_comes_from_curves_not_pixels():
    net = make_vessel_network(FIELD, seed=11)
    fine = vessel_truth(net, 0.5, (1024, 1024))
    coarse = vessel_truth(net, 1.0, (512, 512))
    assert fine.vessel_length_um == pytest.approx(coarse.vessel_length_um, rel=1e-3)
    assert fine.pericyte_coverage_length_pct == pytest.approx(
        coarse.pericyte_coverage_length_pct, abs=0.05)
    assert 60 < fine.pericyte_coverage_length_pct < 90
    # the same seed draws the same network
    again = make_vessel_network(FIELD, seed=11)
    assert len(again.curves) == len(net.curves)
    assert np.array_equal(again.curves[0].yx_um, net.curves[0].yx_um)


def _bar_mask(angle: float, px: float, length=100.0, diameter=6.0, size=160.0):
    c = np.array([size / 2, size / 2])
    u = np.array([np.sin(angle), np.cos(angle)])
    t = np.linspace(-length / 2, length / 2, 20001)[:, None]
    curve = Curve(_resample(c + t * u, 0.1), diameter / 2, "x", free_start=True,
                  free_end=True)
    shape = (int(size / px),) * 2
    cover, _ = _render_family([curve], shape, px, 0.75, 0.15)
    return cover >= 0.5


@pytest.mark.parametrize("px", [0.5, 1.0])
def test_skeleton_length_and_diameter_of_straight_tubes(px):
    errors, plain = [], []
    for angle in np.deg2rad([0.6, 11.2, 22.5, 33.7, 45.6, 67.5, 80.0]):
        mask = _bar_mask(angle, px)
        tr = trace_skeleton(mask, px)
        errors.append(tr.total_length_um / 100.0 - 1)
        assert tr.paths["diameter_um"].iloc[0] == pytest.approx(6.0, abs=0.3)
        raw = trace_skeleton(mask, px, smoothing_um=0.0, end_correction=False)
        plain.append(raw.total_length_um / 100.0 - 1)
    assert np.max(np.abs(errors)) < 0.02
    # without smoothing and end correction the 1/√2 chain is off by several per cent
    assert np.max(np.abs(plain)) > 0.04


def _union_mask(curves_by_family, px, size=160.0):
    shape = (int(size / px),) * 2
    out = np.zeros(shape, np.float32)
    for fam in curves_by_family:
        e, _ = _render_family(fam, shape, px, 0.75, 0.15)
        np.maximum(out, e, out=out)
    return out >= 0.5


def _segment(p0, p1, r, free_end=False):
    t = np.linspace(0, 1, 20001)[:, None]
    pts = _resample(np.asarray(p0) * (1 - t) + np.asarray(p1) * t, 0.1)
    return Curve(pts, r, "x", free_end=free_end)


@pytest.mark.parametrize("angle_deg", [90, 60])
def test_crossings_and_branchings_are_not_shortened(angle_deg):
    a = np.deg2rad(angle_deg)
    main = _segment((80, -5), (80, 165), 3.0)
    cross = _segment((80 - 100 * np.sin(a), 80 - 100 * np.cos(a)),
                     (80 + 100 * np.sin(a), 80 + 100 * np.cos(a)), 3.0)
    branch = _segment((80, 80), (80 + 70 * np.sin(a), 80 + 70 * np.cos(a)), 3.0, True)
    # inside the 160 µm field: the main vessel 160 µm, the crossing one 160/sin(a), the
    # branch 70 µm from the main vessel's centreline
    for other, truth in ((cross, 160.0 + 160.0 / np.sin(a)), (branch, 230.0)):
        tr = trace_skeleton(_union_mask([[main], [other]], PX), PX)
        assert tr.total_length_um == pytest.approx(truth, abs=1.5)
        plain = trace_skeleton(_union_mask([[main], [other]], PX), PX,
                               junction_correction=False)
        assert plain.total_length_um <= tr.total_length_um + 0.5


# ------------------------------------------------------------------------ assay accuracy

def test_summary_matches_phantom_truth(phantom):
    _, truth, _, res = phantom
    s = res.summary.iloc[0]
    assert s["vessel_length_um"] == pytest.approx(truth.vessel_length_um, rel=0.03)
    assert s["vessel_length_density_mm_per_mm2"] == pytest.approx(
        truth.vessel_length_density_mm_per_mm2, rel=0.03)
    assert abs(s["pericyte_coverage_length_pct"] - truth.pericyte_coverage_length_pct) <= 2.0
    assert abs(s["pericyte_coverage_area_pct"] - truth.pericyte_coverage_area_pct) <= 4.0
    assert s["vessel_diameter_mean_um"] == pytest.approx(truth.vessel_diameter_mean_um,
                                                         rel=0.08)
    assert s["pericyte_length_um"] == pytest.approx(truth.pericyte_length_um, rel=0.06)
    assert s["n_pericyte_bodies"] == pytest.approx(truth.n_pericyte_bodies, rel=0.2)
    assert s["n_vessel_ends"] == pytest.approx(truth.n_blind_ends, abs=6)
    assert s["flags"] == ""


@pytest.mark.parametrize("seed", [1, 4])
def test_length_and_coverage_on_other_networks(seed):
    image, truth, _ = vessel_phantom(FIELD, PX, seed=seed)
    s = run(image).summary.iloc[0]
    assert s["vessel_length_um"] == pytest.approx(truth.vessel_length_um, rel=0.03)
    assert abs(s["pericyte_coverage_length_pct"] - truth.pericyte_coverage_length_pct) <= 2.0


def test_length_unchanged_when_rescaled(phantom):
    _, _, net, res = phantom
    coarse = render_vessels(net, 2 * PX, seed=4)
    s2 = run(coarse).summary.iloc[0]
    s1 = res.summary.iloc[0]
    assert s2["vessel_length_um"] == pytest.approx(s1["vessel_length_um"], rel=0.03)
    truth2 = vessel_truth(net, 2 * PX, coarse.shape_yx)
    assert s2["vessel_length_um"] == pytest.approx(truth2.vessel_length_um, rel=0.03)
    assert s2["vessel_diameter_mean_um"] == pytest.approx(s1["vessel_diameter_mean_um"],
                                                          rel=0.05)


def test_objects_table_adds_up_and_has_units(phantom):
    _, _, _, res = phantom
    obj, s = res.objects, res.summary.iloc[0]
    assert list(obj.columns[:2]) == ["image", "region"]
    assert obj["length_um"].sum() == pytest.approx(s["vessel_length_um"], rel=1e-6)
    assert (obj["pericyte_coverage_pct"].between(0, 100)).all()
    # segment ids are the labels in the label image
    labels = res.labels
    assert set(np.unique(labels[labels > 0])) == set(obj["segment"])
    for col in ("start_y_um", "end_x_um", "centroid_y_um", "diameter_um"):
        assert col in obj.columns
    assert res.qc.ndim == 3 and res.qc.dtype == np.uint8


def test_regions_split_the_length(phantom):
    image, _, net, res = phantom
    h, w = image.shape_yx
    left = np.zeros((h, w), bool)
    left[:, : w // 2] = True
    r = run(image, regions=[Region("left", mask=left), Region("right", mask=~left)])
    by = r.summary.set_index("region")
    total = res.summary["vessel_length_um"].iloc[0]
    assert by["vessel_length_um"].sum() == pytest.approx(total, rel=1e-6)
    truth_left = vessel_truth(net, PX, (h, w), mask=left)
    assert by.loc["left", "vessel_length_um"] == pytest.approx(
        truth_left.vessel_length_um, rel=0.04)
    assert by.loc["left", "region_area_mm2"] == pytest.approx(truth_left.area_mm2)


def test_z_stack_is_max_projected():
    image, _, _ = vessel_phantom((200.0, 200.0), PX, seed=2)
    flat = run(image).summary.iloc[0]
    dim = (image.data // 3).astype(np.uint16)
    stack = Image(np.stack([dim, image.data, dim]), axes="ZYXC", pixel_size_um=PX,
                  channel_names=image.channel_names)
    s = run(stack).summary.iloc[0]
    assert s["vessel_length_um"] == pytest.approx(flat["vessel_length_um"], rel=1e-9)


# --------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def small():
    image, truth, _ = vessel_phantom((160.0, 160.0), PX, seed=5, dapi=True)
    return image, truth


def test_needs_pixel_size(small):
    image, _ = small
    with pytest.raises(PixelSizeError):
        run(np.asarray(image.data[..., 0]))


def test_endothelium_alone_measures_vessels(small):
    image, truth = small
    single = Image(image.data[..., 0], axes="YX", pixel_size_um=PX)
    r = run(single)
    s = r.summary.iloc[0]
    assert s["vessel_length_um"] == pytest.approx(truth.vessel_length_um, rel=0.05)
    assert np.isnan(s["pericyte_coverage_length_pct"])
    assert "pericytes" not in r.masks


def test_channel_errors(small):
    image, _ = small
    with pytest.raises(ChannelError, match="no channel named"):
        run(image, channels={"endothelium": "endothelium", "pericyte": "NG2"})
    with pytest.raises(ChannelError, match="out of range"):
        run(image, channels={"endothelium": 0, "pericyte": 5})
    with pytest.raises(ChannelError, match="both"):
        run(image, channels={"endothelium": 0, "pericyte": 0})
    unnamed = Image(image.data[..., :2], axes="YXC", pixel_size_um=PX)
    with pytest.raises(ChannelError, match="endothelium"):
        run(unnamed)
    # an unnamed second channel is left alone, with a warning, unless it is named
    r = run(unnamed, channels={"endothelium": 0})
    assert any("no pericyte channel" in w for w in r.warnings)


def test_blank_pericyte_channel_gives_zero_coverage(small):
    image, _ = small
    data = image.data.copy()
    data[..., 1] = 100
    r = run(Image(data, axes="YXC", pixel_size_um=PX, channel_names=image.channel_names))
    s = r.summary.iloc[0]
    assert s["vessel_length_um"] > 0
    assert s["pericyte_coverage_length_pct"] == 0.0
    assert s["pericyte_coverage_area_pct"] == 0.0
    assert s["pericyte_length_um"] == 0.0
    assert "no_pericytes" in s["flags"]


def test_pericyte_signal_off_the_vessels_is_not_pericyte_length(small):
    """Invariant: pericyte length ≤ vessel length and coverage ≤ 100 %, whatever the
    pericyte channel holds away from the vessels."""
    image, truth = small
    data = image.data.copy()
    endo = data[..., 0].astype(float)
    # a grid of bright, pericyte-like lines (2 µm wide, every 25 µm) wherever the
    # tissue is more than 8 µm from any vessel: other NG2+ cells, processes off the wall
    vessel_like = endo > endo.min() + 0.2 * (endo.max() - endo.min())
    far = ndi.distance_transform_edt(~vessel_like) * PX > 8.0
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]] * PX
    grid = (np.abs((yy % 25.0) - 12.5) < 1.0) | (np.abs((xx % 25.0) - 12.5) < 1.0)
    peri = data[..., 1]
    peri[far & grid] = peri.max()
    noisy = Image(data, axes="YXC", pixel_size_um=PX, channel_names=image.channel_names)
    clean = run(image).summary.iloc[0]
    s = run(noisy).summary.iloc[0]
    assert s["pericyte_length_um"] <= s["vessel_length_um"]
    assert 0.0 <= s["pericyte_coverage_length_pct"] <= 100.0
    assert 0.0 <= s["pericyte_coverage_area_pct"] <= 100.0
    # the grid holds far more line length than the vessels: none of it may count
    assert s["pericyte_length_um"] == pytest.approx(clean["pericyte_length_um"], rel=0.05)
    assert s["pericyte_length_um"] == pytest.approx(truth.pericyte_length_um, rel=0.1)


def test_pericyte_length_is_covered_vessel_length(phantom):
    _, _, _, res = phantom
    s = res.summary.iloc[0]
    assert s["pericyte_length_um"] <= s["vessel_length_um"]
    assert s["pericyte_length_um"] == pytest.approx(
        s["vessel_length_um"] * s["pericyte_coverage_length_pct"] / 100.0, rel=1e-9)


def test_ridge_core_joins_a_dim_stretch():
    """A vessel whose middle is 5× dimmer than its ends stays one vessel with two ends."""
    px = 0.5
    h, w = 120, 400
    yy, xx = np.mgrid[:h, :w] * px
    d = np.abs(yy - h * px / 2)
    profile = np.clip(3.0 - d, 0, 1)  # a 6 µm tube, 1 µm soft edge
    brightness = np.where(np.abs(xx - w * px / 2) < 15.0, 0.2, 1.0)  # a 30 µm dim stretch
    img = (100 + 1000 * profile * brightness
           + np.random.default_rng(1).normal(0, 10, (h, w))).astype(np.float32)
    img[:, :20] = 100 + np.random.default_rng(2).normal(0, 10, (h, 20))
    img[:, -20:] = 100 + np.random.default_rng(3).normal(0, 10, (h, 20))
    true_len = (w - 40) * px
    on = run(Image(img, pixel_size_um=px)).summary.iloc[0]
    off = run(Image(img, pixel_size_um=px), params={"ridge_core": False}).summary.iloc[0]
    # without the core the half-maximum outline (of the bright ends) breaks at the dim
    # stretch: two pieces, four ends; with it, one vessel of the true length
    assert off["n_vessel_ends"] == 4
    assert on["n_vessel_ends"] == 2
    assert on["vessel_length_um"] == pytest.approx(true_len, rel=0.03)


def test_ridge_core_adds_the_join_not_its_dangling_branches():
    """The core joins two outlines through a dim stretch; a dim branch leaving that stretch
    close to a bright end (so that it has no half-maximum outline of its own) joins nothing,
    so it is not added: it would add length and a free end the outline never had."""
    px = 0.5
    h, w = 200, 400
    yy, xx = np.mgrid[:h, :w] * px
    cy, cx = 150 * px, w * px / 2
    tube = np.clip(3.0 - np.abs(yy - cy), 0, 1)  # a 6 µm horizontal tube, 1 µm soft edge
    dim = np.abs(xx - cx) < 15.0  # a 30 µm dim stretch in its middle
    # a dim 6 µm branch 12 µm long, leaving the dim stretch 7 µm from its bright left end
    bx = cx - 8.0
    branch = np.clip(3.0 - np.abs(xx - bx), 0, 1) * ((yy > cy - 12.0) & (yy < cy))
    profile = np.maximum(tube * np.where(dim, 0.2, 1.0), 0.2 * branch)
    img = 100 + 1000 * profile + np.random.default_rng(1).normal(0, 10, (h, w))
    img[:, :20] = 100 + np.random.default_rng(2).normal(0, 10, (h, 20))
    img[:, -20:] = 100 + np.random.default_rng(3).normal(0, 10, (h, 20))
    img = img.astype(np.float32)
    true_len = (w - 40) * px
    r = run(Image(img, pixel_size_um=px))
    s = r.summary.iloc[0]
    # the dim stretch is joined: one vessel, two ends, the tube's length (with the branch
    # added, as before this rule: three ends and 193 µm)
    assert s["n_vessel_ends"] == 2
    assert s["vessel_length_um"] == pytest.approx(true_len, rel=0.03)
    # and nothing of the branch beyond the tube's own half-width (3 µm) and the 3 px core
    above = yy < cy - 3.0 - 2 * px
    assert not (r.masks["vessels"] & above).any()


def _wide_textured_vessel(seed: int, texture: float) -> np.ndarray:
    """A 60 µm wide, 300 µm long straight vessel (1 µm/px) with a smooth texture of
    ``texture`` (relative SD, 3 µm grain) on its flat top, on a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:400, :400]
    bar = ndi.gaussian_filter(((np.abs(yy - 200) <= 30) & (xx >= 50) & (xx < 350))
                              .astype(np.float32), 2.0)
    grain = ndi.gaussian_filter(rng.standard_normal((400, 400)), 3.0)
    grain /= grain.std()
    img = 20 + 100 * bar * (1 + texture * grain) + rng.normal(0, 4, (400, 400))
    return img.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("texture", [0.05, 0.10])
def test_vessel_wider_than_the_scales_is_one_centreline(seed, texture):
    """A vessel far wider than the default ridge scales (60 µm against σ ≤ 6 µm) gives no
    ridge on its flat top, so its outline, kept near ridge pixels, was its rims and the
    texture inside, full of holes, and its skeleton a mesh (measured 177–723 µm for 300 µm).
    Its holes are brighter than half its centreline's maximum: filled, the vessel is one
    centreline of its true length."""
    r = run(Image(_wide_textured_vessel(seed, texture), pixel_size_um=1.0))
    s = r.summary.iloc[0]
    mask = r.masks["vessels"]
    assert not (ndi.binary_fill_holes(mask) & ~mask).any()
    assert s["n_vessel_segments"] == 1
    assert s["n_vessel_ends"] == 2
    # the length runs to the vessel's rounded ends (blurred by 2 µm): 300 µm within 3 %
    assert s["vessel_length_um"] == pytest.approx(300.0, rel=0.03)


def test_bright_hole_filling_leaves_capillary_meshes_open():
    """The spaces between capillaries are darker than half their maximum: a ring of
    capillary around a 40 µm mesh stays a ring (its loop is length, not the inside of a
    vessel), whatever the size of the mesh."""
    px = 0.5
    yy, xx = np.mgrid[:240, :240] * px
    rad = np.hypot(yy - 60.0, xx - 60.0)
    ring = np.clip(3.0 - np.abs(rad - 20.0), 0, 1)  # a 6 µm capillary round a 40 µm mesh
    img = (100 + 1000 * ring + np.random.default_rng(0).normal(0, 10, ring.shape))
    r = run(Image(img.astype(np.float32), pixel_size_um=px))
    s = r.summary.iloc[0]
    mask = r.masks["vessels"]
    assert (ndi.binary_fill_holes(mask) & ~mask).sum() * px**2 > 0.8 * np.pi * 17.0**2
    assert s["vessel_length_um"] == pytest.approx(2 * np.pi * 20.0, rel=0.03)
    assert s["n_vessel_ends"] == 0


def test_gap_bridges_need_ridge_support():
    """A bridge is drawn across a gap in the mask only where the ridge filter still answers
    along at least half of it (a vessel's unstained stretch), not across background."""
    mask = np.zeros((40, 120), bool)
    mask[18:23, 10:55] = True
    mask[18:23, 62:110] = True  # a 7 px gap, the two pieces pointing at each other
    ridge = np.zeros_like(mask)
    ridge[19:22, 10:110] = True
    joined = trace_skeleton(mask, 1.0, max_gap_um=10, gap_support=ridge)
    apart = trace_skeleton(mask, 1.0, max_gap_um=10, gap_support=np.zeros_like(mask))
    anywhere = trace_skeleton(mask, 1.0, max_gap_um=10)
    assert joined.bridges.any() and anywhere.bridges.any()
    assert not apart.bridges.any()
    assert len(joined.free_ends_rc) == 2 and len(apart.free_ends_rc) == 4
    # the gap's length is counted only when it is bridged
    assert joined.total_length_um > apart.total_length_um + 5.0


def test_prune_dangling_keeps_paths_between_anchors_and_loops():
    """Leaf pruning by hand-checkable cases: a path between two anchors with a side branch,
    a branch hanging from one anchor, and a loop."""
    from histoquant.segment.vessels import _prune_dangling

    line = np.zeros((20, 30), bool)
    anchor = np.zeros_like(line)
    line[5, 2:20] = True  # a path between anchors at (5, 2) and (5, 19) ...
    anchor[5, 2] = anchor[5, 19] = True
    line[6:12, 10] = True  # ... with a side branch of 6 px ending free
    line[14, 2:9] = True  # a branch from an anchor ending free
    anchor[14, 2] = True
    loop = np.zeros_like(line)
    loop[15:19, 20] = loop[15:19, 25] = loop[15, 20:26] = loop[18, 20:26] = True
    line |= loop
    line[16, 26:29] = True  # a tail on the loop
    out = _prune_dangling(line, anchor)
    assert out[5, 2:20].all()  # the path between anchors stays whole
    # its side branch goes, but for the pixel that touches three of the path's: it lies
    # within the 3 px the path is widened to
    assert not out[7:12, 10].any()
    assert out[14].sum() == 1 and out[14, 2]  # the hanging branch goes, the anchor stays
    assert (out & loop).sum() == loop.sum()  # a loop has no leaf: it stays
    assert not out[16, 27:29].any()  # the loop's tail goes (but for the pixel on the loop)


def test_no_vessels_is_flagged_not_an_error():
    rng = np.random.default_rng(0)
    noise = rng.normal(200, 15, (400, 400, 2)).clip(0).astype(np.uint16)
    r = run(Image(noise, axes="YXC", pixel_size_um=PX,
                  channel_names=("endothelium", "pericyte")))
    s = r.summary.iloc[0]
    assert s["vessel_length_um"] == 0
    assert s["n_vessel_segments"] == 0
    assert "no_vessels" in s["flags"]
    assert np.isnan(s["pericyte_coverage_length_pct"])
    assert len(r.objects) == 0 and "length_um" in r.objects.columns


def test_blank_endothelium_channel_is_refused():
    blank = np.full((100, 100), 7, np.uint16)
    with pytest.raises(EmptyImageError):
        run(blank, pixel_size_um=PX)


def test_params_are_physical_and_documented():
    for f in VasculatureParams.field_info():
        assert f["help"], f["name"]
        if f["unit"] in ("µm", "µm²", "%", "°"):
            suffix = {"µm": "_um", "µm²": "_um2", "%": "_pct", "°": "_deg"}[f["unit"]]
            assert f["name"].endswith(suffix) or f["name"].endswith(suffix + "s") or \
                suffix in f["name"], f["name"]
    assert [r.name for r in SPEC.channel_roles] == ["endothelium", "pericyte", "dapi"]
    assert SPEC.auto_regions == ("grey_matter",)


# ----------------------------------------------------------------------- CLI and example

def test_example_and_cli(tmp_path):
    from histoquant.cli import main

    path, truth_path = make_example(tmp_path / "vessels.ome.tif")
    assert path.stat().st_size < 2 * 1024 * 1024
    image = read_image(path)
    assert image.channel_names == ("endothelium", "pericyte")
    assert image.pixel_size_um == pytest.approx(0.5)
    truth = json.loads(truth_path.read_text())
    out = tmp_path / "out"
    assert main(["vasculature", str(path), "--channel", "endothelium=endothelium",
                 "--channel", "pericyte=1", "-o", str(out), "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary["vessel_length_um"].iloc[0] == pytest.approx(truth["vessel_length_um"],
                                                                rel=0.03)
    assert abs(summary["pericyte_coverage_length_pct"].iloc[0]
               - truth["pericyte_coverage_length_pct"]) <= 2.0
    assert (out / "qc" / "vessels.png").exists() and (out / "labels" / "vessels.tif").exists()
    # a pericyte channel that does not exist fails that file, with the reason recorded
    bad = tmp_path / "bad"
    assert main(["vasculature", str(path), "--channel", "pericyte=7", "-o", str(bad),
                 "-q"]) == 1
    errors = pd.read_csv(bad / "errors.csv")
    assert errors["error"].iloc[0] == "ChannelError"


# --------------------------------------------------------------------------- real images

# Fundus photographs: vessels 1–10 px wide, low contrast, ~10 µm/px, lengths compared in
# px (pixel size 1). Settings for them, not the defaults: scales for 1–8 px vessels, low
# thresholds (thin vessels are a few grey levels deep), edge at 35 % (their profiles are
# Gaussian, not flat-topped), longer gaps bridged.
DRIVE_PARAMS = {"vessel_scales_um": [1.0, 2.0, 4.0], "min_vessel_area_um2": 20,
                "threshold_high": 2.5, "threshold_low": 0.5, "max_gap_um": 10,
                "edge_level_pct": 35}


def _false_and_missed(result, tracing, fov, tol_px=2):
    """(our length more than ``tol_px`` outside the tracing, the tracing's skeleton length
    more than ``tol_px`` from our mask), in px, inside ``fov``."""
    trace = result.extra["trace"]
    rc, w = trace.entry_rc, trace.entry_length_um
    inside = fov[rc[:, 0], rc[:, 1]]
    far = ndi.distance_transform_edt(~tracing) > tol_px
    false = float(w[inside & far[rc[:, 0], rc[:, 1]]].sum())
    ref = trace_skeleton(tracing, 1.0)
    mrc, mw = ref.entry_rc, ref.entry_length_um
    ours = ndi.distance_transform_edt(~result.masks["vessels"]) > tol_px
    missed = float(mw[fov[mrc[:, 0], mrc[:, 1]] & ours[mrc[:, 0], mrc[:, 1]]].sum())
    return false, missed


@pytest.mark.realdata
def test_drive_length_against_two_observers(shared_data):
    from PIL import Image as PILImage

    folder = shared_data / "vessels" / "drive"
    if not folder.is_dir():
        pytest.skip("DRIVE images absent")
    rows = []
    for i in range(1, 6):
        rgb = np.asarray(PILImage.open(folder / "images" / f"{i:02d}_test.tif"))
        green_inverted = 255 - rgb[..., 1].astype(np.float32)
        fov = np.asarray(PILImage.open(folder / "fov" / f"{i:02d}_test_mask.gif")) > 0
        m1 = np.asarray(PILImage.open(folder / "manual1" / f"{i:02d}_manual1.gif")) > 0
        m2 = np.asarray(PILImage.open(folder / "manual2" / f"{i:02d}_manual2.gif")) > 0
        # the tracings are skeletonised and measured the same way
        l1 = trace_skeleton(m1, 1.0).length_in(fov)
        l2 = trace_skeleton(m2, 1.0).length_in(fov)
        row = {"image": i, "observer1_px": l1, "observer2_vs_1_pct": 100 * (l2 - l1) / l1}
        for name, extra in (("core", {}), ("no_core", {"ridge_core": False})):
            r = run(Image(green_inverted, pixel_size_um=1.0), regions={"fov": fov},
                    params={**DRIVE_PARAMS, **extra})
            ours = r.summary["vessel_length_um"].iloc[0]
            row[f"error_{name}_pct"] = 100 * (ours - l1) / l1
            row[f"error2_{name}_pct"] = 100 * (ours - l2) / l2
            for k, (tracing, ref) in enumerate(((m1, l1), (m2, l2)), start=1):
                false, missed = _false_and_missed(r, tracing, fov)
                row[f"precision{k}_{name}"] = 100 * (1 - false / ours)
                row[f"recall{k}_{name}"] = 100 * (1 - missed / ref)
                row[f"disagree{k}_{name}"] = false + missed
        rows.append(row)
    table = pd.DataFrame(rows)
    print("\n" + table.round(1).to_string(index=False))
    err = table["error_core_pct"].abs()
    plain = table["error_no_core_pct"].abs()
    # Measured with the ridge core (the default): +1.2, +0.9, −1.9, +19.5, −3.1 % (image 04:
    # choroidal vessels taken for retinal ones); without it −2.2, −0.8, −5.0, +17.2, −5.9 %;
    # before issue #14 −0.4, −1.7, −3.1, +16.5, −5.5 %; the observers differ by +1.6,
    # −3.3, −11.5, −0.6, −14.5 %. The length rises on every image because the core adds
    # vessels both observers traced (the assertions below), so where the length was already
    # over (04; 03 and 05 against observer 2) it is further over: that excess is the false
    # length that was there before (see docs/vasculature.md).
    assert err.mean() <= 10.0
    # Against observer 2: mean 9.8 % (8.2 % before issue #14; 10.6 % with the core before
    # gap bridges needed a ridge along them).
    assert table["error2_core_pct"].abs().mean() <= 10.6
    assert err.median() <= table["observer2_vs_1_pct"].abs().max()
    assert err.mean() <= plain.mean() + 2.0
    assert err.median() <= plain.median() + 2.0
    assert (plain <= 20.0).all()
    assert (err <= 25.0).all()
    for k in (1, 2):
        # What the core adds is what the observers traced: less missed length on every
        # image (measured +1.2…+2.5 points of recall), no more false length in proportion
        # (precision −0.5…+0.8 points), and less disagreement in all (44,200 → 42,900 px
        # false plus missed over both observers).
        assert (table[f"recall{k}_core"] > table[f"recall{k}_no_core"]).all()
        assert (table[f"precision{k}_core"] >= table[f"precision{k}_no_core"] - 1.0).all()
        assert table[f"disagree{k}_core"].sum() < table[f"disagree{k}_no_core"].sum()


@pytest.mark.realdata
def test_vesselnn_length_against_label(shared_data):
    import tifffile

    folder = shared_data / "vessels" / "vesselnn"
    raw = folder / "burgess2014_noisySparseVessels_BM4D_denoised.tif"
    lab = folder / "burgess2014_noisySparseVessels_labels_v1.tif"
    if not (raw.exists() and lab.exists()):
        pytest.skip("vesselNN stack absent")
    stack = tifffile.imread(raw)
    label = tifffile.imread(lab).max(axis=0) > 0
    # cortical vessels of 5–80 µm: scales and background window for large vessels
    params = {"vessel_scales_um": [2.0, 4.0, 8.0, 16.0], "background_radius_um": 150.0,
              "min_vessel_area_um2": 100.0, "max_hole_um2": 500.0}
    r = run(Image(stack, axes="ZYX", pixel_size_um=0.994), params=params)
    ours = r.summary["vessel_length_um"].iloc[0]
    ref = trace_skeleton(label, 0.994).total_length_um
    error = 100 * (ours - ref) / ref
    print(f"\nvesselNN: ours {ours:.0f} µm, max-projected label {ref:.0f} µm, "
          f"error {error:+.1f} %")
    # Measured +0.2 % (−7.4 % without the ridge core, which joins faint stretches of the
    # capillaries; +0.9 % while the core's dangling branches were kept). The label's
    # projection covers 56 % of the field, so its skeleton is a loose reference; the first
    # bound only guards against a broken pipeline, the second against doing worse than the
    # −7.4 % measured before issue #14 (2 points of slack).
    assert abs(error) <= 25.0
    assert abs(error) <= 7.4 + 2.0
    # With the capillary defaults the 60–80 µm vessels are far wider than the scales: +48.7 %
    # before issue #14 (a mesh round the holes inside each wide vessel, double centrelines
    # along the rims), +54.0 % with the ridge core; +16.9 % since the bright holes inside a
    # vessel are filled. Never worse than before issue #14.
    d = run(Image(stack, axes="ZYX", pixel_size_um=0.994)).summary["vessel_length_um"].iloc[0]
    default_error = 100 * (d - ref) / ref
    print(f"vesselNN with the defaults: {d:.0f} µm, error {default_error:+.1f} %")
    assert default_error <= 48.7


@pytest.mark.realdata
def test_cd31_ng2_network_and_pericyte_invariant(shared_data):
    """A real tumour CD31/NG2 field: a connected network, pericyte length ≤ vessel length."""
    path = shared_data / "vessels" / "tumour_cd31_ng2" / "cd31_ng2_1.jpg"
    if not path.exists():
        pytest.skip("CD31/NG2 image absent")
    r = run(read_image(path, pixel_size_um=0.65), channels={"endothelium": 1, "pericyte": 0},
            pixel_size_um=0.65)
    s = r.summary.iloc[0]
    ends_per_mm = s["n_vessel_ends"] / (s["vessel_length_um"] / 1000.0)
    print(f"\ncd31_ng2_1: {s['vessel_length_um']:.0f} µm of vessel, "
          f"{s['n_vessel_segments']} segments, {s['n_branch_points']} branch points, "
          f"{s['n_vessel_ends']} free ends ({ends_per_mm:.1f}/mm), pericyte "
          f"{s['pericyte_length_um']:.0f} µm, coverage {s['pericyte_coverage_length_pct']:.1f} %")
    # invariant: pericyte signal counts only on the vessel
    assert s["pericyte_length_um"] <= s["vessel_length_um"]
    assert 0.0 <= s["pericyte_coverage_length_pct"] <= 100.0
    # Before the ridge core: 3.07 mm in 152 pieces with 6 branch points and 282 free ends,
    # 92 per mm; an observer sees a branching network. At most half as many ends per mm.
    assert ends_per_mm <= 46.0
    assert s["n_branch_points"] >= 30


@pytest.mark.realdata
def test_drive_zeros_outside_the_field_of_view(shared_data):
    """A round field of view with zeros outside: given as padding, the zeros neither enter
    the noise statistics nor make a ridge all round the field."""
    from PIL import Image as PILImage

    from histoquant.segment.vessels import segment_tubes

    folder = shared_data / "vessels" / "drive"
    if not folder.is_dir():
        pytest.skip("DRIVE images absent")
    rgb = np.asarray(PILImage.open(folder / "images" / "01_test.tif"))
    fov = np.asarray(PILImage.open(folder / "fov" / "01_test_mask.gif")) > 0
    m1 = np.asarray(PILImage.open(folder / "manual1" / "01_manual1.gif")) > 0
    zeroed = np.where(fov, 255 - rgb[..., 1].astype(np.float32), 0).astype(np.float32)
    kw = {"scales_um": [1.0, 2.0, 4.0], "min_area_um2": 20, "threshold_high": 2.5,
          "threshold_low": 0.5, "edge_level_pct": 35, "core_threshold": 5.0}
    ref = trace_skeleton(m1, 1.0).length_in(fov)
    errors, area = {}, {}
    for name, extra in (("zeros in the statistics", {}), ("padding", {"padding": ~fov})):
        seg = segment_tubes(zeroed, 1.0, **kw, **extra)
        length = trace_skeleton(seg.mask, 1.0, max_gap_um=10).length_in(fov)
        errors[name] = 100 * (length - ref) / ref
        area[name] = 100 * float((seg.mask & fov).sum()) / float(fov.sum())
    print(f"\nDRIVE 01 zeroed outside its FOV: length error {errors}, % of the field {area}"
          f" (observer 1: {100 * float((m1 & fov).sum()) / float(fov.sum()):.1f})")
    # With the zeros let in the mask floods the field: 62 % of it against 22 % given as
    # padding and 13 % traced. Its length was +76 % while the holes of that flood stayed
    # open; since bright holes are filled (vesselNN), the flood is one wide band whose
    # skeleton is a ladder, +24 %. Given as padding: +14 % (+3 % on the photograph, whose
    # bright outside (inverted) also hides the faint vessels along the rim).
    assert area["zeros in the statistics"] > 2 * area["padding"]
    assert errors["zeros in the statistics"] > errors["padding"] + 5.0
    assert abs(errors["padding"]) <= 20.0


@pytest.mark.realdata
def test_assay_leaves_a_zeroed_outside_of_the_field_of_view_out(shared_data):
    """Through the assay: the zeros outside DRIVE's round field of view are found as padding
    (no mask given) and kept out of the noise and the region, so the length stays near the
    manual tracing (+76 % when they entered the statistics)."""
    from PIL import Image as PILImage

    folder = shared_data / "vessels" / "drive"
    if not folder.is_dir():
        pytest.skip("DRIVE images absent")
    rgb = np.asarray(PILImage.open(folder / "images" / "01_test.tif"))
    fov = np.asarray(PILImage.open(folder / "fov" / "01_test_mask.gif")) > 0
    m1 = np.asarray(PILImage.open(folder / "manual1" / "01_manual1.gif")) > 0
    zeroed = np.where(fov, 255 - rgb[..., 1], 0).astype(np.uint8)
    res = run(Image(zeroed, pixel_size_um=1.0), params=DRIVE_PARAMS,
              channels={"endothelium": 0})
    ref = trace_skeleton(m1, 1.0).length_in(fov)
    error = 100 * (float(res.summary["vessel_length_um"].iloc[0]) - ref) / ref
    assert abs(error) <= 20.0, error
    # the region measured is the field of view, not the padding around it
    assert float(res.summary["region_area_mm2"].iloc[0]) == pytest.approx(fov.sum() / 1e6,
                                                                          rel=0.01)
