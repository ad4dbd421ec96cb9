"""Every assay registered in histoquant, through its widget on its example image.

The list of assays comes from the registry, so an assay merged into histoquant is tested here
without editing this file: its sample opens with the right scale, its parameter form shows the
core's defaults with their units, and its widget's numbers equal ``spec.run`` on the same file,
regions, channels and parameters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hqn_helpers import wait_run

from histoquant.assays import available_assays
from histoquant.io import read_image
from histoquant.rois import read_regions
from histoquant_napari._assay_widget import AssayWidget, assay_specs
from histoquant_napari._params_form import ParamsForm, label_for
from histoquant_napari._results import result_layer_name
from histoquant_napari._sample_data import example_file, phantom_for, sample_layers

ASSAYS = list(assay_specs())


def _example(name):
    path = example_file(name) or phantom_for(name)
    assert path is not None, f"{name}: no example image in example_images/ and no phantom"
    return path


@pytest.mark.parametrize("name", ASSAYS)
def test_params_form_shows_core_defaults_and_units(qtbot, name):
    cls = assay_specs()[name].params_cls
    form = ParamsForm(cls)
    qtbot.addWidget(form.native)
    assert form.params() == cls()  # the form's values are the core's defaults, unchanged
    for info in cls.field_info():
        widget = form[info["name"]]
        assert widget.label == label_for(info["name"], info["unit"] or "")
        if info["unit"]:
            assert f"({info['unit']})" in widget.label
        if info["help"]:
            assert info["help"] in widget.tooltip


@pytest.mark.gui
@pytest.mark.parametrize("name", ASSAYS)
def test_assay_widget_on_example_equals_core(make_napari_viewer, qtbot, name, notes, tmp_path):
    spec = assay_specs()[name]
    path = _example(name)
    viewer = make_napari_viewer()
    layers = [getattr(viewer, f"add_{kind}")(data, **kw) for data, kw, kind in
              sample_layers(name)]
    image_layers = [la for la in layers if la.__class__.__name__ == "Image"]
    core_image = read_image(path)
    assert tuple(image_layers[0].scale[-2:]) == (core_image.pixel_size_um,) * 2
    w = AssayWidget(viewer, assay=name)
    w.show_masks.value = True  # the masks as layers too, to compare them with the core's
    viewer.window.add_dock_widget(w)
    assert not w.pixel_size_needed
    wait_run(qtbot, w, timeout=120000)
    assert w.last_error is None, w.last_error
    # The same measurement straight from the core.
    channels = None
    if not spec.rgb and spec.channel_roles:
        channels = {}
        for role, box in w.role_widgets.items():
            if box.value is not None:
                layer, ch = box.value
                info = layer.metadata["histoquant"]
                channels[role] = info["channel_index"] if ch is None else ch
    shapes = w.regions_choice.value
    regions = read_regions(shapes.metadata["histoquant"]["path"]) if shapes is not None else None
    core = spec.run(core_image, regions=regions, channels=channels)
    result = w.last_result
    pd.testing.assert_frame_equal(result.summary, core.summary)
    pd.testing.assert_frame_equal(result.objects, core.objects)
    # Layers: objects as Labels with the objects table in features, masks as hidden Labels.
    if core.labels is not None:
        lab = viewer.layers[result_layer_name("objects", name, core.image)]
        np.testing.assert_array_equal(lab.data, core.labels)
        assert tuple(lab.scale) == tuple(image_layers[0].scale[-2:])
        if "label" in core.objects.columns and len(core.objects):
            assert set(lab.features["index"]) == set(core.objects["label"])
    for mask in core.masks:
        layer = viewer.layers[result_layer_name(mask, name, core.image)]
        assert np.array_equal(layer.data > 0, core.masks[mask])
    shown = (w.table.table.columnCount(), w.table.table.rowCount())
    if w.table.turned:
        assert shown == (len(core.summary), len(core.summary.columns))
    else:
        assert shown == (len(core.summary.columns), len(core.summary))
    assert w.table.summary.equals(core.summary)
    # Save CSV writes the exact table.
    saved = pd.read_csv(w.table.save_csv(tmp_path / "summary.csv", table="summary"))
    assert list(saved.columns) == list(core.summary.columns)
    numeric = core.summary.select_dtypes("number")
    np.testing.assert_allclose(saved[numeric.columns].to_numpy(float),
                               numeric.to_numpy(float), rtol=1e-12, equal_nan=True)


def test_every_assay_is_covered():
    # Guards the parametrisation above: it must see what the registry has.
    assert ASSAYS == list(assay_specs())


@pytest.mark.gui
def test_menu_widgets_open_and_run_through_napari(make_napari_viewer, qtbot, notes,
                                                  recwarn):
    """Open every widget as napari's Plugins menu does (the viewer behind napari's public-only
    proxy) and run the first assay through it: no private napari access, no error."""
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("histoquant-napari")
    viewer = make_napari_viewer()
    registered = assay_specs()
    opened = {}
    for contrib in pm.contributions.widgets:
        cmd = next(c for c in pm.contributions.commands if c.id == contrib.command)
        cls_name = cmd.python_name.split(":")[1]
        wanted = [n for n in registered if cls_name == f"{_camel(n)}Widget"]
        if cls_name.endswith("Widget") and cls_name not in (
                "AnatomyWidget", "BatchWidget", "TeachWidget", "ValidationWidget") \
                and not wanted:
            continue  # an assay this histoquant does not have
        _, widget = viewer.window.add_plugin_dock_widget("histoquant-napari",
                                                         contrib.display_name)
        opened[contrib.display_name] = widget
        if wanted:
            assert widget.spec.name == wanted[0]
    assert {"Anatomy regions", "Batch", "Teach a stain", "Check against manual counts"} <= \
        set(opened)
    if not ASSAYS:
        return
    name = ASSAYS[0]
    widget = next(w for w in opened.values() if getattr(w, "assay_name", None) == name)
    for data, kw, kind in sample_layers(name):
        getattr(viewer, f"add_{kind}")(data, **kw)
    wait_run(qtbot, widget, timeout=120000)
    assert widget.last_error is None, widget.last_error
    private = [w for w in recwarn if "private attribute" in str(w.message).lower()]
    assert not private, [str(w.message) for w in private]


def _camel(name):
    return "".join(p.capitalize() for p in name.split("-"))


@pytest.mark.gui
def test_batch_widget_over_example_images(make_napari_viewer, qtbot, notes, tmp_path):
    """The README's main job, from the Batch widget: example_images/ with its study file."""
    from histoquant_napari._batch_widget import BatchWidget
    from histoquant_napari._sample_data import example_images_dir

    folder = example_images_dir()
    if folder is None or not (folder / "study.yaml").exists():
        pytest.skip("example_images/study.yaml is not in this checkout")
    viewer = make_napari_viewer()
    w = BatchWidget(viewer)
    w.folder.value = folder
    w.outdir.value = tmp_path / "results"
    wait_run(qtbot, w, timeout=600000)
    assert w.last_error is None, w.last_error
    assert w.last_ok is True, w.status.text()
    written = {p.name for p in (tmp_path / "results").glob("*.csv")}
    assert written & {"sections.csv", "summary.csv"}
    shown = next(iter(w.table.tables))
    on_disk = pd.read_csv(tmp_path / "results" / f"{shown}.csv")
    assert w.table.tables[shown].shape == on_disk.shape
    assert set(on_disk["assay"]) <= set(available_assays())
    qc = w.open_qc()
    assert qc and len(qc) == len(w.qc_files())
    assert all(layer.rgb for layer in qc) and [la.visible for la in qc][-1]
