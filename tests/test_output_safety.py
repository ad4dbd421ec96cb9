"""Nothing escapes the output folder; a study folder's link loops are walked once (issue #13).

Names from data (regions from a RoiSet or GeoJSON, image file names) become file names only
through ``histoquant.io.safe_paths``; every output path is checked to resolve inside the
output folder; a link planted in the output folder is refused before anything is measured.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from histoquant.errors import HistoquantError, OutputPathError
from histoquant.io.safe_paths import (
    MAX_NAME_BYTES,
    OutputFolder,
    check_inside,
    safe_file_name,
    safe_name,
)
from histoquant.output import write_csv
from histoquant.rois import Polygon, Region, read_regions, write_regions
from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register

ORDINARY = ["grey_matter", "tissue", "ventral_horn_left", "L4", "T13", "all", "n_blobs",
            "blob_density_per_mm2", "motor-neurons", "R01_L3_s1", "R01_L3_slide", "image",
            "ventral horn", "Rat 1", "area_µm²", "région", "v1.2"]
UNSAFE = ["../../../../x", "/abs/name", "a\\b", "a/b", "..", ".", "", "x\x00y", "\x01\x7f",
          "tab\there", "new\nline", ".hidden", " lead", "trail.", "trail ", "CON", "con.csv",
          "Lpt1", "NUL.tar.gz", "\udcff", "C:evil", "a*b?c", "<>|\"", "~/x", "e\u0301"]
BAD_REGIONS = ["../../../../x", "/abs/name", "a\\b"]


@pytest.fixture(autouse=True)
def blobs(monkeypatch):
    register(monkeypatch, BLOB_SPEC)


def _files(root: Path) -> set[Path]:
    """Every file and link under ``root`` (links not followed)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(Path(dirpath, n))
    return out


# ---- the sanitiser ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_names_are_unchanged(name):
    assert safe_name(name) == name
    assert safe_file_name(name, suffix=".png") == f"{name}.png"


def test_ordinary_prism_file_names_are_unchanged():
    assert safe_file_name("blobs", "n_blobs", "tissue", "L3", suffix=".csv") == \
        "blobs__n_blobs__tissue__L3.csv"
    assert safe_file_name("motor-neurons", "n_motor_neurons", "ventral_horn_left", "all",
                          suffix=".csv") == \
        "motor-neurons__n_motor_neurons__ventral_horn_left__all.csv"
    assert safe_file_name("evans-blue", "profiles", suffix=".csv") == \
        "evans-blue__profiles.csv"


@pytest.mark.parametrize("name", UNSAFE)
def test_any_name_becomes_one_safe_component(name, tmp_path):
    got = safe_name(name)
    assert got == safe_name(name)  # deterministic
    assert got not in ("", ".", "..")
    assert not any(c in got for c in "/\\\x00:*?\"<>|\n\t")
    assert all(unicodedata.category(c)[0] != "C" for c in got)  # no control characters
    assert not got.startswith((".", " ")) and not got.endswith((".", " "))
    assert got.split(".")[0].upper() not in ("CON", "PRN", "AUX", "NUL", "LPT1")
    assert got != name  # changed, so tagged with a hash of the original
    # and it really is a file directly inside the folder
    (tmp_path / got).write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == [got]
    assert (tmp_path / got).resolve().parent == tmp_path.resolve()


def test_traversal_and_absolute_names_stay_readable():
    assert safe_name("/abs/name").startswith("_abs_name_")
    assert safe_name("a\\b").startswith("a_b_")
    assert "x" in safe_name("../../../../x")
    assert safe_name("").startswith("unnamed_")


def test_long_names_are_bounded_and_stay_distinct():
    long_a, long_b = "a" * 1000, "a" * 999 + "b"
    for name in (long_a, long_b, "é" * 1000, "目" * 500):
        got = safe_name(name)
        assert len(got.encode("utf-8")) <= MAX_NAME_BYTES
        got.encode("utf-8").decode("utf-8")  # not cut inside a character
    assert safe_name(long_a) != safe_name(long_b)
    prism = safe_file_name("blobs", "n_blobs", "r" * 500, "L3", suffix=".csv")
    assert prism.endswith(".csv") and len(prism.encode()) <= MAX_NAME_BYTES
    assert len(safe_name("x" * 100, max_bytes=40).encode()) <= 40


