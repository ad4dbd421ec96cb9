"""Bad parameters and malformed region files: a clear error naming the file, never a traceback.

Parameters: NaN passes every ``<`` comparison and used to give 0 motor neurons, infinity
overflowed inside an assay, a bool passed as a number. Region files: a GeoJSON feature that is
a string, a null geometry or flat coordinates escaped as AttributeError/IndexError. And an
unexpected exception in one image must only fail that image.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from histoquant.assays.motor_neurons import SPEC as MN_SPEC
from histoquant.assays.motor_neurons import MotorNeuronParams
from histoquant.batch import StudyError, load_study
from histoquant.cli import main
from histoquant.errors import ParamsError, RegionError
from histoquant.io import write_ome_tiff
from histoquant.params import ParamsValidationError
from histoquant.rois import Polygon, Region, read_regions, write_regions
from histoquant.synthetic.nissl import nissl_phantom
from histoquant.testing import register

# -- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, problem", [
    ("min_soma_area_um2", float("nan"), "not a finite number"),
    ("min_soma_area_um2", float("inf"), "not a finite number"),
    ("smooth_um", float("-inf"), "not a finite number"),
    ("smooth_um", "nan", "not a finite number"),
    ("min_soma_area_um2", -5.0, "below the minimum"),
    ("refine_fraction", 1.5, "above the maximum"),
    ("relative_prominence", True, "needs a number, not true/false"),
    ("cellpose_batch_size", 2.5, "needs an integer"),
    ("min_soma_area_um2", "big", "needs a number"),
    ("stain_vector", [0.5, 0.5], "needs a list of 3 values"),
])
def test_each_bad_value_is_named(key, value, problem):
    with pytest.raises(ParamsValidationError) as info:
        MotorNeuronParams.from_dict({key: value})
    text = str(info.value)
    assert text.startswith(f"MotorNeuronParams: {key}: {problem}")
    assert "(got " in text


def test_percentages_use_their_default_range():
    from histoquant.assays.vasculature import VasculatureParams

    with pytest.raises(ParamsError, match=r"nucleus_pericyte_overlap_pct: above the maximum "
                                          r"\(got 150; allowed 0 to 100 %\)"):
        VasculatureParams(nucleus_pericyte_overlap_pct=150)


def test_every_bad_key_of_a_file_is_listed_with_the_file(tmp_path):
    path = tmp_path / "mn.yaml"
    path.write_text("min_soma_area_um2: .nan\nsmooth_um: .inf\nrefine_fraction: 1.5\n"
                    "require_nucleolus: maybe\nopen_um: true\nmin_diameter: 3\n")
    with pytest.raises(ParamsValidationError) as info:
        MotorNeuronParams.from_file(path)
    err = info.value
    keys = {k for k, _ in err.problems}
    assert keys == {None, "min_soma_area_um2", "smooth_um", "refine_fraction",
                    "require_nucleolus", "open_um"}
    lines = str(err).splitlines()
    assert lines[0] == "6 invalid parameters:"
    assert all(line.strip().startswith(f"{path}: ") for line in lines[1:])
    assert f"{path}: min_soma_area_um2: not a finite number (got nan; allowed 0 to " in str(err)
    assert "min_diameter" in str(err) and "Valid parameters:" in str(err)


def test_json_nan_and_infinity_are_refused(tmp_path):
    path = tmp_path / "mn.json"
    path.write_text('{"min_mean_od": NaN, "max_equivalent_diameter_um": Infinity}')
    with pytest.raises(ParamsError) as info:
        MotorNeuronParams.from_file(path)
    assert "min_mean_od" in str(info.value) and "max_equivalent_diameter_um" in str(info.value)
    assert str(path) in str(info.value)


def test_params_built_in_python_are_validated():
    with pytest.raises(ParamsValidationError, match="min_soma_area_um2: not a finite"):
        MotorNeuronParams(min_soma_area_um2=float("nan"))
    with pytest.raises(ParamsValidationError, match="open_um: needs a number, not true/false"):
        MotorNeuronParams().replace(open_um=True)
    with pytest.raises(ParamsError, match="stain_vector"):
        MotorNeuronParams(stain_vector=(0.0, 0.0, 0.0))
    # numbers from YAML or the command line as text are still coerced
    p = MotorNeuronParams(min_soma_area_um2="12", cellpose_batch_size="4")
    assert p.min_soma_area_um2 == 12.0 and p.cellpose_batch_size == 4


def test_every_default_passes_its_own_range():
    from histoquant.assays.base import available_assays
    from histoquant.batch.config import QCOptions, SlideOptions

    for cls in [s.params_cls for s in available_assays().values()] + [SlideOptions, QCOptions]:
        assert cls.from_dict(cls().to_dict()) == cls()
        for info in cls.field_info():
            if info["name"].endswith(("_um", "_um2", "_pct")):
                assert info["minimum"] is not None, (cls.__name__, info["name"])


def test_yaml_python_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    bad = tmp_path / "evil.yaml"
    bad.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ParamsError, match=r"evil\.yaml: YAML tags that build Python objects"):
        MotorNeuronParams.from_file(bad)
    study = tmp_path / "study.yaml"
    study.write_text("assays:\n  motor-neurons:\n    params: !!python/object/apply:os.system "
                     f'["touch {marker}"]\n')
    with pytest.raises(StudyError, match="study.yaml"):
        load_study(study)
    assert not marker.exists()


def test_study_names_the_file_and_the_params_key(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("assays:\n  motor-neurons:\n    params: {min_soma_area_um2: .nan, "
                     "open_um: -1}\n  evans-blue:\n    params: eb.yaml\n")
    (tmp_path / "eb.yaml").write_text("saturation_warn_pct: 150\n")
    with pytest.raises(StudyError) as info:
        load_study(study)
    text = str(info.value)
    assert text.startswith(f"{study}: 3 problem(s)")
    assert "assays.motor-neurons.params.min_soma_area_um2: not a finite number" in text
    assert "assays.motor-neurons.params.open_um: below the minimum (got -1" in text
    assert (f"assays.evans-blue.params: {tmp_path / 'eb.yaml'}: saturation_warn_pct: above the "
            "maximum (got 150; allowed 0 to 100 %)") in text


# -- region files ----------------------------------------------------------------------------

_SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]


def _feature(geometry, properties=None):
    return {"type": "Feature", "geometry": geometry, "properties": properties or {}}


_BAD_GEOJSON = {
    "feature_is_string": ({"type": "FeatureCollection", "features": ["abc"]},
                          r"features\[0\]: a feature must be a JSON object, got a string"),
    "feature_is_number": ({"type": "FeatureCollection", "features": [7]},
                          r"features\[0\]: a feature must be a JSON object, got a number"),
    "feature_is_list": ([[1, 2]], r"features\[0\]: a feature must be a JSON object, got a list"),
    "geometry_missing": ([{"type": "Feature", "properties": {}}], "has no geometry"),
    "geometry_null": ([_feature(None)], "has no geometry"),
    "geometry_not_object": ([_feature("Polygon")], "geometry that is a string"),
    "flat_coordinates": ([_feature({"type": "Polygon", "coordinates": [1, 2, 3, 4]})],
                         "a ring must be a list of"),
    "flat_ring": ([_feature({"type": "Polygon", "coordinates": [[1, 2, 3, 4]]})],
                  r"point 0 must be \[x, y\] numbers"),
    "text_coordinates": ([_feature({"type": "Polygon", "coordinates": "abc"})],
                         "coordinates must be a non-empty list of rings"),
    "ring_of_two_points": ([_feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]})],
                           "a ring needs at least 3 points, got 2"),
    "nan_coordinate": ([_feature({"type": "Polygon",
                                  "coordinates": [[[0, 0], [float("nan"), 1], [3, 3]]]})],
                       "not a finite number"),
    "properties_not_object": ([_feature({"type": "Polygon", "coordinates": [_SQUARE]}, [1])],
                              "'properties' must be an object"),
    "features_not_list": ({"type": "FeatureCollection", "features": {"a": 1}},
                          "'features' of the FeatureCollection must be a list"),
    "top_level_number": (5, "expected a GeoJSON FeatureCollection, Feature or Polygon, got a "
                            "number"),
    "multipolygon_flat": ([_feature({"type": "MultiPolygon", "coordinates": [1, 2]})],
                          "MultiPolygon polygon 0"),
}


@pytest.mark.parametrize("case", sorted(_BAD_GEOJSON))
def test_malformed_geojson_is_a_region_error(tmp_path, case):
    data, message = _BAD_GEOJSON[case]
    path = tmp_path / f"{case}.geojson"
    path.write_text(json.dumps(data))
    with pytest.raises(RegionError, match=message) as info:
        read_regions(path)
    assert str(path) in str(info.value)


def test_invalid_json_is_a_region_error(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(RegionError, match=r"broken\.geojson: not a readable GeoJSON"):
        read_regions(path)


def test_bare_geometry_and_point_annotations(tmp_path):
    path = tmp_path / "bare.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [_SQUARE]}))
    (region,) = read_regions(path)
    assert region.name == "region_1"
    mixed = tmp_path / "mixed.geojson"
    mixed.write_text(json.dumps([_feature({"type": "Point", "coordinates": [3, 3]},
                                          {"name": "cell"}),
                                 _feature({"type": "Polygon", "coordinates": [_SQUARE]},
                                          {"name": "horn"})]))
    with pytest.warns(UserWarning, match="skipped 1 annotation.*'cell' \\(Point\\)"):
        regions = read_regions(mixed)
    assert [r.name for r in regions] == ["horn"]


def test_damaged_imagej_files_are_region_errors(tmp_path):
    square = np.array([[10.0, 12.0], [10.0, 40.0], [30.0, 40.0], [30.0, 12.0]])
    good = write_regions([Region("a", [Polygon(square)]), Region("b", [Polygon(square + 5)])],
                         tmp_path / "good.zip")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegionError, match=r"truncated\.zip"):
        read_regions(truncated)
    inner = zipfile.ZipFile(good).read(zipfile.ZipFile(good).namelist()[0])
    short_roi = tmp_path / "short.roi"
    short_roi.write_bytes(inner[:40])
    with pytest.raises(RegionError, match=r"short\.roi"):
        read_regions(short_roi)
    bad_inner = tmp_path / "bad_inner.zip"
    with zipfile.ZipFile(bad_inner, "w") as zf:
        zf.writestr("x.roi", b"Iout" + b"\xff" * 60)
    with pytest.raises(RegionError, match=r"bad_inner\.zip"):
        read_regions(bad_inner)


# -- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    image, _ = nissl_phantom((240, 240), 0.5, seed=5, motor_neuron_density_per_mm2=80)
    folder = tmp_path_factory.mktemp("imgs")
    paths = [folder / "first.ome.tif", folder / "second.ome.tif"]
    for p in paths:
        write_ome_tiff(image, p)
    return paths


@pytest.mark.parametrize("text", ["min_soma_area_um2: .nan\n", "min_soma_area_um2: .inf\n",
                                  "min_soma_area_um2: nan\n"])
def test_cli_refuses_non_finite_params_once(two_images, tmp_path, capsys, text):
    params = tmp_path / "p.yaml"
    params.write_text(text)
    out = tmp_path / "out"
    code = main(["motor-neurons", *map(str, two_images), "-o", str(out), "-q",
                 "--params", str(params)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{params}: min_soma_area_um2: not a finite number" in err
    assert "Traceback" not in err
    assert not (out / "errors.csv").exists()


@pytest.mark.parametrize("case", ["feature_is_string", "geometry_null", "flat_coordinates",
                                  "text_coordinates", "top_level_number"])
def test_cli_reports_a_malformed_region_file_once(two_images, tmp_path, capsys, case):
    regions = tmp_path / f"{case}.geojson"
    regions.write_text(json.dumps(_BAD_GEOJSON[case][0]))
    code = main(["motor-neurons", *map(str, two_images), "-o", str(tmp_path / "out"), "-q",
                 "--regions", str(regions)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(regions) in err and "Traceback" not in err


def test_cli_invalid_json_regions(two_images, tmp_path, capsys):
    regions = tmp_path / "broken.json"
    regions.write_text("{not json")
    assert main(["motor-neurons", str(two_images[0]), "-o", str(tmp_path / "out"), "-q",
                 "--regions", str(regions)]) == 2
    err = capsys.readouterr().err
    assert "broken.json: not a readable GeoJSON" in err and "Traceback" not in err


def test_an_unexpected_error_fails_only_its_image(two_images, tmp_path, monkeypatch, capsys,
                                                  caplog):
    def flaky_run(image, *args, **kwargs):
        if image.name.startswith("first"):
            raise RuntimeError("assay bug on purpose")
        return MN_SPEC.run(image, *args, **kwargs)

    register(monkeypatch, dataclasses.replace(MN_SPEC, run=flaky_run))
    out = tmp_path / "out"
    code = main(["motor-neurons", *map(str, two_images), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    # the log (stderr outside pytest) says which image and shows a few frames
    assert "first.ome.tif (motor-neurons): unexpected RuntimeError: assay bug on purpose" \
        in caplog.text
    assert "flaky_run" in caplog.text
    import pandas as pd

    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["image"]) == ["first"]  # the image's name in every table
    assert errors.loc[0, "file"].endswith("first.ome.tif")
    assert errors.loc[0, "error"] == "RuntimeError"
    assert errors.loc[0, "message"] == "assay bug on purpose"
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["image"]) == {"second"}
    failures = json.loads((out / "run.json").read_text())["failures"]
    assert failures[0]["error"] == "RuntimeError"
    assert "flaky_run" in failures[0]["traceback"]


def test_keyboard_interrupt_still_stops_the_run(two_images, tmp_path, monkeypatch, capsys):
    def interrupted(image, *args, **kwargs):
        raise KeyboardInterrupt

    register(monkeypatch, dataclasses.replace(MN_SPEC, run=interrupted))
    out = tmp_path / "out"
    # stopped at the first image, as a study run: exit 130, the second never measured
    assert main(["motor-neurons", *map(str, two_images), "-o", str(out), "-q"]) == 130
    assert "--resume" in capsys.readouterr().err
    assert not (out / "summary.csv").exists()


def test_batch_reports_a_broken_region_file_before_any_image(two_images, tmp_path, capsys):
    folder = two_images[0].parent
    regions = tmp_path / "rois.geojson"
    regions.write_text(json.dumps([_feature(None)]))
    study = tmp_path / "study.yaml"
    study.write_text(f"assays:\n  motor-neurons:\n    regions: {regions}\n")
    code = main(["batch", str(folder), "-c", str(study), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "assays.motor-neurons.regions" in err and "has no geometry" in err
    assert "Traceback" not in err
