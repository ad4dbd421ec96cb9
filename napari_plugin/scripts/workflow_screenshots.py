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
#: From the sections' scale bars (see the shared data's README).
PIXEL_SIZE_UM = 2.02

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import _grab, _wait  # noqa: E402 - the plugin's own screenshot helpers


def _open(viewer, path: Path) -> list:
    from histoquant_napari._reader import read_image_layers

    return [getattr(viewer, f"add_{kind}")(data, **kwargs)
            for data, kwargs, kind in read_image_layers(str(path))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--outdir", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--section", default="280_L5")
    args = parser.parse_args(argv)
    chat = SHARED / "chat" / f"{args.section}_ChAT.jpg"
    nissl = SHARED / "nissl" / f"{args.section}_nissl.jpg"
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
    anatomy.set_pixel_size(layer, PIXEL_SIZE_UM)
    # 2. anatomy
    _wait(anatomy)
    print("anatomy:", anatomy.last_error or anatomy.status.text())
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
    # 6. teach: a few strokes of grey and white matter on the fluorescent Nissl section
    if nissl.exists():
        (layer,) = _open(viewer, nissl)
        teach = TeachWidget(viewer)
        viewer.window.add_dock_widget(teach, name="Teach a stain (histoquant)", area="right")
        teach.reset_choices()
        teach.image_choice.value = (layer, None)
        teach.set_pixel_size(layer, PIXEL_SIZE_UM)
        teach.classes.value = "background, grey_matter, white_matter"
        strokes = teach.new_strokes_layer()
        h, w = strokes.data.shape
        # Strokes where a histologist would put them on this section (looked at): the black
        # padding beside the cord, down both dorsal horns, and the lateral white matter.
        def stroke(x: float, y0: float, y1: float, k: int) -> None:
            strokes.data[int(y0 * h):int(y1 * h), int(x * w):int(x * w) + 6] = k

        stroke(0.07, 0.1, 0.9, 1)
        stroke(0.92, 0.1, 0.9, 1)
        stroke(0.33, 0.3, 0.6, 2)
        stroke(0.64, 0.3, 0.6, 2)
        stroke(0.21, 0.35, 0.65, 3)
        stroke(0.78, 0.35, 0.65, 3)
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
            print("grey-matter fraction of the image:", float((classes == 2).mean()))
        _grab(viewer, out / "workflow_6_teach_preview.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
