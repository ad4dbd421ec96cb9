"""Study file and sample sheet: every problem is reported at once, before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from histoquant.batch import StudyError, find_images, load_study, load_study_config, plan_study
from histoquant.testing import BLOB_SPEC, register


@pytest.fixture(autouse=True)
def blobs(monkeypatch):
    register(monkeypatch, BLOB_SPEC)


def _tif(path: Path, px: float | None = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full((32, 32, 3), 240, np.uint8)
    meta = {"axes": "YXS"}
    if px:
        meta.update(PhysicalSizeX=px, PhysicalSizeY=px)
    tifffile.imwrite(path, data, photometric="rgb", metadata=meta)
    return path


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "study"
    for a in ("R01", "R02"):
        for lv in ("L3", "L4"):
            for s in (1, 2):
                _tif(f / a / f"{a}_{lv}_s{s}.ome.tif")
    (f / "README.md").write_text("not an image")
    return f


def _yaml(folder: Path, text: str) -> Path:
    p = folder / "study.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_every_study_file_mistake_is_listed_at_once(folder, tmp_path):
    _yaml(folder, """
colour: blue
assays:
  blobs:
    params: {threshold: 0.4, radius_um: 3}
    channel: {}
    channels: {dapi: 0}
  no-such-assay: {}
slides: {tile_size: 10}
qc: {max_saturated_pct: 500}
""")
    with pytest.raises(StudyError) as info:
        plan_study(folder, tmp_path / "out")
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) == 7, problems
    assert "colour" in text and "valid keys: title, samples" in text
    assert "radius_um" in text and "Valid parameters: threshold, min_area_um2" in text
    assert "channel" in text and "unknown role(s) dapi" in text
    assert "unknown assay 'no-such-assay'" in text
    assert "tile_size" in text
    assert "qc.max_saturated_pct: above the maximum (got 500; allowed 0 to 100 %)" in text
    assert not (tmp_path / "out").exists()


def test_every_sample_sheet_mistake_is_listed_at_once(folder, tmp_path):
    _yaml(folder, "assays: {blobs: {}}\n")
    pd.DataFrame([
        {"file": "R01/R01_L3_s1.ome.tif", "animal": "", "group": "vehicle", "level": "L3",
         "section": "1", "pixel_size_um": "", "roi": ""},
        {"file": "R01/R01_L3_s2.ome.tif", "animal": "R01", "group": "vehicle",
         "level": "lumbar 3", "section": "2", "pixel_size_um": "", "roi": ""},
        {"file": "R01/R01_L9_s1.ome.tif", "animal": "R01", "group": "vehicle", "level": "L4",
         "section": "1", "pixel_size_um": "", "roi": ""},
        {"file": "R01/R01_L4_s1.ome.tif", "animal": "R01", "group": "vehicle", "level": "L4",
         "section": "1", "pixel_size_um": "abc", "roi": ""},
        {"file": "R01/R01_L4_s2.ome.tif", "animal": "R01", "group": "vehicle", "level": "L4",
         "section": "2", "pixel_size_um": "", "roi": "rois/missing.zip"},
        {"file": "R02/*_L3_*.ome.tif", "animal": "R02", "group": "MSC", "level": "L3",
         "section": "", "pixel_size_um": "", "roi": ""},
        {"file": "R02/R02_L4_s1.ome.tif", "animal": "R02", "group": "vehicle", "level": "L4",
         "section": "", "pixel_size_um": "", "roi": ""},
        {"file": "R02/R02_L3_s1.ome.tif", "animal": "R02", "group": "MSC", "level": "L4",
         "section": "", "pixel_size_um": "", "roi": ""},
    ]).to_csv(folder / "samples.csv", index=False)
    with pytest.raises(StudyError) as info:
        plan_study(folder, tmp_path / "out")
    text = str(info.value)
    for expected in ("row 2 (R01/R01_L3_s1.ome.tif): the animal is missing",
                     "level 'lumbar 3' is not a spinal level",
                     "'R01/R01_L9_s1.ome.tif' matches no image file",
                     "pixel size 'abc' is not a positive number",
                     "ROI file 'rois/missing.zip' not found",
                     "R02/R02_L3_s1.ome.tif: rows 7 and 9 of samples.csv disagree on level",
                     "animal R02 is in more than one group: MSC, vehicle"):
        assert expected in text, text
    assert len(info.value.problems) == 7


def test_pattern_with_groups_mapping(folder, tmp_path):
    _yaml(folder, r"""
pattern: '(?P<animal>R\d+)_(?P<level>L\d)_s(?P<section>\d+)'
groups: {vehicle: [R01], MSC: [R02]}
assays: {blobs: {}}
""")
    plan = plan_study(folder, tmp_path / "out")
    samples = {s.rel: s for s in plan.samples.values()}
    s = samples["R02/R02_L4_s2.ome.tif"]
    assert (s.animal, s.group, s.level, s.section) == ("R02", "MSC", "L4", "2")
    assert len(plan.units) == 8
    assert any("README.md" in n for n in plan.notes)


def test_pattern_mismatch_and_animal_without_group_are_errors(folder, tmp_path):
    _tif(folder / "R03" / "stray.ome.tif")
    _tif(folder / "R03" / "R03_L3_s1.ome.tif")
    _yaml(folder, r"""