def test_different_names_never_share_a_file():
    names = ["a/b", "a_b", "a\\b", "a:b", "a?b", "a\x00b", "a b", "a_b_", ".a_b", "A_B",
             "../a_b", "e\u0301", "\u00e9", "", "unnamed", ".", "..", "_", "__"]
    got = [safe_name(n) for n in names]
    assert len(set(got)) == len(names)
    # several parts joined with "__" cannot be confused either
    tuples = [("a__b", "c"), ("a", "b__c"), ("a_", "b"), ("a", "_b"), ("a", "b", "c"),
              ("a", "b_c"), ("a_b", "c")]
    files = [safe_file_name(*t, suffix=".csv") for t in tuples]
    assert len(set(files)) == len(tuples)


def test_safe_file_name_refuses_programming_mistakes():
    with pytest.raises(ValueError):
        safe_file_name()
    for suffix in ("csv", "./x", "/..", ".a/b"):
        with pytest.raises(ValueError):
            safe_file_name("x", suffix=suffix)
    with pytest.raises(ValueError):
        safe_name("x", max_bytes=5)


# ---- the inside-the-output-folder check --------------------------------------------------

def test_check_inside_accepts_paths_in_the_folder_and_links_that_stay_in(tmp_path):
    root = tmp_path / "out"
    (root / "real").mkdir(parents=True)
    os.symlink(root / "real", root / "alias")
    assert check_inside(root, root / "qc" / "x.png") == root / "qc" / "x.png"
    assert check_inside(root, root / "alias" / "x.png") == root / "alias" / "x.png"
    # a root that is itself a link is the user's choice
    os.symlink(root, tmp_path / "out_link")
    assert check_inside(tmp_path / "out_link", tmp_path / "out_link" / "a.csv")


@pytest.mark.parametrize("rel", ["../x.csv", "qc/../../x.csv", "/etc/x.csv", "..", "."])
def test_check_inside_refuses_names_leading_out(tmp_path, rel):
    root = tmp_path / "out"
    with pytest.raises(OutputPathError, match="outside the output folder"):
        check_inside(root, root / rel)


def test_check_inside_names_the_link_that_leads_out(tmp_path):
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "qc")
    with pytest.raises(OutputPathError) as info:
        check_inside(root, root / "qc" / "blobs" / "x.png")
    msg = str(info.value)
    assert str(root / "qc") in msg and "symbolic link" in msg and str(elsewhere) in msg
    assert isinstance(info.value, HistoquantError)
    # a link as the file itself, and a link loop, are refused too
    os.symlink(elsewhere / "summary.csv", root / "summary.csv")
    with pytest.raises(OutputPathError):
        check_inside(root, root / "summary.csv")
    os.symlink(root / "loop", root / "loop")
    with pytest.raises(OutputPathError):
        check_inside(root, root / "loop" / "x.csv")


def test_writers_with_root_refuse_and_write_nothing_outside(tmp_path):
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "prism")
    df = pd.DataFrame({"region": ["../../x"], "n": [1]})
    before = _files(tmp_path)
    with pytest.raises(OutputPathError):
        write_csv(df, root / "prism" / "a.csv", root=root)
    with pytest.raises(OutputPathError):
        write_csv(df, root / "sub" / ".." / ".." / "x.csv", root=root)
    assert _files(tmp_path) == before
    assert write_csv(df, root / "tables" / "a.csv", root=root).is_file()


def test_output_folder_check_finds_planted_links(tmp_path):
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (root / "qc").mkdir(parents=True)
    elsewhere.mkdir()
    out = OutputFolder(root)
    out.check()  # nothing planted
    OutputFolder(tmp_path / "missing").check()  # not made yet: nothing to check
    os.symlink(root / "qc", root / "qc_alias")  # stays inside: fine
    out.check()
    os.symlink(elsewhere, root / "qc" / "blobs")
    with pytest.raises(OutputPathError, match="symbolic link"):
        out.check()


def test_roiset_entry_names_are_safe_and_names_survive(tmp_path):
    square = Polygon([[2, 2], [2, 20], [20, 20], [20, 2]])
    regions = [Region(n, [square]) for n in [*BAD_REGIONS, "a/b", "a_b"]]
    path = write_regions(regions, tmp_path / "rois.zip")
    import zipfile

    with zipfile.ZipFile(path) as z:
        entries = z.namelist()
    assert len(set(entries)) == len(regions)
    assert all("/" not in e and "\\" not in e and not e.startswith(".") for e in entries)
    assert [r.name for r in read_regions(path)] == [r.name for r in regions]


