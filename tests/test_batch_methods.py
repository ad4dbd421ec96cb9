"""methods.md: every non-default parameter, thresholds, exclusions, counts per group."""

import pandas as pd
import pytest

from histoquant.assays import get_assay
from histoquant.batch.methods import changed_params, methods_text


def _record(params=None, **more):
    p = get_assay("motor-neurons").params_cls().to_dict()
    p.update(params or {})
    return {"histoquant": "9.9", "versions": {"python": "3.11", "numpy": "2.0"},
            "assays": {"motor-neurons": {"params": p, "regions": "auto",
                                         "pixel_size_um": None}}, **more}


def _sections():
    return pd.DataFrame({
        "assay": "motor-neurons", "animal": ["A", "A", "B", "C"],
        "group": ["vehicle", "vehicle", "MSC", "MSC"], "image": ["a1", "a2", "b1", "c1"],
        "section": "1", "region": "ventral_horn_left",
        "excluded": [False, True, False, False],
        "exclusion_reason": [None, "anatomy quality 0.31 < 0.5", None, None]})


def test_defaults_say_so_and_a_changed_parameter_is_listed_with_its_default():
    text = methods_text(_record(), _sections(), groups=["vehicle", "MSC"])
    assert "Every parameter was at histoquant's default." in text
    default = get_assay("motor-neurons").params_cls().min_soma_area_um2
    changed = methods_text(_record({"min_soma_area_um2": default + 123.0}), _sections())
    assert f"min_soma_area_um2 = {default + 123.0:g} µm² (default {default:g} µm²)" in changed
    assert [c["name"] for c in changed_params(
        "motor-neurons", _record({"min_soma_area_um2": default + 1})["assays"]
        ["motor-neurons"]["params"])] == ["min_soma_area_um2"]


@pytest.mark.parametrize("name", ["motor-neurons", "evans-blue", "vasculature", "gfp-cells"])
def test_every_parameter_changed_is_found(name):
    cls = get_assay(name).params_cls
    for info in cls.field_info():
        if isinstance(info["default"], bool):
            p = {info["name"]: not info["default"]}
        elif isinstance(info["default"], (int, float)) and info["default"] is not None:
            p = {info["name"]: info["default"] + 1}
        else:
            continue
        assert [c["name"] for c in changed_params(name, {**cls().to_dict(), **p})] == \
            [info["name"]]


def test_counts_exclusions_threshold_and_blinding():
    record = _record(study_thresholds={"motor-neurons": {
        "value": 12.5, "method": "mad", "from_group": "vehicle", "n_sections": 4}})
    text = methods_text(record, _sections(), groups=["vehicle", "MSC"],
                        statistics="Welch's t-test.", blinding="unblinded")
    # the excluded section is not counted
    assert "vehicle: 1 section from 1 animal; MSC: 2 sections from 2 animals" in text
    assert "1 section excluded (anatomy quality 0.31 < 0.5): a2" in text
    assert "One threshold of 12.5 was applied to every section, computed by mad from the " \
           "pooled pixels of the sections of the vehicle group (4 sections)" in text
    assert "ventral horns" in text or "anatomy module" in text
    assert "**Blinding.**" in text and "**Statistics.** Welch's t-test." in text
    assert "histoquant 9.9" in text and "numpy 2.0" in text


def test_a_study_run_writes_methods_and_statistics(tmp_path):
    """End to end: one parameter changed in the study file appears in methods.md; the
    endpoints' statistics are in statistics.csv, one row per endpoint and group compared."""
    import shutil
    from pathlib import Path

    from histoquant.batch import run_batch

    src = Path(__file__).resolve().parents[1] / "example_images"
    study = tmp_path / "study"
    study.mkdir()
    for f in src.glob("nissl_*.ome.tif"):
        shutil.copy(f, study / f.name)
    sheet = pd.read_csv(src / "samples.csv")
    sheet[sheet["file"].str.startswith("nissl_")].to_csv(study / "samples.csv", index=False)
    default = get_assay("motor-neurons").params_cls().min_soma_area_um2
    (study / "study.yaml").write_text(
        "samples: samples.csv\ngroups: [vehicle, MSC]\nassays:\n  motor-neurons:\n"
        f"    files: ['nissl_*']\n    params: {{min_soma_area_um2: {default + 40}}}\n")
    report = run_batch(study, tmp_path / "out")
    assert report.ok, report.errors
    methods = (tmp_path / "out" / "methods.md").read_text()
    assert f"min_soma_area_um2 = {default + 40:g} µm² (default {default:g} µm²)" in methods
    assert "vehicle: 2 sections from 2 animals; MSC: 2 sections from 2 animals" in methods
    stats = pd.read_csv(tmp_path / "out" / "statistics.csv")
    assert set(stats["endpoint"]) == {"motor_neurons_per_ventral_horn",
                                      "motor_neuron_soma_area"}
    assert set(stats["group"]) == {"MSC"} and set(stats["reference"]) == {"vehicle"}
    animals = pd.read_csv(tmp_path / "out" / "sections.csv", dtype={"animal": str})
    by_hand = animals.groupby("group")["n_motor_neurons"].mean()
    row = stats.set_index("endpoint").loc["motor_neurons_per_ventral_horn"]
    assert row["mean_diff"] == pytest.approx(by_hand["MSC"] - by_hand["vehicle"])