pattern: '(?P<animal>R\d+)_(?P<level>L\d)_s(?P<section>\d+)'
groups: {vehicle: [R01], MSC: [R02]}
assays: {blobs: {}}
""")
    with pytest.raises(StudyError) as info:
        plan_study(folder, tmp_path / "out")
    text = str(info.value)
    assert "R03/stray.ome.tif: the file name does not match the pattern" in text
    assert "no group for animal R03" in text


def test_pattern_with_an_animal_sheet_in_excel(folder, tmp_path):
    _yaml(folder, r"""
samples: animals.xlsx
pattern: '(?P<animal>R\d+)_(?P<level>L\d)_s(?P<section>\d+)'
assays: {blobs: {}}
""")
    pd.DataFrame({"Animal ID": ["R01", "R02"], "Treatment": ["vehicle", "MSC"]}).to_excel(
        folder / "animals.xlsx", index=False)
    plan = plan_study(folder, tmp_path / "out")
    groups = {s.animal: s.group for s in plan.samples.values()}
    assert groups == {"R01": "vehicle", "R02": "MSC"}


def test_no_sheet_and_no_pattern_makes_each_image_an_animal(folder, tmp_path):
    plan = plan_study(folder, tmp_path / "out", assays=["blobs"])
    assert len({s.animal for s in plan.samples.values()}) == 8
    assert any("no sample sheet" in n for n in plan.notes)


def test_sheet_defines_the_study_images(folder, tmp_path):
    _yaml(folder, "assays: {blobs: {files: ['*_L3_*']}}\n")
    pd.DataFrame({"file": ["R01/*", "R02/*"], "animal": ["R01", "R02"],
                  "group": ["a", "b"], "level": ["L3", "L3"]}).to_csv(
        folder / "samples.csv", index=False)
    plan = plan_study(folder, tmp_path / "out")
    assert sorted(u.sample.rel for u in plan.units) == [
        "R01/R01_L3_s1.ome.tif", "R01/R01_L3_s2.ome.tif", "R02/R02_L3_s1.ome.tif",
        "R02/R02_L3_s2.ome.tif"]


def test_same_section_twice_is_contradictory(folder, tmp_path):
    _yaml(folder, "assays: {blobs: {}}\n")
    pd.DataFrame({"file": ["R01/R01_L3_s1.ome.tif", "R01/R01_L3_s2.ome.tif"],
                  "animal": ["R01", "R01"], "group": ["a", "a"], "level": ["L3", "L3"],
                  "section": ["1", "1"]}).to_csv(folder / "samples.csv", index=False)
    with pytest.raises(StudyError, match="section 1 is also R01/R01_L3_s1.ome.tif"):
        plan_study(folder, tmp_path / "out")


def test_output_folder_inside_the_study_is_not_scanned(folder):
    _tif(folder / "results" / "qc" / "x.ome.tif")
    plan = plan_study(folder, folder / "results", assays=["blobs"])
    assert all(not s.rel.startswith("results/") for s in plan.samples.values())
    assert len(find_images(folder)) == 9  # find_images alone sees it


def test_assay_not_in_the_study_file(folder, tmp_path):
    _yaml(folder, "assays: {blobs: {}}\n")
    with pytest.raises(StudyError, match="--assay motor-neurons: not in the study file"):
        load_study(folder / "study.yaml", folder, assays=["motor-neurons"])


def test_cli_reports_study_errors_with_status_2(folder, tmp_path, capsys):
    from histoquant.cli import main

    _yaml(folder, "assays: {blobs: {params: {nope: 1}}}\n")
    assert main(["batch", str(folder), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "unknown parameter(s) for BlobParams: nope" in capsys.readouterr().err


def test_load_study_config_keeps_the_plain_dict_view(folder):
    _yaml(folder, "assays: {blobs: {files: ['*_L3_*'], params: {threshold: 0.3}}}\n")
    cfg = load_study_config(folder / "study.yaml")
    assert cfg["blobs"]["files"] == ["*_L3_*"]
    assert cfg["blobs"]["params"]["threshold"] == 0.3


def test_an_assay_preflight_fails_before_any_work(folder, tmp_path, monkeypatch):
    import dataclasses

    from histoquant.errors import DependencyError

    def preflight(params):
        raise DependencyError("the model weights are not on disk")

    register(monkeypatch, dataclasses.replace(BLOB_SPEC, preflight=preflight))
    with pytest.raises(DependencyError, match="weights"):
        plan_study(folder, tmp_path / "out", assays=["blobs"])
    assert not (tmp_path / "out").exists()
