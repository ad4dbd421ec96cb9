"""Tidy outputs for statistics tools: long.csv, one table per assay, the Prism project.

A small study is assembled from handmade section rows of two test assays: ``cells`` (every
animal, two horns, a technical column, two endpoints) and ``spots`` (only the MSC animals,
a per-level endpoint). Names hold XML and CSV specials and non-ASCII letters.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histoquant.assays.contract import REGION_AREA, Endpoint, Measure
from histoquant.batch.endpoints import endpoint_animal_values, endpoint_observations
from histoquant.batch.pzfx import PzfxError, pzfx_bytes, read_pzfx, write_pzfx
from histoquant.batch.samples import Sample
from histoquant.batch.tables import (
    LONG_COLUMNS,
    SECTION_LONG_COLUMNS,
    StudyTables,
    assemble,
    endpoint_prism_tables,
)
from histoquant.batch.writers import write_csv_tables, write_prism_project, write_workbook
from histoquant.io.safe_paths import OutputFolder
from histoquant.testing import BLOB_SPEC, register

VEH = 'véhicule <&">'  # a group name an XML writer must escape
MSC = "MSC"
GROUPS = [VEH, MSC]

CELLS = dataclasses.replace(
    BLOB_SPEC, name="cells",
    measures=(REGION_AREA,
              Measure("n_cells", "count", "cells", animal="sum"),
              Measure("cell_area_um2", "µm²", "mean cell area", tiles="objects",
                      of=("area_um2",), animal="weighted", animal_weight="n_cells"),
              Measure("threshold", "a.u.", "threshold used", tiles="image", animal="none")),
    endpoints=(Endpoint("cells_per_horn", "n_cells", 'Cells <per> horn & "all"',
                        regions=("horn_*",)),
               Endpoint("cell_area", "cell_area_um2", "Cell área", regions=("horn_*",),
                        weight="n_cells")))
SPOTS = dataclasses.replace(
    BLOB_SPEC, name="spots",
    measures=(REGION_AREA, Measure("n_spots", "count", "spots", animal="sum")),
    endpoints=(Endpoint("spots_by_level", "n_spots", "Spots per section",
                        regions=("tissue",), by_level=True),))

# (animal, group, section, {horn: (n_cells, cell_area_um2)})
CELL_ROWS = [
    ("Rätte-1", VEH, "1", {"horn_left": (10, 500.0), "horn_right": (6, 700.0)}),
    ("Rätte-1", VEH, "2", {"horn_left": (8, 400.0), "horn_right": (0, np.nan)}),
    ("R<2>", VEH, "1", {"horn_left": (3, 900.0), "horn_right": (5, 1000.0)}),
    ("M1", MSC, "1", {"horn_left": (12, 600.0), "horn_right": (14, 650.0)}),
    ("M2", MSC, "1", {"horn_left": (20, 610.0), "horn_right": (18, 590.0)}),
    ("M3", MSC, "1", {"horn_left": (0, np.nan), "horn_right": (0, np.nan)}),
]
# (animal, level, section, n_spots): only MSC animals carry spots
SPOT_ROWS = [("M1", "L3", "1", 4), ("M1", "L3", "2", 6), ("M1", "L4", "1", 1),
             ("M2", "L3", "1", 7), ("M3", "L4", "1", 3)]
GROUP_OF = {a: g for a, g, _, _ in CELL_ROWS}


@pytest.fixture
def assays(monkeypatch):
    register(monkeypatch, CELLS)
    register(monkeypatch, SPOTS)


def _sample(animal: str, level: str, section: str, assay: str) -> Sample:
    rel = f"{assay}_{animal}_{level}_{section}.tif"
    return Sample(path=Path(rel), rel=rel, image=rel[:-4], animal=animal,
                  group=GROUP_OF[animal], level=level, section=section)


def _parts() -> list:
    parts = []
    for animal, _, section, horns in CELL_ROWS:
        summary = pd.DataFrame([{"region": h, "region_area_mm2": 0.5, "n_cells": n,
                                 "cell_area_um2": area, "threshold": 42.0}
                                for h, (n, area) in horns.items()])
        parts.append((_sample(animal, "L4", section, "cells"), "cells", summary,
                      pd.DataFrame()))
    for animal, level, section, n in SPOT_ROWS:
        summary = pd.DataFrame([{"region": "tissue", "region_area_mm2": 1.0, "n_spots": n}])
        parts.append((_sample(animal, level, section, "spots"), "spots", summary,
                      pd.DataFrame()))
    return parts


@pytest.fixture
def study(assays) -> StudyTables:
    return assemble(_parts(), groups=GROUPS)


def test_long_table_is_the_animal_table_melted(study):
    long = study.long
    assert list(long.columns) == LONG_COLUMNS
    # technical columns stay out; every other measure is there with its declared unit
    assert "threshold" not in set(long["measure"]) and "threshold" in study.sections
    units = long.drop_duplicates(["assay", "measure"]).set_index(["assay", "measure"])["unit"]
    assert units.to_dict() == {("cells", "region_area_mm2"): "mm²",
                               ("cells", "n_cells"): "count",
                               ("cells", "cell_area_um2"): "µm²",
                               ("spots", "region_area_mm2"): "mm²",
                               ("spots", "n_spots"): "count"}
    ids = ["animal", "group", "level", "region", "assay"]
    back = long.pivot_table(index=ids, columns="measure", values="value", aggfunc="first")
    for assay, measures in (("cells", ["region_area_mm2", "n_cells", "cell_area_um2"]),
                            ("spots", ["region_area_mm2", "n_spots"])):
        want = study.animals[study.animals["assay"] == assay].set_index(ids)[measures]
        got = back.loc[want.index, measures]
        # a missing value is no row in long.csv: NaN in the pivot, as in the animal table
        pd.testing.assert_frame_equal(got, want.astype(float), check_names=False)
    # by hand: Rätte-1's left horn holds 10 + 8 cells over 2 sections, area weighted by cells
    def one(animal: str, region: str, measure: str) -> pd.Series:
        hit = long[(long["animal"] == animal) & (long["region"] == region)
                   & (long["measure"] == measure)]
        assert len(hit) <= 1
        return hit.iloc[0] if len(hit) else None

    assert one("Rätte-1", "horn_left", "n_cells")["value"] == 18
    assert one("Rätte-1", "horn_left", "cell_area_um2")["value"] == pytest.approx(
        (10 * 500 + 8 * 400) / 18)
    assert one("Rätte-1", "horn_left", "n_cells")["n_sections"] == 2
    # M3 has no cells, so no mean cell area: no row for it
    assert one("M3", "horn_left", "cell_area_um2") is None
    # an animal's measures are together, in the assay's column order
    first = long[long["animal"] == long["animal"].iloc[0]]["measure"].tolist()[:3]
    assert first == ["region_area_mm2", "n_cells", "cell_area_um2"]


def test_sections_long_has_one_row_per_section_region_measure(study):
    sl = study.sections_long
    assert list(sl.columns) == SECTION_LONG_COLUMNS
    cells = sl[sl["assay"] == "cells"]
    # 6 section rows × 2 horns × 3 measures, less the 3 horns without a cell area
    assert len(cells) == 6 * 2 * 3 - 3
    got = cells.set_index(["animal", "section", "region", "measure"])["value"]
    assert got[("Rätte-1", "2", "horn_left", "n_cells")] == 8
    assert got[("R<2>", "1", "horn_right", "cell_area_um2")] == 1000.0
    spots = sl[(sl["assay"] == "spots") & (sl["measure"] == "n_spots")]
    assert spots["value"].tolist() == [n for *_, n in SPOT_ROWS]
    assert set(spots["group"]) == {MSC}


def test_per_assay_csv_tables_hold_only_their_assay_columns(study, tmp_path):
    (tmp_path / "animals.csv").write_text("left by an earlier version\n")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "gone__animals.csv").write_text("an assay no longer run\n")
    write_csv_tables(OutputFolder(tmp_path), study, {}, GROUPS)
    assert not (tmp_path / "animals.csv").exists()  # the wide table is gone for good
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "cells__animals.csv", "cells__sections.csv", "spots__animals.csv",
        "spots__sections.csv"]
    read = {p.stem: pd.read_csv(p, dtype={"section": str}, keep_default_na=False)
            for p in (tmp_path / "tables").glob("*.csv")}
    assert list(read["cells__animals"].columns) == [
        "animal", "group", "level", "region", "assay", "n_sections", "region_area_mm2",
        "n_cells", "cell_area_um2"]
    assert list(read["spots__animals"].columns) == [
        "animal", "group", "level", "region", "assay", "n_sections", "region_area_mm2",
        "n_spots"]
    assert list(read["cells__sections"].columns)[8:] == ["region_area_mm2", "n_cells",
                                                        "cell_area_um2", "threshold"]
    assert list(read["spots__sections"].columns)[8:] == ["region_area_mm2", "n_spots"]
    assert set(read["cells__animals"]["group"]) == {VEH, MSC}
    assert set(read["cells__animals"]["animal"]) == {"Rätte-1", "R<2>", "M1", "M2", "M3"}
    assert len(read["spots__sections"]) == len(SPOT_ROWS)
    # long.csv and sections_long.csv read back as the tables
    long = pd.read_csv(tmp_path / "long.csv", dtype={"level": str})
    assert list(long.columns) == LONG_COLUMNS and len(long) == len(study.long)
    pd.testing.assert_series_equal(long["value"], study.long["value"].astype(float))
    sl = pd.read_csv(tmp_path / "sections_long.csv")
    assert list(sl.columns) == SECTION_LONG_COLUMNS and len(sl) == len(study.sections_long)
    # the combined section table stays (histoquant validate and the napari plugin read it)
    assert len(pd.read_csv(tmp_path / "sections.csv")) == len(study.sections)


def test_an_extra_table_may_not_take_an_assay_table_name(study, tmp_path):
    smp = _sample("M1", "L3", "1", "spots")
    with pytest.raises(ValueError, match="may not be named 'animals'"):
        write_csv_tables(OutputFolder(tmp_path), study,
                         {("spots", "animals"): [(smp, "spots", pd.DataFrame({"a": [1]}))]},
                         GROUPS)


def _expected_endpoint_tables(study: StudyTables) -> dict[str, pd.DataFrame]:
    """The endpoint animal values, spread by hand: one column per group, NaN elsewhere."""
    values = endpoint_animal_values(endpoint_observations(study.sections))
    out = {}
    for (label, unit, level, by_level), df in values.groupby(
            ["label", "unit", "level", "by_level"], sort=False):
        title = f"{label} ({unit})" + (f" · {level}" if by_level else "")
        groups = [g for g in GROUPS if g in set(df["group"])]
        table = pd.DataFrame(index=list(dict.fromkeys(df["animal"])), columns=groups,
                             dtype=float)
        for r in df.itertuples():
            table.loc[r.animal, r.group] = r.value
        out[title] = table
    return out


def test_prism_project_reads_back_as_the_endpoint_animal_values(study, tmp_path):
    blocks = write_prism_project(OutputFolder(tmp_path), study, title="Étude <1> & co")
    got = read_pzfx(tmp_path / "prism.pzfx")
    want = _expected_endpoint_tables(study)
    assert list(got) == list(want) == [
        'Cells <per> horn & "all" (count)', "Cell área (µm²)",
        "Spots per section (count) · L3", "Spots per section (count) · L4"]
    for title, table in want.items():
        pd.testing.assert_frame_equal(got[title], table, check_names=False)
    cells = got['Cells <per> horn & "all" (count)']
    # groups of different sizes; animals in the study's order, each value in its group
    assert list(cells.columns) == [VEH, MSC]
    assert list(cells.index) == ["R<2>", "Rätte-1", "M1", "M2", "M3"]  # natural order
    # by hand: Rätte-1 (10 + 6 + 8 + 0) / 4 horns, M2 (20 + 18) / 2
    assert cells.loc["Rätte-1", VEH] == pytest.approx(6.0)
    assert cells.loc["M2", MSC] == pytest.approx(19.0)
    assert cells[VEH].notna().sum() == 2 and cells[MSC].notna().sum() == 3
    area = got["Cell área (µm²)"]
    assert "M3" not in area.index  # no cells, so no mean cell area: no row
    assert area.loc["R<2>", VEH] == pytest.approx((3 * 900 + 5 * 1000) / 8)
    # only the MSC animals have spots: the vehicle group is not a column
    l3 = got["Spots per section (count) · L3"]
    assert list(l3.columns) == [MSC] and list(l3.index) == ["M1", "M2"]
    assert l3.loc["M1", MSC] == pytest.approx(5.0)
    assert [t for t, _ in blocks] == list(want)
    # the Info sheet names the study and how each table was made
    text = (tmp_path / "prism.pzfx").read_text(encoding="utf-8")
    root = ET.fromstring(text.encode("utf-8"))
    values = [v.text for v in root.iter("Value")]
    assert "Étude <1> & co" in values and any(v.startswith("histoquant") for v in values)
    notes = "".join(root.find("Info/Notes").itertext())
    assert "weighted by n_cells" in notes and "regions horn_left;horn_right" in notes


def test_prism_project_has_the_structure_prism_writes(study, tmp_path):
    write_prism_project(OutputFolder(tmp_path), study)
    data = (tmp_path / "prism.pzfx").read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b"/>" not in data  # Prism's own files close every element in full
    root = ET.fromstring(data)
    assert root.tag == "GraphPadPrismFile" and root.get("PrismXMLVersion") == "5.00"
    assert [c.tag for c in root][:3] == ["Created", "InfoSequence", "Info"]
    tables = root.findall("Table")
    refs = [r.get("ID") for r in root.find("TableSequence")]
    assert refs == [t.get("ID") for t in tables] == [f"Table{i}" for i in range(4)]
    for t in tables:
        # Prism's Column table: no X column, one data set per group, one value per cell
        assert t.get("TableType") == "OneWay" and t.get("XFormat") == "none"
        assert [c.tag for c in t][:2] == ["Title", "RowTitlesColumn"]
        ys = t.findall("YColumn")
        assert ys and all(y.get("Subcolumns") == "1" and len(y.findall("Subcolumn")) == 1
                          for y in ys)
        n_rows = len(t.find("RowTitlesColumn/Subcolumn"))
        assert all(len(y.find("Subcolumn")) <= n_rows for y in ys)


def test_no_endpoints_no_prism_project(tmp_path, monkeypatch):
    register(monkeypatch, BLOB_SPEC)
    smp = Sample(path=Path("a.tif"), rel="a.tif", image="a", animal="A", group="g")
    tables = assemble([(smp, "blobs", pd.DataFrame({"n_blobs": [3]}), pd.DataFrame())],
                      groups=["g"])
    (tmp_path / "prism.pzfx").write_text("left by an earlier run")
    assert write_prism_project(OutputFolder(tmp_path), tables) == []
    assert not (tmp_path / "prism.pzfx").exists()


def test_workbook_has_a_sheet_per_assay_and_the_endpoints(study, tmp_path):
    out = OutputFolder(tmp_path)
    endpoints = write_prism_project(out, study)
    write_workbook(out, study, [], endpoints=endpoints)
    book = pd.read_excel(tmp_path / "study.xlsx", sheet_name=None)
    assert list(book) == ["cells animals", "spots animals", "cells sections",
                          "spots sections", "long", "objects", "endpoints", "prism"]
    assert "n_spots" not in book["cells animals"] and "n_cells" not in book["spots animals"]
    assert len(book["long"]) == len(study.long)
    sheet = pd.read_excel(tmp_path / "study.xlsx", sheet_name="endpoints", header=None)
    first = sheet[0].fillna("").astype(str).tolist()
    assert [t for t, _ in endpoints] == [v for v in first if v.startswith(("Cell", "Spots"))]
    # under each title, the table: animal, then one column per group
    i = first.index('Cells <per> horn & "all" (count)')
    assert sheet.iloc[i + 1].tolist()[:3] == ["animal", VEH, MSC]


def test_names_xml_cannot_hold_are_replaced_not_written(tmp_path):
    table = pd.DataFrame({"g\x01": [1.0]}, index=["a\x0bb"])
    write_pzfx({"t\x00itle": table}, tmp_path / "x.pzfx")
    got = read_pzfx(tmp_path / "x.pzfx")
    assert list(got) == ["t\ufffditle"]
    assert list(got["t\ufffditle"].columns) == ["g\ufffd"]
    assert list(got["t\ufffditle"].index) == ["a\ufffdb"]


def test_values_survive_at_full_precision():
    values = [1 / 3, 1e-12, 123456789.125, 7.0, -0.0, np.nan, 2.5e20]
    table = pd.DataFrame({"x": values}, index=[f"r{i}" for i in range(len(values))])
    data = pzfx_bytes({"t": table})
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.pzfx"
        path.write_bytes(data)
        got = read_pzfx(path)["t"]["x"].to_numpy()
    np.testing.assert_array_equal(got, np.array(values))


def test_bad_tables_are_refused():
    with pytest.raises(PzfxError, match="no columns"):
        pzfx_bytes({"t": pd.DataFrame(index=["a"])})
    with pytest.raises(PzfxError, match="not numbers"):
        pzfx_bytes({"t": pd.DataFrame({"g": ["x"]})})


# A table as Prism itself saves one (the layout of the files the R package pzfx tests on):
# no row titles, columns of different lengths, a struck-out value, a decimal comma, the
# binary template after the tables.
PRISM_SAVED = """<?xml version="1.0" encoding="UTF-8"?><GraphPadPrismFile PrismXMLVersion="5.00">
<Created><OriginalVersion CreatedByProgram="GraphPad Prism" CreatedByVersion="7.0d.179"
 Login="x" DateTime="2018-08-01T22:59:56-07:00" MinVersion="7.0.0.0"></OriginalVersion>
