"""Click-to-result time and the longest GUI-thread stall of the napari docks (issue #17).

Run (needs a display, e.g. ``xvfb-run -a``; real images from ``../shared/data``)::

    xvfb-run -a python benchmarks/bench_napari_docks.py

For the anatomy dock on a whole Nissl section and the motor-neuron dock on it (regions from
the anatomy), prints the wall time from Run to the result in the viewer, first run and rerun,
and the longest gap between two ticks of a 10 ms Qt timer while it ran: the longest time the
viewer was frozen. The numbers are this machine's; compare runs of this script only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


class _Stalls:
    """The longest interval between ticks of a 10 ms timer on the Qt event loop."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = time.perf_counter(), 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def _run(app, widget, stalls: _Stalls, timeout: float = 600.0) -> tuple[float, float]:
    done = []
    widget.run_finished.connect(lambda: done.append(True))
    stalls.start()
    t0 = time.perf_counter()
    widget.run()
    while not done and time.perf_counter() - t0 < timeout:
        app.processEvents()
        time.sleep(0.002)
    seconds = time.perf_counter() - t0
    # Events queued by the result (layer drawing) count too.
    for _ in range(20):
        app.processEvents()
        time.sleep(0.005)
    worst = stalls.stop()
    widget.run_finished.disconnect()
    if getattr(widget, "last_error", None):
        raise RuntimeError(widget.last_error)
    return seconds, worst


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--colormap-backend", choices=("fastest", "numba"), default="fastest",
                        help="napari's label-colour backend; 'numba' is what a napari "
                             "without the partsegcore extra uses (for a before/after)")
    args = parser.parse_args()
    if args.colormap_backend == "numba":
        from napari.utils.colormap_backend import ColormapBackend
        from napari.utils.colormaps._accelerated_cmap import set_colormap_backend

        set_colormap_backend(ColormapBackend.numba)
    path = SHARED / "spinal_cord_nissl" / "whole_section.jpg"
    if not path.exists():
        print(f"skipped: {path} not found")
        return 0
    import napari
    from histoquant_napari._anatomy_widget import AnatomyWidget
    from histoquant_napari._assay_widget import AssayWidget
    from histoquant_napari._reader import read_image_layers
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    for data, kwargs, kind in read_image_layers(str(path)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    stalls = _Stalls()
    anatomy = AnatomyWidget(viewer)
    viewer.window.add_dock_widget(anatomy, name="anatomy")
    anatomy.pixel_size.value = 2.0  # the teaching slide has none; ≈ 600 px for a 1.2 mm cord
    rows = []
    for label in ("first run", "rerun"):
        seconds, worst = _run(app, anatomy, stalls)
        rows.append(("anatomy", label, seconds, worst))
    mn = AssayWidget(viewer, assay="motor-neurons")
    mn.pixel_size.value = 2.0  # read from the layer where the dock can (issue #17)
    viewer.window.add_dock_widget(mn, name="motor neurons")
    for label in ("first run", "rerun"):
        seconds, worst = _run(app, mn, stalls)
        rows.append(("motor-neurons", label, seconds, worst))
    print(f"{'dock':<14} {'run':<10} {'click→result s':>15} {'longest stall s':>16}")
    for dock, label, seconds, worst in rows:
        print(f"{dock:<14} {label:<10} {seconds:>15.2f} {worst:>16.3f}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
