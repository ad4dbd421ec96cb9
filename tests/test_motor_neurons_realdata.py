"""Motor-neuron assay on real Nissl images (skipped when ../shared/data is absent).

- ``nissl_cortex``: two rat-cortex fields with hand-drawn instance masks of every neuronal
  soma; the segmentation with the classification off, scored by object F1 at IoU ≥ 0.5.
  A naive threshold + watershed and cellpose cyto2 score ≈ 0.40 there; the target of 0.75 is
  not reached (see docs/motor_neurons.md and benchmarks/cortex_soma_ceilings.py: even with
  the true soma centres as seeds a threshold foreground reaches ≈ 0.74): the asserted floors
  are the measured figures minus a small margin, so a regression fails.
- ``spinal_cord_nissl``: a ventral-horn field (6 large multipolar motor neurons by eye) and a
  white-matter field (none), at an assumed 0.5 µm/px.
"""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.assays.motor_neurons import MotorNeuronParams, run
from histoquant.io import read_image
from histoquant.measure.scores import match_labels

pytestmark = pytest.mark.realdata


def _cortex_f1(shared_data, params):
    raws = sorted((shared_data / "nissl_cortex" / "raw").glob("*.tif"))
    assert len(raws) == 2
    f1 = []
    for raw in raws:
        image = read_image(raw)
        assert image.pixel_size_um == pytest.approx(0.346, abs=0.001)
        gt = np.asarray(read_image(shared_data / "nissl_cortex" / "gt" / raw.name).data)
        result = run(image, params=params)
        f1.append(match_labels(gt, result.labels.astype(np.int32), 0.5).f1)
    return f1


def test_cortex_every_soma_default_parameters(shared_data):
    f1 = _cortex_f1(shared_data, None)
    print(f"cortex soma F1 (defaults): {[round(x, 3) for x in f1]}, mean {np.mean(f1):.3f}")
    assert min(f1) >= 0.40 and np.mean(f1) >= 0.43


def test_cortex_every_soma_small_soma_setting(shared_data):
    """The documented setting for dense small somata (docs/motor_neurons.md): no relative
    prominence (the motor-neuron default keeps large, elongated somata whole at the cost of
    under-splitting small touching ones) and a foreground level of 0.03 OD (the neuropil's
    3 σ in these fields; the default 0.06 loses the palest somata). Measured 0.564 / 0.540."""
    f1 = _cortex_f1(shared_data, {"relative_prominence": 0.0, "foreground_od": 0.03})
    print(f"cortex soma F1 (relative_prominence=0, foreground_od=0.03): "
          f"{[round(x, 3) for x in f1]}, mean {np.mean(f1):.3f}")
    assert min(f1) >= 0.52 and np.mean(f1) >= 0.54


def test_ventral_horn_field_counts_the_large_neurons(shared_data):
    image = read_image(shared_data / "spinal_cord_nissl" / "ventral_horn_field.jpg")
    result = run(image, pixel_size_um=0.5)
    p = MotorNeuronParams()
    mn = result.objects[result.objects["class"] == "motor_neuron"]
    print(mn[["centroid_y_um", "centroid_x_um", "equivalent_diameter_um",
              "mean_optical_density", "nucleolus_visible"]].round(2).to_string())
    assert 4 <= len(mn) <= 8
    assert (mn["equivalent_diameter_um"] >= p.min_equivalent_diameter_um).all()
    assert (mn["mean_optical_density"] >= p.min_mean_od).all()
    # The glial nuclei (8–15 µm) are somata of class "other", and there are many.
    other = result.objects[result.objects["class"] == "other"]
    assert len(other) >= 20
    assert other["equivalent_diameter_um"].median() < 15


def test_white_matter_field_has_no_motor_neuron(shared_data):
    image = read_image(shared_data / "spinal_cord_nissl" / "white_matter_field.jpg")
    result = run(image, pixel_size_um=0.5)
    assert result.summary["n_motor_neurons"].iloc[0] == 0
