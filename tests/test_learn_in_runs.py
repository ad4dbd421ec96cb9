"""A model in a run: --model on an assay command, model: in study.yaml, train somata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from histoquant.assays import gfp_cells
from histoquant.cli import main
from histoquant.io import write_ome_tiff
from histoquant.learn.objects import label_points, read_points, save_object_model, train_objects
from histoquant.synthetic.gfp import make_gfp_phantom

CHANNELS = {"dapi": "dapi", "gfp": "gfp", "reference": "reference"}


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    """A trained gfp-cells object model and a second phantom, written as files."""
    folder = tmp_path_factory.mktemp("learn_runs")
    image, truth = make_gfp_phantom((512, 512), seed=1, n_cells=8, n_lipofuscin=8, n_rbc=8)
    res = gfp_cells.run(image, channels=CHANNELS)
    lab = res.labels.astype(np.int64)
    on_cell = np.bincount(lab.ravel(), weights=(truth.cell_labels > 0).ravel(),
                          minlength=lab.max() + 1) / np.maximum(
        np.bincount(lab.ravel(), minlength=lab.max() + 1), 1) > 0.5
    rows = []
    px = res.pixel_size_um
    for _, obj in res.objects.drop_duplicates("label").iterrows():
        rr, cc = np.nonzero(res.labels == obj["label"])
        k = np.argmin((rr - obj["centroid_y_um"] / px) ** 2 + (cc - obj["centroid_x_um"] / px) ** 2)
        rows.append({"image": res.image, "x_px": int(cc[k]), "y_px": int(rr[k]),
                     "class": "gfp_cell" if on_cell[int(obj["label"])] else "debris"})
    examples = label_points([res], read_points(pd.DataFrame(rows)))
    model = save_object_model(folder / "gfp.hqm", train_objects(examples, assay="gfp-cells"),
                              pixel_size_um=px, params=res.params, channels=CHANNELS)
    other, _ = make_gfp_phantom((512, 512), seed=2, n_cells=8, n_lipofuscin=8, n_rbc=8)
    path = write_ome_tiff(other, folder / "other.ome.tif")
    return model, path


def test_model_on_the_command_line_is_the_model_applied(phantom_files, tmp_path):
    from histoquant.io import read_image
    from histoquant.learn import apply_model, load_model

    model, path = phantom_files
    out = tmp_path / "out"
    assert main(["gfp-cells", str(path), "--model", str(model), "-o", str(out), "-q"]) == 0
    direct = apply_model(gfp_cells.run(read_image(path)), load_model(model))
    summary = pd.read_csv(out / "summary.csv")
    objects = pd.read_csv(out / "objects.csv")
    assert summary["n_gfp_cells"].tolist() == direct.summary["n_gfp_cells"].tolist()
    assert {"class_probability", "model_class", "rule_class"} <= set(objects.columns)
    np.testing.assert_allclose(objects["class_probability"],
                               direct.objects["class_probability"])
    # a changed model is a changed result: --resume measures again
    assert main(["gfp-cells", str(path), "-o", str(out), "--resume", "-q"]) == 0
    assert "class_probability" not in pd.read_csv(out / "objects.csv").columns


def test_study_file_model_and_a_tampered_one(phantom_files, tmp_path, capsys):
    model, path = phantom_files
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "R1_L3_s1.ome.tif").write_bytes(path.read_bytes())
    (folder / "samples.csv").write_text("file,animal,group,level\nR1_L3_s1.ome.tif,R1,g,L3\n")
    (folder / "m.hqm").write_bytes(model.read_bytes())
    (folder / "study.yaml").write_text("assays:\n  gfp-cells:\n    model: m.hqm\n")
    assert main(["batch", str(folder), "-o", str(tmp_path / "out"), "-q"]) == 0
    objects = pd.read_csv(tmp_path / "out" / "objects.csv")
    assert "class_probability" in objects.columns
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte in the payload: no longer the model written
    (folder / "m.hqm").write_bytes(bytes(data))
    assert main(["batch", str(folder), "-o", str(tmp_path / "out2"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "assays.gfp-cells.model" in err and "Traceback" not in err
    assert not (tmp_path / "out2" / "sections.csv").exists()


def test_a_model_of_another_kind_or_assay_is_refused_before_any_image(phantom_files, tmp_path,
                                                                     capsys):
    model, path = phantom_files
    code = main(["motor-neurons", str(path), "--model", str(model), "-o", str(tmp_path / "o"),
                 "-q"])
    assert code == 2 and "classifies gfp-cells objects, not motor-neurons" in \
        capsys.readouterr().err
    from sklearn.ensemble import RandomForestClassifier

    from histoquant.learn.modelfile import save_model

    forest = RandomForestClassifier(n_estimators=2).fit([[0.0], [1.0]], [0, 1])
    pixels = save_model(tmp_path / "p.hqm", forest, kind="pixels",
                        manifest={"features": ["a"], "pixel_size_um": 1.0})
    assert main(["gfp-cells", str(path), "--model", str(pixels), "-o", str(tmp_path / "p"),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "the pixel classifier's manifest does not fit" in err
    assert not (tmp_path / "p" / "summary.csv").exists()


def test_train_somata_command_writes_a_model_that_segments(tmp_path, capsys):
    from histoquant.learn.somata import load_soma_model, segment_somata
    from histoquant.measure.scores import match_labels
    from histoquant.synthetic.nissl import nissl_phantom

    dense = {"motor_neuron_density_per_mm2": 120.0, "small_neuron_density_per_mm2": 600.0,
             "glia_density_per_mm2": 1200.0}
    image, truth = nissl_phantom((320, 320), 0.5, seed=11, **dense)
    write_ome_tiff(image, tmp_path / "a.ome.tif")
    import tifffile

    tifffile.imwrite(tmp_path / "a_labels.tif", truth.labels.astype(np.uint16))
    assert main(["train", "somata", "--images", str(tmp_path / "a.ome.tif"), "--labels",
                 str(tmp_path / "a_labels.tif"), "--trees", "10", "-o",
                 str(tmp_path / "s.hqm"), "-q"]) == 0
    assert "out-of-fold candidate F1" in capsys.readouterr().out
    model = load_soma_model(tmp_path / "s.hqm")
    test, test_truth = nissl_phantom((320, 320), 0.5, seed=12, **dense)
    assert match_labels(test_truth.labels, segment_somata(model, test), 0.5).f1 > 0.6
    assert main(["train", "somata", "--images", str(tmp_path / "a.ome.tif"), "--labels",
                 str(tmp_path / "a_labels.tif"), str(tmp_path / "a_labels.tif"), "-o",
                 str(tmp_path / "t.hqm"), "-q"]) == 2
    assert "give one label image per image" in capsys.readouterr().err
