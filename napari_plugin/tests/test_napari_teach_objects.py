"""Teach dock, objects (issue #17): click points on the objects a motor-neuron run found,
train an object classifier, preview it, save it, and the motor-neuron dock counts what the
points taught once the model is in its model box (train → apply round trip in the viewer)."""

from __future__ import annotations

import numpy as np
import pytest
from hqn_helpers import wait_run

from histoquant_napari._assay_widget import AssayWidget
from histoquant_napari._sample_data import sample_layers
from histoquant_napari._teach_widget import TeachWidget

pytestmark = pytest.mark.gui


def _inside_pixel(labels: np.ndarray, label: int, y: float, x: float) -> tuple[int, int]:
    """The pixel of ``label`` nearest (y, x): a click that surely lands on the object."""
    rr, cc = np.nonzero(labels == label)
    k = int(np.argmin((rr - y) ** 2 + (cc - x) ** 2))
    return int(rr[k]), int(cc[k])


def test_click_train_preview_save_apply(make_napari_viewer, qtbot, tmp_path, notes):
    viewer = make_napari_viewer()
    for data, kw, kind in sample_layers("motor-neurons"):
        getattr(viewer, f"add_{kind}")(data, **kw)
    mn = AssayWidget(viewer, assay="motor-neurons")
    wait_run(qtbot, mn, timeout=120000)
    assert mn.last_error is None, mn.last_error
    rules = mn.last_result
    objects = rules.objects.drop_duplicates("label")
    # What the points teach: somata larger than the median are the counted class. The rules
    # count 9 motor neurons here; this lesson counts about half of the ~200 somata.
    big = objects["area_um2"] > objects["area_um2"].median()
    taught = int(big.sum())
    assert abs(taught - int(rules.summary["n_motor_neurons"].sum())) > 20

    teach = TeachWidget(viewer)
    teach.kind.value = "objects"
    assert teach.objects_choice.value is not None
    assert teach.classes.value == "motor_neuron, other"
    points = teach.new_points_layer()
    assert points.mode == "add" and points.feature_defaults["class"].iloc[0] == "motor_neuron"
    px = float(rules.pixel_size_um)
    yx, classes = [], []
    for row, is_big in zip(objects.itertuples(), big, strict=True):
        yx.append(_inside_pixel(rules.labels, int(row.label), row.centroid_y_um / px,
                                row.centroid_x_um / px))
        classes.append("motor_neuron" if is_big else "other")
    points.data = np.asarray(yx, float)
    points.features = points.features.iloc[:0].reindex(range(len(yx)))
    points.features["class"] = classes
    teach.trees.value = 50
    wait_run(qtbot, teach, timeout=120000)
    assert teach.last_error is None, teach.last_error
    assert teach.model.scores["cv_balanced_accuracy"] > 0.9  # area is the lesson
    with qtbot.waitSignal(teach.run_finished, timeout=120000):
        teach.preview()
    assert teach.last_error is None, teach.last_error
    previewed = teach.preview_layer.features.set_index("label")["model_class"]
    agree = (previewed.loc[objects["label"]].to_numpy() == np.asarray(classes)).mean()
    assert agree > 0.97, agree
    path = teach.save_model(tmp_path / "objects.hqm")
    assert path is not None and path.exists()

    mn.model_file.value = str(path)
    wait_run(qtbot, mn, timeout=120000)
    assert mn.last_error is None, mn.last_error
    counted = int(mn.last_result.summary["n_motor_neurons"].sum())
    assert abs(counted - taught) <= max(2, 0.03 * taught), (counted, taught)
    assert "model_class" in mn.last_result.objects.columns


def test_points_off_every_object_are_refused(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    for data, kw, kind in sample_layers("motor-neurons"):
        getattr(viewer, f"add_{kind}")(data, **kw)
    mn = AssayWidget(viewer, assay="motor-neurons")
    wait_run(qtbot, mn, timeout=120000)
    labels = mn.last_result.labels
    teach = TeachWidget(viewer)
    teach.kind.value = "objects"
    points = teach.new_points_layer()
    empty = np.argwhere(labels == 0)[:4].astype(float)
    points.data = empty
    points.features = points.features.iloc[:0].reindex(range(len(empty)))
    points.features["class"] = ["motor_neuron", "motor_neuron", "other", "other"]
    wait_run(qtbot, teach)
    assert "points on no detected object" in (teach.last_error or "")
    assert teach.model is None


def test_teach_without_objects_layer_says_what_to_do(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    teach = TeachWidget(viewer)
    teach.kind.value = "objects"
    assert teach.new_points_layer() is None
    assert "run a motor-neuron or GFP-cell dock first" in (teach.last_error or "")
