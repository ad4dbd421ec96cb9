"""The pixel classifier (histoquant.learn.pixels): phantoms with known classes, and the mouse
cord sections of ../shared/data against their atlas drawings.

Scribbles are made the way a user draws them: thin strokes well inside each class, away from
its boundaries. :func:`scribbles` takes each class's mask, keeps its pixels more than
``erode_um`` (20 µm) from the class's boundary, takes the skeleton of what is left (a 1-px line
along the middle of the class) and keeps it only in dashes: pixels whose
``(row // d + col // d) % 3 == 0`` with ``d`` = 80 µm in pixels, so about a third of the
skeleton, in pieces ≈ 80 µm long. On a mouse section that is a few hundred to 2,000 labelled
pixels per class, under 0.1 % of the image. With ``edge_um`` it also draws, dashed the same
way, the line ``edge_um`` inside each class's boundary: the strokes an ilastik user adds along
the edges after a first look at the probabilities (a classifier that never saw a pixel near a
boundary calls the blurred edge between two flat classes a third, textured one)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from histoquant import Image
from histoquant.errors import HistoquantError, PixelSizeError, TrainingDataError
from histoquant.segment.statistics import block_mean

pytest.importorskip("sklearn")

from histoquant.learn.features import FeatureSpec, plane_features, prepare_planes
from histoquant.learn.pixels import (
    PixelClassifier,
    predict_classes,
    predict_proba,
    train_pixel_classifier,
)

CLASSES = ("background", "smooth", "spotty")


def scribbles(masks: list[np.ndarray], pixel_size_um: float, erode_um: float = 20.0,
              dash_um: float = 80.0, edge_um: float | None = None) -> np.ndarray:
    """Label image of user-like strokes: dashes of the skeleton of each eroded class mask,
    and, with ``edge_um``, dashes of a line ``edge_um`` inside each class's boundary."""
    from skimage.morphology import skeletonize

    lab = np.zeros(masks[0].shape, np.uint8)
    d = max(2, round(dash_um / pixel_size_um))
    r, c = np.indices(lab.shape)
    dashes = ((r // d + c // d) % 3) == 0
    for k, m in enumerate(masks, 1):
        depth = ndi.distance_transform_edt(m) * pixel_size_um
        lab[skeletonize(depth > erode_um) & dashes] = k
        if edge_um is not None:
            inner = depth > edge_um
            lab[inner & ~ndi.binary_erosion(inner) & dashes] = k
    return lab


def scene(seed: int, size_um: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """A 1 µm/px phantom: (image float 0–1, classes 1–3).

    Regions where one of three smooth random fields is the largest: 1 background (dark), 2 'smooth'
    (uniform, mid grey), 3 'spotty' (darker ground with bright 2-µm spots, about the same
    mean as 'smooth': told apart by texture, not intensity).
    """
    rng = np.random.default_rng(seed)
    n = size_um
    fields = [ndi.gaussian_filter(rng.normal(size=(n, n)), 25.0) for _ in range(3)]
    truth = (1 + np.argmax(fields, axis=0)).astype(np.uint8)
    spots = np.zeros((n, n))
    spots[rng.random((n, n)) < 0.02] = 1.0
    spots = ndi.gaussian_filter(spots, 1.5) * 2 * np.pi * 1.5 ** 2  # peak ≈ 1 per spot
    img = np.where(truth == 1, 0.08, np.where(truth == 2, 0.45, 0.25 + 0.9 * spots))
    img = img + rng.normal(0, 0.04, (n, n))
    return np.clip(img, 0, 1), truth


def as_uint16(img: np.ndarray, pixel_size_um: float) -> Image:
    return Image((img * 65535).round().astype(np.uint16), pixel_size_um=pixel_size_um,
                 modality="fluorescence")


def masks_of(truth: np.ndarray) -> list[np.ndarray]:
    return [truth == k for k in range(1, 4)]


@pytest.fixture(scope="module")
def trained() -> PixelClassifier:
    img, truth = scene(0)
    lab = scribbles(masks_of(truth), 1.0, edge_um=5.0)
    return train_pixel_classifier([as_uint16(img, 1.0)], [lab], classes=CLASSES,
                                  n_estimators=50)


def test_scribbles_are_sparse_and_inside():
    _, truth = scene(0)
    lab = scribbles(masks_of(truth), 1.0)
    assert 0 < np.count_nonzero(lab) < 0.01 * lab.size
    labelled = lab > 0
    # every stroke pixel lies in its own class, ≥ 20 µm from a boundary
    assert np.array_equal(lab[labelled], truth[labelled])
    for k in range(1, 4):
        inside = ndi.distance_transform_edt(truth == k)
        assert inside[lab == k].min() > 20


def test_learns_two_textures_from_scribbles(trained):
    """Trained on scribbles of one phantom, ≥ 90 % of a new phantom's pixels are right."""
    img, truth = scene(1)
    pred = predict_classes(trained, as_uint16(img, 1.0))
    assert pred.shape == truth.shape
    accuracy = np.mean(pred == truth)
    assert accuracy >= 0.90, accuracy
    # texture, not intensity: 'smooth' and 'spotty' are both told apart well
    for k in (2, 3):
        assert np.mean(pred[truth == k] == k) >= 0.85, k
    held = trained.held_out
    assert held["method"].startswith("spatial blocks")
    assert held["balanced_accuracy"] >= 0.85


def test_probabilities_sum_to_one(trained):
    img, _ = scene(2, 128)
    p = predict_proba(trained, as_uint16(img, 1.0))
    assert p.dtype == np.float32 and p.shape == (128, 128, 3)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)


def test_same_scene_at_two_pixel_sizes(trained):
    """The scene imaged at 2 µm/px (2 x 2 block mean) is classified as at 1 µm/px: the model
    rescales it to the 1 µm/px it was trained at. Told the wrong pixel size, it is not."""
    img, truth = scene(1)
    fine = predict_classes(trained, as_uint16(img, 1.0))
    coarse_img = block_mean(img, 2)
    coarse = predict_classes(trained, as_uint16(coarse_img, 2.0))
    assert coarse.shape == coarse_img.shape
    fine_down = fine[::2, ::2]
    agree = np.mean(coarse == fine_down)
    assert agree >= 0.9, agree
    truth_down = truth[::2, ::2]
    right = np.mean(coarse == truth_down)
    assert right >= 0.88, right
    wrong_scale = predict_classes(trained, as_uint16(coarse_img, 1.0))
    assert np.mean(wrong_scale == truth_down) < right - 0.05


def test_bit_depth_does_not_matter(trained):
    """8-bit and 16-bit copies of one scene give (almost) the same probabilities."""
    img, _ = scene(3, 128)
    p16 = predict_proba(trained, as_uint16(img, 1.0))
    p8 = predict_proba(trained, Image((img * 255).round().astype(np.uint8), pixel_size_um=1.0,
                                      modality="fluorescence"))
    assert np.mean(np.argmax(p16, -1) == np.argmax(p8, -1)) > 0.97


def test_tiled_prediction_equals_whole(trained):
    img, _ = scene(4, 200)
    image = as_uint16(img, 1.0)
    whole = predict_proba(trained, image, tile_px=4096)
    tiled = predict_proba(trained, image, tile_px=48)
    np.testing.assert_array_equal(tiled, whole)
    # and at a rescaled pixel size
    image2 = as_uint16(block_mean(img, 2), 2.0)
    np.testing.assert_array_equal(predict_proba(trained, image2, tile_px=33),
                                  predict_proba(trained, image2, tile_px=4096))


def test_features_at_a_physical_scale():
    """The feature scales are in µm: the margin and the feature count follow the spec."""
    spec = FeatureSpec(sigma_min_um=1.0, sigma_max_um=8.0)
    np.testing.assert_allclose(spec.sigmas_um(), [1, 2, 4, 8])
    assert spec.per_plane() == 4 * 4
    assert spec.margin_px(0.5) == 4 * 16 + 3
    img, _ = scene(0, 64)
    planes, norm = prepare_planes(as_uint16(img, 1.0), spec)
    assert norm.kind == "intensity" and planes.shape == (1, 64, 64)
    f = plane_features(planes, spec, 1.0)
    assert f.shape == (64, 64, 16)
    assert len(spec.feature_names(norm.names)) == 16


def test_two_images_score_a_held_out_image():
    a, ta = scene(0, 160)
    b, tb = scene(5, 160)
    m = train_pixel_classifier([as_uint16(a, 1.0), as_uint16(b, 1.0)],
                               [scribbles(masks_of(ta), 1.0, dash_um=40),
                                scribbles(masks_of(tb), 1.0, dash_um=40)],
                               classes=CLASSES, n_estimators=20)
    assert m.held_out["method"].startswith("held-out image")
    assert 0 <= m.held_out["balanced_accuracy"] <= 1
    man = m.manifest()
    assert man["classes"] == list(CLASSES)
    assert man["pixel_size_um"] == 1.0 and len(man["training_images"]) == 2
    assert len(man["features"]) == m.estimator.n_features_in_
    assert man["scores"]["held_out"] == m.held_out
    back = PixelClassifier.from_manifest(m.estimator, man)
    np.testing.assert_array_equal(predict_proba(back, as_uint16(a, 1.0)),
                                  predict_proba(m, as_uint16(a, 1.0)))


def test_model_file_round_trip(trained, tmp_path):
    """Saved as a .hqm (kind 'pixels') and loaded back, it predicts the same."""
    pytest.importorskip("skops")
    from histoquant.errors import ModelFileError
    from histoquant.learn.modelfile import load_model, save_model
    from histoquant.learn.pixels import load_pixel_classifier, save_pixel_classifier

    path = save_pixel_classifier(trained, tmp_path / "m.hqm")
    back = load_pixel_classifier(path)
    assert back.classes == trained.classes and back.pixel_size_um == 1.0
    assert back.spec == trained.spec and back.held_out == trained.held_out
    assert load_model(path).manifest["training_images"][0]["hash_of"] == "pixels"
    img, _ = scene(6, 96)
    np.testing.assert_array_equal(predict_proba(back, as_uint16(img, 1.0)),
                                  predict_proba(trained, as_uint16(img, 1.0)))
    other = save_model(tmp_path / "o.hqm", trained.estimator, kind="objects",
                       manifest={"features": ["a"], "pixel_size_um": None})
    with pytest.raises(ModelFileError):
        load_pixel_classifier(other)


def test_command_line(tmp_path, capsys):
    """``train pixels --images ... --labels ... --classes ... -o m.hqm`` prints the score."""
    pytest.importorskip("skops")
    import tifffile

    from histoquant.cli import main
    from histoquant.learn.pixels import load_pixel_classifier

    img, truth = scene(0)
    tifffile.imwrite(tmp_path / "a.tif", (img * 65535).astype(np.uint16))
    tifffile.imwrite(tmp_path / "a_mask.tif", scribbles(masks_of(truth), 1.0, edge_um=5.0))
    args = ["train", "pixels", "--images", str(tmp_path / "a.tif"), "--labels",
            str(tmp_path / "a_mask.tif"), "--classes", ",".join(CLASSES), "--pixel-size", "1",
            "--trees", "10", "-q", "-o", str(tmp_path / "m.hqm")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "held-out balanced accuracy" in out and "spatial blocks" in out
    assert load_pixel_classifier(tmp_path / "m.hqm").classes == CLASSES
    # bad input: exit status 2 and one line naming the problem, no traceback
    assert main([*args[:6], "--classes", "a,b", *args[8:]]) == 2
    assert "not classes" in capsys.readouterr().err
    assert main([*args[:3], str(tmp_path / "nope.tif"), *args[4:]]) == 2
    assert "no such file" in capsys.readouterr().err


def test_brightfield_rgb_uses_stain_densities():
    rng = np.random.default_rng(0)
    rgb = np.full((96, 96, 3), 235, np.uint8)
    rgb[20:70, 20:70] = (110, 60, 160)  # a violet stained square on white
    rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    lab = np.zeros((96, 96), np.uint8)
    lab[35:55, 35:55] = 2
    lab[:8] = 1
    image = Image(rgb, axes="YXC", rgb=True, pixel_size_um=1.0, modality="brightfield")
    m = train_pixel_classifier([image], [lab], classes=("glass", "stain"), n_estimators=10)
    assert m.plane_kind == "stain_od" and m.plane_names[0] == "stain_od"
    pred = predict_classes(m, image)
    assert np.mean(pred[25:65, 25:65] == 2) > 0.95 and np.mean(pred[:15] == 1) > 0.95


def test_bad_inputs_are_clear_errors():
    img, truth = scene(0, 96)
    image = as_uint16(img, 1.0)
    lab = scribbles(masks_of(truth), 1.0, erode_um=5, dash_um=20)
    with pytest.raises(TrainingDataError, match="label image is 95 x 96 px"):
        train_pixel_classifier([image], [lab[:-1]], classes=CLASSES)
    with pytest.raises(TrainingDataError, match=r"\['spotty'\] have no labelled pixel"):
        train_pixel_classifier([image], [np.where(lab == 3, 0, lab)], classes=CLASSES)
    with pytest.raises(TrainingDataError, match="no pixel is labelled"):
        train_pixel_classifier([image], [np.zeros_like(lab)], classes=CLASSES)
    with pytest.raises(TrainingDataError, match="not classes"):
        train_pixel_classifier([image], [lab * 2], classes=CLASSES)
    with pytest.raises(TrainingDataError, match="one label image per image"):
        train_pixel_classifier([image, image], [lab], classes=CLASSES)
    with pytest.raises(TrainingDataError, match="two distinct"):
        train_pixel_classifier([image], [lab], classes=("a", "a"))
    with pytest.raises(PixelSizeError, match="pixel size is unknown"):
        train_pixel_classifier([img], [lab], classes=CLASSES)
    for err in (TrainingDataError, PixelSizeError):
        assert issubclass(err, HistoquantError)


# --------------------------------------------------------------------- real mouse sections

MOUSE_TRAIN = ("214_L1", "238_L2")
MOUSE_TEST = ("280_L5", "290_L6")
SUFFIX = {"nissl": "nissl", "neun": "NeuN", "chat": "ChAT", "th": "TH"}
# Grey-matter Dice floors, a little under what was measured (docs/learning.md, "Pixel
# classifier"): 280_L5 0.897, 290_L6 0.759 (its white matter is nearly as bright as its grey
# matter in places, and the seams of its stitched tiles cross both).
NISSL_FLOOR = {"280_L5": 0.87, "290_L6": 0.73}


def _mouse(shared_data, atlas_refs, stain, sid):
    from histoquant import read_image

    folder = shared_data / "spinal_cord_fluorescent"
    path = folder / stain / f"{sid}_{SUFFIX[stain]}.jpg"
    drawing = folder / "atlas" / f"{sid}_atlas.png"
    if not (path.exists() and drawing.exists()):
        pytest.skip(f"{path} or {drawing} is absent")
    image = read_image(path)
    # from the data README's scale bars: 2.30 µm/px for the 750-row exports, else 2.02
    image = image.with_pixel_size(2.30 if image.shape_yx[0] == 750 else 2.02)
    return image, atlas_refs.extract_atlas(drawing, image.shape_yx)


@pytest.mark.realdata
def test_mouse_grey_matter_from_scribbles(shared_data, atlas_refs):
    """Fluorescent Nissl: background / white / grey matter from scribbles on two sections;
    grey-matter Dice against the atlas drawing of the two others."""
    images, labels = [], []
    for sid in MOUSE_TRAIN:
        image, drawn = _mouse(shared_data, atlas_refs, "nissl", sid)
        images.append(image)
        labels.append(scribbles([~drawn.cord, drawn.cord & ~drawn.grey, drawn.grey],
                                image.pixel_size_um))
    model = train_pixel_classifier(images, labels,
                                   classes=("background", "white_matter", "grey_matter"))
    assert model.pixel_size_um == 2.02
    for sid in MOUSE_TEST:
        image, drawn = _mouse(shared_data, atlas_refs, "nissl", sid)
        grey = predict_classes(model, image) == 3
        dice = atlas_refs.dice(drawn.grey, grey)
        assert dice >= NISSL_FLOOR[sid], (sid, dice)
