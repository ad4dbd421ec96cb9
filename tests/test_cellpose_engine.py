"""The cellpose engine: units, errors, tiling, and a real Cellpose-SAM network run end to end.

No pretrained weights can be downloaded here, so the real run uses a Cellpose-SAM network with
random (seeded) weights saved as a user model file: the same architecture, loading code, tiling
and mask dynamics as the pretrained model, at the same cost, but meaningless masks. The tests
that need cellpose skip when it is not installed (it is an optional extra); CI installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.measure import label, regionprops_table

from histoquant.errors import (
    ChannelError,
    DependencyError,
    EmptyImageError,
    ParamsError,
    PixelSizeError,
)
from histoquant.io import Image
from histoquant.segment import cellpose_engine as ce
from histoquant.segment.cellpose_engine import (
    CellposeOptions,
    resolve_model_path,
    segment_cellpose,
)
from histoquant.synthetic.round_cells import make_round_cells

ROOT = Path(__file__).resolve().parents[1]


# --- without cellpose -------------------------------------------------------------------------

def test_importing_histoquant_loads_neither_torch_nor_cellpose():
    code = ("import sys, histoquant, histoquant.segment.cellpose_engine; "
            "print(sorted(m for m in ('torch', 'cellpose') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "[]"


def test_options_validate_and_carry_units():
    opts = CellposeOptions.from_dict({"diameter_um": "30", "device": "cpu", "channels": [2, 0]})
    assert opts.diameter_um == 30.0 and opts.channels == (2, 0)
    units = {f["name"]: f["unit"] for f in CellposeOptions.field_info()}
    assert units["diameter_um"] == "µm" and units["min_area_um2"] == "µm²"
    for bad in ({"device": "tpu"}, {"flow_threshold": -1}, {"norm_low_pct": 99.5},
                {"channels": [0, 1, 2, 3]}, {"diameter_um": 0}, {"model": " "},
                {"tile_size_px": 100}, {"resolution": 3}):
        with pytest.raises(ParamsError):
            CellposeOptions.from_dict(bad)


@pytest.fixture()
def phantom():
    image, truth = make_round_cells((200, 200), pixel_size_um=0.5, n_cells=8, seed=1)
    return image.data, truth


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pixel_size_um": 0}, PixelSizeError, "positive"),
        ({"pixel_size_um": "abc"}, PixelSizeError, "not a number"),
        ({"image": np.zeros((4, 20, 20, 3))}, ChannelError, "2D images"),
        ({"image": np.zeros((64, 64, 5))}, ChannelError, "at most 3"),
        ({"image": np.zeros((64, 64, 2)), "options": {"channels": [3]}}, ChannelError,
         "do not exist"),
        ({"image": np.full((64, 64), 7.0)}, EmptyImageError, "blank"),
        ({"image": np.full((64, 64), np.nan)}, EmptyImageError, "NaN"),
        ({"image": np.ones((8, 300))}, EmptyImageError, "too small"),
        ({"options": {"tile_size_px": 256, "tile_overlap_um": 64}}, ParamsError, "half"),
        ({"options": "cpsam"}, ParamsError, "CellposeOptions"),
    ],
)
def test_bad_input_is_refused_before_any_model_is_loaded(phantom, monkeypatch, kwargs, error,
                                                         match):
    def no_model(*args):
        raise AssertionError("the model must not be loaded for bad input")

    monkeypatch.setattr(ce, "_load_model", no_model)
    args = {"image": phantom[0], "pixel_size_um": 0.5, "options": None, **kwargs}
    with pytest.raises(error, match=match):
        segment_cellpose(args["image"], args["pixel_size_um"], args["options"])


@pytest.mark.parametrize("missing", ["cellpose", "torch"])
def test_without_the_extra_the_error_says_what_to_install(phantom, monkeypatch, missing):
    for name in [missing, f"{missing}.models"]:
        monkeypatch.setitem(sys.modules, name, None)  # makes ``import name`` fail
    with pytest.raises(DependencyError) as info:
        segment_cellpose(phantom[0], 0.5)
    msg = str(info.value)
    assert 'pip install "histoquant[cellpose]"' in msg
    assert "download.pytorch.org/whl/cpu" in msg  # the CPU build of torch, not the CUDA one


def test_model_names_resolve_to_files_in_the_models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    (tmp_path / "my_model").write_bytes(b"weights")
    assert resolve_model_path("my_model") == (tmp_path / "my_model").resolve()
    assert resolve_model_path(tmp_path / "my_model") == (tmp_path / "my_model").resolve()
    with pytest.raises(DependencyError) as info:
        resolve_model_path("cpsam")
    assert str(tmp_path / "cpsam") in str(info.value)
    assert "CELLPOSE_LOCAL_MODELS_PATH" in str(info.value)
    with pytest.raises(DependencyError, match="does not exist"):
        resolve_model_path(tmp_path / "nowhere" / "model.pt")
    monkeypatch.delenv("CELLPOSE_LOCAL_MODELS_PATH")
    assert ce.cellpose_models_dir() == Path.home() / ".cellpose" / "models"


# --- the adapter's contract, with a stand-in for the network ----------------------------------

class StandInModel:
    """Answers ``eval`` like CellposeModel: masks from a threshold on the first channel."""

    def __init__(self):
        self.calls = []

    def eval(self, x, **kwargs):
        self.calls.append((x, kwargs))
        return label(x[..., 0] > 0.5).astype(np.uint16), None, None


@pytest.fixture()
def stand_in(monkeypatch, tmp_path):
    model = StandInModel()
    weights = tmp_path / "stand_in_model"
    weights.write_bytes(b"not used")
    monkeypatch.setattr(ce, "_import_cellpose", lambda: None)
    monkeypatch.setattr(ce, "_pick_device", lambda choice: "cpu")
    monkeypatch.setattr(ce, "_load_model", lambda *args: model)
    model.path = str(weights)
    return model


def test_physical_units_reach_cellpose_in_pixels(stand_in):
    image, truth = make_round_cells((300, 280), pixel_size_um=0.4, n_cells=10, seed=2)
    opts = CellposeOptions(model=stand_in.path, diameter_um=12.0, min_area_um2=20.0,
                           flow_threshold=0.7, cellprob_threshold=-1.0, batch_size=3)
    labels = segment_cellpose(image.data, 0.4, opts)
    ((x, kw),) = stand_in.calls
    assert kw["diameter"] == pytest.approx(30.0)  # 12 µm / 0.4 µm per px
    assert kw["min_size"] == 125  # 20 µm² / 0.16 µm² per px
    assert (kw["flow_threshold"], kw["cellprob_threshold"], kw["batch_size"]) == (0.7, -1.0, 3)
    assert kw["normalize"] is False and kw["channel_axis"] == 2
    # normalised here, from the whole image's 1st and 99th percentiles
    assert x.dtype == np.float32 and x.shape == (300, 280, 1)
    assert np.percentile(x, 1) == pytest.approx(0.0, abs=1e-6)
    assert np.percentile(x, 99) == pytest.approx(1.0, abs=1e-6)
    assert labels.dtype == np.int32 and labels.shape == (300, 280)
    assert labels.max() == truth.max()


def test_an_image_object_brings_its_pixel_size(stand_in):
    image, truth = make_round_cells((200, 200), pixel_size_um=0.25, n_cells=6, seed=7)
    labels = segment_cellpose(image, None, {"model": stand_in.path, "diameter_um": 15.0})
    assert stand_in.calls[0][1]["diameter"] == pytest.approx(60.0)
    assert labels.max() == truth.max()
    with pytest.raises(PixelSizeError, match="unknown"):
        segment_cellpose(Image(image.data, "YX"), None, {"model": stand_in.path})
    with pytest.raises(ChannelError, match="ZYX"):
        segment_cellpose(Image(np.stack([image.data] * 3), "ZYX", pixel_size_um=0.25), None)


def test_without_diameter_cellpose_gets_none(stand_in, phantom):
    segment_cellpose(phantom[0], 0.5, {"model": stand_in.path})
    assert stand_in.calls[0][1]["diameter"] is None


def test_channels_are_picked_in_order_and_inverted_on_request(stand_in):
    image, truth = make_round_cells((200, 200), rgb=True, n_cells=8, seed=3)
    rgb = image.data
    segment_cellpose(rgb, 0.5, {"model": stand_in.path, "channels": [2, 0], "invert": True})
    x = stand_in.calls[0][0]
    assert x.shape == (200, 200, 2)
    blue, red = rgb[..., 2].astype(np.float32), rgb[..., 0].astype(np.float32)
    for k, ch in enumerate((blue, red)):
        lo, hi = np.percentile(ch, [1, 99])
        assert np.allclose(x[..., k], 1.0 - (ch - lo) / (hi - lo), atol=1e-5)
    # dark brightfield cells become bright after inversion, so the stand-in finds them
    assert label(x[..., 0] > 0.5).max() == truth.max()


# The 20 µm overlap is smaller than some of these cells on purpose (three tiles from 600 rows);
# the engine's warning about cut objects is right here and not what this test checks.
@pytest.mark.filterwarnings("ignore:.*inner tile edge:UserWarning")
def test_tiles_share_the_whole_image_normalisation(stand_in):
    image, _ = make_round_cells((600, 200), pixel_size_um=0.5, n_cells=30, seed=4)
    data = image.data.copy()
    data[300:] *= 0.25  # the lower half is four times dimmer
    segment_cellpose(data, 0.5, {"model": stand_in.path, "tile_size_px": 256,
                                 "tile_overlap_um": 20})
    maxima = [float(x.max()) for x, _ in stand_in.calls]
    assert len(maxima) == 3  # rows 0-256, 216-472, 344-600
    # per-tile normalisation would stretch every tile to ~1; the shared one keeps the dim half dim
    assert maxima[2] < 0.5 < maxima[0]


def test_large_image_runs_in_tiles_and_counts_each_cell_once(stand_in):
    image, truth = make_round_cells((900, 700), pixel_size_um=0.5, diameter_um=(10, 25),
                                    n_cells=150, noise=0.0, seed=5)
    whole = segment_cellpose(image.data, 0.5, {"model": stand_in.path})
    assert len(stand_in.calls) == 1  # smaller than the default 2048 px tile
    fractions = []
    tiled = segment_cellpose(image.data, 0.5, {"model": stand_in.path, "tile_size_px": 300,
                                               "tile_overlap_um": 40},
                             progress=lambda f, m: fractions.append(f))
    assert len(stand_in.calls) - 1 == len(fractions) == 12
    assert fractions[-1] == 1.0
    assert tiled.max() == whole.max() == truth.max()
    assert ((tiled > 0) == (whole > 0)).all()


# --- the real cellpose, with a random-weight Cellpose-SAM network ------------------------------

def test_missing_weights_fail_at_once_without_touching_the_network(tmp_path, monkeypatch,
                                                                   phantom, network_attempts):
    pytest.importorskip("cellpose")
    attempts = network_attempts
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    for check in (lambda: segment_cellpose(phantom[0], 0.5, {"model": "cpsam", "device": "cpu"}),
                  lambda: ce.require_cellpose("cpsam")):
        with pytest.raises(DependencyError) as info:
            check()
        assert str(tmp_path / "cpsam") in str(info.value)
    assert attempts == []
    assert not (tmp_path / "cpsam").exists()


def test_a_file_that_is_not_a_cellpose4_model_is_refused(tmp_path, phantom):
    pytest.importorskip("cellpose")
    import torch

    foreign = tmp_path / "cyto3_like"
    torch.save({"downsample.0.weight": torch.zeros(2)}, foreign)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    for path, match in ((foreign, "not a Cellpose 4 model"), (garbage, "not a cellpose model")):
        with pytest.raises(DependencyError, match=match):
            segment_cellpose(phantom[0], 0.5, {"model": str(path), "device": "cpu"})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sparse invariant checks")  # inside cellpose's dynamics
def test_random_weight_cellpose_sam_runs_end_to_end(random_cpsam_dir, monkeypatch):
    from cellpose import models

    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(random_cpsam_dir))
    assert ce.require_cellpose("cpsam") == (random_cpsam_dir / "cpsam").resolve()
    calls, blocks, hooks = [], [], []
    real_eval = models.CellposeModel.eval

    def spy_eval(self, x, **kwargs):
        calls.append(kwargs)
        if not hooks:  # the network's real input: one entry per 256 px block it runs
            hooks.append(self.net.register_forward_hook(
                lambda mod, inp, out: blocks.append(tuple(inp[0].shape))))
        return real_eval(self, x, **kwargs)

    monkeypatch.setattr(models.CellposeModel, "eval", spy_eval)
    image, _ = make_round_cells((400, 300), pixel_size_um=0.5, n_cells=12, seed=6)
    # 30 µm at 0.5 µm/px is 60 px, so cellpose halves the image to fit one 256 px block; one
    # network block costs tens of seconds on a shared CPU, so this is the only real run: the
    # tiling around it is checked with the stand-in above
    opts = CellposeOptions(model="cpsam", diameter_um=30.0, device="cpu", min_area_um2=5.0,
                           flow_threshold=0.0, cellprob_threshold=0.0)
    fractions = []
    try:
        labels = segment_cellpose(image.data, 0.5, opts, progress=lambda f, m: fractions.append(f))
    finally:
        for h in hooks:
            h.remove()
    assert [c["diameter"] for c in calls] == [60.0] and fractions == [1.0]
    assert calls[0]["min_size"] == 20  # 5 µm² at 0.25 µm² per px
    # unscaled, or with 30 taken as pixels, the image would need 2 x 2 blocks
    assert len(blocks) == 1 and blocks[0][-2:] == (256, 256)
    assert labels.shape == (400, 300) and labels.dtype == np.int32
    # random weights give meaningless but real masks; they reach a measurement table in µm²
    ids = np.unique(labels[labels > 0])
    assert len(ids) > 0 and (ids == np.arange(1, len(ids) + 1)).all()
    table = regionprops_table(labels, properties=("label", "area", "centroid"))
    area_um2 = table["area"] * 0.5**2
    assert len(table["label"]) == len(ids)
    assert area_um2.sum() == pytest.approx((labels > 0).sum() * 0.25)
