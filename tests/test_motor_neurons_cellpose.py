"""The motor-neuron assay with engine="cellpose": wiring, units, preflight, a real network run."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.assays import motor_neurons as mn
from histoquant.errors import DependencyError, ParamsError
from histoquant.segment.cellpose_engine import CellposeOptions
from histoquant.segment.somata import segment_somata
from histoquant.synthetic.nissl import nissl_phantom


@pytest.fixture(scope="module")
def phantom():
    return nissl_phantom((600, 600), 0.5, seed=11, motor_neuron_density_per_mm2=60.0)


def test_cellpose_options_come_from_the_assay_params():
    p = mn.MotorNeuronParams(engine="cellpose", cellpose_diameter_um=30.0,
                             cellpose_flow_threshold=0.6, cellpose_device="cpu")
    opts = mn.cellpose_options(p)
    assert isinstance(opts, CellposeOptions)
    assert (opts.diameter_um, opts.flow_threshold, opts.device) == (30.0, 0.6, "cpu")
    # defaults not repeated: the assay's cellpose defaults are the adapter's
    assert mn.MotorNeuronParams().cellpose_flow_threshold == CellposeOptions().flow_threshold
    assert mn.MotorNeuronParams().cellpose_model == CellposeOptions().model
    with pytest.raises(ParamsError):
        mn.MotorNeuronParams.from_dict({"engine": "stardist"})


def test_cellpose_masks_go_through_the_same_measurements_and_criteria(phantom, monkeypatch):
    image, truth = phantom
    seen = {}

    def stand_in(density, pixel_size_um, options, progress=None):
        # a stand-in network that answers with the classical segmentation: the tables must
        # then equal the classical engine's, proving the masks take the same path
        seen.update(pixel_size_um=pixel_size_um, options=options, shape=density.shape)
        return segment_somata(density, pixel_size_um, "classical",
                              params=mn.MotorNeuronParams().segmentation())

    monkeypatch.setattr(mn, "segment_cellpose", stand_in)
    classical = mn.run(image)
    via_cellpose = mn.run(image, params={"engine": "cellpose", "cellpose_diameter_um": 28})
    assert seen["options"].diameter_um == 28.0
    work_px = mn.MotorNeuronParams().work_pixel_size_um
    assert seen["pixel_size_um"] == pytest.approx(work_px)
    assert seen["shape"] == (300, 300)
    assert via_cellpose.params["engine"] == "cellpose"
    cols = ["label", "class", "area_um2", "centroid_y_um", "centroid_x_um"]
    np.testing.assert_array_equal(via_cellpose.objects[cols].to_numpy(),
                                  classical.objects[cols].to_numpy())
    assert (via_cellpose.summary["n_motor_neurons"] == classical.summary["n_motor_neurons"]).all()
    assert int(via_cellpose.summary["n_motor_neurons"].sum()) == int(truth.cells[
        "is_motor_neuron"].sum())


def test_preflight_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    mn.preflight(None)  # classical needs nothing
    with pytest.raises(DependencyError, match="cellpose|torch"):
        mn.preflight({"engine": "cellpose"})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_random_weight_cellpose_runs_through_the_assay(random_cpsam_dir, monkeypatch):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(random_cpsam_dir))
    image, _ = nissl_phantom((300, 300), 0.5, seed=2)
    result = mn.run(image, params={"engine": "cellpose", "cellpose_device": "cpu"})
    classical = mn.run(image)
    # random weights give arbitrary masks; what must hold is the path: label image at image
    # size, the same table columns as the classical engine, and the engine on record
    assert result.labels.shape == image.shape_yx
    assert np.issubdtype(result.labels.dtype, np.integer)
    assert list(result.objects.columns) == list(classical.objects.columns)
    assert list(result.summary.columns) == list(classical.summary.columns)
    assert result.params["engine"] == "cellpose"
    assert len(result.objects) == len(np.unique(result.labels[result.labels > 0]))
