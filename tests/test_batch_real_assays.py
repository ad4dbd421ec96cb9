"""Study runs with the real assays on their phantoms (skipped until an assay is merged)."""

from __future__ import annotations

import pandas as pd
import pytest

from histoquant.assays import available_assays


def test_evans_blue_study_recovers_the_leak_area(tmp_path):
    if "evans-blue" not in available_assays():
        pytest.skip("the Evans Blue assay is not merged")
    from histoquant.batch import run_batch
    from histoquant.io import write_ome_tiff
    from histoquant.rois import Region, write_regions
    from histoquant.synthetic.evans_blue import evans_blue_truth, make_evans_blue_phantom

    folder = tmp_path / "evb"
    folder.mkdir()
    rows, truth = [], {}
    for i, (animal, group, leak) in enumerate([("V1", "vehicle", 0.8), ("V2", "vehicle", 1.0),
                                               ("M1", "MSC", 2.5), ("M2", "MSC", 3.0)]):
        image, t = make_evans_blue_phantom((320, 320), 0.5, seed=10 + i, leak_area_pct=leak)
        write_ome_tiff(image, folder / f"{animal}_L4.ome.tif")
        write_regions([Region("grey_matter", mask=t["grey_matter"])],
                      folder / f"{animal}_gm.geojson")
        rows.append({"file": f"{animal}_L4.ome.tif", "animal": animal, "group": group,
                     "level": "L4", "section": "1", "roi": f"{animal}_gm.geojson"})
        truth[animal] = evans_blue_truth(t, t["grey_matter"])["area_pct"]
    pd.DataFrame(rows).to_csv(folder / "samples.csv", index=False)
    (folder / "study.yaml").write_text(
        "groups: [vehicle, MSC]\nassays:\n  evans-blue:\n"
        "    measures: [evb_positive_area_pct, extravascular_fraction_pct]\n")
    out = tmp_path / "out"
    report = run_batch(folder, out)
    assert report.ok, report.errors
    animals = pd.read_csv(out / "tables" / "evans-blue__animals.csv").set_index("animal")
    for animal, pct in truth.items():
        assert animals.loc[animal, "evb_positive_area_pct"] == pytest.approx(pct, abs=0.15)
        assert animals.loc[animal, "region"] == "grey_matter"
    prism = sorted(p.name for p in (out / "prism").glob("*.csv"))
    assert prism == ["evans-blue__evb_positive_area_pct__grey_matter__L4.csv",
                     "evans-blue__extravascular_fraction_pct__grey_matter__L4.csv"]
    wide = pd.read_csv(out / "prism" / prism[0])
    assert list(wide.columns) == ["animal", "vehicle", "MSC"]
    # the assay's extra table (perivascular profiles) is collected with the metadata
    profiles = pd.read_csv(out / "tables" / "evans-blue__profiles.csv")
    assert set(profiles["animal"]) == set(truth)
    assert {"group", "level", "section"} <= set(profiles.columns)


def test_slide_sections_with_regions_from_the_real_anatomy(tmp_path, monkeypatch):
    pytest.importorskip("histoquant.anatomy")
    from histoquant.batch import run_batch
    from histoquant.io import write_ome_tiff
    from histoquant.synthetic.cord import cord_slide
    from histoquant.testing import BLOB_SPEC, register

    register(monkeypatch, BLOB_SPEC)
    px = 8.0
    phantom = cord_slide(2, px, seed=1)
    folder = tmp_path / "study"
    folder.mkdir()
    write_ome_tiff(phantom.image, folder / "A1_L4_slide.ome.tif", tile=128)
    (folder / "samples.csv").write_text("file,animal,group,level\nA1_L4_slide.ome.tif,A1,g,L4\n")
    (folder / "study.yaml").write_text(
        "assays: {blobs: {regions: auto}}\n"
        "slides: {split_sections: true, tile_px: 256, overlap_um: 400, in_memory_mb: 0}\n")
    report = run_batch(folder, tmp_path / "out")
    assert report.ok, report.errors
    sections = pd.read_csv(tmp_path / "out" / "sections.csv", dtype={"section": str})
    assert sorted(sections["section"]) == ["1", "2"]
    assert set(sections["region"]) == {"grey_matter"}
    want = sorted(phantom.truth(s)["grey_matter"].sum() * px**2 / 1e6 for s in (1, 2))
    got = sorted(sections["region_area_mm2"])
    assert got == pytest.approx(want, rel=0.02)


def test_gfp_cells_per_animal_and_level(tmp_path):
    if "gfp-cells" not in available_assays():
        pytest.skip("the GFP assay is not merged")
    from histoquant.batch import run_batch
    from histoquant.io import write_ome_tiff
    from histoquant.synthetic.gfp import make_gfp_phantom

    folder = tmp_path / "gfp"
    rows, truth = [], {}
    seed = 0
    for animal, group in [("V1", "vehicle"), ("V2", "vehicle"), ("M1", "MSC"), ("M2", "MSC")]:
        (folder / animal).mkdir(parents=True)
        for level in ("L3", "L4"):
            n = 1 + seed % 4
            # bright cells only, few decoys: the count is exact, so the test is about the batch
            image, _ = make_gfp_phantom((320, 320), 0.5, n_cells=n, seed=seed,
                                        dim_fraction=0.0, n_lipofuscin=2, n_rbc=2)
            rel = f"{animal}/{animal}_{level}.ome.tif"
            write_ome_tiff(image, folder / rel)
            rows.append({"file": rel, "animal": animal, "group": group, "level": level})
            truth[(animal, level)] = n
            seed += 1
    pd.DataFrame(rows).to_csv(folder / "samples.csv", index=False)
    (folder / "study.yaml").write_text("groups: [vehicle, MSC]\nassays: {gfp-cells: {}}\n")
    report = run_batch(folder, tmp_path / "out")
    assert report.ok, report.errors
    animals = pd.read_csv(tmp_path / "out" / "tables" / "gfp-cells__animals.csv")
    got = {(r.animal, r.level): r.n_gfp_cells for r in animals.itertuples()}
    assert got == truth
    wide = pd.read_csv(tmp_path / "out" / "prism" / "gfp-cells__n_gfp_cells__image__L4.csv")
    assert list(wide.columns) == ["animal", "vehicle", "MSC"] and len(wide) == 4


def test_anatomy_assay_keeps_its_own_section_numbers(tmp_path):
    if "anatomy" not in available_assays():
        pytest.skip("the anatomy assay is not merged")
    from histoquant.batch import run_batch
    from histoquant.io import write_ome_tiff
    from histoquant.synthetic.cord import cord_slide

    folder = tmp_path / "anat"
    folder.mkdir()
    write_ome_tiff(cord_slide(2, 15.0, seed=3).image, folder / "A1_L3_slide.ome.tif")
    (folder / "samples.csv").write_text("file,animal,group,level\nA1_L3_slide.ome.tif,A1,g,L3\n")
    report = run_batch(folder, tmp_path / "out", assays=["anatomy"])
    assert report.ok, report.errors
    sections = pd.read_csv(tmp_path / "out" / "sections.csv", dtype={"section": str})
    assert sorted(sections["section"]) == ["1", "2"]
    animals = pd.read_csv(tmp_path / "out" / "tables" / "anatomy__animals.csv")
    assert animals["n_sections"].tolist() == [2]
