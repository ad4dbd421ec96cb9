"""``histoquant motor-neurons`` end to end: files in, the common output layout out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from histoquant.cli import main
from histoquant.io import write_ome_tiff
from histoquant.synthetic.nissl import nissl_phantom


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    image, truth = nissl_phantom((600, 600), 0.5, seed=21, motor_neuron_density_per_mm2=80)
    path = tmp_path_factory.mktemp("img") / "vh_section.ome.tif"
    write_ome_tiff(image, path)
    return path, truth


def test_cli_writes_the_output_layout(phantom_file, tmp_path):
    path, truth = phantom_file
    out = tmp_path / "out"
    assert main(["motor-neurons", str(path), "-o", str(out), "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    objects = pd.read_csv(out / "objects.csv")
    assert summary.loc[0, "image"] == "vh_section"
    assert summary.loc[0, "region"] == "image"
    n = int(summary.loc[0, "n_motor_neurons"])
    assert abs(n - truth.n_motor_neurons) <= max(1, round(0.05 * truth.n_motor_neurons))
    assert (objects["class"] == "motor_neuron").sum() == n
    labels = tifffile.imread(out / "labels" / "vh_section.tif")
    assert labels.shape == (600, 600)
    assert set(np.unique(labels)) - {0} == set(objects["label"])
    assert (out / "qc" / "vh_section.png").stat().st_size > 1000
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["assay"] == "motor-neurons"
    assert run_json["params"]["min_equivalent_diameter_um"] == 20.0
    assert not (out / "errors.csv").exists()


def test_cli_params_file(phantom_file, tmp_path):
    path, _ = phantom_file
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"min_equivalent_diameter_um": 1000}))
    out = tmp_path / "out"
    assert main(["motor-neurons", str(path), "-o", str(out), "-q",
                 "--params", str(params)]) == 0
    assert pd.read_csv(out / "summary.csv").loc[0, "n_motor_neurons"] == 0


def test_cli_unknown_param_lists_valid_keys(phantom_file, tmp_path, capsys):
    path, _ = phantom_file
    params = tmp_path / "bad.yaml"
    params.write_text("min_diameter_um: 20\n")
    code = main(["motor-neurons", str(path), "-o", str(tmp_path / "out"), "-q",
                 "--params", str(params)])
    err = capsys.readouterr().err
    assert code == 2
    assert "min_diameter_um" in err
    assert "Valid parameters" in err and "min_equivalent_diameter_um" in err


def test_cli_image_without_pixel_size(tmp_path, capsys):
    from PIL import Image as PILImage

    image, _ = nissl_phantom((200, 200), 0.5, seed=22)
    path = tmp_path / "field.png"
    PILImage.fromarray(image.data).save(path)
    out = tmp_path / "out"
    assert main(["motor-neurons", str(path), "-o", str(out), "-q"]) == 1
    errors = pd.read_csv(out / "errors.csv")
    assert errors.loc[0, "error"] == "PixelSizeError"
    assert main(["motor-neurons", str(path), "-o", str(out), "-q",
                 "--pixel-size", "0.5"]) == 0
