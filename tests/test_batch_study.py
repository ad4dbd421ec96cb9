"""A whole phantom study through the batch: per-animal numbers equal the truth.

3 groups × 4 animals × 3 spinal levels × 2 sections; some levels are two sections on one
pyramidal whole-slide OME-TIFF (found and measured tile by tile), some are PNGs whose pixel
size only the sample sheet gives. The toy blob assay counts the phantom's cells exactly, so
every count in the animal table (tables/blobs__animals.csv) must equal the truth.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from histoquant.output import file_sha256
from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register

GROUPS = ["vehicle", "MSC-single", "MSC-repeated"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    truth = write_phantom_study(folder, groups=GROUPS, seed=7)
    (folder / "notes.txt").write_text("lab notes, not an image")
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        from histoquant.batch import run_batch

        report = run_batch(folder, out)
    return folder, out, truth, report


def test_the_run_succeeds_and_notes_the_non_image(study):
    _, _, truth, report = study
    assert report.ok and bool(report)
    assert report.n_units == truth["file"].nunique()
    assert any("notes.txt" in n for n in report.notes)


def test_animals_table_equals_truth(study):
    _, out, truth, _ = study
    animals = pd.read_csv(out / "tables" / "blobs__animals.csv",
                          dtype={"animal": str, "level": str})
    assert list(animals.columns[:6]) == ["animal", "group", "level", "region", "assay",
                                         "n_sections"]
    assert len(animals) == 12 * 3  # animal × level, one region
    truth = truth.assign(density=truth["n_cells"] / truth["tissue_area_mm2"])
    want = truth.groupby(["animal", "level"]).agg(
        group=("group", "first"), n=("n_cells", "sum"), sections=("section", "size"),
        area=("tissue_area_mm2", "sum"), density=("density", "mean"))
    got = animals.set_index(["animal", "level"]).loc[want.index]
    assert (got["group"] == want["group"]).all()
    np.testing.assert_array_equal(got["n_blobs"].to_numpy(), want["n"].to_numpy())
    np.testing.assert_array_equal(got["n_sections"].to_numpy(), want["sections"].to_numpy())
    # areas come from the tissue outline found on the image (exact ellipse area as truth)
    np.testing.assert_allclose(got["region_area_mm2"], want["area"], rtol=0.01)
    np.testing.assert_allclose(got["blob_density_per_mm2"], want["density"], rtol=0.01)


def test_sections_table_has_one_row_per_section_with_metadata(study):
    _, out, truth, _ = study
    sections = pd.read_csv(out / "sections.csv", dtype=str)
    assert list(sections.columns[:8]) == ["image", "animal", "group", "level", "section",
                                          "region", "assay", "file"]
    assert len(sections) == len(truth) == 72
    key = ["file", "section"]
    merged = sections.merge(truth.astype({"section": str}), on=key, suffixes=("", "_t"))
    assert len(merged) == 72
    assert (merged["animal"] == merged["animal_t"]).all()
    assert (merged["level"] == merged["level_t"]).all()
    np.testing.assert_array_equal(merged["n_blobs"].astype(int), merged["n_cells"])
    slides = sections[sections["file"].str.endswith("_slide.ome.tif")]
    assert len(slides) > 0 and set(slides["section"]) == {"1", "2"}


def test_objects_table_holds_every_cell(study):
    _, out, truth, _ = study
    objects = pd.read_csv(out / "objects.csv", dtype={"section": str})
    assert len(objects) == truth["n_cells"].sum()
    per = objects.groupby(["file", "section"]).size()
    t = truth.astype({"section": str}).set_index(["file", "section"])["n_cells"]
    np.testing.assert_array_equal(per.loc[t.index].to_numpy(), t.to_numpy())


def test_prism_tables_one_row_per_animal_one_column_per_group(study):
    _, out, _, _ = study
    animals = pd.read_csv(out / "tables" / "blobs__animals.csv", dtype={"animal": str})
    files = sorted((out / "prism").glob("blobs__n_blobs__tissue__*.csv"))
    assert [f.stem.rsplit("__", 1)[1] for f in files] == ["L2", "L3", "L4"]
    for f in files:
        wide = pd.read_csv(f, dtype={"animal": str})
        assert list(wide.columns) == ["animal", *GROUPS]
        assert wide.shape == (12, 4)
        # exactly one value per row, in the animal's group column
        assert (wide[GROUPS].notna().sum(axis=1) == 1).all()
        level = f.stem.rsplit("__", 1)[1]
        a = animals[animals["level"] == level].set_index("animal")
        for _, row in wide.iterrows():
            g = a.loc[row["animal"], "group"]
            assert row[g] == a.loc[row["animal"], "n_blobs"]


def test_excel_workbook_holds_every_table(study):
    _, out, _, _ = study
    book = pd.read_excel(out / "study.xlsx", sheet_name=None)
    assert {"blobs sections", "blobs animals", "long", "objects", "prism"} <= set(book)
    assert len(book["blobs sections"]) == 72
    assert len(book["blobs animals"]) == 36


def test_report_and_qc(study):
    _, out, truth, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    # the blob assay declares no endpoint: the report says so and folds its measures
    for word in ("Endpoints", "declares an endpoint", "mean ± SEM", *GROUPS, "n_blobs",
                 "Quality control", "<details class='assay' id='measures-blobs'>"):
        assert word in html
    # no statistics were given, and the report computes none itself
    assert "Welch" not in html and "Mann" not in html
    n_images = truth["file"].nunique()
    # a thumbnail per image and a plot per measure, all embedded
    assert html.count("data:image/png;base64,") == n_images
    assert html.count("<svg ") >= 1 and "<title>" in html
    assert len(list((out / "qc" / "blobs").glob("*.png"))) == n_images
    # every thumbnail links to its full QC picture, and every picture sits with its animal
    links = re.findall(r"<a href='(qc/[^']+)'><img", html)
    assert len(links) == n_images
    assert all((out / unquote(link)).is_file() for link in links)
    for animal in truth["animal"].unique():
        assert f"id='animal-{animal}'" in html


def test_run_json_records_how_it_was_made(study):
    folder, out, truth, _ = study
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["assays"]["blobs"]["params"] == BLOB_SPEC.params_cls().to_dict()
    assert "numpy" in run["versions"] and "histoquant" in run
    assert run["slides"]["split_sections"] is True
    inputs = {i["file"]: i["sha256"] for i in run["inputs"]}
    assert set(inputs) == set(truth["file"])
    some = sorted(inputs)[3]
    assert inputs[some] == file_sha256(folder / some)
    assert run["failures"] == []
    assert {"planning_s", "measuring_s", "total_s"} <= set(run["timings"])
    assert all(u["seconds"] is not None for u in run["units"])
