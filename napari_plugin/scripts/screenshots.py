"""Screenshots of the napari plugin: each widget docked, run on its example image, results shown.

Run under a display (``xvfb-run -a python napari_plugin/scripts/screenshots.py``); writes
``docs/screenshots/<widget>.png``. Every assay registered in histoquant gets one, opened on its
example image from ``example_images/`` (or a phantom when there is none).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _wait(widget, timeout_ms: int = 300_000) -> None:
    """Run the widget and wait for it to finish, keeping the Qt event loop going."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    widget.run_finished.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    if widget.run() is not None:
        loop.exec()
    widget.run_finished.disconnect(loop.quit)


def _settle(viewer, ms: int = 400) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _add(viewer, layer_data) -> list:
    return [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layer_data]


def _grab(viewer, path: Path) -> None:
    _settle(viewer)
    path.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(str(path))
    print(f"wrote {path}")


def _reset(viewer) -> None:
    viewer.layers.clear()
    viewer.window.remove_dock_widget("all")


def _anatomy_shot(viewer, outdir: Path) -> object | None:
    from histoquant_napari._anatomy_widget import AnatomyWidget
    from histoquant_napari._sample_data import sample_layers

    try:
        layers = _add(viewer, sample_layers("anatomy"))
    except Exception as exc:
        print(f"anatomy: no example ({exc})", file=sys.stderr)
        return None
    w = AnatomyWidget(viewer)
    viewer.window.add_dock_widget(w, name="Anatomy regions (histoquant)", area="right")
    w.reset_choices()
    w.image_choice.value = (layers[0], None)
    _wait(w)
    viewer.reset_view()
    _grab(viewer, outdir / "anatomy.png")
    return w


def _assay_shot(viewer, name: str, outdir: Path) -> None:
    from histoquant_napari._assay_widget import AssayWidget, short_title
    from histoquant_napari._sample_data import sample_layers

    try:
        _add(viewer, sample_layers(name))
    except Exception as exc:
        print(f"{name}: no example ({exc})", file=sys.stderr)
        return
    w = AssayWidget(viewer, assay=name)
    # The dock's title as napari's Plugins menu shows it.
    viewer.window.add_dock_widget(w, name=f"{short_title(w.spec)} (histoquant)", area="right")
    w.reset_choices()
    _wait(w)
    if w.last_error:
        print(f"{name}: {w.last_error}", file=sys.stderr)
    viewer.reset_view()
    _grab(viewer, outdir / f"{name}.png")


def _phantom_study(folder: Path) -> Path:
    """A study folder of each assay's phantom with a study.yaml, when example_images/ is absent."""
    import shutil

    import yaml

    from histoquant_napari._assay_widget import assay_specs
    from histoquant_napari._sample_data import phantom_for

    folder.mkdir(parents=True, exist_ok=True)
    study = {}
    for name in assay_specs():
        src = phantom_for(name)
        if src is None:
            continue
        shutil.copy(src, folder / src.name)
        study[name] = {"files": [src.name]}
    (folder / "study.yaml").write_text(yaml.safe_dump({"assays": study}), encoding="utf-8")
    return folder


def _batch_shot(viewer, outdir: Path) -> None:
    from histoquant_napari._batch_widget import BatchWidget
    from histoquant_napari._sample_data import example_images_dir

    with tempfile.TemporaryDirectory() as tmp:
        folder = example_images_dir() or _phantom_study(Path(tmp) / "example_images")
        w = BatchWidget(viewer)
        viewer.window.add_dock_widget(w, name="Batch (histoquant)", area="right")
        w.folder.value = folder
        w.outdir.value = Path(tmp) / "results"
        _wait(w)
        if w.last_error:
            print(f"batch: {w.last_error}", file=sys.stderr)
        w.open_qc()
        viewer.reset_view()
        _grab(viewer, outdir / "batch.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--outdir", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", nargs="*", help="widgets to shoot (anatomy, batch, assays)")
    args = parser.parse_args(argv)

    import napari

    from histoquant_napari._assay_widget import assay_specs

    viewer = napari.Viewer(title="histoquant")
    viewer.window._qt_window.resize(1600, 1080)
    wanted = set(args.only or [])

    def want(n: str) -> bool:
        return not wanted or n in wanted

    if want("anatomy"):
        _anatomy_shot(viewer, args.outdir)
        _reset(viewer)
    for name in assay_specs():
        if want(name):
            _assay_shot(viewer, name, args.outdir)
            _reset(viewer)
    if want("batch"):
        _batch_shot(viewer, args.outdir)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