# ---- a study run with hostile region names ------------------------------------------------

@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("safety_study")
    truth = write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(12, 20),
                                animals_per_group=1, levels=("L3",), sections_per_level=1,
                                slide_every=0, png_every=0, seed=3)
    return folder, truth


def _hostile_regions(path: Path) -> Path:
    """Three squares (the phantom images are 200 px) named to climb out of any folder."""
    squares = [[[10, 10], [10, 100], [100, 100], [100, 10]],
               [[100, 10], [100, 100], [190, 100], [190, 10]],
               [[10, 100], [10, 190], [190, 190], [190, 100]]]
    return write_regions([Region(n, [Polygon(s)]) for n, s in zip(BAD_REGIONS, squares)],
                         path)


@pytest.mark.parametrize("suffix", [".zip", ".geojson"])
def test_hostile_region_names_write_nothing_outside_and_tables_keep_them(
        small_study, tmp_path, suffix):
    from histoquant.batch import run_batch

    folder, truth = small_study
    regions = _hostile_regions(tmp_path / f"regions{suffix}")
    # deep enough that a name climbing four folders up still lands under tmp_path
    out = tmp_path / "a" / "b" / "c" / "d" / "out"
    out.mkdir(parents=True)
    before = _files(tmp_path)
    report = run_batch(folder, out, regions=regions)
    assert report.ok, report.errors
    new = _files(tmp_path) - before
    assert new and all(p.is_relative_to(out) for p in new), \
        sorted(str(p) for p in new if not p.is_relative_to(out))
    # prism/ and tables/ hold files only, no folders made from a name
    assert all(p.is_file() for p in (out / "prism").iterdir())
    prism = sorted(p.name for p in (out / "prism").iterdir())
    assert len(prism) >= 3 and all(n.startswith("blobs__") for n in prism)
    assert len(set(prism)) == len(prism)
    assert len(list((out / "qc" / "blobs").glob("*.png"))) == truth["file"].nunique()
    # the tables show the names as drawn
    animals = pd.read_csv(out / "tables" / "blobs__animals.csv", dtype=str,
                          keep_default_na=False)
    assert set(animals["region"]) == set(BAD_REGIONS)
    long = pd.read_csv(out / "long.csv", dtype=str, keep_default_na=False)
    assert set(long["region"]) == set(BAD_REGIONS)
    sections = pd.read_csv(out / "sections.csv", dtype=str, keep_default_na=False)
    assert set(sections["region"]) == set(BAD_REGIONS)
    wide = pd.read_excel(out / "study.xlsx", sheet_name="prism", header=None)
    titles = " ".join(str(v) for v in wide[0].dropna())
    assert all(n in titles for n in BAD_REGIONS)
    # one prism file per (measure, region): the same count as for ordinary names
    n_measures = len({n.split("__")[1] for n in prism})
    assert len(prism) == n_measures * len(BAD_REGIONS)


@pytest.mark.parametrize("planted", ["qc", "qc/blobs", "prism", ".parts", "run.json"])
def test_a_link_planted_in_the_output_folder_refuses_the_run_up_front(
        small_study, tmp_path, planted, monkeypatch):
    from histoquant.batch import run_batch

    folder, _ = small_study
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / Path(planted).parent).mkdir(parents=True, exist_ok=True)
    elsewhere.mkdir()
    os.symlink(elsewhere, out / planted)
    measured: list[str] = []

    def spy(image, **kw):
        measured.append(image.name)
        return BLOB_SPEC.run(image, **kw)

    import dataclasses

    register(monkeypatch, dataclasses.replace(BLOB_SPEC, run=spy))
    before = _files(tmp_path)
    with pytest.raises(OutputPathError) as info:
        run_batch(folder, out)
    assert str(out / planted) in str(info.value) and "symbolic link" in str(info.value)
    assert _files(tmp_path) == before and not any(elsewhere.iterdir())
    assert measured == []


