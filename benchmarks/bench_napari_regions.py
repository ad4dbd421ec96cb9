"""Speed and memory of what the napari plugin adds around an assay run.

Run::

    python benchmarks/bench_napari_regions.py

For images of several sizes with a cord-like region traced along pixel edges (as a region file
written from a mask holds it), prints megapixels per second and peak memory (tracemalloc) of:

- ``rasterize``: polygons → mask (histoquant.rois; paid on every run with drawn regions),
- ``shapes→regions``: napari Shapes data → histoquant Regions → masks (the plugin's path),
- ``layers→image``: two channel layers → the Image the assay receives.

No napari or display is needed: the conversions work on plain arrays.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np


def _region_mask(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    c = size / 2
    angle = np.arctan2(yy - c, xx - c)
    radius = size * (0.35 + 0.04 * np.sin(5 * angle) + 0.02 * np.cos(13 * angle))
    return np.hypot(yy - c, xx - c) < radius


def _measure(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, seconds, peak / 1e6


def main() -> None:
    from types import SimpleNamespace

    from histoquant_napari._convert import (
        layers_to_image,
        regions_to_shapes_data,
        shapes_to_regions,
    )

    from histoquant.rois import mask_to_polygons, rasterize

    print(f"{'size':>6} {'vertices':>9} {'step':>16} {'s':>8} {'MP/s':>8} {'peak MB':>8}")
    for size in (1024, 4096, 8192):
        mask = _region_mask(size)
        polys = mask_to_polygons(mask)
        n_vertices = sum(len(p.exterior) for p in polys)
        mp = size * size / 1e6
        got, s, peak = _measure(rasterize, polys, mask.shape)
        assert np.array_equal(got, mask)
        print(f"{size:>6} {n_vertices:>9} {'rasterize':>16} {s:>8.3f} {mp / s:>8.1f} {peak:>8.1f}")
        data, types, feats = regions_to_shapes_data({"grey_matter": mask})

        def shapes_path(data=data, types=types, feats=feats, shape=mask.shape):
            return rasterize(shapes_to_regions(data, types, feats)[0].polygons, shape)

        got, s, peak = _measure(shapes_path)
        assert np.array_equal(got, mask)
        print(f"{size:>6} {n_vertices:>9} {'shapes→regions':>16} {s:>8.3f} {mp / s:>8.1f} "
              f"{peak:>8.1f}")
        layer = SimpleNamespace(data=np.zeros((size, size), np.uint16), rgb=False, name="a",
                                scale=(0.5, 0.5), translate=(0, 0), metadata={})
        _, s, peak = _measure(lambda lay=layer: layers_to_image(
            {"a": (lay, None), "b": (lay, None)}, 0.5, rgb=False, name="x"))
        print(f"{size:>6} {'':>9} {'layers→image':>16} {s:>8.3f} {mp / s:>8.1f} {peak:>8.1f}")


if __name__ == "__main__":
    main()
