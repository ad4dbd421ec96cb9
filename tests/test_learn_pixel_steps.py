"""A pixel classifier in place of an assay's foreground step: evans-blue and vasculature.

The classifiers are trained here, small (20 trees, a few thousand pixels per class), on the
phantoms' own truth masks, and measured on other phantoms of the same kind against their
truth; then the same model through the command line, a study's ``model:``, a tiled run, and
the refusals (a model without the class, of the other modality, of other channels) that
come before any image is measured.

Leak phantoms are drawn without uneven illumination and with leaks 10–20 noise SDs bright:
the classifier reads raw (per-image normalised) intensities, not the background-corrected
ones the threshold reads, and a ±15 % illumination field on a 300-count background is as
large as a dim leak. With that, the learned mask is within 1 percentage point of the true
leak area (measured on seeds 0, 2, 3: −0.06, −0.04, +0.14 points, overlap with the true mask
0.95, 0.91, 0.94; the threshold: +0.004, +0.010, +0.003 points).

Vessels (seed 4, 256 µm at 0.5 µm/px; a classifier trained on seed 20's geometry): length
−4.4 % of the truth (ridge filter −2.5 %), pericyte coverage +3.4 points (ridge filter +2.4),
mean diameter +1.8 µm (ridge filter +0.2): the labels mark a pixel a quarter inside a tube as
vessel, and the vessel mask holds the pericyte sleeve where it wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from histoquant.assays import evans_blue as eb
from histoquant.assays import vasculature as va
from histoquant.cli import main
from histoquant.errors import ChannelError, ModalityError, ModelFileError
from histoquant.io import Image, write_ome_tiff
from histoquant.learn.assay_models import load_assay_model, run_kwargs
from histoquant.learn.features import FeatureSpec
from histoquant.learn.pixels import (
    load_pixel_classifier,
    save_pixel_classifier,
    train_pixel_classifier,
)
from histoquant.synthetic.evans_blue import evans_blue_truth, make_evans_blue_phantom
from histoquant.synthetic.vessels import _render_ellipses, _render_family, vessel_phantom

#: Leaks a raw-intensity classifier can see (see the module docstring).
EB_KW = {"illumination": 0.0, "amplitude_range": (10.0, 20.0)}
EB_PARAMS = {"dark_level": 100.0}
EB_SIZE = (512, 512)
#: The phantoms are 12-bit data in 16-bit files: their channels are "flat" to the pixel
#: classifier's full-scale test, so the channels are named.
EB_SPEC = FeatureSpec(channels=("vessel", "evb"))
VA_SPEC = FeatureSpec(channels=("endothelium", "pericyte"), sigma_max_um=8.0)
VA_PX = 0.5
VA_FIELD = (256.0, 256.0)


def _forest(images, labels, classes, spec):
    return train_pixel_classifier(images, labels, classes=classes, spec=spec, n_estimators=20,
                                  max_samples_per_class=8000, seed=0)


@pytest.fixture(scope="module")
def leak_model():
    """A background / leak classifier trained on two phantoms' true positive masks."""
    images, labels = [], []
    for seed in (10, 11):
        image, truth = make_evans_blue_phantom(EB_SIZE, 0.5, seed=seed, leak_area_pct=3.0,
                                               **EB_KW)
        images.append(image)
        labels.append(np.where(truth["positive"], 2, 1).astype(np.uint8))
    return _forest(images, labels, ("background", "leak"), EB_SPEC)


def vessel_labels(net, shape, pericyte: bool = True) -> np.ndarray:
    """Label image from the network's geometry: 1 background, 2 vessel, 3 pericyte.

    Vessel where a pixel is at least a quarter inside a tube (staining dropouts included:
    the vessel is there); pericyte where a sleeve or soma covers half of it, on the vessel
    or not (the assay takes vessel or pericyte as the vessel mask).
    """
    endo = np.zeros(shape, np.float32)
    peri = np.zeros(shape, np.float32)
    for fam in sorted({c.family for c in net.curves}):
        e, p = _render_family([c for c in net.curves if c.family == fam], shape, VA_PX, 0.75,
                              1.0)
        np.maximum(endo, e, out=endo)
        np.maximum(peri, p, out=peri)
    _render_ellipses(peri, net.somata, VA_PX)
    lab = np.ones(shape, np.uint8)
    lab[endo >= 0.25] = 2
    if pericyte:
        lab[peri >= 0.5] = 3
    return lab


@pytest.fixture(scope="module")
def vessel_models():
    """(three-class, two-class) classifiers trained on one vessel phantom's geometry."""
    image, _, net = vessel_phantom(VA_FIELD, VA_PX, seed=20)
    lab = vessel_labels(net, image.shape_yx)
    three = _forest([image], [lab], ("background", "vessel", "pericyte"), VA_SPEC)
    two = _forest([image], [np.minimum(lab, 2)], ("background", "endothelium"), VA_SPEC)
    return three, two


