"""``histoquant validate``: blinded sampling and agreement with manual counts (issue #16).

Known values: the ICC of a perfectly agreeing pair is 1 and pingouin's ICC(A,1) equals the
two-way ANOVA formula; a constant bias gives that bias and zero-width limits; Bland–Altman
limits and their CIs and the mean absolute % error computed by hand on a small table; object
F1 on tiny label images. The blinding key round trip runs a phantom study through the batch,
draws a coded sample, fills the manual sheet with the phantom's true counts by code, and
compares: the codes map back and the agreement is perfect.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from histoquant.cli import main
from histoquant.errors import DependencyError, OutputPathError
from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register
from histoquant.validate import (
    ValidationError,
    agreement,
    bland_altman,
    compare_counts,
    icc_absolute,
    pick_stratified,
    write_blinded_sample,
)
from histoquant.validate.agreement import mean_absolute_pct_error
from histoquant.validate.sample import allocate

pingouin = pytest.importorskip("pingouin")

GROUPS = ["vehicle", "MSC"]
T_975_DF3 = 3.182446305284263  # Student's t, 97.5 % point, 3 degrees of freedom


@pytest.fixture(autouse=True)
def blobs(monkeypatch):
    register(monkeypatch, BLOB_SPEC)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- agreement: known values --------------------------------------------------------------

def test_icc_of_a_perfectly_agreeing_pair_is_one():
    x = [3, 7, 10, 12, 20, 31]
    icc, _lo, _hi = icc_absolute(x, x)
    assert icc == pytest.approx(1.0)
    a = agreement(x, x)
    assert a.icc == pytest.approx(1.0) and a.mape_pct == 0.0
    assert a.bland_altman.bias == 0.0 and a.bland_altman.loa_low == a.bland_altman.loa_high == 0


def _icc_a1_by_hand(a: np.ndarray, m: np.ndarray) -> float:
    """McGraw & Wong's ICC(A,1) from the two-way ANOVA mean squares."""
    y = np.column_stack([a, m]).astype(float)
    n, k = y.shape
    grand = y.mean()
    msr = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand) ** 2)
    mse = sse.sum() / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


def test_icc_is_absolute_agreement_computed_as_by_hand():
    manual = np.array([11, 10, 9, 12, 25, 18])
    auto = np.array([10, 12, 9, 15, 27, 17])
    icc, lo, hi = icc_absolute(auto, manual)
    assert icc == pytest.approx(_icc_a1_by_hand(auto, manual), rel=1e-9)
    assert lo <= icc <= hi
    # a constant offset: a consistency ICC would be 1, absolute agreement is not
    x = np.array([3, 7, 10, 12, 20])
    icc_c, _, _ = icc_absolute(x + 2, x)
    assert icc_c < 1
    assert icc_c == pytest.approx(_icc_a1_by_hand(x + 2, x), rel=1e-9)


def test_a_constant_bias_gives_that_bias_and_zero_width_limits():
    manual = np.array([4.0, 9, 13, 20, 30])
    ba = bland_altman(manual + 3.5, manual)
    assert ba.bias == pytest.approx(3.5)
    assert ba.sd_diff == pytest.approx(0.0, abs=1e-12)
    assert ba.loa_low == pytest.approx(3.5) and ba.loa_high == pytest.approx(3.5)
    assert ba.bias_ci_low == pytest.approx(3.5) and ba.bias_ci_high == pytest.approx(3.5)


def test_bland_altman_limits_by_hand():
    auto, manual = [10, 12, 9, 15], [11, 10, 9, 12]
    # differences -1, 2, 0, 3: mean 1, squared deviations 4 + 1 + 1 + 4 = 10, SD √(10/3)
    sd = math.sqrt(10 / 3)
    ba = bland_altman(auto, manual)
    assert ba.n == 4
    assert ba.bias == pytest.approx(1.0)
    assert ba.sd_diff == pytest.approx(sd)
    assert ba.loa_low == pytest.approx(1 - 1.96 * sd)
    assert ba.loa_high == pytest.approx(1 + 1.96 * sd)
    assert ba.loa_low == pytest.approx(-2.578454, abs=1e-6)
    assert ba.loa_high == pytest.approx(4.578454, abs=1e-6)
    half = T_975_DF3 * sd / 2
    assert (ba.bias_ci_low, ba.bias_ci_high) == pytest.approx((1 - half, 1 + half))
    se_loa = sd * math.sqrt(1 / 4 + 1.96**2 / 6)
    assert ba.loa_high_ci_low == pytest.approx(1 + 1.96 * sd - T_975_DF3 * se_loa)
    assert ba.loa_low_ci_high == pytest.approx(1 - 1.96 * sd + T_975_DF3 * se_loa)


