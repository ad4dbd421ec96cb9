"""Whole slides: sections found on an overview, regions from ROI files or anatomy per section."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from histoquant.errors import EmptyImageError
from histoquant.io import Image, read_image
from histoquant.rois import Polygon, Region, write_regions
from histoquant.slides import find_sections, overview
from histoquant.synthetic.slide import phantom_slide
from histoquant.testing import BLOB_SPEC, register

PX = 2.0


@pytest.fixture(scope="module")
def slide():
    # two rows: two sections on top, one below (reading order: top-left, top-right, bottom)
    return phantom_slide((560, 700), [(140, 170, 110, 140), (150, 520, 120, 150),
                                      (420, 330, 115, 200)], [14, 22, 30],
                         pixel_size_um=PX, cell_radius_um=8, seed=4)


def test_sections_found_in_reading_order_with_their_areas(slide, tmp_path):
    path = slide.write_ome_tiff(tmp_path / "slide.ome.tif", tile=128, levels=3)
    img = read_image(path, lazy=True)
    view = overview(img, max_px=256)
    assert max(view.data.shape[:2]) <= 256
    assert view.scale[0] == pytest.approx(560 / view.data.shape[0])
    assert view.pixel_size_um == pytest.approx(PX * view.scale[1])
    labels = find_sections(view, min_area_mm2=0.02)
    assert labels.max() == 3
    for i, sec in enumerate(slide.sections, start=1):
        cy, cx = sec.centre_yx
        assert labels[int(cy / view.scale[0]), int(cx / view.scale[1])] == i
        area_mm2 = (labels == i).sum() * view.pixel_size_um**2 / 1e6
        assert area_mm2 == pytest.approx(sec.area_px * PX**2 / 1e6, rel=0.06)


def test_fluorescent_sections_are_bright_on_dark():
    rows, cols = np.mgrid[0:300, 0:400]
    data = np.full((300, 400), 100, np.uint16)
    data[((rows - 150) / 100) ** 2 + ((cols - 110) / 80) ** 2 <= 1] = 900
    data[((rows - 150) / 100) ** 2 + ((cols - 300) / 80) ** 2 <= 1] = 900
    data[148:153, 300:305] = 4000
    view = overview(Image(data, pixel_size_um=PX), max_px=400)
    labels = find_sections(view, min_area_mm2=0.02)
    assert labels.max() == 2
    assert labels[150, 110] == 1 and labels[150, 300] == 2 and labels[5, 5] == 0


def test_blank_slide_has_no_section():
    view = overview(Image(np.full((100, 100, 3), 240, np.uint8), axes="YXC", pixel_size_um=PX,
                          rgb=True))
    with pytest.raises(EmptyImageError, match="no tissue section"):
        find_sections(view)


def _study(folder, slide, sheet_extra, yaml_extra=""):
    folder.mkdir()
    slide.write_ome_tiff(folder / "A1_L4_slide.ome.tif", tile=64, levels=2)
    pd.DataFrame([{"file": "A1_L4_slide.ome.tif", "animal": "A1", "group": "g",
                   "level": "L4", **sheet_extra}]).to_csv(folder / "samples.csv", index=False)
    (folder / "study.yaml").write_text(
        "assays: {blobs: {" + yaml_extra + "}}\n"
        "slides: {split_sections: true, tile_px: 96, overlap_um: 48, overview_max_px: 256,"
        " min_section_area_mm2: 0.02, in_memory_mb: 0}\n")  # read tile by tile


def test_roi_file_regions_are_cut_per_section(slide, tmp_path, monkeypatch):
    register(monkeypatch, BLOB_SPEC)
    from histoquant.batch import run_batch

    # one ROI, "left", over the left part of the whole slide (cuts every section)
    left = Region("left", [Polygon(np.array([[-0.5, -0.5], [-0.5, 339.5], [559.5, 339.5],
                                             [559.5, -0.5]]))])
    folder = tmp_path / "study"
    _study(folder, slide, {"roi": "rois.zip"})
    write_regions([left], folder / "rois.zip")
    report = run_batch(folder, tmp_path / "out")
    assert report.ok, report.errors
    sections = pd.read_csv(tmp_path / "out" / "sections.csv", dtype={"section": str})
    cells = slide.cells
    want = cells[cells["col"] < 339.5].groupby("section").size()
    got = sections.set_index("section")["n_blobs"]
    assert list(sections["region"].unique()) == ["left"]
    for i, n in want.items():
        assert got.get(str(i), 0) == n


def test_auto_regions_run_anatomy_on_each_section_of_the_overview(slide, tmp_path,
                                                                  monkeypatch):
    register(monkeypatch, BLOB_SPEC)
    calls = []

    def auto_regions(image, names):
        # a stand-in for histoquant.anatomy: the darker-than-background part is "grey_matter"
        calls.append((image.shape_yx, image.pixel_size_um, tuple(names)))
        assert "A1_L4_slide" in image.name
        grey = np.asarray(image.data, float).mean(axis=-1)
        return {"grey_matter": grey < 230}

    def find_sections(image):
        return types.SimpleNamespace(sections=[types.SimpleNamespace(quality=0.3)])

    import histoquant

    fake = types.SimpleNamespace(auto_regions=auto_regions, find_sections=find_sections)
    monkeypatch.setitem(__import__("sys").modules, "histoquant.anatomy", fake)
    monkeypatch.setattr(histoquant, "anatomy", fake, raising=False)
    from histoquant.batch import run_batch

    folder = tmp_path / "study"
    _study(folder, slide, {}, yaml_extra="regions: auto")
    report = run_batch(folder, tmp_path / "out")
    assert report.ok, report.errors
    assert len(calls) == 3  # once per section, on a reduced crop of it
    assert all(c[2] == BLOB_SPEC.auto_regions for c in calls)
    assert all(c[1] == pytest.approx(8.0, rel=0.05) for c in calls)  # slides.anatomy_pixel_um
    for (shape, _, _), sec in zip(calls, slide.sections):
        # the crop holds the section (semi-axes in full-resolution pixels) and a margin of
        # slide (500 µm each side, less at the slide's edge)
        assert 2 * sec.semi_axes_yx[0] / 4 <= shape[0] <= 2 * sec.semi_axes_yx[0] / 4 + 135
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "low anatomy score 0.30" in run["units"][0]["flags"]
    sections = pd.read_csv(tmp_path / "out" / "sections.csv", dtype={"section": str})
    assert list(sections["region"].unique()) == ["grey_matter"]
    assert sections["n_blobs"].tolist() == slide.counts()


def test_ome_zarr_slide_through_the_batch(slide, tmp_path, monkeypatch):
    register(monkeypatch, BLOB_SPEC)
    from histoquant.batch import run_batch
    from histoquant.io import write_ome_zarr

    folder = tmp_path / "study"
    folder.mkdir()
    write_ome_zarr(Image(slide.render(), axes="YXC", pixel_size_um=PX, rgb=True),
                   folder / "A1_L4_slide.ome.zarr", levels=3, chunk=128)
    (folder / "samples.csv").write_text("file,animal,group,level\nA1_L4_slide.ome.zarr,A1,g,L4\n")
    (folder / "study.yaml").write_text(
        "assays: {blobs: {}}\n"
        "slides: {split_sections: true, tile_px: 128, overlap_um: 48, overview_max_px: 256,"
        " min_section_area_mm2: 0.02, in_memory_mb: 0}\n")
    report = run_batch(folder, tmp_path / "out")
    assert report.ok, report.errors
    sections = pd.read_csv(tmp_path / "out" / "sections.csv", dtype={"section": str})
    assert sections["n_blobs"].tolist() == slide.counts()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["units"][0]["mode"] == "tiled" and run["units"][0]["n_tiles"] > 3
    assert run["inputs"][0]["file"] == "A1_L4_slide.ome.zarr"
