"""Declared exclusions: rules and manual entries mark sections, which leave the animal values.

The rules are checked on handmade tables (scores and saturation chosen around the limits);
the manual entries and the bookkeeping (sections.csv, the animal and tidy tables, run.json,
endpoints) on a
phantom study whose per-animal counts are known.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from histoquant.batch.config import StudyError, load_study
from histoquant.batch.exclusions import ExclusionRule, mark_exclusions, parse_exclusions
from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register


def _sections():
    # image a: two sections scored 0.30 and 0.70; image b: one section 0.50 (on the limit)
    return pd.DataFrame({
        "image": ["a", "a", "a", "b"], "section": ["1", "1", "2", "1"],
        "region": ["grey", "white", "grey", "grey"], "assay": ["blobs"] * 4,
        "quality_score": [0.30, 0.35, 0.70, 0.50], "n": [1.0, 2.0, 3.0, 4.0]})


UNITS = [{"image": "a", "assay": "blobs", "saturated_pct": 0.2},
         {"image": "b", "assay": "blobs", "saturated_pct": 6.0}]


def test_anatomy_rule_excludes_exactly_the_sections_below():
    rules = (ExclusionRule("min_anatomy_score", 0.5),)
    out, records, notes = mark_exclusions(_sections(), UNITS, rules)
    # a#1 scores 0.30 (its lowest region); a#2 0.70; b#1 0.50 is not below 0.5
    assert out["excluded"].tolist() == [True, True, False, False]
    assert records == [{"image": "a", "section": "1", "assay": "blobs",
                        "reason": "anatomy score 0.30, below 0.5 (min_anatomy_score)"}]
    assert out.loc[0, "exclusion_reason"] == records[0]["reason"]
    assert out.loc[2, "exclusion_reason"] == ""
    assert "1 section(s) excluded" in notes[0]


def test_saturation_rule_excludes_every_section_of_the_image_above():
    out, records, _ = mark_exclusions(_sections(), UNITS,
                                      (ExclusionRule("max_saturated_pct", 5.0),))
    assert out["excluded"].tolist() == [False, False, False, True]
    assert "6.00 % of pixels saturated, above 5 %" in records[0]["reason"]
    out, _, _ = mark_exclusions(_sections(), UNITS, (ExclusionRule("max_saturated_pct", 6.0),))
    assert not out["excluded"].any()  # 6.0 is not above 6


def test_manual_by_image_section_glob_and_alias():
    rules = (ExclusionRule("sections", sections=("a#2",), reason="folded tissue"),
             ExclusionRule("sections", sections=("S12*",), reason="torn"),
             ExclusionRule("sections", sections=("nothing*",), reason="x"))
    out, _, notes = mark_exclusions(_sections(), UNITS, rules, aliases={"b": ["S123456"]})
    assert out["excluded"].tolist() == [False, False, True, True]
    assert out["exclusion_reason"].tolist() == ["", "", "folded tissue", "torn"]
    assert any("nothing* match(es) no section" in n for n in notes)
    # several reasons are all given
    rules = (ExclusionRule("sections", sections=("b",), reason="torn"),
             ExclusionRule("max_saturated_pct", 5.0, reason="camera"))
    out, _, _ = mark_exclusions(_sections(), UNITS, rules)
    assert out.loc[3, "exclusion_reason"] == \
        "torn; camera: 6.00 % of pixels saturated, above 5 % (max_saturated_pct)"


def test_animal_table_leaves_excluded_rows_out(monkeypatch):
    from histoquant.batch.tables import animal_table

    register(monkeypatch, BLOB_SPEC)
    s = pd.DataFrame({"image": ["a", "b", "c"], "animal": ["R1"] * 3, "group": ["g"] * 3,
                      "level": ["L3"] * 3, "section": ["1", "1", "1"],
                      "region": ["image"] * 3, "assay": ["blobs"] * 3,
                      "n_blobs": [10, 20, 40], "excluded": [False, True, False]})
    a = animal_table(s, ["g"])
    assert a["n_blobs"].tolist() == [50] and a["n_sections"].tolist() == [2]


def test_config_collects_every_mistake(tmp_path):
    problems: list[str] = []
    rules = parse_exclusions([
        {"rule": "min_anatomy_score", "value": 0.5},
        {"rule": "max_saturated_pct", "value": 150},
        {"rule": "brightest"},
        {"sections": ["R07_L4_s2"]},
        {"sections": [], "reason": "x"},
        {"rule": "min_anatomy_score", "value": 0.2, "colour": 1},
        "R07",
    ], problems)
    assert [r.rule for r in rules] == ["min_anatomy_score", "min_anatomy_score"]
    assert len(problems) == 6
    assert any("exclusions[1].value" in p and "0 to 100" in p for p in problems)
    assert any("exclusions[3]" in p and "reason" in p for p in problems)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "assays": {"motor-neurons": {}}, "exclusions": [{"rule": "nope"}, 3]}))
    with pytest.raises(StudyError) as err:
        load_study(tmp_path / "study.yaml")
    assert len(err.value.problems) == 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    truth = write_phantom_study(folder, groups=("vehicle", "MSC"), animals_per_group=2,
                                levels=("L3", "L4"), seed=5, slide_every=2, png_every=0)
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg["exclusions"] = [{"sections": ["R01_L4_s2"], "reason": "folded tissue"},
                         {"sections": ["R03_L3_slide#2"], "reason": "bubble"},
                         {"rule": "max_saturated_pct", "value": 50}]
    (folder / "study.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        from histoquant.batch import run_batch

        report = run_batch(folder, out)
    return folder, out, truth, report


def test_study_excludes_named_sections_everywhere(study):
    _, out, truth, report = study
    assert report.ok
    sections = pd.read_csv(out / "sections.csv", dtype={"section": str})
    gone = sections[sections["excluded"]]
    assert sorted(zip(gone["image"], gone["section"], gone["exclusion_reason"])) == [
        ("R01_L4_s2", "2", "folded tissue"), ("R03_L3_slide", "2", "bubble")]
    assert len(sections) == len(truth)  # excluded rows stay, visible
    animals = pd.read_csv(out / "tables" / "blobs__animals.csv", dtype={"animal": str})
    kept = truth[~(((truth["animal"] == "R01") & (truth["level"] == "L4")
                    & (truth["section"].astype(str) == "2"))
                   | ((truth["animal"] == "R03") & (truth["level"] == "L3")
                      & (truth["section"].astype(str) == "2")))]
    want = kept.groupby(["animal", "level"])["n_cells"].agg(["sum", "size"])
    got = animals.set_index(["animal", "level"]).loc[want.index]
    np.testing.assert_array_equal(got["n_blobs"], want["sum"])
    np.testing.assert_array_equal(got["n_sections"], want["size"])
    # the tidy tables a model reads hold no excluded section either
    long = pd.read_csv(out / "long.csv", dtype={"animal": str})
    n = long[long["measure"] == "n_blobs"].set_index(["animal", "level"])["value"]
    np.testing.assert_array_equal(n.loc[want.index], want["sum"])
    per_section = pd.read_csv(out / "sections_long.csv", dtype={"section": str})
    assert not ((per_section["image"] == "R01_L4_s2") & (per_section["section"] == "2")).any()
    record = json.loads((out / "run.json").read_text())
    assert sorted((e["image"], e["section"], e["reason"]) for e in record["exclusions"]) == [
        ("R01_L4_s2", "2", "folded tissue"), ("R03_L3_slide", "2", "bubble")]
    assert any("2 section(s) excluded" in n for n in record["notes"])


def test_a_manual_exclusion_naming_no_image_stops_the_run(study, tmp_path, monkeypatch):
    folder, *_ = study
    register(monkeypatch, BLOB_SPEC)
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg["exclusions"] = [{"sections": ["R99_*"], "reason": "typo"}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    from histoquant.batch import run_batch

    with pytest.raises(StudyError, match="R99_"):
        run_batch(folder, tmp_path / "o", config=tmp_path / "s.yaml")
    assert not (tmp_path / "o" / "sections.csv").exists()
