"""Study-wide thresholds in a study run (``threshold: {scope: study, from_group: ...}``).

One Evans Blue threshold, set in a first pass from the chosen sections, measures every
section: the same value as ``study_threshold`` by hand, the same tables whatever executes the
run, reused by ``--resume`` and recomputed when the chosen sections change.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from histoquant.assays import evans_blue as eb
from histoquant.batch import StudyError, load_study, plan_study, run_batch
from histoquant.io import write_ome_tiff
from histoquant.rois import Region, write_regions
from histoquant.synthetic.evans_blue import make_evans_blue_phantom

PARAMS = {"dark_level": 100}
# animal, group, seed, noise SD, leak area %: the treated animals leak more, and one is
# noisier, so per-image thresholds differ and a study threshold is not any one image's
ANIMALS = (("v1", "vehicle", 10, 12.0, 0.3), ("v2", "vehicle", 11, 12.0, 0.3),
           ("t1", "treated", 12, 12.0, 3.0), ("t2", "treated", 13, 20.0, 3.0))
TABLES = ("sections.csv", "long.csv", "objects.csv")


def _study_yaml(folder: Path, threshold: str | None, params: dict | None = None) -> None:
    lines = ["groups: [vehicle, treated]", "assays:", "  evans-blue:",
             f"    params: {json.dumps(params or PARAMS)}"]
    if threshold is not None:
        lines.append(f"    threshold: {threshold}")
    (folder / "study.yaml").write_text("\n".join(lines) + "\n")


def _sheet(folder: Path, groups: dict[str, str]) -> None:
    pd.DataFrame([{"file": f"{a}_L4.ome.tif", "animal": a, "group": groups[a], "level": "L4",
                   "roi": f"{a}_L4_grey.geojson"} for a, *_ in ANIMALS]
                 ).to_csv(folder / "samples.csv", index=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("thr_study")
    for animal, _group, seed, noise, leak in ANIMALS:
        image, truth = make_evans_blue_phantom((320, 320), 0.5, seed=seed, noise_sd=noise,
                                               leak_area_pct=leak)
        write_ome_tiff(image, folder / f"{animal}_L4.ome.tif")
        # each section's grey matter as its region file, as a user's ROI would be
        write_regions([Region("grey_matter", mask=truth["grey_matter"])],
                      folder / f"{animal}_L4_grey.geojson")
    _sheet(folder, {a: g for a, g, *_ in ANIMALS})
    _study_yaml(folder, "{scope: study, from_group: vehicle}")
    return folder


def _copy(study: Path, dest: Path) -> Path:
    shutil.copytree(study, dest)
    return dest


def _tables(out: Path) -> dict[str, bytes]:
    files = [out / t for t in TABLES] + sorted((out / "prism").glob("*.csv"))
    return {f.relative_to(out).as_posix(): f.read_bytes() for f in files if f.is_file()}


def _record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["study_thresholds"]["evans-blue"]


@pytest.fixture(scope="module")
def reference(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("thr_ref")
    report = run_batch(study, out, jobs=1)
    assert report.ok, report.errors
    return out


def test_batch_threshold_is_study_threshold_by_hand(study, reference, tmp_path):
    rec = _record(reference)
    assert rec["method"] == "mad" and rec["from_group"] == "vehicle"
    assert rec["n_sections"] == 2
    assert rec["sections"] == ["v1_L4.ome.tif", "v2_L4.ome.tif"]
    # the same pool by hand: the vehicle images, each in its own grey matter
    by_hand = eb.study_threshold(
        [study / "v1_L4.ome.tif", study / "v2_L4.ome.tif"], PARAMS,
        regions_per_image=[str(study / "v1_L4_grey.geojson"),
                           str(study / "v2_L4_grey.geojson")],
        samples_per_image=rec["samples_per_section"])
    assert rec["value"] == by_hand
    sections = pd.read_csv(reference / "sections.csv")
    assert (sections["threshold"] == by_hand).all()
    assert set(sections["threshold_method"]) == {"study:mad(vehicle)"}
    # ... and every section measured with it as a fixed threshold gives the same rows
    fixed = _copy(study, tmp_path / "fixed")
    _study_yaml(fixed, None, {**PARAMS, "threshold_method": "fixed", "threshold": by_hand})
    assert run_batch(fixed, tmp_path / "out_fixed").ok
    hand = pd.read_csv(tmp_path / "out_fixed" / "sections.csv")
    assert set(hand["threshold_method"]) == {"fixed"}
    pd.testing.assert_frame_equal(sections.drop(columns="threshold_method"),
                                  hand.drop(columns="threshold_method"))
    # the per-image thresholds differ from each other and from the study's: the test
    # would see a batch that kept them
    auto = _copy(study, tmp_path / "auto")
    _study_yaml(auto, "{scope: image}")
    assert run_batch(auto, tmp_path / "out_auto").ok
    per_image = pd.read_csv(tmp_path / "out_auto" / "sections.csv")["threshold"]
    assert per_image.nunique() == 4 and not (per_image == by_hand).any()
    assert "study_thresholds" not in json.loads(
        (tmp_path / "out_auto" / "run.json").read_text())["timings"]


def test_from_group_all_pools_every_section(study, reference, tmp_path):
    folder = _copy(study, tmp_path / "all")
    _study_yaml(folder, "{scope: study, from_group: all}")
    assert run_batch(folder, tmp_path / "out").ok
    rec = _record(tmp_path / "out")
    assert rec["n_sections"] == 4 and rec["label"] == "study:mad(all)"
    files = [folder / f"{a}_L4.ome.tif" for a, *_ in ANIMALS]
    rois = [str(folder / f"{a}_L4_grey.geojson") for a, *_ in ANIMALS]
    assert rec["value"] == eb.study_threshold(files, PARAMS, regions_per_image=rois,
                                              samples_per_image=rec["samples_per_section"])
    assert rec["value"] != _record(reference)["value"]


def test_two_processes_give_the_same_tables(study, reference, tmp_path):
    report = run_batch(study, tmp_path, jobs=2)
    assert report.ok
    assert _record(tmp_path)["value"] == _record(reference)["value"]
    assert _tables(tmp_path) == _tables(reference)


def test_dask_gives_the_same_tables(study, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        report = run_batch(study, tmp_path, scheduler=cluster.scheduler_address)
    assert report.ok
    assert _record(tmp_path)["value"] == _record(reference)["value"]
    assert _tables(tmp_path) == _tables(reference)


def test_resume_reuses_the_threshold_and_recomputes_it_when_the_vehicles_change(
        study, reference, tmp_path, monkeypatch):
    from histoquant.batch import thresholds

    folder = _copy(study, tmp_path / "study")
    out = tmp_path / "out"
    first = run_batch(folder, out)
    assert first.ok and first.n_run == 4
    value = _record(out)["value"]
    assert list((out / ".parts" / "samples").glob("*.npz"))
    sampled: list[str] = []
    real = thresholds.sample_job

    def counting(job):
        sampled.append(job.sample.rel)
        return real(job)

    monkeypatch.setattr(thresholds, "sample_job", counting)
    # as after a kill: the same command with --resume reads nothing again
    again = run_batch(folder, out, resume=True)
    assert again.ok and again.n_run == 0 and again.n_reused == 4
    rec = _record(out)
    assert rec["value"] == value and rec["samples_reused"] == 2
    assert sampled == []
    assert _tables(out) == _tables(reference)
    # t1 joins the vehicles: its section is sampled (the others' samples are kept), the
    # threshold changes, and every section is measured again with the new one
    _sheet(folder, {"v1": "vehicle", "v2": "vehicle", "t1": "vehicle", "t2": "treated"})
    changed = run_batch(folder, out, resume=True)
    assert changed.ok and changed.n_run == 4 and changed.n_reused == 0
    rec = _record(out)
    assert sampled == ["t1_L4.ome.tif"]
    assert rec["n_sections"] == 3 and rec["samples_reused"] == 2
    assert rec["value"] != value
    files = [folder / f"{a}_L4.ome.tif" for a in ("v1", "v2", "t1")]
    rois = [str(folder / f"{a}_L4_grey.geojson") for a in ("v1", "v2", "t1")]
    assert rec["value"] == eb.study_threshold(files, PARAMS, regions_per_image=rois,
                                              samples_per_image=rec["samples_per_section"])
    assert (pd.read_csv(out / "sections.csv")["threshold"] == rec["value"]).all()


def test_interrupted_first_pass_keeps_its_samples(study, reference, tmp_path, monkeypatch):
    from histoquant.batch import thresholds

    real = thresholds.sample_job
    calls: list[str] = []

    def interrupted(job):
        calls.append(job.sample.rel)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second vehicle is sampled
        return real(job)

    monkeypatch.setattr(thresholds, "sample_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_batch(study, tmp_path)
    assert len(list((tmp_path / ".parts" / "samples").glob("*.npz"))) == 1
    assert not list((tmp_path / ".parts").glob("*.zip"))  # nothing measured yet
    monkeypatch.setattr(thresholds, "sample_job", real)
    report = run_batch(study, tmp_path, resume=True)
    assert report.ok and report.n_run == 4
    assert _record(tmp_path)["samples_reused"] == 1
    assert _tables(tmp_path) == _tables(reference)


def test_a_section_that_cannot_be_sampled_is_left_out_and_said(study, tmp_path):
    folder = _copy(study, tmp_path / "study")
    # v2's file is damaged (its first bytes overwritten): its sample and its measurement
    # fail, the threshold comes from v1 alone and says so
    path = folder / "v2_L4.ome.tif"
    data = bytearray(path.read_bytes())
    data[:64] = b"\0" * 64
    path.write_bytes(bytes(data))
    report = run_batch(folder, tmp_path / "out")
    rec = _record(tmp_path / "out")
    assert rec["sections"] == ["v1_L4.ome.tif"]
    assert [f["file"] for f in rec["failed"]] == ["v2_L4.ome.tif"]
    assert any("could not be sampled" in n for n in report.notes)
    assert [e["file"] for e in report.errors] == ["v2_L4.ome.tif"]
    assert rec["value"] == eb.study_threshold(
        [folder / "v1_L4.ome.tif"], PARAMS, regions_per_image=[
            str(folder / "v1_L4_grey.geojson")], samples_per_image=rec["samples_per_section"])
    # no chosen section at all: the assay's sections fail with the reason, none is measured
    # with a threshold that is not the study's
    _sheet(folder, {"v1": "treated", "v2": "vehicle", "t1": "treated", "t2": "treated"})
    report = run_batch(folder, tmp_path / "out2")
    assert not report.ok and len(report.errors) == 4
    assert {e["error"] for e in report.errors} >= {"StudyThresholdError"}
    assert _record(tmp_path / "out2")["value"] is None


def test_a_chosen_file_unreadable_at_planning_is_listed_as_left_out(study, tmp_path):
    folder = _copy(study, tmp_path / "study")
    (folder / "v2_L4.ome.tif").unlink()
    (folder / "v2_L4.ome.tif").symlink_to(tmp_path / "nowhere.tif")  # a broken link
    report = run_batch(folder, tmp_path / "out")
    rec = _record(tmp_path / "out")
    assert rec["sections"] == ["v1_L4.ome.tif"]
    assert rec["failed"][0]["file"] == "v2_L4.ome.tif"
    assert rec["failed"][0]["error"] == "ImageReadError"
    assert [e["file"] for e in report.errors] == ["v2_L4.ome.tif"]


# --------------------------------------------------------------------------------------------
# Mistakes in the study file
# --------------------------------------------------------------------------------------------


def test_every_threshold_mistake_is_reported_at_once(tmp_path):
    (tmp_path / "study.yaml").write_text(textwrap.dedent("""\
        groups: [vehicle, MSC]
        assays:
          evans-blue:
            params: {threshold_method: fixed, threshold: 20}
            threshold: {scope: study, from_group: vehical, pool: 3}
          gfp-cells:
            threshold: {scope: study, from_group: vehicle}
          motor-neurons:
            threshold: {scope: everywhere}
          vasculature:
            threshold: {scope: study}
        """))
    with pytest.raises(StudyError) as err:
        load_study(tmp_path / "study.yaml", tmp_path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "assays.evans-blue.threshold: unknown key(s) pool" in text
    assert "no group 'vehical'; the groups are vehicle, MSC" in text
    assert "threshold_method is 'fixed'" in text
    # an assay without a study-wide threshold is refused, naming those that have one
    gfp = next(p for p in problems if p.startswith("assays.gfp-cells.threshold"))
    assert "no study-wide threshold" in gfp and "evans-blue" in gfp
    assert any(p.startswith("assays.vasculature.threshold") and "evans-blue" in p
               for p in problems)
    assert "assays.motor-neurons.threshold.scope: one of image, study" in text
    assert len(problems) == 6


@pytest.mark.parametrize("value, message", [
    ("{scope: study}", "from_group: the group whose sections"),
    ("{scope: image, from_group: vehicle}", "from_group: only with scope: study"),
    ("{scope: study, from_group: vehicle, samples_per_section: 10}", "≥ 1000"),
    ("study", "expected a mapping"),
])
def test_malformed_threshold_keys(tmp_path, value, message):
    _study_yaml(tmp_path, value)
    with pytest.raises(StudyError, match=message):
        load_study(tmp_path / "study.yaml", tmp_path)


def test_a_model_and_a_study_threshold_are_refused_together(tmp_path):
    (tmp_path / "m.hqm").write_bytes(b"")
    (tmp_path / "study.yaml").write_text(
        "assays:\n  evans-blue:\n    model: m.hqm\n"
        "    threshold: {scope: study, from_group: all}\n")
    with pytest.raises(StudyError, match="the model replaces it"):
        load_study(tmp_path / "study.yaml", tmp_path)


def test_group_known_only_from_the_sheet_is_checked_when_planning(study, tmp_path):
    folder = _copy(study, tmp_path / "study")
    (folder / "study.yaml").write_text(
        "assays:\n  evans-blue:\n    threshold: {scope: study, from_group: sham}\n")
    with pytest.raises(StudyError, match="no section of evans-blue is in group 'sham'"):
        plan_study(folder, tmp_path / "out")
    (folder / "study.yaml").write_text(
        "slides: {split_sections: true}\nassays:\n  evans-blue:\n"
        "    threshold: {scope: study, from_group: vehicle}\n")
    with pytest.raises(StudyError, match="split into sections"):
        load_study(folder / "study.yaml", folder)


def test_blinded_run_sets_the_same_threshold_from_the_real_group(study, reference, tmp_path):
    """A blinded run still pools the vehicles' sections (the plan it codes knows them), says
    nothing of which sections they were, and unblinds to the plain run's tables."""
    from histoquant.batch import unblind

    out = tmp_path / "blind"
    report = run_batch(study, out, blind=True)
    assert report.ok, report.errors
    rec, plain = _record(out), _record(reference)
    assert rec["value"] == plain["value"] and rec["n_sections"] == 2
    assert rec["sections"] == ["[withheld while blinded]"] * 2
    every_text = "".join(p.read_text(errors="ignore") for p in out.rglob("*")
                         if p.is_file() and p.suffix in (".json", ".csv", ".html", ".md"))
    for name in ("v1_L4", "v2_L4", "t1_L4", "t2_L4"):
        assert name not in every_text
    sections = pd.read_csv(out / "sections.csv")
    assert (sections["threshold"] == plain["value"]).all()
    again = unblind(out, out=tmp_path / "unblinded")
    assert again.ok
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "unblinded" / "sections.csv"),
                                  pd.read_csv(reference / "sections.csv"))
    assert _record(tmp_path / "unblinded")["sections"] == plain["sections"]
