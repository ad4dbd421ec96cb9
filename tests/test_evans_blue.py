"""Evans Blue extravasation assay: accuracy on phantoms, study-wide threshold, saturation,
bad input, CLI, and agreement with an ImageJ macro on real tracer-leakage images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoquant.assays import evans_blue as eb
from histoquant.errors import (
    ChannelError,
    EmptyImageError,
    ParamsError,
    PixelSizeError,
    RegionError,
)
from histoquant.io import Image, read_image
from histoquant.rois import Region, mask_to_polygons
from histoquant.synthetic.evans_blue import evans_blue_truth, make_evans_blue_phantom, make_example

SIZE = (768, 768)
# The phantom's camera offset; the flat-field divides by the background less this.
PHANTOM_PARAMS = {"dark_level": 100.0}


def _grey(truth):
    return {"grey_matter": truth["grey_matter"]}


@pytest.fixture(scope="module")
def phantoms():
    """Three leaky phantoms with vessels, measured in grey matter with default parameters."""
    out = []
    for seed, leak in ((0, 2.0), (1, 4.0), (2, 1.0)):
        image, truth = make_evans_blue_phantom(SIZE, 0.5, seed=seed, leak_area_pct=leak)
        result = eb.run(image, _grey(truth), PHANTOM_PARAMS)
        out.append((image, truth, result))
    return out


# --------------------------------------------------------------------------------------------
# Accuracy on phantoms
# --------------------------------------------------------------------------------------------


def test_area_fraction_within_2_points_of_truth(phantoms):
    for _, truth, result in phantoms:
        row = result.summary.iloc[0]
        true = evans_blue_truth(truth, "grey_matter")
        assert abs(row.evb_positive_area_pct - true["area_pct"]) < 2.0
        # and the positive mask is the true one, not just the right amount of pixels
        pos = result.masks["positive"] & truth["grey_matter"]
        tp = truth["positive"] & truth["grey_matter"]
        overlap = (pos & tp).sum() / np.logical_or(pos, tp).sum()
        assert overlap > 0.95


def test_integrated_intensity_within_5_percent_of_truth(phantoms):
    for _, truth, result in phantoms:
        grey = truth["grey_matter"]
        row = result.summary.iloc[0]
        # flat-fielded intensities are counts at the mean illumination of the regions
        true = evans_blue_truth(truth, grey, illumination_support=grey)
        assert row.integrated_intensity_um2 == pytest.approx(true["integrated_intensity_um2"],
                                                             rel=0.05)


def test_extravascular_fraction_within_3_points_of_truth(phantoms):
    for _, truth, result in phantoms:
        row = result.summary.iloc[0]
        margin = result.params["vessel_margin_um"]
        true = evans_blue_truth(truth, "grey_matter", vessel_margin_um=margin)
        assert abs(row.extravascular_fraction_pct - true["extravascular_fraction_pct"]) < 3.0
        assert row.extravascular_area_um2 + row.intravascular_area_um2 == pytest.approx(
            row.evb_positive_area_um2)


def test_vessel_mask_matches_truth(phantoms):
    for _, truth, result in phantoms:
        grey = truth["grey_matter"]
        assert result.summary.iloc[0].vessel_area_pct == pytest.approx(
            100 * truth["vessel"][grey].mean(), abs=0.3)


def test_without_flatfield_uneven_illumination_biases_intensity(phantoms):
    """The flat-field is what brings the intensity to truth: switched off, a phantom with
    ±15 % illumination reads each leak at its local illumination instead."""
    image, truth, _ = phantoms[1]
    grey = truth["grey_matter"]
    raw = eb.run(image, _grey(truth), {**PHANTOM_PARAMS, "flatfield": "none"})
    local = float((truth["evb"] * truth["illumination"])[grey].sum()) * 0.25
    assert raw.summary.iloc[0].integrated_intensity_um2 == pytest.approx(local, rel=0.05)


def test_objects_and_labels_agree_with_summary(phantoms):
    _, _truth, result = phantoms[0]
    objects, row = result.objects, result.summary.iloc[0]
    assert len(objects) == row.n_patches == result.labels.max()
    assert objects.area_um2.sum() == pytest.approx(row.evb_positive_area_um2)
    assert objects.integrated_intensity_um2.sum() == pytest.approx(
        row.integrated_intensity_um2, rel=1e-6)
    assert set(objects["class"]) <= {"intravascular", "extravascular"}
    # patches over a vessel are at distance 0, the others are measured outward
    inside = objects.vessel_overlap_pct > 0
    assert (objects.distance_to_vessel_um[inside] <= 1.0).all()
    assert (objects.distance_to_vessel_um[~inside] > 0).all()
    for column in ("area_um2", "centroid_y_um", "distance_to_vessel_um",
                   "integrated_intensity_um2"):
        assert column in objects.columns


def test_perivascular_profile_shows_halos(phantoms):
    _, _truth, result = phantoms[1]
    profile = result.tables["profiles"]
    assert list(profile.columns[:3]) == ["image", "region", "compartment"]
    peri = profile[profile.compartment == "perivascular"]
    assert peri.distance_min_um.is_monotonic_increasing
    near = peri[peri.distance_max_um <= 10].positive_area_pct.mean()
    far = peri[peri.distance_min_um >= 30].positive_area_pct.mean()
    # halos hug the vessels in this phantom, diffuse patches are anywhere
    assert near > 2 * far
    assert profile.area_um2.sum() <= result.summary.iloc[0].region_area_mm2 * 1e6 + 1


def test_tiny_and_absent_leaks():
    """Intact tissue (< 0.5 % positive) must not be inflated by noise or missed."""
    image, truth = make_evans_blue_phantom(SIZE, 0.5, seed=5, leak_area_pct=0.3,
                                           intravascular_share=0.0)
    row = eb.run(image, _grey(truth), PHANTOM_PARAMS).summary.iloc[0]
    true = evans_blue_truth(truth, "grey_matter")
    assert 0 < true["area_pct"] < 0.6
    assert abs(row.evb_positive_area_pct - true["area_pct"]) < 0.1
    image, truth = make_evans_blue_phantom(SIZE, 0.5, seed=6, leak_area_pct=0.0,
                                           intravascular_share=0.0)
    assert not truth["positive"].any()
    row = eb.run(image, _grey(truth), PHANTOM_PARAMS).summary.iloc[0]
    assert row.evb_positive_area_pct < 0.02


def test_single_channel_without_vessels():
    image, truth = make_evans_blue_phantom(SIZE, 0.5, seed=3, vessels=False,
                                           leak_area_pct=3.0)
    assert image.channel_names == ("evb",)
    grey = truth["grey_matter"]
    result = eb.run(image, _grey(truth), PHANTOM_PARAMS)
    row = result.summary.iloc[0]
    true = evans_blue_truth(truth, grey, illumination_support=grey)
    assert abs(row.evb_positive_area_pct - true["area_pct"]) < 2.0
    assert row.integrated_intensity_um2 == pytest.approx(true["integrated_intensity_um2"],
                                                         rel=0.05)
    assert np.isnan(row.extravascular_fraction_pct)
    assert result.tables["profiles"].empty
    assert (result.objects["class"] == "positive").all()


def test_z_stack_is_projected():
    image, truth = make_evans_blue_phantom((512, 512), 0.5, seed=4, z_planes=3)
    assert image.axes == "ZYXC"
    row = eb.run(image, _grey(truth), PHANTOM_PARAMS).summary.iloc[0]
    assert abs(row.evb_positive_area_pct - evans_blue_truth(truth)["area_pct"]) < 2.0


def test_resolution_changes_integrated_intensity_little(phantoms):
    """The same tissue at half the resolution (2×2 binned, pixel size doubled), measured with
    the same threshold in intensity units (as a study-wide threshold would be): the
    integrated intensity is unchanged, the positive area grows only by partial-volume pixels
    at patch edges (halos are 6–24 px wide at 0.5 µm/px)."""
    image, truth, result = phantoms[0]
    data = image.data.astype(np.float32)
    h, w = (s // 2 * 2 for s in image.shape_yx)
    half = data[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))
    coarse = Image(np.round(half).astype(np.uint16), axes="YXC", pixel_size_um=1.0,
                   channel_names=image.channel_names)
    grey = truth["grey_matter"][:h:2, :w:2]
    high = result.summary.iloc[0]
    params = {**PHANTOM_PARAMS, "threshold_method": "fixed", "threshold": high.threshold}
    low = eb.run(coarse, {"grey_matter": grey}, params).summary.iloc[0]
    assert low.integrated_intensity_um2 == pytest.approx(high.integrated_intensity_um2,
                                                         rel=0.02)
    assert low.evb_positive_area_pct == pytest.approx(high.evb_positive_area_pct, rel=0.12)
    assert low.extravascular_fraction_pct == pytest.approx(high.extravascular_fraction_pct,
                                                           abs=3.0)


# --------------------------------------------------------------------------------------------
# Thresholds and background options
# --------------------------------------------------------------------------------------------


def test_study_threshold_is_applied_identically_to_every_image():
    vehicles, treated = [], []
    for seed in (10, 11):
        vehicles.append(make_evans_blue_phantom((512, 512), 0.5, seed=seed,
                                                leak_area_pct=0.2))
    for seed, noise in ((12, 10.0), (13, 16.0)):
        treated.append(make_evans_blue_phantom((512, 512), 0.5, seed=seed, noise_sd=noise,
                                               leak_area_pct=4.0))
    params = eb.EvansBlueParams(dark_level=100.0)
    threshold = eb.study_threshold([im for im, _ in vehicles], params,
                                   regions_per_image=[_grey(t) for _, t in vehicles])
    assert threshold > 0
    fixed = params.replace(threshold_method="fixed", threshold=threshold)
    auto_thresholds = []
    for image, truth in vehicles + treated:
        result = eb.run(image, _grey(truth), fixed)
        row = result.summary.iloc[0]
        assert row.threshold == threshold
        assert row.threshold_method == "fixed"
        # every positive pixel is at or above the study threshold in this image's
        # corrected intensities, and seeds are the same multiple of it everywhere
        corrected = eb.corrected_channel(image, fixed, regions=_grey(truth))
        assert corrected[result.masks["positive"]].min() >= threshold
        assert row.seed_threshold == pytest.approx(fixed.seed_ratio * threshold)
        auto_thresholds.append(eb.run(image, _grey(truth), params).summary.iloc[0].threshold)
    # per-image automatic thresholds differ (the noisy image gets a higher one): the study
    # threshold is what makes the groups comparable
    assert max(auto_thresholds) > 1.3 * min(auto_thresholds)


def test_fixed_threshold_needs_a_value():
    image, _truth = make_evans_blue_phantom((256, 256), 0.5, seed=1)
    with pytest.raises(ParamsError, match="threshold"):
        eb.run(image, params={"threshold_method": "fixed"})
    with pytest.raises(ParamsError, match="automatic"):
        eb.study_threshold([image], {"threshold_method": "fixed", "threshold": 5})
    with pytest.raises(ParamsError, match="regions_per_image"):
        eb.study_threshold([image], regions_per_image=[None, None])


@pytest.mark.parametrize("method", ["otsu", "triangle"])
def test_histogram_thresholds_run(phantoms, method):
    image, truth, _ = phantoms[1]
    row = eb.run(image, _grey(truth), {**PHANTOM_PARAMS, "threshold_method": method}) \
        .summary.iloc[0]
    assert row.threshold_method == method
    assert np.isfinite(row.threshold) and row.evb_positive_area_pct > 0


def test_reference_region_background(phantoms):
    """Background = median of a reference region drawn as a polygon."""
    image, truth, _ = phantoms[0]
    # a square of grey matter far from leaks would do; use the whole grey matter minus
    # the positive area, given as polygons traced from the mask
    ref = truth["grey_matter"] & ~truth["positive"] & ~truth["vessel"]
    regions = [Region("grey_matter", mask=truth["grey_matter"]),
               Region("reference", mask_to_polygons(ref))]
    params = {**PHANTOM_PARAMS, "background_method": "reference",
              "reference_region": "reference", "vessel_margin_um": 1.0}
    result = eb.run(image, regions, params)
    grey_row = result.summary.set_index("region").loc["grey_matter"]
    true = evans_blue_truth(truth, "grey_matter")
    assert abs(grey_row.evb_positive_area_pct - true["area_pct"]) < 2.0
    assert grey_row.background_method == "reference"
    with pytest.raises(RegionError, match="white_matter"):
        eb.run(image, _grey(truth), {"background_method": "reference"})


# --------------------------------------------------------------------------------------------
# Saturation and bad input
# --------------------------------------------------------------------------------------------


def test_saturation_is_detected_and_flagged():
    image, truth = make_evans_blue_phantom(SIZE, 0.5, seed=2, saturate=True)
    assert truth["saturated"].any()
    result = eb.run(image, _grey(truth), PHANTOM_PARAMS)
    row = result.summary.iloc[0]
    assert row.bit_depth == 16
    assert row.saturation_level == 4095  # a 12-bit camera in a 16-bit file
    expected = 100 * (truth["saturated"] & truth["grey_matter"]).sum() / \
        truth["grey_matter"].sum()
    assert row.saturated_pct == pytest.approx(expected, rel=0.02)
    assert row.saturation_flag
    assert any("saturated" in w for w in result.warnings)


def test_unsaturated_image_is_not_flagged(phantoms):
    for _, _, result in phantoms:
        row = result.summary.iloc[0]
        assert row.saturated_pct == 0 and not row.saturation_flag
        assert not result.warnings


def test_no_evb_channel_is_an_error():
    data = np.random.default_rng(0).integers(0, 100, (64, 64, 2)).astype(np.uint16)
    image = Image(data, axes="YXC", pixel_size_um=0.5, channel_names=("dapi", "gfp"))
    with pytest.raises(ChannelError, match="evb"):
        eb.run(image)
    with pytest.raises(ChannelError, match="no channel named 'cy5'"):
        eb.run(image, channels={"evb": "cy5"})
    with pytest.raises(ChannelError, match="out of range"):
        eb.run(image, channels={"evb": 5})


def test_blank_and_fully_saturated_images_are_errors():
    with pytest.raises(EmptyImageError, match="blank"):
        eb.run(np.zeros((64, 64), np.uint16), pixel_size_um=0.5)
    with pytest.raises(EmptyImageError, match="saturated"):
        eb.run(np.full((64, 64), 65535, np.uint16), pixel_size_um=0.5)
    with pytest.raises(EmptyImageError, match="saturated"):
        eb.run(np.full((64, 64), 255, np.uint8), pixel_size_um=0.5)
    # blank vessel channel
    data = np.random.default_rng(0).integers(0, 100, (64, 64, 2)).astype(np.uint16)
    data[..., 0] = 0
    image = Image(data, axes="YXC", pixel_size_um=0.5, channel_names=("vessel", "evb"))
    with pytest.raises(EmptyImageError, match="vessel"):
        eb.run(image)


def test_no_pixel_size_is_an_error():
    with pytest.raises(PixelSizeError, match="pixel size"):
        eb.run(np.random.default_rng(0).integers(0, 100, (64, 64)).astype(np.uint16))


def test_caller_image_is_not_modified():
    data = np.random.default_rng(0).normal(100, 5, (128, 128)).astype(np.float32)
    before = data.copy()
    result = eb.run(data, pixel_size_um=0.5)
    assert np.array_equal(data, before)
    # float data: saturation cannot be known
    assert np.isnan(result.summary.iloc[0].saturated_pct)


def test_progress_is_reported():
    image, _truth = make_evans_blue_phantom((256, 256), 0.5, seed=1)
    seen = []
    eb.run(image, progress=lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0


# --------------------------------------------------------------------------------------------
# Example image, CLI
# --------------------------------------------------------------------------------------------


def test_example_image_and_cli(tmp_path):
    from histoquant.cli import main

    paths = make_example(tmp_path / "evans_blue.ome.tif")
    assert paths["image"].stat().st_size < 2_000_000
    image = read_image(paths["image"])
    assert image.channel_names == ("vessel", "evb")
    assert image.pixel_size_um == pytest.approx(0.5)
    truth = json.loads(paths["truth"].read_text())
    out = tmp_path / "out"
    code = main(["evans-blue", str(paths["image"]), "--regions", str(paths["regions"]),
                 "--params", str(_params_file(tmp_path)), "-o", str(out), "-q"])
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary.region.tolist() == ["grey_matter"]
    assert abs(summary.evb_positive_area_pct[0] - truth["evb_positive_area_pct"]) < 2.0
    assert (out / "objects.csv").exists() and (out / "profiles.csv").exists()
    assert (out / "qc" / "evans_blue.png").exists()
    assert (out / "labels" / "evans_blue.tif").exists()


def _params_file(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(PHANTOM_PARAMS))
    return path


def test_cli_reports_missing_channel(tmp_path, capsys):
    from histoquant.cli import main
    from histoquant.io import write_ome_tiff

    image, _ = make_evans_blue_phantom((128, 128), 0.5, seed=1)
    path = tmp_path / "field.ome.tif"
    write_ome_tiff(image, path)
    code = main(["evans-blue", str(path), "--channel", "evb=cy5", "-o", str(tmp_path / "o"),
                 "-q"])
    assert code == 1
    errors = pd.read_csv(tmp_path / "o" / "errors.csv")
    assert errors.error[0] == "ChannelError"


# --------------------------------------------------------------------------------------------
# Real images: dextran tracer leakage (stand-in for Evans Blue) vs the lab's ImageJ macro
# --------------------------------------------------------------------------------------------

# The macro's rule (data README): vessel = R > 30, tracer = G > 25, extravascular = tracer AND
# NOT vessel. Its masks show that ImageJ thresholds are inclusive (R ≥ 30, G ≥ 25) and that
# the vessel mask had its holes filled (4-connected) before the subtraction.
MACRO_PARAMS = {
    "background_method": "none", "flatfield": "none",
    "threshold_method": "fixed", "threshold": 25, "seed_ratio": 1.0, "min_patch_area_um2": 0,
    "vessel_threshold_method": "fixed", "vessel_threshold": 30, "vessel_min_area_um2": 0,
    "vessel_margin_um": 0,
}
FIELDS = ("01", "02", "03", "04", "05")


def macro_extravascular_mask(overlay: np.ndarray) -> np.ndarray:
    """The macro's extravascular tracer mask from its ``*_DextranOverlay.tif``.

    The overlay is an RGB image of 0/255 masks: red = vessel (holes filled) OR extravascular
    tracer, green = extravascular tracer, so yellow marks leaked tracer and red alone the
    vessels. The green channel equals the file's embedded 'EX-DEX' selection.
    """
    return overlay[..., 1] > 0


@pytest.mark.realdata
def test_macro_rule_matches_macro_masks(shared_data):
    import tifffile

    folder = shared_data / "tracer_leakage"
    for name in FIELDS:
        image = read_image(folder / "fov" / f"{name}.jpg", pixel_size_um=0.69)
        overlay = tifffile.imread(folder / "mask_macro_output" / f"{name}_DextranOverlay.tif")
        macro = macro_extravascular_mask(overlay)
        result = eb.run(image, params=MACRO_PARAMS, channels={"evb": "G", "vessel": "R"})
        row = result.summary.iloc[0]
        macro_um2 = macro.sum() * 0.69**2
        assert row.extravascular_area_um2 == pytest.approx(macro_um2, rel=0.01)
        ours = result.masks["positive"] & ~result.masks["vessel_zone"]
        assert (ours ^ macro).sum() <= 0.01 * macro.sum()
        # and the vessel mask is the red-only part of the overlay
        vessel_macro = (overlay[..., 0] > 0) & ~macro
        assert (result.masks["vessel"] ^ vessel_macro).sum() <= 0.01 * vessel_macro.sum()


@pytest.mark.realdata
def test_embedded_selection_is_the_green_mask(shared_data):
    """The overlay's 'EX-DEX' ROI (traced outlines) rasterises to the green channel."""
    import roifile
    import tifffile
    from skimage.draw import polygon

    path = shared_data / "tracer_leakage" / "mask_macro_output" / "03_DextranOverlay.tif"
    with tifffile.TiffFile(path) as tif:
        overlay = tif.asarray()
        roi = roifile.ImagejRoi.frombytes(tif.imagej_metadata["ROI"])
    assert roi.name == "EX-DEX"
    mask = np.zeros(overlay.shape[:2], dtype=bool)
    for path_xy in roi.coordinates(multi=True):
        xy = np.asarray(path_xy, dtype=float)
        rr, cc = polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=mask.shape)
        part = np.zeros_like(mask)
        part[rr, cc] = True
        mask ^= part  # even-odd: nested outlines are holes
    assert np.array_equal(mask, macro_extravascular_mask(overlay))


@pytest.mark.realdata
def test_automatic_threshold_on_real_fields(shared_data):
    """Automatic thresholds run on every field and give sane, flagged-free numbers."""
    folder = shared_data / "tracer_leakage" / "fov"
    rows = []
    for name in FIELDS:
        image = read_image(folder / f"{name}.jpg", pixel_size_um=0.69)
        rows.append(eb.run(image, channels={"evb": "G", "vessel": "R"}).summary.iloc[0])
    table = pd.DataFrame(rows)
    assert (table.threshold > 0).all()
    assert table.evb_positive_area_pct.between(0.5, 40).all()
    assert table.extravascular_fraction_pct.between(1, 99).all()
    assert not table.saturation_flag.any()

