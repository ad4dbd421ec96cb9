"""Motor neurons in fluorescence: phantoms with exact truth, channel choice, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from histoquant.assays.motor_neurons import MotorNeuronParams, guess_modality, run
from histoquant.errors import ChannelError, EmptyImageError, ModalityError, ParamsError
from histoquant.io import as_image
from histoquant.segment.fluorescent_somata import FluorescentSomaParams, pick_soma_channel
from histoquant.synthetic.fluorescent_somata import fluorescent_somata_phantom
from histoquant.synthetic.nissl import nissl_phantom

# (pixel size, shape, motor neurons, small neurons): the same density of cells per field.
CASES = {0.5: ((1024, 1024), 12, 20), 2.0: ((512, 512), 30, 40)}


def _phantom(px: float, seed: int, padded: bool, **kw):
    shape, n_mn, n_small = CASES[px]
    # 48 px of padding: a multiple of the JPEG block, see the note in test_padding_jpeg.
    return fluorescent_somata_phantom(shape, px, seed=seed, n_motor_neurons=n_mn,
                                      n_small=n_small, padding_px=48 if padded else 0,
                                      jpeg_quality=85 if padded else None, **kw)


def _matched(result, truth, px):
    mn = result.objects[result.objects["class"] == "motor_neuron"]
    lab = truth.labels[(mn["centroid_y_um"] / px).astype(int),
                       (mn["centroid_x_um"] / px).astype(int)]
    kinds = truth.cells.set_index("label")["kind"]
    return mn, [kinds.get(int(v), "none") for v in lab]


@pytest.mark.parametrize("px", [0.5, 2.0])
@pytest.mark.parametrize("padded", [False, True], ids=["clean", "padding+jpeg"])
@pytest.mark.parametrize("seed", [0, 1])
def test_phantom_counts_motor_neurons_exactly(px, padded, seed):
    image, truth = _phantom(px, seed, padded)
    result = run(image)
    assert result.extra["modality"] == "fluorescence"
    assert result.extra["soma_channel"] == "R"
    mn, kinds = _matched(result, truth, px)
    # every motor neuron found once, nothing else called one
    assert kinds.count("motor_neuron") == truth.n_motor_neurons
    assert len(set(map(int, truth.labels[(mn["centroid_y_um"] / px).astype(int),
                                         (mn["centroid_x_um"] / px).astype(int)]))) == len(mn)
    assert len(mn) == truth.n_motor_neurons
    # no small neuron is large enough to be one
    small = result.objects[result.objects["class"] == "other"]
    assert (small["equivalent_diameter_um"] < 20).all() or len(small) == 0 or \
        (small["mean_snr"] < MotorNeuronParams().fluorescence_min_mean_snr).any()


@pytest.mark.parametrize("px", [0.5, 2.0])
def test_phantom_soma_sizes_in_um(px):
    image, truth = _phantom(px, 3, False)
    result = run(image)
    mn = result.objects[result.objects["class"] == "motor_neuron"]
    lab = truth.labels[(mn["centroid_y_um"] / px).astype(int),
                       (mn["centroid_x_um"] / px).astype(int)]
    true_d = truth.cells.set_index("label").loc[lab, "equivalent_diameter_um"].to_numpy()
    rel = mn["equivalent_diameter_um"].to_numpy() / true_d - 1
    # the half-maximum outline: within 5 % of the drawn diameter (blur 0.6 µm, 1 px steps)
    assert np.abs(rel).max() < 0.05, rel


def test_single_channel_and_named_channel():
    image, truth = _phantom(2.0, 0, False, rgb=False)
    assert guess_modality(image) == "fluorescence"
    result = run(image)
    assert result.extra["soma_channel_index"] == 0
    assert int(result.summary["n_motor_neurons"].sum()) == truth.n_motor_neurons
    rgb, _ = _phantom(2.0, 0, False)
    named = run(rgb, channels={"soma": "R"})
    assert named.extra["channel_scores"] is None  # named, not picked
    assert int(named.summary["n_motor_neurons"].sum()) == truth.n_motor_neurons


def test_stack_without_soma_channel_is_asked_for():
    image, _ = _phantom(2.0, 0, False, rgb=False)
    stack = np.stack([image.data, image.data[::-1]], axis=-1)
    two = as_image(stack, 2.0)
    with pytest.raises(ChannelError, match="soma"):
        run(two)
    assert run(two, channels={"soma": 0}).extra["soma_channel_index"] == 0


def test_pick_soma_channel_ignores_white_annotations():
    image, _ = _phantom(2.0, 0, False)
    data = np.asarray(image.data).copy()
    data[:, :6] = 255  # a white frame line in every channel
    data[10:30, 100:300] = 255  # a scale bar
    # the stain moved to blue
    data = data[..., [1, 2, 0]]
    idx, scores = pick_soma_channel(data)
    assert idx == 2, scores


def test_forced_brightfield_on_fluorescence_is_refused():
    image, _ = _phantom(2.0, 0, True)
    with pytest.raises(ModalityError, match="fluorescence"):
        run(image, params={"modality": "brightfield"})


def test_nucleolus_criterion_refused_in_fluorescence():
    image, _ = _phantom(2.0, 0, False)
    with pytest.raises(ParamsError, match="require_nucleolus"):
        run(image, params={"require_nucleolus": True})


def test_brightfield_detected_and_both_paths_give_the_same_tables():
    bf, _ = nissl_phantom((384, 384), 0.5, seed=2)
    assert guess_modality(bf) == "brightfield"
    a = run(bf)
    assert a.extra["modality"] == "brightfield"
    fl, _ = _phantom(2.0, 0, False)
    b = run(fl)
    assert list(a.summary.columns) == list(b.summary.columns)
    assert set(a.objects.columns) <= set(b.objects.columns)
    # the brightfield path takes no channel
    with pytest.raises(ChannelError, match="no channel"):
        run(bf, channels={"soma": "R"})


def test_fluorescent_defaults_match_the_assay():
    p = MotorNeuronParams()
    assert dataclasses.asdict(p.fluorescent_segmentation()) == \
        dataclasses.asdict(FluorescentSomaParams())


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_confocal_pixel_size_and_any_dtype(dtype):
    """0.3 µm/px single channel (a confocal field), as 8-bit, 16-bit and 0–1 float."""
    image, truth = fluorescent_somata_phantom((1536, 1536), 0.3, seed=1, n_motor_neurons=10,
                                              n_small=15, rgb=False)
    data = np.asarray(image.data)
    if dtype == "uint16":
        data = data.astype(np.uint16) * 257
    elif dtype == "float32":
        data = data.astype(np.float32) / 255
    result = run(as_image(data, 0.3))
    assert result.extra["modality"] == "fluorescence"
    mn, kinds = _matched(result, truth, 0.3)
    assert kinds.count("motor_neuron") == len(mn) == truth.n_motor_neurons


def test_regions_on_padding_are_named_in_the_error():
    image, _ = fluorescent_somata_phantom((512, 512), 2.0, seed=0, padding_px=120)
    h, w = image.shape_yx
    on_padding = np.zeros((h, w), bool)
    # in the 120 px (240 µm) bottom band, more than the 60 µm margin from the tissue
    on_padding[h - 30:, : w // 2] = True
    with pytest.raises(EmptyImageError, match="no tissue, only padding"):
        run(image, regions={"ventral_horn_left": on_padding})


@pytest.mark.parametrize("px", [0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dim_somata_in_bright_neuropil_are_found(px, seed):
    """Issue #14, 214_L1: round motor neurons 4–5 σ above a bright, granular neuropil (below
    the 5 σ main criterion) are counted by the dim-soma rule; nothing else is added."""
    image, truth = _phantom(px, seed, False, n_dim=3)
    result = run(image)
    mn, kinds = _matched(result, truth, px)
    o = result.objects
    lab = truth.labels[(o["centroid_y_um"] / px).astype(int),
                       (o["centroid_x_um"] / px).astype(int)]
    dim_labels = set(truth.cells.loc[truth.cells["dim"], "label"])
    assert len(dim_labels) == 3
    on_dim = o[[int(v) in dim_labels for v in lab]]
    # each dim soma is one object, a motor neuron
    assert len(on_dim) == 3
    assert (on_dim["class"] == "motor_neuron").all()
    # the case is what it claims: at least one is below the main brightness criterion
    assert (on_dim["mean_snr"] < MotorNeuronParams().fluorescence_min_mean_snr).any()
    assert kinds.count("motor_neuron") == len(mn) == truth.n_motor_neurons
    # and without the rule it is missed (so the test can fail)
    off = run(image, params={"fluorescence_dim_min_mean_snr": 5.0})
    assert int(off.summary["n_motor_neurons"].sum()) < truth.n_motor_neurons


@pytest.mark.parametrize("px", [0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fibre_bundles_give_no_motor_neuron(px, seed):
    """Issue #14, 263_L4 / 290_L6: a bright beaded bundle 12 µm wide crossing the field,
    whole or cut into soma-sized pieces, gives no motor neuron; the count stays exact."""
    image, truth = _phantom(px, seed, False, n_bundles=2)
    assert truth.bundles is not None and truth.bundles.any()
    result = run(image)
    o = result.objects
    yy = (o["centroid_y_um"] / px).astype(int)
    xx = (o["centroid_x_um"] / px).astype(int)
    on_bundle = o[truth.bundles[yy, xx]]
    # the bundles are segmented into objects of motor-neuron size...
    assert (on_bundle["equivalent_diameter_um"] >= 20).any()
    # ...none of which is called a motor neuron
    assert (on_bundle["class"] != "motor_neuron").all()
    mn, kinds = _matched(result, truth, px)
    assert kinds.count("motor_neuron") == len(mn) == truth.n_motor_neurons
    # without the fibre rules they would be (so the test can fail)
    off = run(image, params={"fluorescence_max_elongation": 100.0,
                             "fluorescence_fibre_min_elongation": 100.0})
    assert int(off.summary["n_motor_neurons"].sum()) > truth.n_motor_neurons


def test_default_phantom_unchanged_by_the_hard_cases():
    """The hard cases draw from their own random stream: the default image is as before."""
    a, ta = _phantom(2.0, 0, False)
    b, tb = _phantom(2.0, 0, False, n_dim=0, n_bundles=0)
    assert np.array_equal(np.asarray(a.data), np.asarray(b.data))
    assert tb.bundles is None and not ta.cells["dim"].any()


def test_axial_continuation_tells_a_bundle_piece_from_a_soma():
    """A uniform bar cut into three pieces: the middle piece continues past both ends (the
    bar goes on), the end pieces on one side; a lone disc and a lone ellipse do not."""
    from histoquant.segment.fluorescent_somata import axial_continuation

    snr = np.zeros((200, 300), np.float32)
    labels = np.zeros(snr.shape, np.int32)
    snr[20:30, 20:280] = 10.0  # a bar 10 px wide, 260 long, cut at columns 100 and 200
    labels[20:30, 20:100], labels[20:30, 100:200], labels[20:30, 200:280] = 1, 2, 3
    yy, xx = np.mgrid[:200, :300]
    disc = (yy - 120) ** 2 + (xx - 60) ** 2 <= 15 ** 2
    snr[disc], labels[disc] = 10.0, 4
    ell = ((yy - 120) / 10.0) ** 2 + ((xx - 200) / 30.0) ** 2 <= 1  # 3 : 1, alone
    snr[ell], labels[ell] = 10.0, 5
    m = axial_continuation(labels, snr)
    assert list(m["label"]) == [1, 2, 3, 4, 5]
    el, cmin, cmax = m["elongation"], m["continuation_min"], m["continuation_max"]
    # the middle piece finds the bar, as bright as itself, past both ends; the box is as wide
    # as the object's equal-moment ellipse (2/√3 × a rectangle's width: 11.5 px, 12 rows),
    # of which the bar fills 10 rows
    assert cmin[1] == pytest.approx(10 / 12, abs=0.01)
    # an end piece: the bar on one side, the dark field on the other
    assert cmax[0] == pytest.approx(10 / 12, abs=0.01) and cmin[0] == 0.0
    # 80 × 10 px and 100 × 10 px: elongation 8 and 10 (moments of a filled rectangle)
    assert el[0] == pytest.approx(8.0, rel=0.02) and el[1] == pytest.approx(10.0, rel=0.02)
    # the disc and the ellipse end in the dark both ways
    assert cmax[3] == 0.0 and cmax[4] == 0.0
    assert el[3] == pytest.approx(1.0, abs=0.02) and el[4] == pytest.approx(3.0, rel=0.05)
    # only the labels asked for
    assert list(axial_continuation(labels, snr, np.array([4]))["label"]) == [4]
