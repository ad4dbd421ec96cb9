"""A tiled run gives the result of a whole run (issue #15, item 1): image-wide statistics.

Each assay with a ``calibrate`` measures its background, noise, thresholds, stain and white
levels once over the region and applies them to every tile. On phantoms of 1536² px measured
whole and with :func:`histoquant.tiling.run_tiled` at 768 and 512 px tiles:

- areas, counts, densities and intensity sums agree within ``AREA_COUNT_RTOL`` (1 %);
- the statistics every tile shares (thresholds, noise) agree within ``STAT_RTOL``;
- ratios of two amounts and means of per-object values are compared on the summary row itself:
  the tiles' rows combine by each column's declared rule (``AssaySpec.measures``: a ratio of
  the summed amounts, a mean over the stitched objects), so they equal the whole run's.

gfp-cells: every count equal, and every object the same (place, area, class) but the one
object wider than the tile overlap (the phantom's autofluorescent tissue sheet), which is cut
at tile seams until objects are stitched.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from histoquant import calibration as cal_mod
from histoquant.assays import evans_blue as eb
from histoquant.assays import motor_neurons as mn
from histoquant.assays import vasculature as va
from histoquant.synthetic.evans_blue import make_evans_blue_phantom
from histoquant.synthetic.fluorescent_somata import fluorescent_somata_phantom
from histoquant.synthetic.nissl import nissl_phantom
from histoquant.synthetic.vessels import make_vessel_network, render_vessels, vessel_phantom
from histoquant.tiling import MaskSource, WholeImage, run_tiled

N = 1536
TILES = (768, 512)
OVERLAP = 200
#: Areas, counts, densities and intensity sums: tiled within 1 % of whole (issue #15).
AREA_COUNT_RTOL = 0.01
#: Statistics shared by every tile (thresholds, noise, background level): the calibration's.
STAT_RTOL = 1e-3

EB_PARAMS = eb.EvansBlueParams(dark_level=100.0)

EB_AREAS_COUNTS = ("region_area_mm2", "evb_positive_area_um2", "evb_positive_area_pct",
                   "mean_intensity", "integrated_intensity_um2", "vessel_area_pct",
                   "intravascular_area_um2", "extravascular_area_um2", "extravascular_area_pct",
                   "intravascular_integrated_intensity_um2",
                   "extravascular_integrated_intensity_um2", "saturated_pct")
EB_STATS = ("threshold", "seed_threshold", "noise_sd", "background", "vessel_threshold",
            "bit_depth", "saturation_level")
#: Ratios of two summed columns (declared ``ratio`` / ``weighted``): exact from the tiles' sums.
EB_RATIOS = ("positive_mean_intensity", "extravascular_fraction_pct", "saturated_positive_pct")
#: Not yet equal, and not a statistic: a patch crossing a tile seam is cut there (the
#: regions a tile gets end at its core) and counted in both tiles until objects are stitched.
EB_XFAIL = {"n_patches"}

MN_AREAS_COUNTS = ("region_area_mm2", "n_motor_neurons", "motor_neurons_per_mm2",
                   "n_motor_neurons_with_nucleolus", "n_somata")
#: Means of per-object values (declared ``objects``): the mean over the stitched objects.
MN_PER_OBJECT_MEANS = {
    "mean_motor_neuron_area_um2": ("motor_neuron", "area_um2"),
    "mean_motor_neuron_equivalent_diameter_um": ("motor_neuron", "equivalent_diameter_um"),
    "mean_soma_area_um2": (None, "area_um2"),
}


#: Vasculature: every tile applies the whole image's background field, noise units and
#: centreline level and lays its block grids on the whole image's, so the vessel and
#: pericyte masks of its core are the whole run's wherever the hysteresis components of
#: the ridge response are seen whole (within the overlap). Vessel length and area,
#: pericyte area coverage and pericyte bodies agree within 1 %.
VA_AREAS_LENGTHS = ("region_area_mm2", "vessel_length_um", "vessel_length_density_mm_per_mm2",
                    "vessel_area_um2", "vessel_area_fraction_pct", "pericyte_coverage_area_pct",
                    "n_pericyte_bodies", "pericyte_bodies_per_mm")
#: Values that come from per-path medians: a segment's diameter, hence its end correction
#: and the reach of its cross-sections, which decides the pericyte length (covered vessel
#: length). A segment longer than the overlap is seen cut by the tile's edge and gets the
#: median of its part. Measured at 768/512-px tiles with a 100 µm overlap: ≤ 0.15 % on the
#: dense network; ≤ 1.5 % (coverage by length 0.75 percentage points) on the sparse one,
#: whose vessels run unbranched across the whole field (a 150 µm overlap: ≤ 1.05 %).
VA_PER_PATH = ("pericyte_length_um", "pericyte_length_density_mm_per_mm2",
               "pericyte_coverage_length_pct", "vessel_diameter_mean_um",
               "vessel_end_correction_um")
VA_PER_PATH_RTOL = 0.02
#: Counts of the centreline graph (segments, branch points, free ends): a segment longer
#: than the overlap is counted by each tile that holds more than half of what it sees of it,
#: and one component of the hysteresis along the image's edge reaches further than the
#: overlap. Measured: at most 1 of 46–408 on the dense network, 1 of 72–92 (1.4 %) on the
#: sparse one; objects are not stitched across tiles.
VA_GRAPH = ("n_vessel_segments", "n_branch_points", "n_vessel_ends")
VA_GRAPH_RTOL = 0.02
VA_OVERLAP = 200  # px: 100 µm, five times the widest vessel (18 µm), beyond the ridge filter


@pytest.fixture(scope="module")
def vessel_images():
    # dense: capillaries everywhere; sparse: vessels in the left 40 % only, so that most
    # tiles hold background alone (their own noise units made vessels of it: +10 % length)
    dense, _, _ = vessel_phantom((N * 0.5, N * 0.5), 0.5, seed=0, dapi=True)
    net = make_vessel_network((N * 0.5, N * 0.5), seed=0)
    lim = 0.4 * N * 0.5
    net.curves = [c for c in net.curves if c.yx_um[:, 1].max() < lim]
    keep = net.somata[:, 1] < lim
    net.somata, net.pericyte_nuclei = net.somata[keep], net.pericyte_nuclei[keep]
    sparse = render_vessels(net, 0.5, seed=1, dapi=True)
    return {"dense": (dense, va.run(dense)), "sparse": (sparse, va.run(sparse))}


@pytest.fixture(scope="module")
def evans_image():
    image, _ = make_evans_blue_phantom((N, N), 0.5, seed=0, leak_area_pct=2.0)
    return image


@pytest.fixture(scope="module")
def nissl_image():
    image, _ = nissl_phantom((N, N), 0.5, seed=0)
    return image


@pytest.fixture(scope="module")
def fluo_image():
    image, _ = fluorescent_somata_phantom((N, N), 2.0, seed=0, n_motor_neurons=40, n_small=60,
                                          n_fibres=200)
    return image


def _close(got: float, want: float, rtol: float, name: str) -> None:
    if isinstance(want, (bool, np.bool_)) or not np.isfinite(float(want)):
        assert got == want or (not np.isfinite(float(got)) and not np.isfinite(float(want))), name
        return
    assert float(got) == pytest.approx(float(want), rel=rtol, abs=1e-9), \
        f"{name}: tiled {got} vs whole {want}"


def _object_mean(objects: pd.DataFrame, cls: str | None, column: str) -> float:
    o = objects if cls is None else objects[objects["class"] == cls]
    return float(o[column].mean()) if len(o) else float("nan")


# --- whole = calibrate + apply ---------------------------------------------------------------


@pytest.mark.parametrize("which", ["evans-blue", "motor-neurons-bf", "motor-neurons-fl",
                                   "vasculature"])
def test_whole_run_is_calibrate_then_apply(which):
    # run(image) estimates its statistics with the same code as calibrate(image): handing it
    # that calibration changes nothing, bit for bit, and the calibration is plain JSON.
    if which == "evans-blue":
        image, truth = make_evans_blue_phantom((512, 512), 0.5, seed=1)
        spec, params, regions = eb.SPEC, EB_PARAMS, {"grey_matter": truth["grey_matter"]}
    elif which == "motor-neurons-bf":
        image, _ = nissl_phantom((512, 512), 0.5, seed=1)
        spec, params, regions = mn.SPEC, None, None
    elif which == "vasculature":
        image, _, _ = vessel_phantom((256.0, 256.0), 0.5, seed=1, dapi=True)
        spec, params, regions = va.SPEC, None, None
    else:
        image, _ = fluorescent_somata_phantom((512, 512), 2.0, seed=1)
        spec, params, regions = mn.SPEC, None, None
    whole = spec.run(image, regions, params)
    cal = spec.calibrate(image, regions, params)
    json.dumps(cal)
    again = spec.run(image, regions, params, calibration=cal)
    pd.testing.assert_frame_equal(again.summary, whole.summary, check_exact=True)
    pd.testing.assert_frame_equal(again.objects, whole.objects, check_exact=True)
    np.testing.assert_array_equal(again.labels, whole.labels)
    assert cal["step"] == 1


# --- tiled = whole ----------------------------------------------------------------------------


@pytest.mark.parametrize("tile_px", TILES)
def test_evans_blue_tiled_equals_whole(evans_image, tile_px):
    whole = eb.run(evans_image, None, EB_PARAMS).summary.iloc[0]
    tiled = run_tiled(eb.SPEC, evans_image, WholeImage(), params=EB_PARAMS, tile_px=tile_px,
                      overlap_px=OVERLAP)
    assert tiled.n_tiles == (N // tile_px) ** 2
    json.dumps(tiled.calibration)
    t = tiled.summary.iloc[0]
    assert float(whole["evb_positive_area_pct"]) > 1.0  # something to measure
    for col in EB_AREAS_COUNTS:
        _close(t[col], whole[col], AREA_COUNT_RTOL, col)
    for col in EB_STATS:
        _close(t[col], whole[col], STAT_RTOL, col)
    for col in EB_RATIOS:
        _close(t[col], whole[col], AREA_COUNT_RTOL, col)
    assert bool(t["saturation_flag"]) == bool(whole["saturation_flag"])
    covered = set(EB_AREAS_COUNTS) | set(EB_STATS) | set(EB_RATIOS) | EB_XFAIL | {
        "image", "region", "threshold_method", "background_method", "saturation_flag"}
    numeric = {c for c in whole.index if isinstance(whole[c], (int, float, np.number))}
    assert numeric <= covered, f"summary columns not compared: {sorted(numeric - covered)}"


@pytest.mark.parametrize("tile_px", TILES)
@pytest.mark.parametrize("which", ["bf", "fl"])
def test_motor_neurons_tiled_equals_whole(nissl_image, fluo_image, which, tile_px):
    image = nissl_image if which == "bf" else fluo_image
    whole_res = mn.run(image)
    whole = whole_res.summary.iloc[0]
    tiled = run_tiled(mn.SPEC, image, WholeImage(), tile_px=tile_px, overlap_px=OVERLAP)
    assert tiled.calibration["modality"] == ("brightfield" if which == "bf" else "fluorescence")
    json.dumps(tiled.calibration)
    t = tiled.summary.iloc[0]
    assert int(whole["n_motor_neurons"]) >= 15
    for col in MN_AREAS_COUNTS:
        _close(t[col], whole[col], AREA_COUNT_RTOL, col)
    for col, (cls, src) in MN_PER_OBJECT_MEANS.items():
        _close(t[col], whole[col], AREA_COUNT_RTOL, col)
        _close(_object_mean(tiled.objects, cls, src), t[col], 1e-12, col)
        # and the objects behind it: the same somata, the same sizes
        _close(_object_mean(whole_res.objects, cls, src), whole[col], 1e-12, col)
    assert len(tiled.objects) == pytest.approx(len(whole_res.objects), rel=AREA_COUNT_RTOL)


@pytest.mark.parametrize("tile_px", TILES)
@pytest.mark.parametrize("which", ["dense", "sparse"])
def test_vasculature_tiled_equals_whole(vessel_images, which, tile_px):
    image, whole_res = vessel_images[which]
    whole = whole_res.summary.iloc[0]
    tiled = run_tiled(va.SPEC, image, WholeImage(), tile_px=tile_px, overlap_px=VA_OVERLAP)
    assert tiled.n_tiles == (N // tile_px) ** 2
    c = tiled.calibration
    json.dumps(c)
    assert c["step"] == 1 and set(c) >= {"endothelium", "pericyte", "dapi"}
    t = tiled.summary.iloc[0]
    assert float(whole["vessel_length_um"]) > 2000 and int(whole["n_pericyte_bodies"]) >= 10
    for col in VA_AREAS_LENGTHS:
        _close(t[col], whole[col], AREA_COUNT_RTOL, col)
    for col in VA_PER_PATH:
        _close(t[col], whole[col], VA_PER_PATH_RTOL, col)
    for col in VA_GRAPH:
        _close(t[col], whole[col], VA_GRAPH_RTOL, col)
    # a tile holding no vessel does not flag its region as having none
    assert t["flags"] == whole["flags"] == ""
    covered = set(VA_AREAS_LENGTHS) | set(VA_PER_PATH) | set(VA_GRAPH) | {"image", "region",
                                                                         "flags"}
    assert set(whole.index) <= covered, f"not compared: {sorted(set(whole.index) - covered)}"
    # a segment's ends are moved to slide coordinates with it: each lies within the
    # segment's length of its centroid
    o = tiled.objects
    for end in ("start", "end"):
        reach = np.hypot(o[f"{end}_y_um"] - o["centroid_y_um"],
                         o[f"{end}_x_um"] - o["centroid_x_um"])
        assert (reach <= o["segment_length_um"] + 1.0).all(), end
    assert len(o) == pytest.approx(len(whole_res.objects), rel=VA_GRAPH_RTOL)


def test_vasculature_tiles_alone_would_not_equal_whole(vessel_images):
    # what the calibration is for: tiles that estimate their own background and noise units
    # from background alone turn it into vessels (measured: +9.5 % length at 768 px, +11 %
    # at 512 px on the sparse phantom)
    import dataclasses

    image, whole_res = vessel_images["sparse"]
    alone = dataclasses.replace(va.SPEC, calibrate=None)
    t = run_tiled(alone, image, WholeImage(), tile_px=768, overlap_px=VA_OVERLAP).summary
    assert float(t["vessel_length_um"].iloc[0]) > 1.03 * float(
        whole_res.summary["vessel_length_um"].iloc[0])


def test_vasculature_large_region_calibrates_at_full_resolution_near_its_centre(
        vessel_images, monkeypatch):
    # Over the budget the background is read every 2nd pixel, while the noise units (a
    # ridge filter's answer to noise depends on the pixel size) come from full-resolution
    # pixels at the region's centre. Those depend on the vessels the window holds (measured
    # here: noise SDs 2–40 % above the whole image's), so the results are close, not equal
    # (measured: lengths and areas within 0.1 %).
    image, whole_res = vessel_images["dense"]
    monkeypatch.setattr(cal_mod, "CALIBRATION_BUDGET_PX", 2_000_000)
    tiled = run_tiled(va.SPEC, image, WholeImage(), tile_px=768, overlap_px=VA_OVERLAP)
    c = tiled.calibration
    assert c["step"] == 2 and c["endothelium"]["background"]["cell_px"] == 2.0
    assert any("calibration budget" in w for w in c["warnings"])
    t, w = tiled.summary.iloc[0], whole_res.summary.iloc[0]
    for col in ("vessel_length_um", "vessel_area_um2", "pericyte_length_um",
                "n_pericyte_bodies"):
        _close(t[col], w[col], AREA_COUNT_RTOL, col)


def test_tiled_calibration_per_section_and_low_resolution(evans_image, monkeypatch):
    # A section's regions as a low-resolution mask (as the batch gives them), and a budget
    # small enough that the calibration reads every 2nd pixel: the statistics are then
    # approximate but close, and the step is recorded.
    h, w = evans_image.shape_yx
    low = np.zeros((h // 8, w // 8), bool)
    low[10:150, 20:170] = True
    source = MaskSource({"grey_matter": low}, (8.0, 8.0))
    masks = source.window(_whole_window(h, w))
    whole = eb.run(evans_image, masks, EB_PARAMS).summary.iloc[0]
    exact = run_tiled(eb.SPEC, evans_image, source, params=EB_PARAMS, tile_px=512,
                      overlap_px=OVERLAP)
    monkeypatch.setattr(cal_mod, "CALIBRATION_BUDGET_PX", 800_000)
    coarse = run_tiled(eb.SPEC, evans_image, source, params=EB_PARAMS, tile_px=512,
                       overlap_px=OVERLAP)
    assert exact.calibration["step"] == 1 and coarse.calibration["step"] == 2
    for col in ("evb_positive_area_pct", "extravascular_area_pct", "vessel_area_pct"):
        _close(exact.summary.iloc[0][col], whole[col], AREA_COUNT_RTOL, col)
        _close(coarse.summary.iloc[0][col], whole[col], 0.05, col)
    _close(coarse.summary.iloc[0]["threshold"], whole["threshold"], 0.02, "threshold")


def test_region_view_reads_the_box_whole_or_strided():
    from histoquant.io import Image

    data = np.arange(400 * 300, dtype=np.uint16).reshape(400, 300)
    img = Image(data, pixel_size_um=1.0, modality="fluorescence")
    m = np.zeros((400, 300), bool)
    m[100:200, 50:150] = True
    view = cal_mod.region_view(img, {"r": m}, margin_px=10)
    assert view.step == 1 and view.origin_yx == (90, 40)
    np.testing.assert_array_equal(view.image.data, data[90:210, 40:160])
    assert view.masks["r"].sum() == m.sum()
    small = cal_mod.region_view(img, {"r": m}, margin_px=10, budget_px=120 * 120 // 9)
    assert small.step == 3 and small.image.pixel_size_um == 3.0
    np.testing.assert_array_equal(small.image.data, data[90:210:3, 40:160:3])
    np.testing.assert_array_equal(small.masks["r"], m[90:210:3, 40:160:3])


def _whole_window(h: int, w: int):
    from histoquant.tiling import Window

    return Window(0, h, 0, w, 0, h, 0, w)


def test_reference_background_tiles_need_not_hold_the_reference_region(evans_image):
    # background_method='reference': the reference region's median is an image-wide
    # statistic; a tile far from that region applies it instead of refusing to run.
    _, truth = make_evans_blue_phantom((N, N), 0.5, seed=0, leak_area_pct=2.0)
    grey = truth["grey_matter"]
    white = ~grey
    white[:, N // 3:] = False  # the reference region in the left third only
    regions = {"grey_matter": grey, "white_matter": white}
    params = EB_PARAMS.replace(background_method="reference")
    whole = eb.run(evans_image, regions, params).summary.set_index("region")
    tiled = run_tiled(eb.SPEC, evans_image, MaskSource(regions, (1.0, 1.0)), params=params,
                      tile_px=512, overlap_px=OVERLAP)
    t = tiled.summary.set_index("region")
    for col in ("evb_positive_area_um2", "background", "threshold"):
        _close(t.loc["grey_matter", col], whole.loc["grey_matter", col], AREA_COUNT_RTOL, col)


def test_large_region_calibrates_on_a_pyramid_level_of_the_working_pixel(tmp_path,
                                                                         monkeypatch):
    # Over the budget, motor-neurons reads a pyramid level no coarser than its 1 µm working
    # pixel (level 2× at 0.5 µm/px): the level's pixels are the working pixels' means, so
    # the neuropil noise that sets the threshold stays that of the whole run.
    from histoquant.io import read_image
    from histoquant.io.writers import write_ome_zarr

    image, _ = nissl_phantom((1024, 1024), 0.5, seed=0)
    write_ome_zarr(image, tmp_path / "pyr.zarr", levels=3, chunk=256)
    stored = read_image(tmp_path / "pyr.zarr")
    whole = mn.run(image)
    full = mn.calibrate(image)
    monkeypatch.setattr(cal_mod, "CALIBRATION_BUDGET_PX", 300_000)
    tiled = run_tiled(mn.SPEC, stored, WholeImage(), tile_px=512, overlap_px=OVERLAP)
    c = tiled.calibration
    assert c["step"] == 2 and c["pyramid_level_downsample"] == 2
    assert c["neuropil_sd"] == pytest.approx(full["neuropil_sd"], rel=0.03)
    t, w = tiled.summary.iloc[0], whole.summary.iloc[0]
    assert int(t["n_motor_neurons"]) == int(w["n_motor_neurons"])
    _close(t["n_somata"], w["n_somata"], AREA_COUNT_RTOL, "n_somata")


def test_a_tiled_batch_records_its_calibration_in_run_json(tmp_path):
    # A whole slide measured tile by tile: run.json says which image-wide statistics every
    # tile was measured with (scalars; grids left out), and the table holds that threshold.
    from histoquant.batch import run_batch
    from histoquant.io import write_ome_zarr

    image, _ = make_evans_blue_phantom((768, 768), 0.5, seed=2)
    folder = tmp_path / "study"
    folder.mkdir()
    write_ome_zarr(image, folder / "R1_L4_evb.ome.zarr", levels=2, chunk=128)
    (folder / "samples.csv").write_text("file,animal,group,level\nR1_L4_evb.ome.zarr,R1,g,L4\n")
    (folder / "study.yaml").write_text(
        "assays: {evans-blue: {params: {dark_level: 100}}}\n"
        "slides: {tile_px: 256, overlap_um: 50, in_memory_mb: 0, max_direct_mpx: 0.1}\n")
    report = run_batch(folder, tmp_path / "out")
    assert report.ok, report.errors
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    (unit,) = run["units"]
    assert unit["mode"] == "tiled" and unit["n_tiles"] == 9
    ((_, stats),) = unit["calibration"].items()
    assert stats["assay"] == "evans-blue" and stats["step"] == 1
    assert not any(isinstance(v, (list, dict)) for v in stats.values())
    sections = pd.read_csv(tmp_path / "out" / "sections.csv")
    assert sections["threshold"].iloc[0] == pytest.approx(stats["threshold"])
    whole = eb.run(image, None, EB_PARAMS).summary.iloc[0]
    assert sections["evb_positive_area_pct"].iloc[0] == pytest.approx(
        whole["evb_positive_area_pct"], rel=AREA_COUNT_RTOL)


# --- gfp-cells ----------------------------------------------------------------------------------

#: Counts of the gfp-cells summary that must be equal, tiled and whole.
GFP_COUNTS = ("n_gfp_cells", "n_gfp_objects", "n_gfp_nucleated", "n_rejected_size",
              "n_rejected_thin", "n_rejected_texture", "n_rejected_low_contrast",
              "n_rejected_padding_edge")


@pytest.fixture(scope="module")
def gfp_image():
    from histoquant.synthetic.gfp import make_gfp_phantom

    # GFP, DAPI and an autofluorescence reference: lipofuscin and red blood cells are
    # rejected as autofluorescent, on tissue whose autofluorescence varies over the image
    image, truth = make_gfp_phantom((N, N), 0.5, n_cells=12, n_touching_pairs=2,
                                    n_anucleate=2, n_lipofuscin=40, n_rbc=60, seed=0)
    return image, truth


def test_gfp_whole_run_is_calibrate_then_apply():
    from histoquant.assays import gfp_cells as gfp
    from histoquant.synthetic.gfp import make_gfp_phantom

    image, _ = make_gfp_phantom((768, 768), 0.5, n_cells=6, n_touching_pairs=1,
                                n_anucleate=1, seed=1)
    whole = gfp.run(image)
    cal = json.loads(json.dumps(gfp.calibrate(image)))
    again = gfp.run(image, calibration=cal)
    pd.testing.assert_frame_equal(again.summary, whole.summary, check_exact=True)
    pd.testing.assert_frame_equal(again.objects, whole.objects, check_exact=True)
    np.testing.assert_array_equal(again.labels, whole.labels)
    assert cal["step"] == 1 and cal["dapi_threshold"] is not None


@pytest.mark.parametrize("tile_px", TILES)
def test_gfp_cells_tiled_equals_whole(gfp_image, tile_px):
    from histoquant.assays import gfp_cells as gfp

    image, truth = gfp_image
    whole_res = gfp.run(image)
    whole = whole_res.summary.iloc[0]
    tiled = run_tiled(gfp.SPEC, image, WholeImage(), tile_px=tile_px, overlap_px=OVERLAP)
    json.dumps(tiled.calibration)
    t = tiled.summary.iloc[0]
    assert int(whole["n_gfp_cells"]) == truth.n_gfp_cells
    assert int(whole["n_rejected_autofluorescent"]) >= 30  # something to reject
    for col in GFP_COUNTS:
        assert int(t[col]) == int(whole[col]), f"{col}: tiled {t[col]} vs whole {whole[col]}"
    for col in ("region_area_mm2", "gfp_cells_per_mm2"):
        _close(t[col], whole[col], AREA_COUNT_RTOL, col)
    assert t["flag"] == whole["flag"]
    # The objects: every object of the whole run narrower than the overlap is found by the
    # tile of its centre, at the same place, with the same area and class (the whole
    # image's background, noise and reference background; the whole image's detection
    # regions). The tissue's own autofluorescent sheet (one object of ~54,000 µm², far
    # wider than the overlap) is cut into one piece per tile until objects are stitched
    # across tiles: it is the only difference.
    from scipy.spatial import cKDTree

    w, o = whole_res.objects, tiled.objects
    limit = (OVERLAP * image.pixel_size_um) ** 2
    big = w["area_um2"] >= limit
    assert int(big.sum()) == 1
    xy = ["centroid_y_um", "centroid_x_um"]
    d, i = cKDTree(o[xy].to_numpy()).query(w.loc[~big, xy].to_numpy())
    assert (d < 0.5).all(), "objects of the whole run missing from the tiled run"
    matched = o.iloc[i]
    np.testing.assert_allclose(matched["area_um2"], w.loc[~big, "area_um2"], rtol=1e-9)
    assert list(matched["class"]) == list(w.loc[~big, "class"])
    pieces = o.drop(index=o.index[i])
    assert (pieces["area_um2"] >= 0.5 * limit).all()
    assert int(t["n_rejected_autofluorescent"]) - int(whole["n_rejected_autofluorescent"]) \
        == int((pieces["class"] == "autofluorescent").sum()) - 1
