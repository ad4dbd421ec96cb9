"""The GFP assay's cellpose engine: the masks go through the classical engine's measurements.

Most tests replace the network by a stand-in (the phantom's true labels, or a threshold model
behind the real adapter), so they check the wiring and the shared criteria exactly and fast.
One slow test runs a real Cellpose-SAM network with random (seeded) weights end to end: its
masks are meaningless, so it checks only shapes, dtypes and the table columns.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from skimage.measure import label

from histoquant.assays import gfp_cells
from histoquant.assays.gfp_cells import GfpCellParams, cellpose_options, preflight, run
from histoquant.errors import DependencyError, ParamsError
from histoquant.io import write_ome_tiff
from histoquant.segment import cellpose_engine as ce
from histoquant.segment import fluorescent_cells
from histoquant.segment.cellpose_engine import CellposeOptions
from histoquant.synthetic.gfp import make_gfp_phantom

PX = 0.5


@pytest.fixture(scope="module")
def phantom():
    return make_gfp_phantom((512, 512), PX, n_cells=3, n_anucleate=1, n_lipofuscin=3, n_rbc=4,
                            seed=2)


class TruthSegmenter:
    """Stands in for ``segment_cellpose``: returns fixed labels and records its arguments."""

    def __init__(self, labels: np.ndarray):
        self.labels = labels.astype(np.int32)
        self.calls: list[tuple[np.ndarray, float, CellposeOptions]] = []

    def __call__(self, image, pixel_size_um, options=None, progress=None):
        self.calls.append((np.asarray(image), pixel_size_um, options))
        if progress is not None:
            progress(1.0, "stand-in")
        return self.labels.copy()


def _truth_labels(truth) -> np.ndarray:
    """True GFP objects 1..n, then the decoys (numbered after them) where no cell lies."""
    n = int(truth.cell_labels.max())
    out = truth.cell_labels.astype(np.int32).copy()
    decoys = (truth.decoy_labels > 0) & (out == 0)
    out[decoys] = truth.decoy_labels[decoys] + n
    return out


def test_cellpose_path_measures_and_classes_true_masks_like_truth(phantom, monkeypatch):
    image, truth = phantom
    seg = TruthSegmenter(_truth_labels(truth))
    monkeypatch.setattr(fluorescent_cells, "segment_cellpose", seg)
    res = run(image, params={"engine": "cellpose"})
    # only the GFP channel, at the image's pixel size, with the options built from the params
    ((img_in, px_in, opts),) = seg.calls
    assert img_in.shape == image.shape_yx
    assert np.array_equal(img_in, image.data[..., image.channel_names.index("gfp")])
    assert px_in == PX and opts == cellpose_options(GfpCellParams(engine="cellpose"))

    objects, summary = res.objects, res.summary
    n_cells = int(truth.cell_labels.max())
    by_label = {}
    for row in objects.to_dict("records"):
        # each listed object is one truth mask: find which
        values = np.unique(seg.labels[res.labels == row["label"]])
        assert len(values) == 1 and values[0] > 0
        by_label[int(values[0])] = row
    # every GFP object of the truth is listed; nucleated ones counted, the others not
    cells = truth.cells.set_index("label")
    for lab in range(1, n_cells + 1):
        assert lab in by_label
        want = "gfp_cell" if cells.loc[lab, "nucleated"] else "no_nucleus"
        assert by_label[lab]["class"] == want
    assert summary.loc[0, "n_gfp_cells"] == truth.n_gfp_cells
    assert summary.loc[0, "n_gfp_objects"] == truth.n_gfp_objects
    # every decoy big enough to be listed is rejected as autofluorescent
    decoy_rows = [r for k, r in by_label.items() if k > n_cells]
    listed = [k for k in by_label if k > n_cells]
    big = [k for k in range(1, int(truth.decoy_labels.max()) + 1)
           if (seg.labels == k + n_cells).sum() * PX**2 >= 20.0]
    assert sorted(listed) == sorted(k + n_cells for k in big)
    assert decoy_rows and all(r["class"] == "autofluorescent" for r in decoy_rows)
    assert summary.loc[0, "n_rejected_autofluorescent"] == len(decoy_rows)
    # the same table layout as the classical engine's, and the engine on record
    classical = run(image)
    assert list(objects.columns) == list(classical.objects.columns)
    assert list(summary.columns) == list(classical.summary.columns)
    assert res.params["engine"] == "cellpose" and classical.params["engine"] == "classical"
    assert res.extra["engine"] == "cellpose"
    assert res.qc is not None and res.qc.shape[0] >= image.shape_yx[0]
    assert res.labels.shape == image.shape_yx


def test_masks_outside_the_regions_are_left_out(phantom, monkeypatch):
    image, truth = phantom
    seg = TruthSegmenter(truth.cell_labels)
    monkeypatch.setattr(fluorescent_cells, "segment_cellpose", seg)
    half = np.zeros(image.shape_yx, bool)
    half[:, :256] = True
    from histoquant.rois import Region

    res = run(image, regions=[Region("left", mask=half)], params={"engine": "cellpose"})
    inside = truth.cells[truth.cells["col"] < 256]
    assert len(res.objects) == len(inside) > 0
    assert (res.objects["centroid_x_um"] < 128).all()
    assert (res.labels[:, 256:] == 0).all()


def test_options_follow_the_params_and_reuse_the_adapter_defaults():
    opts = cellpose_options(None)
    defaults = CellposeOptions()
    assert opts.diameter_um == pytest.approx(0.5 * (8.0 + 40.0))  # midpoint of the cell limits
    assert opts.min_area_um2 == GfpCellParams().min_object_area_um2
    for name in ("model", "flow_threshold", "cellprob_threshold", "device", "batch_size",
                 "tile_size_px", "tile_overlap_um", "bfloat16"):
        assert getattr(opts, name) == getattr(defaults, name)
    opts = cellpose_options({"min_cell_diameter_um": 10, "max_cell_diameter_um": 30,
                             "cellpose_flow_threshold": 0.8, "cellpose_device": "cpu",
                             "cellpose_batch_size": 2, "cellpose_model": "my_model"})
    assert (opts.diameter_um, opts.flow_threshold, opts.device, opts.batch_size, opts.model) \
        == (20.0, 0.8, "cpu", 2, "my_model")
    assert cellpose_options({"cellpose_diameter_um": 15}).diameter_um == 15.0
    for bad in ({"engine": "stardist"}, {"cellpose_device": "tpu"},
                {"cellpose_diameter_um": 0}, {"cellpose_batch_size": 0}):
        with pytest.raises(ParamsError):
            GfpCellParams.from_dict(bad)


class ThresholdModel:
    """Answers ``eval`` like CellposeModel: masks from a threshold on the normalised input."""

    def __init__(self):
        self.calls = []

    def eval(self, x, **kwargs):
        self.calls.append((x, kwargs))
        return label(x[..., 0] > 1.0).astype(np.uint16), None, None


@pytest.mark.parametrize(("given", "diameter_px"), [(None, 48.0), (15.0, 30.0)])
def test_diameter_reaches_cellpose_in_pixels(phantom, monkeypatch, tmp_path, given,
                                             diameter_px):
    image, _ = phantom
    model = ThresholdModel()
    weights = tmp_path / "stand_in"
    weights.write_bytes(b"not used")
    monkeypatch.setattr(ce, "_import_cellpose", lambda: None)
    monkeypatch.setattr(ce, "_pick_device", lambda choice: "cpu")
    monkeypatch.setattr(ce, "_load_model", lambda *args: model)
    res = run(image, params={"engine": "cellpose", "cellpose_model": str(weights),
                             "cellpose_diameter_um": given})
    ((x, kw),) = model.calls
    assert x.shape == (*image.shape_yx, 1)  # the GFP channel alone
    assert kw["diameter"] == pytest.approx(diameter_px)  # 24 µm (default) or 15 µm at 0.5 µm/px
    assert kw["min_size"] == 80  # min_object_area_um2 = 20 µm² at 0.25 µm² per px
    # the bright parts of the GFP channel became objects and were classed
    assert len(res.objects) > 0 and res.objects["class"].isin(gfp_cells.CLASSES).all()


def test_without_cellpose_preflight_and_run_say_what_to_install(phantom, monkeypatch):
    for name in ("cellpose", "cellpose.models"):
        monkeypatch.setitem(sys.modules, name, None)
    preflight({"engine": "classical"})  # the classical engine needs nothing more
    preflight(None)
    for check in (lambda: preflight({"engine": "cellpose"}),
                  lambda: run(phantom[0], params={"engine": "cellpose"})):
        with pytest.raises(DependencyError) as info:
            check()
        assert 'pip install "histoquant[cellpose]"' in str(info.value)


def test_missing_weights_fail_before_any_image_without_network(tmp_path, monkeypatch,
                                                               network_attempts):
    pytest.importorskip("cellpose")
    attempts = network_attempts
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    with pytest.raises(DependencyError) as info:
        preflight(GfpCellParams(engine="cellpose", cellpose_model="cpsam"))
    assert str(tmp_path / "cpsam") in str(info.value)
    assert "CELLPOSE_LOCAL_MODELS_PATH" in str(info.value)
    assert attempts == [] and not (tmp_path / "cpsam").exists()


def test_cli_takes_the_engine_from_params_file(phantom, monkeypatch, tmp_path):
    from histoquant.cli import main

    image, truth = phantom
    path = write_ome_tiff(image, tmp_path / "s01.ome.tif")
    (tmp_path / "p.yaml").write_text("engine: cellpose\ncellpose_diameter_um: 20\n")
    seg = TruthSegmenter(truth.cell_labels)
    monkeypatch.setattr(fluorescent_cells, "segment_cellpose", seg)
    # the command checks the weights before any image, as a study does; a stand-in here
    checked = []
    monkeypatch.setattr(fluorescent_cells, "require_cellpose", checked.append)
    rc = main(["gfp-cells", str(path), "--params", str(tmp_path / "p.yaml"),
               "-o", str(tmp_path / "out"), "-q"])
    assert rc == 0
    assert len(seg.calls) == 1 and seg.calls[0][2].diameter_um == 20.0
    assert checked == ["cpsam"]  # once, before the image
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.loc[0, "n_gfp_cells"] == truth.n_gfp_cells
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "cellpose" in json.dumps(run_json)


# --- the real cellpose, with a random-weight Cellpose-SAM network ------------------------------

@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sparse invariant checks")  # inside cellpose's dynamics
def test_random_weight_cellpose_runs_through_the_assay(random_cpsam_dir, monkeypatch):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(random_cpsam_dir))
    image, _ = make_gfp_phantom((240, 240), PX, n_cells=2, n_lipofuscin=1, n_rbc=2, seed=4)
    params = {"engine": "cellpose", "cellpose_device": "cpu"}
    preflight(params)
    # 24 µm at 0.5 µm/px is 48 px: cellpose shrinks the 240 px image to 150 px, one block
    res = run(image, params=params)
    classical = run(image)
    assert res.labels.shape == image.shape_yx and res.labels.dtype in (np.uint16, np.int32)
    ids = np.unique(res.labels[res.labels > 0])
    assert set(ids) == set(res.objects["label"])
    assert list(res.objects.columns) == list(classical.objects.columns)
    assert list(res.summary.columns) == list(classical.summary.columns)
    assert res.params["engine"] == "cellpose" and res.params["cellpose_model"] == "cpsam"
    assert res.qc.dtype == np.uint8 and res.qc.ndim == 3


def test_a_study_with_engine_cellpose_stops_before_any_image(tmp_path, monkeypatch):
    from histoquant.batch.run import plan_study

    for name in ("cellpose", "cellpose.models"):
        monkeypatch.setitem(sys.modules, name, None)
    study = tmp_path / "study"
    study.mkdir()
    image, _ = make_gfp_phantom((128, 128), PX, n_cells=1, n_lipofuscin=0, n_rbc=0, seed=1)
    write_ome_tiff(image, study / "gfp_R01_L3.ome.tif")
    (study / "study.yaml").write_text(
        "assays:\n  gfp-cells:\n    files: ['gfp_*']\n"
        "    channels: {gfp: gfp, dapi: dapi, reference: reference}\n"
        "    params: {engine: cellpose}\n")
    with pytest.raises(DependencyError, match="histoquant\\[cellpose\\]"):
        plan_study(study, tmp_path / "out")
    assert not (tmp_path / "out").exists()