def test_mean_absolute_pct_error_by_hand():
    mape, n = mean_absolute_pct_error([10, 12, 9, 15], [11, 10, 9, 12])
    assert n == 4
    assert mape == pytest.approx(100 * (1 / 11 + 2 / 10 + 0 + 3 / 12) / 4)
    # a manual 0 has no relative error: left out and said
    mape0, n0 = mean_absolute_pct_error([10, 12, 2], [11, 10, 0])
    assert n0 == 2 and mape0 == pytest.approx(100 * (1 / 11 + 2 / 10) / 2)


@pytest.mark.parametrize("auto, manual, words", [
    ([1, 2], [1, 2], "at least 3"),
    ([1, 2, np.nan], [1, 2, 3], "blank or non-finite"),
    ([1, 2, 3], [1, 2], "paired"),
])
def test_agreement_refuses_bad_pairs(auto, manual, words):
    with pytest.raises(ValidationError, match=words):
        agreement(auto, manual)


def test_missing_pingouin_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pingouin", None)
    with pytest.raises(DependencyError, match=r"histoquant\[stats\]"):
        icc_absolute([1, 2, 3], [1, 2, 4])


# ---- stratified sampling ---------------------------------------------------------------------

def test_allocation_is_as_even_as_the_strata_allow():
    rng = np.random.default_rng(0)
    q = allocate({"a": 10, "b": 10, "c": 1, "d": 10}, 10, rng)
    assert sum(q.values()) == 10 and q["c"] == 1
    assert sorted(q[k] for k in "abd") == [3, 3, 3]
    q = allocate({"a": 5, "b": 5, "c": 5}, 7, np.random.default_rng(1))
    assert sum(q.values()) == 7 and max(q.values()) - min(q.values()) == 1


# ---- a phantom study, its batch results, and a blinded sample --------------------------------

@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vstudy")
    truth = write_phantom_study(folder, groups=GROUPS, group_means=(10, 20),
                                animals_per_group=2, levels=("L3", "L4"), size_px=160, seed=5)
    results = tmp_path_factory.mktemp("vresults")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        from histoquant.batch import run_batch

        assert run_batch(folder, results).ok
    return folder, results, truth


def _true_counts(truth: pd.DataFrame) -> pd.Series:
    """The phantom's cells per image file (both sections of a slide together)."""
    return truth.groupby("file")["n_cells"].sum()


def _fill_by_code(blind: Path, truth: pd.DataFrame, offset: np.ndarray | None = None) -> Path:
    """The counter's sheet: the blank template filled with the true counts, by code only."""
    sheet = pd.read_csv(blind / "manual_counts.csv", dtype={"code": str})
    key = pd.read_csv(blind / "key.csv", dtype=str).set_index("code")
    counts = sheet["code"].map(key["file"]).map(_true_counts(truth)).to_numpy(float)
    sheet["n_blobs"] = counts + (0 if offset is None else offset)
    path = blind / "manual_filled.csv"
    sheet.to_csv(path, index=False)
    return path


