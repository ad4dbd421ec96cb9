"""The anatomy assay: summary rows, bad input as flagged rows, CLI outputs, region round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histoquant.assays.anatomy import SPEC, SUMMARY_COLUMNS, run
from histoquant.assays.base import get_assay
from histoquant.errors import ParamsError
from histoquant.io import as_image, write_ome_tiff
from histoquant.measure.scores import dice
from histoquant.rois import read_regions
from histoquant.synthetic.cord import cord_section, cord_slide


@pytest.fixture(scope="module")
def phantom():
    return cord_section(10.0, seed=21, angle_deg=-15.0)


def test_summary_has_one_row_per_section_with_units(phantom):
    res = run(phantom.image)
    assert list(res.summary.columns) == list(SUMMARY_COLUMNS)
    row = res.summary.iloc[0]
    assert row["section"] == 1 and row["status"] == "ok" and row["flags"] == ""
    truth = phantom.truth(1)
    px_mm2 = (10.0 / 1000) ** 2
    assert row["grey_matter_area_mm2"] == pytest.approx(truth["grey_matter"].sum() * px_mm2,
                                                        rel=0.05)
    assert row["ventral_direction"] == "down"
    assert row["orientation_angle_deg"] == pytest.approx(-15.0, abs=5)
    assert row["quality_score"] > 0.8
    assert res.labels.shape == phantom.image.shape_yx
    assert set(np.unique(res.labels)) <= {0, 11, 12, 13, 14, 15, 16}
    assert res.qc.dtype == np.uint8
    assert {"tissue", "grey_matter", "ventral_horn_left"} <= set(res.objects["region"])
    assert get_assay("anatomy") is SPEC


def test_fluorescence_channel_role():
    ph = cord_section(10.0, seed=22, angle_deg=90.0, modality="fluorescence")
    res = run(ph.image, channels={"tissue": 0})
    row = res.summary.iloc[0]
    assert row["ventral_direction"] == "right" and row["status"] == "ok"


def test_no_tissue_is_a_flagged_row_not_an_exception():
    rng = np.random.default_rng(1)
    blank = as_image(rng.normal(235, 4, (300, 300, 3)).clip(0, 255).astype(np.uint8), 10.0)
    res = run(blank)
    assert len(res.summary) == 1
    row = res.summary.iloc[0]
    assert row["status"] == "no_tissue" and row["quality_score"] == 0.0
    assert pd.isna(row["section"])
    assert res.labels.max() == 0 and res.extra["regions"] == []


def test_section_cut_at_the_edge_is_flagged(phantom):
    img = phantom.image
    _, w = img.shape_yx
    cut = as_image(np.ascontiguousarray(img.data[:, : int(w * 0.42)]), 10.0)  # lose a third
    res = run(cut)
    row = res.summary.iloc[0]
    assert "touches_edge" in row["flags"] and row["status"] == "flagged"
    assert row["quality_score"] < 0.6
    full = run(img).summary.iloc[0]["quality_score"]
    assert row["quality_score"] < full


def test_fragment_without_canal_is_flagged(phantom):
    img = phantom.image
    canal_c = int(phantom.sections[0]["canal_rc"][1])
    frag = img.data[:, canal_c + 60:].copy()   # lateral part of the cord only
    res = run(as_image(frag, 10.0))
    assert len(res.summary) >= 1
    row = res.summary.iloc[0]
    assert row["status"] in ("flagged", "no_section")
    if row["status"] == "flagged":
        assert {"touches_edge", "no_canal", "low_quality"} <= set(row["flags"].split(";"))
        assert row["quality_score"] < 0.6


def test_ventral_param_validation():
    with pytest.raises(ParamsError, match="ventral"):
        SPEC.params_cls.from_dict({"ventral": "sideways"})
    assert SPEC.params_cls.from_dict({"ventral": "45"}).ventral_angle == 45.0
    assert SPEC.params_cls.from_dict({"ventral": "Up"}).ventral_angle == 180.0


def test_cli_writes_regions_and_they_round_trip(tmp_path, phantom):
    from histoquant.cli import main

    path = write_ome_tiff(phantom.image, tmp_path / "cord.ome.tif")
    out = tmp_path / "out"
    assert main(["anatomy", str(path), "-o", str(out), "--ventral", "down", "-q"]) == 0
    for rel in ("summary.csv", "objects.csv", "labels/cord.tif", "qc/cord.png",
                "regions/cord.geojson", "regions/cord.zip", "run.json"):
        assert (out / rel).exists(), rel
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "orientation_source"] == "hint"
    truth = phantom.truth(1)
    shape = phantom.image.shape_yx
    for suffix in ("geojson", "zip"):
        regions = {r.name: r for r in read_regions(out / "regions" / f"cord.{suffix}")}
        assert "ventral_horn_left" in regions
        vh = regions["ventral_horn_left"].to_mask(shape)
        assert dice(vh, truth["ventral_horn_left"]) >= 0.85
    # a corrected region file is fed back to an assay as --regions
    from histoquant.assays.base import resolve_regions

    masks = resolve_regions(phantom.image, out / "regions" / "cord.geojson")
    assert dice(masks["grey_matter"], truth["grey_matter"]) >= 0.9


def test_cli_mirrored_flag_maps_into_params(tmp_path):
    from histoquant.cli import main

    ph = cord_slide(2, 20.0, seed=23, columns=2)
    path = write_ome_tiff(ph.image, tmp_path / "slide.ome.tif")
    out = tmp_path / "out"
    assert main(["anatomy", str(path), "-o", str(out), "--mirrored", "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["section"]) == [1, 2] and summary["mirrored"].all()
    regions = read_regions(out / "regions" / "slide.geojson")
    assert {"s1_grey_matter", "s2_grey_matter"} <= {r.name for r in regions}


def test_species_param_is_validated():
    from histoquant.anatomy import AnatomyParams
    from histoquant.errors import ParamsError

    assert AnatomyParams().species == "auto"
    assert AnatomyParams(species="mouse").section_area_floor_mm2 < AnatomyParams(
        species="rat").section_area_floor_mm2
    assert AnatomyParams(min_section_area_mm2=0.5).section_area_floor_mm2 == 0.5
    with pytest.raises(ParamsError):
        AnatomyParams.from_dict({"species": "cat"})
