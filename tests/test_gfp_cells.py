"""GFP+ cell assay: counts against phantom truth, decoy rejection, bad input, aggregation, CLI,
and the nucleus segmentation on real images (skipped when ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histoquant.assays.base import get_assay
from histoquant.assays.gfp_cells import GfpCellParams, aggregate_by_level, normalize_level, run
from histoquant.errors import ChannelError, EmptyImageError, ParamsError, PixelSizeError
from histoquant.io import Image, read_image, write_ome_tiff
from histoquant.measure.scores import match_labels
from histoquant.segment.nuclei import segment_nuclei
from histoquant.segment.statistics import block_mean
from histoquant.synthetic.gfp import make_example, make_gfp_phantom

SEEDS = range(5)


def _phantom(seed: int, **kw):
    kw = {"n_cells": 6, "n_touching_pairs": 1, "n_anucleate": 1, **kw}
    return make_gfp_phantom((1024, 1024), 0.5, seed=seed, **kw)


def _counted_labels(result) -> set[int]:
    obj = result.objects.drop_duplicates("label")
    return set(obj.loc[obj["class"] == "gfp_cell", "label"].astype(int))


def _decoys_counted(result, truth) -> tuple[int, int]:
    """(decoys overlapped by a counted cell, decoys)."""
    lab = np.asarray(result.labels)
    counted = _counted_labels(result)
    hit = 0
    for d in truth.decoys["label"]:
        under = set(np.unique(lab[truth.decoy_labels == d]).tolist()) - {0}
        hit += bool(under & counted)
    return hit, len(truth.decoys)


@pytest.fixture(scope="module")
def phantom_runs():
    out = []
    for seed in SEEDS:
        image, truth = _phantom(seed)
        out.append((image, truth, run(image)))
    return out


def test_count_matches_truth_within_tolerance(phantom_runs):
    errors = []
    for _, truth, res in phantom_runs:
        n = int(res.summary["n_gfp_cells"].iloc[0])
        tol = max(1, round(0.05 * truth.n_gfp_cells))
        assert abs(n - truth.n_gfp_cells) <= tol, (n, truth.n_gfp_cells)
        errors.append(abs(n - truth.n_gfp_cells))
    # over the five phantoms, misses are the exception
    assert sum(errors) <= 2


def test_counted_cells_are_true_cells(phantom_runs):
    for _, truth, res in phantom_runs:
        lab = np.asarray(res.labels)
        for label in _counted_labels(res):
            under = truth.cell_labels[lab == label]
            assert (under > 0).mean() > 0.5, "a counted object is not a GFP+ cell"


def test_autofluorescent_decoys_rejected_and_kept(phantom_runs):
    hit = total = 0
    for _, truth, res in phantom_runs:
        h, t = _decoys_counted(res, truth)
        hit += h
        total += t
        rejected = res.objects[res.objects["class"] == "autofluorescent"]
        # rejected objects are rows of the table, not dropped
        assert int(res.summary["n_rejected_autofluorescent"].iloc[0]) == len(rejected) > 0
        assert set(rejected["reason"]) <= {"reference_ratio", "granular",
                                           "reference_ratio+granular"}
    assert 1 - hit / total >= 0.95, f"{hit}/{total} decoys counted"


def test_touching_cells_are_separated(phantom_runs):
    for _, truth, res in phantom_runs:
        lab = np.asarray(res.labels)
        counted = _counted_labels(res)
        pair = truth.cells[truth.cells["touching"]]
        owners = []
        for label in pair["label"]:
            under, n = np.unique(lab[truth.cell_labels == label], return_counts=True)
            owners.append(int(under[np.argmax(n)]))
        assert owners[0] != owners[1] and set(owners) <= counted


def test_cell_without_nucleus_is_listed_not_counted(phantom_runs):
    for _, truth, res in phantom_runs:
        s = res.summary.iloc[0]
        anucleate = truth.cells[~truth.cells["nucleated"]]
        lab = np.asarray(res.labels)
        under, n = np.unique(lab[truth.cell_labels == int(anucleate["label"].iloc[0])],
                             return_counts=True)
        row = res.objects[res.objects["label"] == under[np.argmax(n)]]
        assert row["class"].iloc[0] == "no_nucleus"
        assert s["n_gfp_objects"] == s["n_gfp_nucleated"] + (
            res.objects["class"] == "no_nucleus").sum()
        assert s["n_gfp_cells"] == s["n_gfp_nucleated"]


def test_objects_table_units_and_density(phantom_runs):
    _, _, res = phantom_runs[0]
    obj = res.objects
    for col in ("centroid_y_um", "centroid_x_um", "area_um2", "reference_ratio",
                "granularity", "nucleated", "class", "region"):
        assert col in obj.columns
    cells = obj[obj["class"] == "gfp_cell"]
    # MSC-sized: 13–30 µm in the phantom
    d = cells["equivalent_diameter_um"]
    assert d.between(10, 36).all()
    s = res.summary.iloc[0]
    assert s["gfp_cells_per_mm2"] == pytest.approx(s["n_gfp_cells"] / s["region_area_mm2"])
    assert (obj["reference_ratio"][obj["class"] == "gfp_cell"] < 0.3).all()


def test_no_gfp_cells_means_zero_counted():
    for seed in (100, 101, 102):
        image, truth = make_gfp_phantom((1024, 1024), 0.5, n_cells=0, n_lipofuscin=14,
                                        n_rbc=24, seed=seed)
        res = run(image)
        assert truth.n_gfp_objects == 0
        assert int(res.summary["n_gfp_cells"].iloc[0]) == 0
        assert int(res.summary["n_gfp_objects"].iloc[0]) == 0
        assert int(res.summary["n_rejected_autofluorescent"].iloc[0]) > 10


def test_without_dapi_counts_gfp_objects():
    image, truth = _phantom(3)
    two = Image(image.data[..., 1:].copy(), axes="YXC", pixel_size_um=0.5,
                channel_names=("gfp", "reference"))
    res = run(two)
    s = res.summary.iloc[0]
    assert pd.isna(s["n_gfp_nucleated"])
    assert abs(int(s["n_gfp_cells"]) - truth.n_gfp_objects) <= 1
    assert "nucleated" not in res.objects.columns


def test_without_reference_granularity_still_rejects_lipofuscin():
    hit = total = 0
    for seed in (0, 1):
        image, truth = _phantom(seed)
        two = Image(image.data[..., :2].copy(), axes="YXC", pixel_size_um=0.5,
                    channel_names=("dapi", "gfp"))
        res = run(two)
        lab = np.asarray(res.labels)
        counted = _counted_labels(res)
        for d in truth.decoys.loc[truth.decoys["kind"] == "lipofuscin", "label"]:
            hit += bool(set(np.unique(lab[truth.decoy_labels == d]).tolist()) & counted)
            total += 1
        assert "reference_ratio" not in res.objects.columns
    assert hit / total <= 0.05


def test_rescaled_image_gives_same_counts():
    image, _ = _phantom(2)
    half = np.stack([block_mean(image.data[..., k], 2) for k in range(3)], -1)
    coarse = Image(np.rint(half).astype(np.uint16), axes="YXC", pixel_size_um=1.0,
                   channel_names=image.channel_names)
    a, b = run(image), run(coarse)
    cols = ["n_gfp_cells", "n_gfp_objects", "n_gfp_nucleated"]
    assert a.summary[cols].values.tolist() == b.summary[cols].values.tolist()
    area_a = a.objects.loc[a.objects["class"] == "gfp_cell", "area_um2"].sum()
    area_b = b.objects.loc[b.objects["class"] == "gfp_cell", "area_um2"].sum()
    assert area_b == pytest.approx(area_a, rel=0.05)


def test_regions_split_counts():
    image, _ = _phantom(0)
    h, w = image.shape_yx
    left = np.zeros((h, w), bool)
    left[:, : w // 2] = True
    res = run(image, regions={"left": left, "right": ~left})
    s = res.summary.set_index("region")
    assert s.loc["left", "n_gfp_cells"] + s.loc["right", "n_gfp_cells"] == \
        run(image).summary["n_gfp_cells"].iloc[0]
    assert s.loc["left", "region_area_mm2"] == pytest.approx(h * (w // 2) * 0.5 ** 2 / 1e6)
    cells = res.objects[res.objects["class"] == "gfp_cell"]
    assert (cells.loc[cells["region"] == "left", "centroid_x_um"] < w / 2 * 0.5).all()


def test_identifier_columns():
    image, _ = make_gfp_phantom((512, 512), 0.5, n_cells=1, n_lipofuscin=2, n_rbc=2, seed=5)
    res = run(image).set_ids(level="l3", section="s07", animal="R12")
    for table in (res.summary, res.objects):
        assert list(table.columns[:5]) == ["image", "animal", "level", "section", "region"]
        assert (table["level"] == "L3").all()
    assert normalize_level("4") == "L4" and normalize_level("T13") == "T13"


# ------------------------------------------------------------------------------- bad input


def test_missing_gfp_channel():
    image, _ = make_gfp_phantom((256, 256), 0.5, n_cells=1, n_lipofuscin=1, n_rbc=1)
    two = Image(image.data[..., [0, 2]].copy(), axes="YXC", pixel_size_um=0.5,
                channel_names=("dapi", "reference"))
    with pytest.raises(ChannelError, match="gfp"):
        run(two)
    with pytest.raises(ChannelError, match="out of range"):
        run(image, channels={"gfp": 7})


def test_reference_identical_to_gfp_is_refused():
    image, _ = make_gfp_phantom((256, 256), 0.5, n_cells=1, n_lipofuscin=1, n_rbc=1)
    with pytest.raises(ChannelError, match="GFP channel itself"):
        run(image, channels={"gfp": 1, "reference": 1})
    dup = image.data.copy()
    dup[..., 2] = dup[..., 1]
    with pytest.raises(ChannelError, match="same pixels"):
        run(Image(dup, axes="YXC", pixel_size_um=0.5, channel_names=image.channel_names))


def test_blank_and_nan_images():
    blank = np.full((256, 256, 3), 100, np.uint16)
    with pytest.raises(EmptyImageError, match="blank"):
        run(Image(blank, axes="YXC", pixel_size_um=0.5, channel_names=("dapi", "gfp", "ref")),
            channels={"reference": 2})
    arr = np.random.default_rng(0).normal(100, 5, (256, 256)).astype(np.float32)
    arr[10, 10] = np.nan
    with pytest.raises(EmptyImageError, match="NaN"):
        run(Image(arr, pixel_size_um=0.5))


def test_no_tissue_is_a_flagged_zero_row():
    rng = np.random.default_rng(1)
    noise = rng.normal(100, 4, (512, 512, 2)).clip(0).astype(np.uint16)
    res = run(Image(noise, axes="YXC", pixel_size_um=0.5, channel_names=("gfp", "reference")))
    s = res.summary.iloc[0]
    assert s["n_gfp_cells"] == 0 and s["flag"] == "no_tissue_or_signal"
    assert res.warnings and "no tissue" in res.warnings[0]


def test_pixel_size_required_and_params_checked():
    image, _ = make_gfp_phantom((256, 256), 0.5, n_cells=1, n_lipofuscin=1, n_rbc=1)
    with pytest.raises(PixelSizeError):
        run(Image(image.data, axes="YXC", channel_names=image.channel_names))
    with pytest.raises(ParamsError):
        GfpCellParams(min_cell_diameter_um=30, max_cell_diameter_um=20)
    with pytest.raises(ParamsError):
        run(image, params={"max_reference_ratio": -1})


# ------------------------------------------------------------------------------- aggregation


def _summary_rows():
    rows = []
    for animal, level, section, n in [("R1", "L2", "a", 2), ("R1", "L2", "b", 0),
                                      ("R1", "L3", "c", 1), ("R1", "l3", "d", 0),
                                      ("R1", "L3", "e", 0), ("R2", "L2", "f", 5)]:
        rows.append({"image": f"img_{section}", "animal": animal, "level": level,
                     "section": section, "region": "tissue", "region_area_mm2": 8.0,
                     "n_gfp_cells": n, "n_gfp_objects": n, "n_gfp_nucleated": n,
                     "n_rejected_autofluorescent": 3})
    return pd.DataFrame(rows)


def test_aggregate_counts_zero_cell_sections():
    out = aggregate_by_level(_summary_rows(), levels=("L2", "L3", "L4"))
    r1 = out[out["animal"] == "R1"].set_index("level")
    assert r1.loc["L2", "n_sections"] == 2 and r1.loc["L2", "n_gfp_cells"] == 2
    assert r1.loc["L3", "n_sections"] == 3 and r1.loc["L3", "n_gfp_cells"] == 1
    assert r1.loc["L3", "gfp_cells_per_section"] == pytest.approx(1 / 3)
    assert r1.loc["L3", "gfp_cells_per_mm2"] == pytest.approx(1 / 24)
    assert list(out.columns[:4]) == ["animal", "level", "region", "n_sections"]


def test_aggregate_from_objects_needs_sections():
    summary = _summary_rows()
    objects = pd.DataFrame({
        "image": ["img_a", "img_a", "img_a", "img_c", "img_f"],
        "animal": ["R1", "R1", "R1", "R1", "R2"], "level": ["L2", "L2", "L2", "L3", "L2"],
        "section": ["a", "a", "a", "c", "f"], "region": ["tissue"] * 5,
        "class": ["gfp_cell", "gfp_cell", "autofluorescent", "gfp_cell", "gfp_cell"],
        "nucleated": [True, True, pd.NA, True, True]})
    with pytest.raises(ParamsError, match="sections"):
        aggregate_by_level(objects)
    out = aggregate_by_level(objects, sections=summary).set_index(["animal", "level"])
    assert out.loc[("R1", "L3"), "n_sections"] == 3
    assert out.loc[("R1", "L3"), "n_gfp_cells"] == 1
    assert out.loc[("R1", "L2"), "n_rejected_autofluorescent"] == 1
    with pytest.raises(ParamsError, match="level"):
        aggregate_by_level(_summary_rows().drop(columns="level"))


def test_aggregate_real_run_tables():
    results = []
    for k, (seed, level) in enumerate([(0, "L2"), (1, "L2"), (100, "L3")]):
        cells = 0 if seed == 100 else 3
        image, _ = make_gfp_phantom((512, 512), 0.5, n_cells=cells, n_lipofuscin=3, n_rbc=4,
                                    seed=seed)
        results.append(run(image).set_ids(level=level, section=f"s{k}", animal="R1").summary)
    out = aggregate_by_level(pd.concat(results)).set_index("level")
    assert out.loc["L3", "n_sections"] == 1 and out.loc["L3", "n_gfp_cells"] == 0
    assert out.loc["L2", "n_sections"] == 2


# ------------------------------------------------------------------------------- CLI, example, QC


def test_cli_with_level_and_meta(tmp_path):
    from histoquant.cli import main

    image, truth = make_gfp_phantom((768, 768), 0.5, n_cells=3, n_lipofuscin=4, n_rbc=6,
                                    seed=7)
    path = write_ome_tiff(image, tmp_path / "s01.ome.tif")
    rc = main(["gfp-cells", str(path), "--channel", "gfp=gfp", "--channel", "dapi=0",
               "--channel", "reference=reference", "--level", "L4", "--meta", "animal=R3",
               "-o", str(tmp_path / "out"), "-q"])
    assert rc == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    objects = pd.read_csv(tmp_path / "out" / "objects.csv")
    assert summary.loc[0, "level"] == "L4" and summary.loc[0, "animal"] == "R3"
    assert int(summary.loc[0, "n_gfp_cells"]) == pytest.approx(truth.n_gfp_cells, abs=1)
    assert (objects["level"] == "L4").all()
    assert (tmp_path / "out" / "qc" / "s01.png").exists()
    assert (tmp_path / "out" / "labels" / "s01.tif").exists()
    assert get_assay("gfp-cells").name == "gfp-cells"


def test_make_example_is_small_and_readable(tmp_path):
    paths = make_example(tmp_path / "gfp_example.ome.tif")
    assert paths["image"].stat().st_size < 2_000_000
    image = read_image(paths["image"])
    assert image.channel_names == ("dapi", "gfp", "reference")
    assert image.pixel_size_um == pytest.approx(0.5)
    cells = pd.read_csv(paths["cells"])
    res = run(image)
    assert abs(int(res.summary["n_gfp_cells"].iloc[0]) - int(cells["nucleated"].sum())) <= 1


def test_qc_marks_kept_and_rejected(phantom_runs):
    _, _, res = phantom_runs[0]
    qc = res.qc
    assert qc.dtype == np.uint8 and qc.ndim == 3
    colours = {tuple(c) for c in qc.reshape(-1, 3)[::7]}
    assert (0, 158, 115) in colours          # counted cells
    assert (213, 94, 0) in colours           # autofluorescent


def test_segment_nuclei_on_phantom_nuclei():
    image, truth = make_gfp_phantom((768, 768), 0.5, n_cells=2, n_lipofuscin=3, n_rbc=0,
                                    edge_artefact=False, tissue_fraction=1.2, seed=11)
    lab = segment_nuclei(image.channel("dapi"), 0.5)
    score = match_labels(truth.nuclei_labels, lab)
    assert score.f1 >= 0.9, score


# ------------------------------------------------------------------------------- real images


@pytest.mark.realdata
def test_nucleus_segmentation_f1_on_real_nuclei(shared_data):
    import tifffile

    img = tifffile.imread(shared_data / "fluorescent_nuclei" / "img2d.tif")
    gt = tifffile.imread(shared_data / "fluorescent_nuclei" / "mask2d.tif")
    # pixel size unknown: 0.5 µm assumed, which makes the nuclei 6–17 µm across
    lab = segment_nuclei(img, 0.5)
    score = match_labels(gt, lab, 0.5)
    print(f"fluorescent_nuclei: F1={score.f1:.3f} TP={score.true_positives} "
          f"FP={score.false_positives} FN={score.false_negatives}")
    assert score.f1 >= 0.90


@pytest.mark.realdata
def test_gfp_positive_fraction_on_reporter_embryo(shared_data):
    path = shared_data / "gfp_dapi" / "tie2cre_mtmg_e13_5.tif"
    image = read_image(path)
    assert image.pixel_size_um == pytest.approx(0.496, abs=0.001)
    # embryonic nuclei are small and packed; membrane GFP: call nuclei by their GFP ring
    res = run(image, channels={"gfp": 1, "dapi": 2},
              params={"count_nuclei": True, "min_nucleus_diameter_um": 4.0,
                      "max_nucleus_diameter_um": 12.0, "min_cell_diameter_um": 5.0,
                      "max_cell_diameter_um": 25.0, "background_scale_um": 30.0})
    s = res.summary.iloc[0]
    ref = pd.read_csv(shared_data / "gfp_dapi" / "reference_results.csv")
    n_dapi, n_gfp = (ref["Label"] == "DAPI").sum(), (ref["Label"] == "GFP").sum()
    print(f"tie2cre: {s['n_gfp_positive_nuclei']}/{s['n_nuclei']} nuclei GFP+ "
          f"({s['gfp_positive_nuclei_pct']:.1f} %) over the whole image; reference macro "
          f"{n_gfp}/{n_dapi} ({100 * n_gfp / n_dapi:.1f} %) inside an unknown hand-drawn region")
    # 1024² px of dense E13.5 tissue at 0.5 µm: thousands of nuclei, a minority GFP+ overall
    assert 1000 <= s["n_nuclei"] <= 6000
    assert 10 <= s["gfp_positive_nuclei_pct"] <= 75


# ------------------------------------------------------------------ cell bodies, not fibres


# fibre brightness against the cells' 0.7-1.0: typical (real ChAT fibre networks: 0.3x the
# somata on average) and the bright tail (90th percentile 0.6x), a fibre about as bright as the
# soma it passes through
_FIBRES = {"dim": (0.15, 0.45), "bright": (0.5, 0.9)}


@pytest.fixture(scope="module", params=list(_FIBRES))
def fibre_run(request):
    from histoquant.synthetic.round_cells import make_cells_and_fibres

    image, truth = make_cells_and_fibres(seed=0, fibre_brightness=_FIBRES[request.param])
    return image, truth, run(image, channels={"gfp": 0})


def test_fibre_phantom_counts_exactly_the_cells(fibre_run):
    _, truth, res = fibre_run
    # 12 round somata in a connected network of 14 fibres, four of which pass through cells.
    # Every cell is counted, also on a fibre as bright as itself (the ring around such a soma
    # holds two arcs of the fibre: 10 of 12 counted when they set the ring's spread).
    lab = np.asarray(res.labels)
    counted = _counted_labels(res)
    for c in range(1, truth["n_cells"] + 1):
        under, n = np.unique(lab[truth["cell_labels"] == c], return_counts=True)
        assert int(under[np.argmax(n)]) in counted, f"cell {c} not counted"
    # At most two extra objects, each a fibre crossing (mostly fibre pixels): the crossings
    # whose opened core keeps 0.65 of its significance, at the 0.35 texture limit, and stands
    # out of a ring whose bulk is tissue as a soma on a fibre does
    n = int(res.summary["n_gfp_cells"].iloc[0])
    assert truth["n_cells"] <= n <= truth["n_cells"] + 2
    cells = set(np.unique(lab[truth["cell_labels"] > 0]).tolist())
    for label in counted - cells:
        assert truth["fibre_mask"][lab == label].mean() >= 0.25, label


def test_fibres_rejected_with_reason(fibre_run):
    _, truth, res = fibre_run
    obj = res.objects
    lab = np.asarray(res.labels)
    # the fibre pixels (outside cells) belong to rejected objects; a counted cell keeps
    # at most the stub of a fibre that runs into it (its rim, given back after the opening)
    counted = _counted_labels(res)
    owned = np.isin(lab[truth["fibre_mask"]], list(counted))
    assert owned.mean() < 0.05, owned.mean()
    # at most the fibre crossings of test_fibre_phantom_counts_exactly_the_cells
    mostly_fibre = [label for label in counted
                    if truth["fibre_mask"][lab == label].mean() >= 0.25]
    assert len(mostly_fibre) <= 2
    fibres = obj[obj["class"] == "fibre"]
    assert len(fibres) > 0
    assert fibres["reason"].str.contains("thin").any()
    s = res.summary.iloc[0]
    assert s["n_rejected_thin"] == obj["reason"].str.split("+").map(lambda t: "thin" in t).sum()
    for col in ("n_rejected_too_small", "n_rejected_too_large", "n_rejected_elongated",
                "n_rejected_low_solidity", "n_rejected_texture"):
        assert col in res.summary.columns


def test_elongated_decoys_rejected_as_elongated(fibre_run):
    _, truth, res = fibre_run
    lab = np.asarray(res.labels)
    obj = res.objects.drop_duplicates("label").set_index("label")
    for d in range(1, int(truth["decoy_labels"].max()) + 1):
        under, n = np.unique(lab[truth["decoy_labels"] == d], return_counts=True)
        row = obj.loc[int(under[np.argmax(n)])]
        # 60 x 10 µm: as wide as a small cell, six times longer
        assert row["class"] == "fibre" and "elongated" in row["reason"], (d, row["reason"])


def test_qc_mark_radius_is_the_equivalent_radius(fibre_run):
    from histoquant.assays.gfp_cells import QC_COLOURS, qc_mark_radius_px

    image, _, res = fibre_run
    px = image.pixel_size_um
    # 768² px is below the QC's 2048 px limit: display pixel = image pixel; the caption
    # band sits above the picture
    assert res.qc.shape[1] == 768
    band = res.qc.shape[0] - 768
    cells = res.objects[res.objects["class"] == "gfp_cell"]
    for _, row in cells.iterrows():
        radius = qc_mark_radius_px(row["equivalent_diameter_um"], px, 1)
        assert radius == round(row["equivalent_diameter_um"] / 2 / px)
        r, c = round(row["centroid_y_um"] / px), round(row["centroid_x_um"] / px)
        # circle_perimeter puts the ring's rightmost pixel exactly radius px from the centre
        assert tuple(res.qc[band + r, c + radius]) == QC_COLOURS["gfp_cell"]
    # a 20 µm cell at 1 µm/px is circled with a 10 px radius, not the 40 µm of the old mark
    assert qc_mark_radius_px(20.0, 1.0, 1) == 10
    assert qc_mark_radius_px(20.0, 0.5, 4) == 5


def test_shape_params_validated():
    with pytest.raises(ParamsError):
        GfpCellParams(max_elongation=0.5)
    with pytest.raises(ParamsError):
        GfpCellParams(min_solidity=1.5)


# ChAT sections: the failure of issue #14 (about 1,300 "cells" on a section with a few dozen
# cell bodies). By-eye count of 214_L1_ChAT (red channel, contrast stretched between the 1st
# and 99.95th percentile of tissue pixels, grey matter rows 200-950 / cols 600-1450 viewed
# in 250 px tiles at 3x, a soma counted in the tile that holds its centre): dorsal horns 8,
# intermediate zone and central canal 23 (two clusters of ~5 lateral to the grey commissure),
# ventral horns 7 -> 38 ChAT+ somata (+-5: dim profiles and cells inside clusters are
# uncertain). The white matter holds thousands of bright ChAT+ axon profiles (1-3 px dots)
# and the ventral roots packed axons; none is a soma.
CHAT_BY_EYE_214 = 38


@pytest.mark.realdata
def test_chat_section_counts_cell_bodies_not_fibres(shared_data):
    path = shared_data / "spinal_cord_fluorescent" / "chat" / "214_L1_ChAT.jpg"
    res = run(read_image(path), pixel_size_um=2.02, channels={"gfp": 0})
    s = res.summary.iloc[0]
    n = int(s["n_gfp_cells"])
    print(f"214_L1_ChAT: {n} counted (by eye {CHAT_BY_EYE_214}); rejected thin "
          f"{s['n_rejected_thin']}, texture {s['n_rejected_texture']}, elongated "
          f"{s['n_rejected_elongated']}, too small {s['n_rejected_too_small']}")
    # Before the body/fibre separation: 1,243 counted (33x the by-eye count); then 153
    # (4x); with the ring contrast and maxima count 115 (3x this count, 3.6x the located
    # by-eye estimate of test_chat_sections_against_by_eye_somata). Not yet within the 30 %
    # the issue aims at (see there for what is left); tighten when that is solved.
    assert CHAT_BY_EYE_214 * 0.7 <= n <= CHAT_BY_EYE_214 * 3.5
    assert s["n_rejected_thin"] > 5 * n
    counted = res.objects[res.objects["class"] == "gfp_cell"]
    # ChAT+ somata (motor neurons 20-30 µm, smaller interneurons) at 2 µm/px
    assert 12 <= counted["equivalent_diameter_um"].median() <= 30


@pytest.mark.realdata
def test_twophoton_planes_objects_are_cell_sized(shared_data):
    import tifffile

    files = sorted((shared_data / "gfp_twophoton" / "ch0").glob("*.tif"))[:15:5]
    assert files
    for f in files:
        plane = tifffile.imread(f)
        res = run(Image(plane.astype(np.float32), "YX", pixel_size_um=2.0),
                  channels={"gfp": 0})
        counted = res.objects[res.objects["class"] == "gfp_cell"]
        print(f"{f.name}: {len(counted)} counted, median diameter "
              f"{counted['equivalent_diameter_um'].median():.1f} µm")
        assert len(counted) > 0
        assert 8 <= counted["equivalent_diameter_um"].median() <= 25


# ------------------------------------------------------------------ padding is not tissue


def _padded(kind: str, arr: np.ndarray) -> np.ndarray:
    from histoquant.synthetic.artefacts import add_padding, round_field_of_view

    if kind == "black":
        return add_padding(arr, 150, 0.0)[0]
    if kind == "grey":   # a slide scanner's mid-grey canvas, brighter than the background
        return add_padding(arr, 150, 0.5)[0]
    # the outside of a round field of view, the whole phantom inside the disk
    return round_field_of_view(add_padding(arr, 200, 0.0)[0], 0.48)[0]


@pytest.fixture(scope="module")
def unpadded_fibre_run():
    from histoquant.synthetic.round_cells import make_cells_and_fibres

    image, truth = make_cells_and_fibres(seed=0)
    return image, truth, run(image, channels={"gfp": 0})


def _cells_counted(res, truth, offset: tuple[int, int]) -> int:
    """How many of the phantom's cells are counted, the phantom at ``offset`` µm in the image
    (the phantom's pixel is 1 µm)."""
    counted = res.objects[res.objects["class"] == "gfp_cell"]
    cy, cx = (counted["centroid_y_um"] - offset[0]), (counted["centroid_x_um"] - offset[1])
    return sum(bool((np.hypot(cy - y, cx - x) < 5).any()) for y, x, _ in truth["cells"])


@pytest.mark.parametrize("kind", ["black", "grey", "round"])
def test_padding_is_neither_tissue_nor_statistics(unpadded_fibre_run, kind):
    image, truth, base = unpadded_fibre_run
    padded = Image(_padded(kind, np.asarray(image.data)), "YX",
                   pixel_size_um=image.pixel_size_um)
    res = run(padded, channels={"gfp": 0})
    s, s0 = res.summary.iloc[0], base.summary.iloc[0]
    # before padding was excluded: black 23, grey 13, round 33 counted against 13 unpadded,
    # the noise σ 15 % low (black) or 2.8x high (grey). Every cell is counted in both; the
    # totals differ by at most one fibre crossing at the 0.35 texture limit (0.349 unpadded,
    # 0.370 in the round field: see test_fibre_phantom_counts_exactly_the_cells)
    pad = 200 if kind == "round" else 150
    assert _cells_counted(base, truth, (0, 0)) == truth["n_cells"]
    assert _cells_counted(res, truth, (pad, pad)) == truth["n_cells"]
    assert abs(int(s["n_gfp_cells"]) - int(s0["n_gfp_cells"])) <= 1
    sigma, sigma0 = res.extra["gfp_noise_sigma_median"], base.extra["gfp_noise_sigma_median"]
    assert sigma == pytest.approx(sigma0, rel=0.03)
    # the measured area is the phantom's, not the canvas (a black canvas also takes the
    # phantom's own clipped-zero pixels along its edge: at most a few per cent)
    assert s["region_area_mm2"] == pytest.approx(s0["region_area_mm2"], rel=0.03)
    assert res.extra["padding_fraction"] > 0.4


# ------------------------------------------------------------------ clumps of dots are not cells


def test_dot_clumps_are_not_cells():
    from histoquant.synthetic.round_cells import make_cells_and_dot_clumps

    new_reasons = 0
    for seed in range(3):
        image, truth = make_cells_and_dot_clumps(seed=seed)
        res = run(image, channels={"gfp": 0})
        lab = np.asarray(res.labels)
        counted = _counted_labels(res)
        obj = res.objects.drop_duplicates("label").set_index("label")
        for c in range(1, truth["n_cells"] + 1):
            under, n = np.unique(lab[truth["cell_labels"] == c], return_counts=True)
            assert int(under[np.argmax(n)]) in counted, (seed, "cell", c)
        for c in range(1, truth["n_clumps"] + 1):
            under = set(np.unique(lab[truth["clump_labels"] == c]).tolist()) - {0}
            assert not under & counted, (seed, "clump", c)
            for label in under:
                reason = str(obj.loc[label, "reason"])
                new_reasons += "low_contrast" in reason or "punctate" in reason
        assert int(res.summary["n_gfp_cells"].iloc[0]) == truth["n_cells"]
        # the new columns are measured on every object that could still be a cell
        cells = res.objects[res.objects["class"] == "gfp_cell"]
        assert (cells["ring_contrast"] >= 1.5).all() and (cells["n_maxima"] >= 1).all()
    # the clumps are told apart by standing out of the dots around them little and by their
    # many maxima (texture alone let one of the twelve through)
    assert new_reasons >= 6


def test_touching_cells_keep_their_ring_contrast(phantom_runs):
    # a touching neighbour is left out of a cell's ring: with it in, both cells of a pair
    # measured 0.4-1.9 and were lost as low_contrast
    for _, truth, res in phantom_runs:
        lab = np.asarray(res.labels)
        obj = res.objects.drop_duplicates("label").set_index("label")
        for _, c in truth.cells[truth.cells["touching"]].iterrows():
            under, n = np.unique(lab[truth.cell_labels == c["label"]], return_counts=True)
            row = obj.loc[int(under[np.argmax(n)])]
            assert row["ring_contrast"] > 5, row["ring_contrast"]


# ------------------------------------------------------------------ ChAT sections, every soma

CHAT_SECTIONS = ("214_L1", "238_L2", "263_L4", "280_L5", "290_L6")


@pytest.fixture(scope="module")
def chat_somata():
    from pathlib import Path

    refs = Path(__file__).resolve().parents[1] / "benchmarks" / "real_data_refs"
    return pd.read_csv(refs / "chat_somata_points.csv")


@pytest.mark.realdata
@pytest.mark.parametrize("section", CHAT_SECTIONS)
def test_chat_sections_against_by_eye_somata(shared_data, chat_somata, section):
    from scipy.spatial import cKDTree

    path = shared_data / "spinal_cord_fluorescent" / "chat" / f"{section}_ChAT.jpg"
    image = read_image(path)
    # data README: 2.02 µm/px for the 1,200- and 1,070-row images, 2.30 for the 750-row ones
    px = 2.30 if image.shape_yx[0] <= 800 else 2.02
    res = run(image, pixel_size_um=px, channels={"gfp": 0})
    pts = chat_somata[chat_somata["section"] == section]
    clear = pts[pts["certainty"] == "clear"]
    estimate = len(clear) + (len(pts) - len(clear)) / 2
    cells = res.objects[res.objects["class"] == "gfp_cell"]
    n = len(cells)
    tree = cKDTree(cells[["centroid_y_um", "centroid_x_um"]].to_numpy())
    d, _ = tree.query(clear[["row_px", "col_px"]].to_numpy() * px)
    found = float((d <= 14.0).mean())
    s = res.summary.iloc[0]
    print(f"{section}: {n} counted, by eye {len(clear)}-{len(pts)} (estimate {estimate:.0f}); "
          f"clear somata found {found:.2f}; rejected low_contrast "
          f"{s['n_rejected_low_contrast']}, punctate {s['n_rejected_punctate']}, padding_edge "
          f"{s['n_rejected_padding_edge']}")
    # Before issue #14: 1,000-1,300 counted per section; before the ring contrast: 154-198
    # (2.6-5x the by-eye estimate). Now 92-123: still 1.7-3.6x. The rest is mostly single
    # small blobs in the white matter and grey-matter fibre junctions, as round, as bright
    # against their ring and as single-peaked as the small cells of the two-photon planes,
    # which stricter settings cut by up to a half. Tighten when that is solved.
    assert len(clear) <= n <= 4 * estimate
    assert found >= 0.55
    assert s["n_rejected_low_contrast"] + s["n_rejected_punctate"] > n / 2