def test_the_blinding_key_round_trip(study, tmp_path):
    folder, results, truth = study
    blind = tmp_path / "blind"
    s = write_blinded_sample(folder, blind, 8, seed=11)
    images = sorted((blind / "images").iterdir())
    assert len(images) == len(s.key) == 8
    # the counter's folder holds only coded images: no key, no names, no groups
    names = {p.name for p in images}
    assert all(n.split(".")[0] in set(s.key["code"]) for n in names)
    assert "key.csv" not in names and not any(p.is_dir() for p in images)
    for word in [*truth["animal"], *GROUPS, *truth["level"], "slide"]:
        assert not any(word.lower() in n.lower() for n in names), word
    assert (blind / "key.csv").is_file() and (blind / "manual_counts.csv").is_file()
    assert not (blind / ".parts").exists()
    # each coded file is its original, byte for byte
    for _, r in s.key.iterrows():
        assert _sha(blind / r["coded_file"]) == _sha(folder / r["file"]) == r["sha256"]
    # codes in drawn order are not sorted by stratum, and the key tells each one back
    assert list(s.key["code"]) == [f"V{i:03d}" for i in range(1, 9)]
    # the blank sheet: code + the assay's headline count, nothing that unblinds
    sheet = pd.read_csv(blind / "manual_counts.csv", dtype=str, keep_default_na=False)
    assert list(sheet.columns) == ["code", "n_blobs"]
    assert (sheet["n_blobs"] == "").all()
    # the counter fills in the true counts by code; compare maps the codes back
    manual = _fill_by_code(blind, truth)
    res = compare_counts(results, manual, key=blind / "key.csv")
    row = res.table.set_index("measure").loc["n_blobs"]
    assert row["n_pairs"] == 8
    assert row["icc"] == pytest.approx(1.0)
    assert row["bias"] == 0 and row["loa_low"] == row["loa_high"] == 0
    assert row["mape_pct"] == 0
    assert any("agrees exactly" in n for n in res.notes)
    pairs = pd.read_csv(results / "validation_pairs.csv", dtype={"code": str})
    assert list(pairs["code"]) == list(sheet["code"])
    assert list(pairs["image"]) == list(sheet["code"].map(s.key.set_index("code")["image"]))
    # the study report in the results folder now shows the agreement
    report = (results / "report.html").read_text(encoding="utf-8")
    assert "Agreement with manual counts" in report and "validation.html" in report
    html = (results / "validation.html").read_text(encoding="utf-8")
    assert "Bland–Altman · n_blobs" in html and html.count("<svg") == 2


def test_strata_are_even_and_the_seed_reproduces_the_sample(study, tmp_path):
    folder, _, truth = study
    a = write_blinded_sample(folder, tmp_path / "a", 6, seed=3)
    b = write_blinded_sample(folder, tmp_path / "b", 6, seed=3)
    c = write_blinded_sample(folder, tmp_path / "c", 6, seed=4)
    assert a.key.drop(columns="coded_file").equals(b.key.drop(columns="coded_file"))
    assert list(a.key["file"]) != list(c.key["file"])
    st = a.strata
    assert st["picked"].sum() == 6 and len(st) == 4  # 2 groups × 2 levels
    assert st["picked"].max() - st["picked"].min() <= 1
    assert (st["available"] == truth.groupby(["group", "level"])["file"].nunique()
            .reindex(list(zip(st["group"], st["level"]))).to_numpy()).all()
    picked = a.key.groupby(["group", "level"]).size()
    for _, r in st.iterrows():
        assert picked.get((r["group"], r["level"]), 0) == r["picked"]
    assert pd.read_csv(tmp_path / "a" / "strata.csv")["picked"].sum() == 6


def test_pick_stratified_refuses_more_than_the_study_holds(study):
    from histoquant.batch.plan import plan_study

    folder, results, _ = study
    plan = plan_study(folder, results)
    with pytest.raises(ValidationError, match="only"):
        pick_stratified(list(plan.samples.values()), len(plan.samples) + 1)
    with pytest.raises(ValidationError, match="1 or more"):
        pick_stratified(list(plan.samples.values()), 0)


def test_a_second_sample_never_overwrites_a_key(study, tmp_path):
    folder, _, _ = study
    write_blinded_sample(folder, tmp_path / "blind", 3, seed=1)
    key = (tmp_path / "blind" / "key.csv").read_bytes()
    with pytest.raises(ValidationError, match="already holds"):
        write_blinded_sample(folder, tmp_path / "blind", 3, seed=2)
    assert (tmp_path / "blind" / "key.csv").read_bytes() == key


def test_a_bias_shows_up_in_the_comparison(study, tmp_path):
    folder, results, truth = study
    blind = tmp_path / "blind"
    write_blinded_sample(folder, blind, 8, seed=2)
    offset = np.array([2, -1, 0, 3, 1, -2, 0, 1], float)
    manual = _fill_by_code(blind, truth, offset)
    res = compare_counts(results, manual, outdir=tmp_path / "val")
    row = res.table.iloc[0]
    # differences are program − manual = −offset
    assert row["bias"] == pytest.approx(-offset.mean())
    assert row["sd_diff"] == pytest.approx(offset.std(ddof=1))
    assert row["icc"] < 1
    # written where asked; the results folder's report untouched by an outside comparison
    assert (tmp_path / "val" / "validation.csv").is_file()


