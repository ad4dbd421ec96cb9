"""Teach dock (issue #17): paint two classes on a small phantom, train, preview, save, and the
saved model is the one the core reads (train → apply round trip)."""

from __future__ import annotations

import numpy as np
import pytest
from hqn_helpers import wait_run

from histoquant_napari._teach_widget import TeachWidget

pytestmark = pytest.mark.gui


def _phantom():
    """Bright disks on a dark, noisy field; the truth is where the disks are."""
    from skimage.draw import disk

    rng = np.random.default_rng(0)
    img = rng.normal(20, 4, (96, 96))
    truth = np.zeros((96, 96), bool)
    for r, c in ((20, 20), (30, 70), (70, 30), (72, 72)):
        rr, cc = disk((r, c), 9, shape=truth.shape)
        truth[rr, cc] = True
    img[truth] += 80
    return np.clip(img, 0, 255).astype(np.uint8), truth


def test_paint_train_preview_save_round_trip(make_napari_viewer, qtbot, tmp_path, notes):
    from histoquant.learn.pixels import load_pixel_classifier, predict_classes

    img, truth = _phantom()
    viewer = make_napari_viewer()
    layer = viewer.add_image(img, name="cells", scale=(0.5, 0.5), units=("um", "um"))
    w = TeachWidget(viewer)
    w.classes.value = "background, cell"
    strokes = w.new_strokes_layer()
    assert strokes.mode == "paint" and strokes.data.shape == img.shape
    # A few strokes: two lines of background, one through each of two cells.
    strokes.data[5, 40:60] = 1
    strokes.data[90, 10:80] = 1
    strokes.data[20, 14:26] = 2
    strokes.data[72, 66:78] = 2
    w.trees.value = 10
    wait_run(qtbot, w, timeout=120000)
    assert w.last_error is None, w.last_error
    assert w.model is not None and w.preview_button.isEnabled()
    with qtbot.waitSignal(w.run_finished, timeout=120000):
        w.preview()
    assert w.last_error is None, w.last_error
    predicted = np.asarray(w.preview_layer.data) == 2
    accuracy = (predicted == truth).mean()
    assert accuracy > 0.95, accuracy  # two strokes per class are enough on this phantom
    path = w.save_model(tmp_path / "cells.hqm")
    assert path is not None and path.exists()
    loaded = load_pixel_classifier(path)
    assert loaded.classes == ("background", "cell")
    from histoquant.io import Image

    again = predict_classes(loaded, Image(img, axes="YX", pixel_size_um=0.5))
    np.testing.assert_array_equal(again, np.asarray(w.preview_layer.data))
    assert layer.name == "cells"


def test_training_without_every_class_painted_is_refused(make_napari_viewer, qtbot, notes):
    img, _ = _phantom()
    viewer = make_napari_viewer()
    viewer.add_image(img, name="cells", scale=(0.5, 0.5), units=("um", "um"))
    w = TeachWidget(viewer)
    w.classes.value = "background, cell"
    strokes = w.new_strokes_layer()
    strokes.data[5, 40:60] = 1
    wait_run(qtbot, w)
    assert "none of cell yet" in (w.last_error or "")
    assert w.model is None
