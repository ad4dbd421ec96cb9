"""Screenshots of a histologist's whole workflow on a real section (issue #17).

Run under a display, with the shared real images beside the checkout::

    xvfb-run -a python napari_plugin/scripts/workflow_screenshots.py

On ``../shared/data/spinal_cord_fluorescent`` (mouse lumbar sections, MIT licence, Teboul
2019) it writes ``docs/screenshots/workflow_<n>_<step>.png``: open a ChAT section, outline it
with the anatomy dock, count motor neurons in the ventral horns, read the table, export it;
then teach a grey-matter classifier on the fluorescent Nissl section with a few strokes and
preview it. Skips cleanly when the shared data are absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "spinal_cord_fluorescent"


def _pixel_size(rows: int) -> float:
    """µm per pixel from the sections' scale bars (the shared data's README)."""
    return 2.30 if rows == 750 else 2.02

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import _grab, _wait  # noqa: E402 - the plugin's own screenshot helpers


def _load(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _open(viewer, path: Path) -> list:
    from histoquant_napari._reader import read_image_layers

    return [getattr(viewer, f"add_{kind}")(data, **kwargs)
            for data, kwargs, kind in read_image_layers(str(path))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--outdir", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--section", default="280_L5")
    parser.add_argument("--teach-section", default="214_L1",
                        help="a section with an atlas drawing (the strokes follow it)")
    args = parser.parse_args(argv)
    chat = SHARED / "chat" / f"{args.section}_ChAT.jpg"
    nissl = SHARED / "nissl" / f"{args.teach_section}_nissl.jpg"
    atlas_png = SHARED / "atlas" / f"{args.teach_section}_atlas.png"
    if not chat.exists():
        print(f"skipped: {chat} not found")
        return 0
    import napari

    from histoquant_napari._anatomy_widget import AnatomyWidget
    from histoquant_napari._assay_widget import AssayWidget
    from histoquant_napari._teach_widget import TeachWidget

    out = args.outdir
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    # 1. open: a JPEG carries no pixel size; typed once, it goes onto the layer
    (layer,) = _open(viewer, chat)
    anatomy = AnatomyWidget(viewer)
    viewer.window.add_dock_widget(anatomy, name="Anatomy regions (histoquant)", area="right")
    anatomy.reset_choices()
    anatomy.image_choice.value = (layer, None)
    viewer.reset_view()
    _grab(viewer, out / "workflow_1_open.png")
    anatomy.set_pixel_size(layer, _pixel_size(layer.data.shape[0]))
    # 2. anatomy
    _wait(anatomy)
    print("anatomy:", anatomy.last_error or anatomy.status.text())
    viewer.reset_view()
    _grab(viewer, out / "workflow_2_anatomy.png")
    # 3. motor neurons in the ventral horns
    mn = AssayWidget(viewer, assay="motor-neurons")
    viewer.window.add_dock_widget(mn, name="Motor neurons (histoquant)", area="right")
    mn.reset_choices()
    _wait(mn)
    print("motor neurons:", mn.last_error or mn.status.text())
    viewer.reset_view()
    _grab(viewer, out / "workflow_3_motor_neurons.png")
    # 4. the table, and a click on an object row
    if mn.last_result is not None and len(mn.last_result.objects):
        mn.table.show_table("objects")
        mn.focus_object(0)
        viewer_zoom = viewer.camera if not hasattr(viewer, "scene") else viewer.scene.camera
        viewer_zoom.zoom = viewer_zoom.zoom * 4
    _grab(viewer, out / "workflow_4_table.png")
    # 5. export the table where the dialog proposes it
    with tempfile.TemporaryDirectory() as tmp:
        mn.table.default_folder = Path(tmp)
        saved = mn.table.save_csv(mn.table.default_path(mn.table.current))
        print("exported:", saved.name if saved else None)
    viewer.window.remove_dock_widget("all")
    viewer.layers.clear()
    # 6. teach: strokes inside the background, white and grey matter of the atlas drawing
    #    of the same section, as a histologist would paint them (dashes along each class's
    #    middle, the benchmark's strokes: benchmarks/learn_anatomy_gfp_steps.py)
    if nissl.exists() and atlas_png.exists():
        bench = _load(ROOT / "benchmarks" / "learn_anatomy_gfp_steps.py", "bench_steps")
        (layer,) = _open(viewer, nissl)
        teach = TeachWidget(viewer)
        viewer.window.add_dock_widget(teach, name="Teach a stain (histoquant)", area="right")
        teach.reset_choices()
        teach.image_choice.value = (layer, None)
        px = _pixel_size(layer.data.shape[0])
        teach.set_pixel_size(layer, px)
        teach.classes.value = "background, white_matter, grey_matter"
        strokes = teach.new_strokes_layer()
        drawn = bench._atlas().extract_atlas(atlas_png, strokes.data.shape)
        strokes.data[:] = bench._scribbles([~drawn.cord, drawn.cord & ~drawn.grey,
                                            drawn.grey], px)
        strokes.refresh()
        teach.trees.value = 30
        viewer.reset_view()
        _grab(viewer, out / "workflow_5_teach_strokes.png")
        _wait(teach)
        print("teach:", teach.last_error or teach.status.text())
        from qtpy.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        teach.run_finished.connect(loop.quit)
        QTimer.singleShot(300_000, loop.quit)
        if teach.preview() is not None:
            loop.exec()
        print("preview:", teach.last_error or teach.status.text())
        if teach.preview_layer is not None:
            classes = np.asarray(teach.preview_layer.data)
            grey = classes == 3
            dice = 2 * (grey & drawn.grey).sum() / (grey.sum() + drawn.grey.sum())
            print(f"grey matter vs the atlas (same section, strokes from it): Dice {dice:.3f}")
        _grab(viewer, out / "workflow_6_teach_preview.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
