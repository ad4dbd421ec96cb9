"""Motor-neuron assay on Nissl phantoms with exact truth; regions, tables, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from histoquant.assays import get_assay
from histoquant.assays.motor_neurons import SPEC, MotorNeuronParams, run
from histoquant.errors import ChannelError, EmptyImageError, ParamsError, PixelSizeError
from histoquant.io import Image, as_image
from histoquant.measure.scores import match_labels
from histoquant.segment.somata import SomaSegmentationParams
from histoquant.synthetic.nissl import make_nissl_tissue, nissl_phantom

SEEDS = (0, 1, 2)
MN_DENSITY = 60.0  # per mm²: ≈ 20 motor neurons in each 0.36 mm² test image


@pytest.fixture(scope="module")
def runs():
    """Three phantoms of 1200 × 1200 px at 0.5 µm/px, with their results."""
    out = []
    for seed in SEEDS:
        image, truth = nissl_phantom((1200, 1200), 0.5, seed=seed,
                                     motor_neuron_density_per_mm2=MN_DENSITY)
        out.append((image, truth, run(image)))
    return out


def _mn_labels(result) -> np.ndarray:
    mn = result.objects.loc[result.objects["class"] == "motor_neuron", "label"].to_numpy()
    return np.where(np.isin(result.labels, mn), result.labels, 0).astype(np.int32)


def _best_match(truth_labels, pred_labels, label):
    ids, counts = np.unique(pred_labels[truth_labels == label], return_counts=True)
    counts[ids == 0] = 0
    return int(ids[np.argmax(counts)]) if counts.max() > 0 else 0


def test_motor_neuron_detection_f1_and_count(runs):
    tp = fp = fn = 0
    n_true = n_found = 0
    for _, truth, result in runs:
        score = match_labels(truth.motor_neuron_labels, _mn_labels(result), 0.5)
        tp, fp, fn = tp + score.true_positives, fp + score.false_positives, \
            fn + score.false_negatives
        n_true += truth.n_motor_neurons
        n_found += int(result.summary["n_motor_neurons"].sum())
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert n_true >= 50
    assert f1 >= 0.95, (tp, fp, fn)
    assert abs(n_found - n_true) / n_true <= 0.05, (n_found, n_true)


def test_every_soma_is_found(runs):
    """Glial nuclei and small neurons are somata too (class ``other``)."""
    tp = fp = fn = 0
    for _, truth, result in runs:
        s = match_labels(truth.labels, result.labels.astype(np.int32), 0.5)
        tp, fp, fn = tp + s.true_positives, fp + s.false_positives, fn + s.false_negatives
    assert 2 * tp / (2 * tp + fp + fn) >= 0.8


def test_soma_sizes_in_um(runs):
    rel = []
    for _, truth, result in runs:
        obj = result.objects.set_index("label")
        for _, cell in truth.cells[truth.cells["is_motor_neuron"]].iterrows():
            lab = _best_match(truth.labels, result.labels, cell["label"])
            if lab:
                measured = obj.loc[lab, "equivalent_diameter_um"]
                rel.append(measured / cell["equivalent_diameter_um"] - 1)
    rel = np.array(rel)
    # Outlines keep a little of the dendrite stumps and of touching glia: a small bias.
    assert abs(np.median(rel)) <= 0.08
    assert np.percentile(np.abs(rel), 90) <= 0.15


def test_nucleolus_visibility_agrees_with_truth(runs):
    agree, n = 0, 0
    for _, truth, result in runs:
        obj = result.objects.set_index("label")
        for _, cell in truth.cells[truth.cells["is_motor_neuron"]].iterrows():
            lab = _best_match(truth.labels, result.labels, cell["label"])
            if lab:
                agree += bool(obj.loc[lab, "nucleolus_visible"]) == cell["nucleolus_visible"]
                n += 1
    assert agree / n >= 0.8


def test_require_nucleolus_counts_only_those_with_one(runs):
    image, _, result = runs[0]
    strict = run(image, params={"require_nucleolus": True})
    mn = result.objects[result.objects["class"] == "motor_neuron"]
    assert strict.summary["n_motor_neurons"].iloc[0] == int(mn["nucleolus_visible"].sum())
    assert strict.summary["n_motor_neurons"].iloc[0] == \
        result.summary["n_motor_neurons_with_nucleolus"].iloc[0]
    assert 0 < strict.summary["n_motor_neurons"].iloc[0] < len(mn)


def test_counts_are_stable_when_the_image_is_rescaled():
    """Same tissue: rendered at 0.5 and 1 µm/px, and the 0.5 µm image resampled 2× both ways."""
    counts = {}
    truth_n = 0
    for seed in (3, 4):
        tissue = make_nissl_tissue((600.0, 600.0), seed=seed,
                                   motor_neuron_density_per_mm2=MN_DENSITY)
        fine, truth = tissue.render(0.5)
        truth_n += truth.n_motor_neurons
        coarse, _ = tissue.render(1.0)
        d = fine.data.astype(np.float32)
        h, w = d.shape[0] // 2, d.shape[1] // 2
        down = np.rint(d.reshape(h, 2, w, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
        up = np.repeat(np.repeat(fine.data, 2, axis=0), 2, axis=1)
        for name, img in (("0.5", fine), ("rendered at 1.0", coarse),
                          ("downscaled 2x", as_image(down, 1.0)),
                          ("upscaled 2x", as_image(up, 0.25))):
            n = int(run(img).summary["n_motor_neurons"].sum())
            counts[name] = counts.get(name, 0) + n
    ref = counts["0.5"]
    assert abs(ref - truth_n) / truth_n <= 0.05
    for n in counts.values():
        assert abs(n - ref) / ref <= 0.05, counts


def test_regions_summary_and_density(runs):
    image, _, whole = runs[0]
    h, w = image.shape_yx
    left = np.zeros((h, w), bool)
    left[:, : w // 2] = True
    regions = {"ventral_horn_left": left, "ventral_horn_right": ~left}
    result = run(image, regions=regions)
    s = result.summary.set_index("region")
    assert list(s.index) == ["ventral_horn_left", "ventral_horn_right"]
    area = h * w / 2 * (0.5 / 1000) ** 2
    np.testing.assert_allclose(s["region_area_mm2"], [area, area])
    np.testing.assert_allclose(s["motor_neurons_per_mm2"], s["n_motor_neurons"] / area)
    # Each motor neuron is in exactly one horn, by its centroid.
    assert s["n_motor_neurons"].sum() == whole.summary["n_motor_neurons"].iloc[0]
    mn = result.objects[result.objects["class"] == "motor_neuron"]
    in_left = mn["centroid_x_um"] < w / 2 * 0.5
    assert (mn.loc[in_left, "region"] == "ventral_horn_left").all()
    assert (mn.loc[~in_left, "region"] == "ventral_horn_right").all()


def test_objects_outside_the_regions_are_left_out(runs):
    image, _, _ = runs[0]
    h, w = image.shape_yx
    box = np.zeros((h, w), bool)
    box[100:500, 200:700] = True
    result = run(image, regions={"drawn": box})
    assert set(result.objects["region"]) == {"drawn"}
    r = np.rint(result.objects["centroid_y_um"] / 0.5).astype(int)
    c = np.rint(result.objects["centroid_x_um"] / 0.5).astype(int)
    assert box[r, c].all()
    shown = set(np.unique(result.labels)) - {0}
    assert shown == set(result.objects["label"])


def test_tables_labels_and_qc(runs):
    image, _, result = runs[0]
    o, s = result.objects, result.summary
    assert list(o.columns[:3]) == ["image", "region", "label"]
    for col in ("centroid_y_um", "centroid_x_um", "area_um2", "equivalent_diameter_um",
                "feret_max_um", "feret_min_um", "solidity", "eccentricity",
                "mean_optical_density", "nucleolus_visible", "class"):
        assert col in o.columns
    assert set(o["class"]) == {"motor_neuron", "other"}
    mn = o[o["class"] == "motor_neuron"]
    assert (mn["equivalent_diameter_um"] >= 20).all()
    assert (o["feret_max_um"] >= o["feret_min_um"]).all()
    for col in ("image", "region", "region_area_mm2", "n_motor_neurons", "n_somata",
                "motor_neurons_per_mm2", "mean_motor_neuron_area_um2", "mean_soma_area_um2"):
        assert col in s.columns
    assert s["n_somata"].iloc[0] == len(o)
    np.testing.assert_allclose(s["mean_motor_neuron_area_um2"].iloc[0], mn["area_um2"].mean())
    assert result.labels.shape == image.shape_yx
    assert set(np.unique(result.labels)) - {0} == set(o["label"])
    assert result.qc.dtype == np.uint8 and result.qc.ndim == 3 and result.qc.shape[2] == 3
    assert result.qc.shape[1] == image.shape_yx[1] and result.qc.shape[0] > image.shape_yx[0]
    assert result.pixel_size_um == 0.5
    assert result.params["min_equivalent_diameter_um"] == 20.0
    assert result.assay == "motor-neurons"


def test_progress_is_reported():
    image, _ = nissl_phantom((300, 300), 0.5, seed=7)
    seen = []
    run(image, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_bad_inputs_give_clear_errors():
    image, _ = nissl_phantom((200, 200), 0.5, seed=8)
    grey = as_image(image.data.mean(axis=2).astype(np.uint8), 0.5)
    with pytest.raises(ChannelError, match="RGB"):
        run(grey)
    with pytest.raises(PixelSizeError, match="pixel size"):
        run(Image(image.data, axes="YXC", rgb=True))
    blank = as_image(np.full((200, 200, 3), 230, np.uint8), 0.5)
    with pytest.raises(EmptyImageError, match="blank"):
        run(blank)
    nan = image.data.astype(np.float32) / 255
    nan[10, 10, 0] = np.nan
    with pytest.raises(EmptyImageError, match="NaN"):
        run(as_image(nan, 0.5))
    with pytest.raises(ParamsError, match="min_equivalent_diameter_um"):
        run(image, params={"min_diameter": 20})
    with pytest.raises(ParamsError):
        run(image, params={"open_um": -1})


def test_float_rgb_input_is_measured_like_uint8():
    image, _ = nissl_phantom((400, 400), 0.5, seed=9, motor_neuron_density_per_mm2=100)
    a = run(image)
    b = run(as_image(image.data.astype(np.float32) / 255.0, 0.5))
    assert a.summary["n_motor_neurons"].iloc[0] == b.summary["n_motor_neurons"].iloc[0]


def test_spec_and_single_source_of_defaults():
    assert get_assay("motor-neurons") is SPEC or get_assay("motor-neurons").run is run
    assert SPEC.rgb and SPEC.auto_regions == ("ventral_horn_left", "ventral_horn_right")
    # The segmentation's own defaults are the assay's.
    assert MotorNeuronParams().segmentation() == SomaSegmentationParams()
    for f in dataclasses.fields(MotorNeuronParams):
        info = f.metadata
        assert info.get("help"), f.name