# --------------------------------------------------------------------------------------------
# evans-blue
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,leak", [(0, 2.0), (2, 4.0)])
def test_leak_area_from_the_classifier_within_1_point_of_truth(leak_model, seed, leak):
    image, truth = make_evans_blue_phantom(EB_SIZE, 0.5, seed=seed, leak_area_pct=leak,
                                           **EB_KW)
    grey = {"grey_matter": truth["grey_matter"]}
    res = eb.run(image, grey, EB_PARAMS, model=leak_model)
    classic = eb.run(image, grey, EB_PARAMS)
    row, crow = res.summary.iloc[0], classic.summary.iloc[0]
    true = evans_blue_truth(truth, "grey_matter")
    assert abs(row.evb_positive_area_pct - true["area_pct"]) < 1.0
    pos = res.masks["positive"] & truth["grey_matter"]
    tp = truth["positive"] & truth["grey_matter"]
    assert (pos & tp).sum() / (pos | tp).sum() > 0.75
    # the mask is the classifier's, the rest of the assay is the classical one on that mask
    assert not np.array_equal(res.masks["positive"], classic.masks["positive"])
    assert np.array_equal(res.masks["vessel"], classic.masks["vessel"])
    assert row.vessel_area_pct == crow.vessel_area_pct
    assert row.background == pytest.approx(crow.background)
    assert row.integrated_intensity_um2 == pytest.approx(
        float(np.sum(eb.corrected_channel(image, EB_PARAMS, regions=grey),
                     where=res.masks["positive"] & truth["grey_matter"], dtype=np.float64))
        * 0.25, rel=1e-5)
    assert row.extravascular_area_um2 + row.intravascular_area_um2 == pytest.approx(
        row.evb_positive_area_um2)
    assert row.threshold_method == "classifier" and np.isnan(row.threshold)
    assert res.extra["engine"] == "classifier" and classic.extra["engine"] == "threshold"
    rec = res.extra["model"]
    assert rec["class"] == "leak" and len(rec["sha256"]) == 64
    assert res.objects["area_um2"].sum() == pytest.approx(row.evb_positive_area_um2)


def test_evans_blue_command_line_and_study_with_a_model(leak_model, tmp_path):
    model_path = save_pixel_classifier(leak_model, tmp_path / "leak.hqm")
    image, _ = make_evans_blue_phantom(EB_SIZE, 0.5, seed=3, leak_area_pct=2.0, **EB_KW)
    path = write_ome_tiff(image, tmp_path / "R1_L3_s1.ome.tif")
    (tmp_path / "p.yaml").write_text("dark_level: 100\n")
    out = tmp_path / "out"
    assert main(["evans-blue", str(path), "--params", str(tmp_path / "p.yaml"), "--model",
                 str(model_path), "-o", str(out), "-q"]) == 0
    from histoquant.io import read_image

    loaded = load_pixel_classifier(model_path)
    direct = eb.run(read_image(path), None, EB_PARAMS, model=loaded).summary.iloc[0]
    cli = pd.read_csv(out / "summary.csv").iloc[0]
    assert cli["threshold_method"] == "classifier"
    assert cli["evb_positive_area_pct"] == pytest.approx(direct.evb_positive_area_pct)
    # the file's payload hash is what the result records
    from histoquant.learn.modelfile import load_model

    assert eb.run(read_image(path), None, EB_PARAMS, model=loaded).extra["model"]["sha256"] \
        == load_model(model_path).manifest["payload_sha256"]
    # a study with model: in study.yaml gives the same
    study = tmp_path / "study"
    study.mkdir()
    (study / path.name).write_bytes(path.read_bytes())
    (study / "m.hqm").write_bytes(model_path.read_bytes())
    (study / "samples.csv").write_text(f"file,animal,group,level\n{path.name},R1,g,L3\n")
    (study / "study.yaml").write_text(
        "assays:\n  evans-blue:\n    params: {dark_level: 100}\n    model: m.hqm\n")
    assert main(["batch", str(study), "-o", str(tmp_path / "sout"), "-q"]) == 0
    sections = pd.read_csv(tmp_path / "sout" / "sections.csv").iloc[0]
    assert sections["threshold_method"] == "classifier"
    assert sections["evb_positive_area_pct"] == pytest.approx(direct.evb_positive_area_pct)