</Created>
<InfoSequence><Ref ID="Info0" Selected="1"></Ref></InfoSequence>
<Info ID="Info0"><Title>Project info 1</Title><Notes></Notes></Info>
<TableSequence Selected="1"><Ref ID="Table0" Selected="1"></Ref></TableSequence>
<Table ID="Table0" XFormat="none" TableType="OneWay" EVFormat="AsteriskAfterNumber">
<Title>Data 1</Title>
<RowTitlesColumn Width="1"><Subcolumn></Subcolumn></RowTitlesColumn>
<YColumn Width="81" Decimals="0" Subcolumns="1"><Title>A</Title>
<Subcolumn><d>1</d><d Excluded="1">2</d></Subcolumn></YColumn>
<YColumn Width="81" Decimals="0" Subcolumns="1"><Title>B</Title>
<Subcolumn><d>10</d><d>20,5</d><d>30</d></Subcolumn></YColumn>
</Table>
<Template dt:dt="bin.base64" xmlns:dt="urn:schemas-microsoft-com:datatypes">eF7s</Template>
</GraphPadPrismFile>
"""


def test_read_pzfx_reads_a_table_prism_saved(tmp_path):
    path = tmp_path / "saved.pzfx"
    path.write_text(PRISM_SAVED, encoding="utf-8")
    got = read_pzfx(path)
    want = pd.DataFrame({"A": [1.0, np.nan, np.nan], "B": [10.0, 20.5, 30.0]})
    pd.testing.assert_frame_equal(got["Data 1"], want)
    # a namespaced file (Prism 8 and later) reads the same
    spaced = PRISM_SAVED.replace('<GraphPadPrismFile PrismXMLVersion="5.00">',
                                 '<GraphPadPrismFile xmlns="http://graphpad.com/prism/'
                                 'Prism.htm" PrismXMLVersion="5.00">')
    path.write_text(spaced, encoding="utf-8")
    pd.testing.assert_frame_equal(read_pzfx(path)["Data 1"], want)
    path.write_text("<html></html>")
    with pytest.raises(PzfxError, match="not a Prism"):
        read_pzfx(path)
    path.write_text("not xml")
    with pytest.raises(PzfxError, match="not a Prism"):
        read_pzfx(path)


def test_an_independent_reader_agrees(study, tmp_path):
    """The Python port of the R package pzfx reads the same tables (when it is installed)."""
    pzfx = pytest.importorskip("pzfx")
    write_prism_project(OutputFolder(tmp_path), study)
    path = tmp_path / "prism.pzfx"
    mine = read_pzfx(path)
    assert pzfx.pzfx_tables(str(path)) == list(mine)
    for title, table in mine.items():
        other = pzfx.read_pzfx(str(path), table=title)
        assert other["ROWTITLE"].tolist() == list(table.index)
        np.testing.assert_array_equal(other[list(table.columns)].to_numpy(float),
                                      table.to_numpy(float))


def test_endpoint_tables_keep_titles_apart():
    rows = []
    for assay in ("a1", "a2"):
        rows.append({"endpoint": "e", "assay": assay, "measure": "m", "label": "Same",
                     "unit": "", "summary": "mean_sem", "by_level": False, "animal": "A",
                     "group": "g", "level": "all", "n_sections": 1, "n_observations": 1,
                     "regions": "r", "value": 1.0})
    tables = endpoint_prism_tables(pd.DataFrame(rows), ["g"])
    assert list(tables) == ["Same", "Same [a2]"]
    assert tables["Same [a2]"].attrs["assay"] == "a2"


def test_the_batch_writes_the_tidy_outputs(tmp_path, monkeypatch):
    """End to end: a phantom study with an endpoint declared on the test assay."""
    from histoquant.batch import run_batch
    from histoquant.synthetic.study import write_phantom_study

    spec = dataclasses.replace(BLOB_SPEC, endpoints=(
        Endpoint("blobs_per_section", "n_blobs", "Blobs per section"),))
    register(monkeypatch, spec)
    folder = tmp_path / "study"
    write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(12, 20),
                        animals_per_group=2, levels=("L3",), sections_per_level=2,
                        slide_every=0, png_every=0, seed=4)
    out = tmp_path / "out"
    assert run_batch(folder, out).ok
    assert not (out / "animals.csv").exists()
    animals = pd.read_csv(out / "tables" / "blobs__animals.csv", dtype={"animal": str})
    long = pd.read_csv(out / "long.csv", dtype={"animal": str})
    n = long[long["measure"] == "n_blobs"].set_index("animal")["value"]
    assert n.to_dict() == animals.set_index("animal")["n_blobs"].astype(float).to_dict()
    sections = pd.read_csv(out / "tables" / "blobs__sections.csv",
                           dtype={"animal": str, "section": str, "level": str})
    values = endpoint_animal_values(endpoint_observations(sections))
    got = read_pzfx(out / "prism.pzfx")["Blobs per section (count)"]
    assert list(got.columns) == ["vehicle", "MSC"]
    for r in values.itertuples():
        assert got.loc[r.animal, r.group] == pytest.approx(r.value)
        # the animal's mean per section is its total over its sections
        assert r.value * r.n_sections == pytest.approx(n[r.animal])
    book = pd.read_excel(out / "study.xlsx", sheet_name=None)
    assert {"blobs animals", "blobs sections", "long", "endpoints"} <= set(book)
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
