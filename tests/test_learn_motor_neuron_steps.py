"""Learned models in place of the motor-neuron assay's soma segmentation (issue #16).

A soma model (``histoquant train somata``) replaces the soma segmentation of either path; a
pixel classifier with a soma class gives the classical brightfield engine its foreground.
Counts are checked against the phantoms' truth, and a model of the other modality or of a
kind the step does not take is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from histoquant.assays import motor_neurons as mn
from histoquant.cli import main
from histoquant.errors import ModelFileError
from histoquant.io import write_ome_tiff
from histoquant.learn.assay_models import load_assay_model, run_kwargs
from histoquant.learn.somata import load_soma_model, save_soma_model, train_soma_model
from histoquant.measure.scores import match_labels
from histoquant.synthetic.fluorescent_somata import fluorescent_somata_phantom
from histoquant.synthetic.nissl import nissl_phantom
from histoquant.tiling import WholeImage, run_tiled

#: Enough motor neurons in a 250 µm field to count (≈ 12–17), with the usual small neurons
#: and glia around them.
DENSE = {"motor_neuron_density_per_mm2": 300.0, "small_neuron_density_per_mm2": 600.0,
         "glia_density_per_mm2": 1200.0}
#: As test_tiled_equals_whole: counts and areas of a tiled run within 1 % of a whole one.
AREA_COUNT_RTOL = 0.01
#: The learned engine is not exactly translation-invariant: each input is normalised by its
#: own white and stain colour (histoquant.learn.features.prepare_planes), and its watershed
#: breaks ties on flat probability by scan order, so a tile and the whole image differ in a
#: few small somata and in the outline of some (measured on the 800 px phantom before the
#: candidate pool: 229 vs 235 somata, mean motor-neuron area 731 vs 753 µm², the motor
#: neurons' count equal; with the pool, 46 vs 45 motor neurons).
MODEL_SOMATA_RTOL = 0.05


def _motor_neuron_f1(res, truth_labels: np.ndarray) -> float:
    mn_ids = res.objects.loc[res.objects["class"] == "motor_neuron", "label"].to_numpy()
    pred = np.where(np.isin(res.labels, mn_ids), res.labels, 0)
    return match_labels(truth_labels, pred, 0.5).f1


@pytest.fixture(scope="module")
def nissl(tmp_path_factory):
    """A soma model trained on one Nissl phantom (10 trees), written; a second phantom."""
    folder = tmp_path_factory.mktemp("mn_steps")
    train, train_truth = nissl_phantom((500, 500), 0.5, seed=11, **DENSE)
    model = train_soma_model([train], [train_truth.labels], n_estimators=10)
    path = save_soma_model(folder / "somata.hqm", model)
    test, truth = nissl_phantom((500, 500), 0.5, seed=12, **DENSE)
    image_path = write_ome_tiff(test, folder / "R1_L3_s1.ome.tif")
    return {"model": path, "image": test, "truth": truth, "image_path": image_path,
            "folder": folder}


@pytest.fixture(scope="module")
def fluo_model(tmp_path_factory):
    """A soma model trained on a one-channel fluorescence phantom."""
    image, truth = fluorescent_somata_phantom((400, 400), 1.0, seed=3, n_motor_neurons=10,
                                              n_small=15, n_fibres=30, rgb=False)
    model = train_soma_model([image], [truth.labels], n_estimators=10)
    return save_soma_model(tmp_path_factory.mktemp("mn_fl") / "fluo.hqm", model)


def test_soma_model_replaces_the_segmentation_and_counts_the_truth(nissl):
    model = load_soma_model(nissl["model"])
    res = mn.run(nissl["image"], model=model)
    truth = nissl["truth"]
    n = int(res.summary["n_motor_neurons"].iloc[0])
    # 12 motor neurons in the field: the model may miss or add one
    assert abs(n - truth.n_motor_neurons) <= 1, (n, truth.n_motor_neurons)
    assert _motor_neuron_f1(res, truth.motor_neuron_labels) >= 0.85
    # every soma, not only the large ones: most of the phantom's are found
    assert match_labels(truth.labels, res.labels, 0.5).recall >= 0.7
    # the run says which engine ran, and the model overrides params.engine
    assert res.extra["engine"] == "model" and res.params["engine"] == "model"
    assert res.extra["model"]["sha256"] == model.manifest["payload_sha256"]
    assert (res.objects["engine"] == "model").all()
    assert set(res.objects["model_sha256"]) == {model.manifest["payload_sha256"][:12]}
    # the measurements and criteria downstream are the classical engine's
    classical = mn.run(nissl["image"])
    assert classical.extra["engine"] == "classical" and "engine" not in classical.objects
    assert set(res.objects.columns) - set(classical.objects.columns) == {"engine",
                                                                          "model_sha256"}
    assert res.labels.shape == nissl["image"].shape_yx
    # the label image holds the objects of the table, at the image's resolution
    assert set(np.unique(res.labels)) - {0} == set(res.objects["label"])


def test_motor_neurons_command_with_a_soma_model(nissl, tmp_path):
    out = tmp_path / "out"
    assert main(["motor-neurons", str(nissl["image_path"]), "--model", str(nissl["model"]),
                 "-o", str(out), "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    objects = pd.read_csv(out / "objects.csv")
    direct = mn.run(nissl["image"], model=load_soma_model(nissl["model"]))
    assert summary["n_motor_neurons"].tolist() == direct.summary["n_motor_neurons"].tolist()
    assert abs(int(summary["n_motor_neurons"].iloc[0]) - nissl["truth"].n_motor_neurons) <= 1
    assert (objects["engine"] == "model").all()
    run = json.loads((out / "run.json").read_text())
    assert run["model"].endswith("somata.hqm")


def test_study_batch_with_a_soma_model(nissl, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "R1_L3_s1.ome.tif").write_bytes(nissl["image_path"].read_bytes())
    (folder / "samples.csv").write_text("file,animal,group,level\nR1_L3_s1.ome.tif,R1,g,L3\n")
    (folder / "m.hqm").write_bytes(nissl["model"].read_bytes())
    (folder / "study.yaml").write_text("assays:\n  motor-neurons:\n    model: m.hqm\n")
    assert main(["batch", str(folder), "-o", str(tmp_path / "out"), "-q"]) == 0
    objects = pd.read_csv(tmp_path / "out" / "objects.csv")
    assert (objects["engine"] == "model").all()
    n = int((objects["class"] == "motor_neuron").sum())
    assert abs(n - nissl["truth"].n_motor_neurons) <= 1


def test_soma_model_on_the_fluorescence_path(fluo_model):
    image, truth = fluorescent_somata_phantom((500, 500), 1.0, seed=4, n_motor_neurons=12,
                                              n_small=15, n_fibres=30, rgb=False)
    model = load_assay_model(fluo_model, "motor-neurons")
    res = mn.run(image, **run_kwargs(model))
    assert res.extra["modality"] == "fluorescence" and res.extra["engine"] == "model"
    n = int(res.summary["n_motor_neurons"].iloc[0])
    assert abs(n - truth.n_motor_neurons) <= 2, (n, truth.n_motor_neurons)


def test_a_model_of_the_other_modality_is_refused(nissl, fluo_model, tmp_path, capsys):
    fluo = load_soma_model(fluo_model)
    with pytest.raises(ModelFileError, match="trained on fluorescence images and this one "
                                             "is brightfield"):
        mn.run(nissl["image"], model=fluo)
    image, _ = fluorescent_somata_phantom((200, 200), 1.0, seed=5, rgb=False)
    with pytest.raises(ModelFileError, match="trained on brightfield images and this one "
                                             "is fluorescence"):
        mn.run(image, model=load_soma_model(nissl["model"]))
    # on the command line: the image fails with that message, nothing is measured
    out = tmp_path / "o"
    main(["motor-neurons", str(nissl["image_path"]), "--model", str(fluo_model), "-o",
          str(out), "-q"])
    captured = capsys.readouterr()
    assert "trained on fluorescence images" in captured.out + captured.err + \
        (out / "run.json").read_text()
    assert not (out / "objects.csv").exists() or len(pd.read_csv(out / "objects.csv")) == 0


def test_a_model_of_a_kind_the_step_does_not_take_is_refused_before_any_image(nissl,
                                                                             tmp_path,
                                                                             capsys):
    from histoquant.learn.pixels import save_pixel_classifier, train_pixel_classifier

    image, truth = nissl_phantom((200, 200), 0.5, seed=1, **DENSE)
    lab = np.where(truth.labels > 0, 2, 1)
    wrong = train_pixel_classifier([image], [lab], classes=["neuropil", "myelin"],
                                   n_estimators=3)
    path = save_pixel_classifier(wrong, tmp_path / "wrong.hqm")
    with pytest.raises(ModelFileError, match="'soma' or 'somata' or 'neuron' or 'cell'"):
        load_assay_model(path, "motor-neurons")
    out = tmp_path / "o"
    assert main(["motor-neurons", str(nissl["image_path"]), "--model", str(path), "-o",
                 str(out), "-q"]) == 2
    assert "'soma' or 'somata'" in capsys.readouterr().err
    assert not (out / "summary.csv").exists()
    # a model file whose estimator is not a soma engine's is refused by its loader
    from sklearn.ensemble import RandomForestClassifier

    from histoquant.learn.modelfile import save_model

    forest = RandomForestClassifier(n_estimators=2).fit([[0.0], [1.0]], [0, 1])
    bad = save_model(tmp_path / "s.hqm", {"objects": forest}, kind="somata",
                     manifest={"features": ["a"], "pixel_size_um": 0.5,
                               "classes": [0, 1]})
    assert main(["motor-neurons", str(nissl["image_path"]), "--model", str(bad), "-o",
                 str(tmp_path / "s"), "-q"]) == 2
    assert "soma model" in capsys.readouterr().err
    assert not (tmp_path / "s" / "summary.csv").exists()


def test_pixel_classifier_foreground_in_the_classical_engine(nissl):
    from histoquant.learn.pixels import train_pixel_classifier

    train, train_truth = nissl_phantom((400, 400), 0.5, seed=11, **DENSE)
    lab = np.where(train_truth.labels > 0, 2, 1)
    pc = train_pixel_classifier([train], [lab], classes=["background", "Soma"],
                                n_estimators=10)
    res = mn.run(nissl["image"], model=pc)
    truth = nissl["truth"]
    assert res.extra["engine"] == "classical+pixels"
    assert res.extra["model"]["classes"] == ["background", "Soma"]
    n = int(res.summary["n_motor_neurons"].iloc[0])
    assert abs(n - truth.n_motor_neurons) <= 1, (n, truth.n_motor_neurons)
    assert _motor_neuron_f1(res, truth.motor_neuron_labels) >= 0.85
    # a pixel classifier is for the brightfield foreground only
    image, _ = fluorescent_somata_phantom((200, 200), 1.0, seed=5, rgb=False)
    with pytest.raises(ModelFileError, match="brightfield"):
        mn.run(image, model=pc)


def test_classical_foreground_hook_is_the_threshold_when_given_the_threshold():
    from scipy import ndimage as ndi

    from histoquant.segment.somata import (
        SomaSegmentationParams,
        neuropil_noise,
        segment_somata_classical,
    )

    image, _ = nissl_phantom((300, 300), 1.0, seed=2, **DENSE)
    # the classical engine's own foreground, handed in, gives the same somata
    from histoquant.segment.background import background_level, subtract_block_grid
    from histoquant.segment.stain import CRESYL_VIOLET_OD, estimate_white, stain_density

    rgb = np.asarray(image.data)
    density = stain_density(rgb, CRESYL_VIOLET_OD, estimate_white(rgb))
    block = 50
    grid = background_level(density, block)
    subtract_block_grid(density, grid, block, np.arange(density.shape[0], dtype=float),
                        np.arange(density.shape[1], dtype=float))
    p = SomaSegmentationParams()
    smoothed = ndi.gaussian_filter(density.astype(np.float32), p.smooth_um / 1.0)
    thr = max(p.foreground_od, p.foreground_snr * neuropil_noise(smoothed))
    own = segment_somata_classical(density, 1.0, p)
    handed = segment_somata_classical(density, 1.0, p, foreground=smoothed > thr)
    np.testing.assert_array_equal(own, handed)
    assert own.max() > 20
    with pytest.raises(ValueError, match="shape"):
        segment_somata_classical(density, 1.0, p, foreground=np.ones((3, 3), bool))


@pytest.fixture(scope="module")
def tiled_and_whole(nissl):
    model = load_soma_model(nissl["model"])
    image, _ = nissl_phantom((800, 800), 0.5, seed=13, **DENSE)
    whole = mn.run(image, model=model)
    tiled = run_tiled(mn.SPEC, image, WholeImage(), tile_px=400, overlap_px=200,
                      run_kwargs={"model": model})
    return whole, tiled


def test_tiled_run_with_a_soma_model_equals_the_whole_run(tiled_and_whole):
    whole, tiled = tiled_and_whole
    w, t = whole.summary.iloc[0], tiled.summary.iloc[0]
    assert int(w["n_motor_neurons"]) >= 15
    assert float(t["region_area_mm2"]) == pytest.approx(float(w["region_area_mm2"]),
                                                       rel=AREA_COUNT_RTOL)
    # counts and sizes: within MODEL_SOMATA_RTOL (see there); since the soma engine chooses
    # among a pool of candidates, one motor neuron in 45 can differ between tiles and whole
    for col in ("n_motor_neurons", "motor_neurons_per_mm2", "n_somata", "mean_soma_area_um2",
                "mean_motor_neuron_area_um2"):
        assert float(t[col]) == pytest.approx(float(w[col]), rel=MODEL_SOMATA_RTOL), col
    assert (tiled.objects["engine"] == "model").all()


@pytest.mark.xfail(reason="the soma model normalises each tile by the tile's own white and "
                          "stain colour (learn.features.prepare_planes): counts and areas "
                          "differ by ~2-3 % until segment_somata takes the whole image's "
                          "normalisation", strict=False)
def test_tiled_soma_model_sizes_within_the_tiling_tolerance(tiled_and_whole):
    whole, tiled = tiled_and_whole
    for col in ("n_motor_neurons", "n_somata", "mean_soma_area_um2",
                "mean_motor_neuron_area_um2"):
        assert float(tiled.summary.iloc[0][col]) == pytest.approx(
            float(whole.summary.iloc[0][col]), rel=AREA_COUNT_RTOL), col