def test_sections_of_a_slide_pair_one_by_one_with_a_section_column(study, tmp_path):
    _, results, truth = study
    slides = truth[truth["file"].str.endswith("_slide.ome.tif")]
    assert len(slides) >= 4
    sheet = pd.DataFrame({"image": slides["file"].map(lambda f: Path(f).name.split(".")[0]),
                          "section": slides["section"], "n_blobs": slides["n_cells"]})
    sheet.to_csv(tmp_path / "m.csv", index=False)
    res = compare_counts(results, tmp_path / "m.csv", outdir=tmp_path / "o")
    assert res.table.iloc[0]["n_pairs"] == len(slides)
    assert res.table.iloc[0]["bias"] == 0
    # without the section column each slide is one pair, its sections summed
    whole = sheet.groupby("image", as_index=False)["n_blobs"].sum()
    single = truth[~truth["file"].str.endswith("_slide.ome.tif")].iloc[:2]
    whole = pd.concat([whole, pd.DataFrame({
        "image": single["file"].map(lambda f: Path(f).name.split(".")[0]),
        "n_blobs": single["n_cells"]})], ignore_index=True)
    whole.to_csv(tmp_path / "w.csv", index=False)
    res = compare_counts(results, tmp_path / "w.csv", outdir=tmp_path / "o2")
    assert res.table.iloc[0]["n_pairs"] == len(whole) and res.table.iloc[0]["bias"] == 0


def test_metadata_that_names_the_original_is_warned(tmp_path):
    folder = tmp_path / "study"
    write_phantom_study(folder, groups=GROUPS, group_means=(5, 5), animals_per_group=1,
                        levels=("L3",), size_px=120, slide_every=0, png_every=0, seed=1)
    # a microscope that writes the file's name into its description
    f = folder / "R01" / "R01_L3_s1.ome.tif"
    rgb = tifffile.imread(f)
    tifffile.imwrite(f, rgb, photometric="rgb", description="R01_L3_s1 vehicle",
                     resolution=(0.5, 0.5))
    s = write_blinded_sample(folder, tmp_path / "blind", 4, seed=0)
    code = s.key.set_index("file").loc["R01/R01_L3_s1.ome.tif", "coded_file"]
    assert any(w.startswith(Path(code).name) and "R01_L3_s1" in w for w in s.warnings)
    assert len(s.warnings) == 1


# ---- object F1 on tiny label images -----------------------------------------------------------

def _single_results(folder: Path, values: list[float], preds: list[np.ndarray]) -> None:
    (folder / "labels").mkdir(parents=True)
    names = [f"V{i:03d}" for i in range(1, len(values) + 1)]
    pd.DataFrame({"image": names, "region": "image", "n_blobs": values}).to_csv(
        folder / "summary.csv", index=False)
    (folder / "run.json").write_text('{"assay": "blobs"}')
    for n, p in zip(names, preds):
        tifffile.imwrite(folder / "labels" / f"{n}.tif", p)


