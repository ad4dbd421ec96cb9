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
    animals = pd.read_csv(out / "animals.csv").set_index("animal")
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