def test_a_model_without_the_class_is_refused_before_any_image(leak_model, vessel_models,
                                                              tmp_path, capsys):
    image, _ = make_evans_blue_phantom((128, 128), 0.5, seed=4, **EB_KW)
    path = write_ome_tiff(image, tmp_path / "a.ome.tif")
    vessel_path = save_pixel_classifier(vessel_models[1], tmp_path / "vessels.hqm")
    out = tmp_path / "o"
    assert main(["evans-blue", str(path), "--model", str(vessel_path), "-o", str(out),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "['background', 'endothelium']" in err and "'leak'" in err and "Traceback" not in err
    assert not (out / "summary.csv").exists()
    leak_path = save_pixel_classifier(leak_model, tmp_path / "leak.hqm")
    with pytest.raises(ModelFileError, match="'vessel' or 'endothelium' or 'capillary'"):
        load_assay_model(leak_path, "vasculature")
    with pytest.raises(ModelFileError, match="class named 'leak'"):
        eb.run(image, None, EB_PARAMS, model=vessel_models[1])
    # the model's kind is the step it replaces: a pixels model reaches run as model=
    assert run_kwargs(load_assay_model(leak_path, "evans-blue"))["model"].classes == \
        ("background", "leak")


def test_a_model_of_the_other_modality_or_channels_is_refused(leak_model, tmp_path):
    rng = np.random.default_rng(0)
    rgb = (200 - 120 * (rng.random((96, 96, 3)) > 0.7)).astype(np.uint8)
    bright = Image(rgb, axes="YXC", pixel_size_um=0.5, modality="brightfield", rgb=True)
    lab = np.where(rgb[..., 0] < 150, 2, 1).astype(np.uint8)
    bf = train_pixel_classifier([bright], [lab], classes=("background", "leak"),
                                n_estimators=2, max_samples_per_class=200)
    bf_path = save_pixel_classifier(bf, tmp_path / "bf.hqm")
    with pytest.raises(ModelFileError, match="brightfield"):
        load_assay_model(bf_path, "evans-blue")
    image, _ = make_evans_blue_phantom((128, 128), 0.5, seed=4, **EB_KW)
    with pytest.raises(ModalityError, match="brightfield"):
        eb.run(image, None, EB_PARAMS, model=bf)
    # the same two channels under other names (an RGB export): refused, naming both
    other = Image(image.data, axes="YXC", pixel_size_um=0.5, channel_names=("R", "G"),
                  modality="fluorescence")
    with pytest.raises(ChannelError, match=r"trained on channels \['vessel', 'evb'\]"):
        eb.run(other, None, EB_PARAMS, channels={"evb": "G", "vessel": "R"}, model=leak_model)
    evb_only = Image(image.data[..., 1], pixel_size_um=0.5, modality="fluorescence")
    with pytest.raises(ChannelError, match="0=evb|0=C0|trained on channels"):
        eb.run(evb_only, None, EB_PARAMS, model=leak_model)


def test_evans_blue_tiled_with_a_model_equals_whole(leak_model):
    from histoquant.tiling import WholeImage, run_tiled

    image, _ = make_evans_blue_phantom((768, 768), 0.5, seed=5, leak_area_pct=2.0, **EB_KW)
    whole = eb.run(image, None, EB_PARAMS, model=leak_model).summary.iloc[0]
    tiled = run_tiled(eb.SPEC, image, WholeImage(), params=EB_PARAMS, tile_px=384,
                      overlap_px=160, run_kwargs={"model": leak_model}).summary.iloc[0]
    # each tile normalises its channels on its own pixels: close to, not exactly, the image's
    for col in ("evb_positive_area_pct", "integrated_intensity_um2", "extravascular_area_pct"):
        assert tiled[col] == pytest.approx(whole[col], rel=0.01), col
    assert tiled["threshold_method"] == "classifier" and np.isnan(tiled["threshold"])


# --------------------------------------------------------------------------------------------
# vasculature
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vessel_test():
    image, truth, _ = vessel_phantom(VA_FIELD, VA_PX, seed=4)
    return image, truth, va.run(image)


def test_vessel_length_and_coverage_from_the_classifier_against_truth(vessel_models,
                                                                      vessel_test):
    three, two = vessel_models
    image, truth, classic = vessel_test
    res = va.run(image, model=three)
    row = res.summary.iloc[0]
    # measured: −4.4 % length (ridge filter −2.5 %), coverage +3.4 points (ridge +2.4)
    assert row.vessel_length_um == pytest.approx(truth.vessel_length_um, rel=0.08)
    assert abs(row.pericyte_coverage_length_pct - truth.pericyte_coverage_length_pct) < 5.0
    assert res.extra["engine"] == "classifier" and res.extra["model"]["class"] == "vessel"
    assert res.extra["model"]["pericyte_class"] == "pericyte"
    # two classes: the vessels are the model's, the pericytes keep the ridge filter
    res2 = va.run(image, model=two)
    assert res2.summary.iloc[0].vessel_length_um == pytest.approx(truth.vessel_length_um,
                                                                  rel=0.08)
    assert np.array_equal(res2.masks["pericytes"], classic.masks["pericytes"])
    assert not np.array_equal(res2.masks["vessels"], classic.masks["vessels"])
    assert res2.extra["model"]["pericyte_class"] is None


def test_vasculature_command_line_with_a_model(vessel_models, vessel_test, tmp_path):
    image = vessel_test[0]
    path = write_ome_tiff(image, tmp_path / "v.ome.tif")
    model_path = save_pixel_classifier(vessel_models[0], tmp_path / "v.hqm")
    assert main(["vasculature", str(path), "--model", str(model_path), "-o",
                 str(tmp_path / "out"), "-q"]) == 0
    cli = pd.read_csv(tmp_path / "out" / "summary.csv").iloc[0]
    direct = va.run(image, model=load_pixel_classifier(model_path)).summary.iloc[0]
    assert cli["vessel_length_um"] == pytest.approx(direct.vessel_length_um)
    assert cli["pericyte_coverage_length_pct"] == pytest.approx(
        direct.pericyte_coverage_length_pct)