def test_cli_batch_reports_a_planted_link_with_status_2(small_study, tmp_path, capsys):
    from histoquant.cli import main

    folder, _ = small_study
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "qc")
    assert main(["batch", str(folder), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "outside the output folder" in err and str(out / "qc") in err
    assert not any(elsewhere.iterdir())


# ---- the single-assay runner ----------------------------------------------------------------

@pytest.fixture(scope="module")
def nissl_file(tmp_path_factory):
    from histoquant.io import write_ome_tiff
    from histoquant.synthetic.nissl import nissl_phantom

    image, _ = nissl_phantom((300, 300), 0.5, seed=4)
    path = tmp_path_factory.mktemp("nissl") / "plain.ome.tif"
    write_ome_tiff(image, path)
    return path


def test_runner_with_a_weird_image_file_name_writes_inside(nissl_file, tmp_path):
    from histoquant.cli import main

    weird = "..\\..\\x  CON\x01.ome.tif"  # backslashes, dots, a control character
    src = tmp_path / "in"
    src.mkdir()
    path = src / weird
    path.write_bytes(nissl_file.read_bytes())
    out = tmp_path / "a" / "b" / "out"
    before = _files(tmp_path)
    assert main(["motor-neurons", str(path), "-o", str(out), "-q"]) == 0
    new = _files(tmp_path) - before
    assert new and all(p.is_relative_to(out) for p in new)
    stem = weird[: -len(".ome.tif")]
    assert [p.name for p in (out / "qc").iterdir()] == [safe_file_name(stem, suffix=".png")]
    assert [p.name for p in (out / "labels").iterdir()] == [
        safe_file_name(stem, suffix=".tif")]
    summary = pd.read_csv(out / "summary.csv", dtype={"image": str})
    assert summary.loc[0, "image"] == stem  # the table keeps the name as it is


def test_runner_refuses_a_planted_link_before_reading(nissl_file, tmp_path, capsys):
    from histoquant.cli import main

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "labels")
    assert main(["motor-neurons", str(nissl_file), "-o", str(out), "-q"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert not any(elsewhere.iterdir())
    assert sorted(p.name for p in out.iterdir()) == ["labels"]


# ---- link loops in a study folder ---------------------------------------------------------

def _tif(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full((32, 32, 3), 240, np.uint8), photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 1.0, "PhysicalSizeY": 1.0})
    return path


def test_a_link_loop_in_the_study_folder_measures_each_image_once(tmp_path):
    from histoquant.batch import discover, run_batch

    folder = tmp_path / "study"
    first = _tif(folder / "R01" / "a.ome.tif")
    _tif(folder / "R02" / "b.ome.tif")
    os.symlink(folder, folder / "loop")  # the study folder inside itself
    os.symlink(folder / "R01", folder / "R02" / "up")  # a folder reached twice
    os.symlink(first, folder / "R02" / "same.ome.tif")  # an image reached twice

    notes: list[str] = []
    images, _ = discover(folder, notes=notes)
    assert [p.relative_to(folder).as_posix() for p in images] == ["R01/a.ome.tif",
                                                                  "R02/b.ome.tif"]
    assert discover(folder)[0] == images  # the notes are optional
    assert any("loop" in n and "loop (a link back to .)" in n for n in notes)
    assert any("R02/up" in n and "R02/same.ome.tif" in n for n in notes)

    report = run_batch(folder, tmp_path / "out", assays=["blobs"])
    assert report.ok and report.n_units == 2
    sections = pd.read_csv(tmp_path / "out" / "sections.csv", dtype=str)
    assert sorted(sections["file"]) == ["R01/a.ome.tif", "R02/b.ome.tif"]
    assert any("loop" in n for n in report.notes)


def test_a_self_link_and_a_deeper_loop_are_skipped(tmp_path):
    from histoquant.batch import discover

    folder = tmp_path / "study"
    _tif(folder / "A" / "B" / "x.ome.tif")
    os.symlink(folder / "A", folder / "A" / "B" / "back")  # loops two levels up
    os.symlink("self", folder / "self")  # a link to itself: neither file nor folder
    notes: list[str] = []
    images, others = discover(folder, notes=notes)
    assert [p.name for p in images] == ["x.ome.tif"]
    assert [p.name for p in others] == ["self"]  # skipped later as "not an image"
    assert any("A/B/back (a link back to A)" in n for n in notes)