def test_object_precision_recall_f1_on_tiny_label_images(tmp_path):
    truth = np.zeros((20, 20), np.uint16)
    truth[2:6, 2:6] = 1
    truth[10:14, 10:14] = 2
    truth[15:19, 2:6] = 3
    pred = np.zeros_like(truth)
    pred[2:6, 2:6] = 7          # exact
    pred[10:14, 11:15] = 8      # IoU 12/20 = 0.6: a match
    pred[2:6, 14:18] = 9        # nothing there: a false positive; object 3 is missed
    res_dir, man_dir = tmp_path / "res", tmp_path / "manual_labels"
    _single_results(res_dir, [3, 2, 2], [pred, truth, truth])
    man_dir.mkdir()
    tifffile.imwrite(man_dir / "V001_labels.tif", truth)
    tifffile.imwrite(man_dir / "V002.tif", truth)
    pd.DataFrame({"code": ["V001", "V002", "V003"], "n_blobs": [3, 3, 3]}).to_csv(
        tmp_path / "m.csv", index=False)
    res = compare_counts(res_dir, tmp_path / "m.csv", labels=man_dir)
    obj = res.table.set_index("measure").loc["objects"]
    # V001: tp 2, fp 1, fn 1; V002: tp 3; V003 has no manual labels (left out, said)
    assert (obj["tp"], obj["fp"], obj["fn"]) == (5, 1, 1)
    assert obj["precision"] == pytest.approx(5 / 6) and obj["recall"] == pytest.approx(5 / 6)
    assert obj["f1"] == pytest.approx(5 / 6) and obj["n_pairs"] == 2
    per = pd.read_csv(res_dir / "validation_objects.csv").set_index("code")
    assert per.loc["V001", "f1"] == pytest.approx(2 / 3)
    assert any("V003" in n for n in res.notes)


def test_object_scores_need_the_programs_label_images(study, tmp_path):
    _, results, _truth = study
    (tmp_path / "lab").mkdir()
    sheet = pd.DataFrame({"image": ["R01_L4_s1", "R01_L4_s2", "R02_L3_s1"],
                          "n_blobs": [1, 2, 3]})
    sheet.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValidationError, match="labels/"):
        compare_counts(results, tmp_path / "m.csv", labels=tmp_path / "lab",
                       outdir=tmp_path / "o")


# ---- bad input: a clear error, exit status 2, no traceback -------------------------------------

@pytest.fixture()
def blind(study, tmp_path):
    folder, results, truth = study
    b = tmp_path / "blind"
    write_blinded_sample(folder, b, 5, seed=0)
    return results, b, truth


@pytest.mark.parametrize("edit, words", [
    (lambda df: df.rename(columns={"code": "slide"}), "'code' or an 'image' column"),
    (lambda df: df.rename(columns={"n_blobs": "n_neurons"}), "n_neurons are not in the results"),
    (lambda df: df.assign(code=["V001", "V002", "V003", "V004", "V099"]), "not in the key"),
    (lambda df: df.assign(n_blobs=[1, 2, None, 4, 5]), "blank or NaN for V003"),
    (lambda df: df.assign(n_blobs=[1, 2, "many", 4, 5]), "not numbers"),
    (lambda df: df.head(2), "at least 3"),
    (lambda df: df.assign(n_blobs=None), "every measure column is blank"),
    (lambda df: df.assign(code=["V001", "V001", "V002", "V003", "V004"]), "same image"),
])
def test_bad_manual_sheets_exit_2_with_a_clear_message(blind, tmp_path, capsys, edit, words):
    results, b, _ = blind
    sheet = pd.read_csv(b / "manual_counts.csv", dtype=str)
    sheet["n_blobs"] = [str(v) for v in range(10, 10 + len(sheet))]
    path = tmp_path / "manual.csv"
    edit(sheet).to_csv(path, index=False)
    code = main(["validate", "compare", str(results), str(path), "--key", str(b / "key.csv"),
                 "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out" / "validation.csv").exists()


def test_codes_without_a_key_are_refused(blind, tmp_path, capsys):
    results, b, _ = blind
    sheet = pd.read_csv(b / "manual_counts.csv", dtype=str).assign(n_blobs=[1, 2, 3, 4, 5])
    sheet.to_csv(tmp_path / "m.csv", index=False)  # no key.csv beside it
    assert main(["validate", "compare", str(results), str(tmp_path / "m.csv"), "-q"]) == 2
    assert "--key" in capsys.readouterr().err


def test_bad_sampling_requests_exit_2(study, tmp_path, capsys):
    folder, _, _ = study
    assert main(["validate", "sample", str(folder), "-n", "999", "-o",
                 str(tmp_path / "x")]) == 2
    assert "only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["validate", "sample", str(tmp_path / "nope"), "-n", "3", "-o",
                 str(tmp_path / "y")]) == 2
    assert main(["validate", "compare", str(tmp_path / "nope"), str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "no such results folder" in err and "Traceback" not in err


def test_sample_measures_must_be_the_assays_and_a_failed_draw_leaves_nothing(study, tmp_path,
                                                                             capsys):
    folder, _, _ = study
    out = tmp_path / "b"
    assert main(["validate", "sample", str(folder), "-n", "3", "-o", str(out),
                 "--measure", "n_neurons"]) == 2
    err = capsys.readouterr().err
    assert "n_neurons" in err and "n_blobs" in err
    assert not out.exists()
    assert main(["validate", "sample", str(folder), "-n", "3", "-o", str(out), "-q",
                 "--measure", "n_blobs", "--measure", "mean_blob_area_um2"]) == 0
    sheet = pd.read_csv(out / "manual_counts.csv")
    assert list(sheet.columns) == ["code", "n_blobs", "mean_blob_area_um2"]


def test_the_sample_command_says_what_it_picked(study, tmp_path, capsys):
    folder, _, _ = study
    assert main(["validate", "sample", str(folder), "-n", "5", "-o", str(tmp_path / "b"),
                 "--seed", "9"]) == 0
    err = capsys.readouterr().err
    assert "group" in err and "level" in err and "picked" in err
    for g in GROUPS:
        assert g in err
    assert "key.csv" in err


# ---- hostile names and output folders ------------------------------------------------------------

def test_hostile_names_never_reach_a_written_path(tmp_path):
    folder = tmp_path / "study"
    write_phantom_study(folder, groups=GROUPS, group_means=(5, 5), animals_per_group=1,
                        levels=("L3",), size_px=120, slide_every=0, png_every=0, seed=1,
                        study_yaml=False)
    (folder / "study.yaml").write_text("assays:\n  blobs:\n    files: ['*']\n")
    sheet = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    sheet["animal"] = sheet["animal"].map({"R01": "../../evil", "R02": "<b>R2</b>"})
    sheet["group"] = sheet["animal"].map({"../../evil": "../g1", "<b>R2</b>": "/abs/g2"})
    sheet.to_csv(folder / "samples.csv", index=False)
    out = tmp_path / "deep" / "blind"
    before = set(os.listdir(tmp_path))
    s = write_blinded_sample(folder, out, 4, seed=0)
    assert set(os.listdir(tmp_path)) == before | {"deep"}
    assert sorted(os.listdir(out)) == ["images", "key.csv", "manual_counts.csv", "strata.csv"]
    assert all(n.startswith("V00") for n in os.listdir(out / "images"))
    # the key keeps the original names in its columns
    assert set(s.key["animal"]) == {"../../evil", "<b>R2</b>"}


def test_a_link_planted_in_the_output_folder_is_refused(study, tmp_path, capsys):
    folder, _, _ = study
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "blind"
    out.mkdir()
    os.symlink(elsewhere, out / "images")
    with pytest.raises(OutputPathError):
        write_blinded_sample(folder, out, 3)
    assert os.listdir(elsewhere) == []
    assert main(["validate", "sample", str(folder), "-n", "3", "-o", str(out)]) == 2


def test_html_escapes_names_from_the_sheet(tmp_path):
    res_dir = tmp_path / "res"
    res_dir.mkdir()
    names = ["<script>alert(1)</script>", "a&b", "c"]
    pd.DataFrame({"image": names, "region": "image", "n_blobs": [3, 5, 8]}).to_csv(
        res_dir / "summary.csv", index=False)
    pd.DataFrame({"image": names, "n_blobs": [3, 6, 8]}).to_csv(tmp_path / "m.csv",
                                                                 index=False)
    compare_counts(res_dir, tmp_path / "m.csv")
    html = (res_dir / "validation.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_rerun_of_the_batch_keeps_the_validation_in_its_report(study, tmp_path):
    folder, _results, truth = study
    out = tmp_path / "res"
    from histoquant.batch import run_batch

    run_batch(folder, out)
    sheet = pd.DataFrame({"image": ["R01_L4_s1", "R01_L4_s2", "R02_L3_s1"]})
    tru = truth.assign(image=truth["file"].map(lambda f: Path(f).name.split(".")[0]))
    sheet["n_blobs"] = sheet["image"].map(tru.groupby("image")["n_cells"].sum())
    sheet.to_csv(tmp_path / "m.csv", index=False)
    compare_counts(out, tmp_path / "m.csv")
    (out / "report.html").unlink()
    run_batch(folder, out, resume=True)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count("Agreement with manual counts") == 1
