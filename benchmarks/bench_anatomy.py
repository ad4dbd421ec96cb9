"""Benchmark: anatomy of whole-section phantoms up to 20k × 20k RGB, time and peak memory.

Each phantom is rendered at low resolution and written tile by tile as a tiled, pyramidal
OME-TIFF (JPEG tiles, 2× levels down to < 1000 px), so no full-size array is ever made.
The anatomy then runs in a fresh process on a lazily opened image (a zarr view of the
file): it reads the pyramid level nearest its 10 µm working resolution. A second case
writes the same phantom as a single-level OME-Zarr, which the anatomy must stream chunk by
chunk (block means) instead.

Peak memory is the child process's maximum resident set size (``ru_maxrss``), including
the Python interpreter and libraries (reported separately as the import baseline), and the
peak of the arrays the anatomy allocated (``tracemalloc``, which NumPy reports to).

Usage::

    python benchmarks/bench_anatomy.py                 # sizes 5000 10000 20000
    python benchmarks/bench_anatomy.py --sizes 20000 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FIELD_UM = 5600.0     # side of the imaged field: one cord section with its surroundings
TILE = 512


def _levels_for(size: int) -> int:
    n = 1
    while size / 2**n >= 1000:
        n += 1
    return n


def _render_lowres(size: int, seed: int):
    """Low-resolution RGB rendering and the integer upsampling factor to full size."""
    from histoquant.synthetic.cord import render_slide, section_model

    rng = np.random.default_rng(seed)
    model = section_model(rng, angle_deg=float(rng.uniform(-180, 180)),
                          margin_um=(FIELD_UM - 4400.0) / 2)
    full_px = model.size_um[0] / size
    k = 1
    while size // (k * 2) >= 1000 and (size // (k * 2)) * (k * 2) == size:
        k *= 2          # low-res grid: the coarsest power of two still ≥ 1000 px
    n = size // k
    low = render_slide(model, 0.0, 0.0, (n, n), full_px * k, rng)
    return low, k, full_px


def _level_image(low: np.ndarray, k: int, d: int) -> tuple[np.ndarray | None, int]:
    """Level with downsample ``d`` from the low-res rendering: (array or None, repeat)."""
    if d >= k:
        f = d // k
        n = low.shape[0] // f
        arr = low[: n * f, : n * f].reshape(n, f, n, f, 3).mean(axis=(1, 3))
        return arr.astype(np.uint8), 1
    return None, k // d


def _tiles(low: np.ndarray, rep: int, shape: tuple[int, int], seed: int):
    """Full-size tiles: the low-res pixels repeated, with per-pixel texture noise."""
    rng = np.random.default_rng(seed)
    for r in range(0, shape[0], TILE):
        for c in range(0, shape[1], TILE):
            h, w = min(TILE, shape[0] - r), min(TILE, shape[1] - c)
            lr0, lc0 = r // rep, c // rep
            lr1, lc1 = -(-(r + h) // rep), -(-(c + w) // rep)
            block = np.repeat(np.repeat(low[lr0:lr1, lc0:lc1], rep, 0), rep, 1)
            block = block[r - lr0 * rep: r - lr0 * rep + h, c - lc0 * rep: c - lc0 * rep + w]
            noise = rng.integers(-12, 13, (h, w, 1), dtype=np.int16)
            tile = np.zeros((TILE, TILE, 3), np.uint8)
            tile[:h, :w] = np.clip(block.astype(np.int16) + noise, 0, 255)
            yield tile


def write_phantom_tiff(path: Path, size: int, seed: int = 0) -> float:
    """Write a size × size pyramidal OME-TIFF section phantom; returns its pixel size."""
    import tifffile

    low, k, px = _render_lowres(size, seed)
    n_levels = _levels_for(size)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for i in range(n_levels):
            d = 2**i
            shape = (-(-size // d), -(-size // d))
            arr, rep = _level_image(low, k, d)
            data = _tiles(arr if arr is not None else low, 1 if arr is not None else rep,
                          shape, seed + i)
            kwargs = dict(shape=(*shape, 3), dtype=np.uint8, tile=(TILE, TILE),
                          photometric="rgb", compression="jpeg")
            if i == 0:
                tif.write(data, subifds=n_levels - 1, metadata={
                    "axes": "YXS", "PhysicalSizeX": px, "PhysicalSizeY": px,
                    "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}, **kwargs)
            else:
                tif.write(data, subfiletype=1, **kwargs)
    return px


def write_phantom_zarr(path: Path, size: int, seed: int = 0) -> float:
    """Write the same phantom as a single-level OME-Zarr (chunks of 1024 × 1024)."""
    import zarr

    low, k, px = _render_lowres(size, seed)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    arr = group.create_array("0", shape=(size, size, 3), dtype=np.uint8,
                             chunks=(1024, 1024, 3))
    band = 1024
    for r in range(0, size, band):
        h = min(band, size - r)
        rows = np.repeat(low[r // k: -(-(r + h) // k)], k, axis=0)[r % k: r % k + h]
        arr[r: r + h] = np.repeat(rows, k, axis=1)[:, :size]
    group.attrs["multiscales"] = [{
        "version": "0.4", "name": "phantom",
        "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"},
                 {"name": "c", "type": "channel"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [px, px, 1.0]}]}]}]
    group.attrs["histoquant"] = {"rgb": True}
    return px


def _child(path: str, kind: str) -> None:
    """Run in a fresh process: open lazily, run the anatomy, print JSON."""
    import resource

    import histoquant  # noqa: F401  (import cost is part of the baseline)
    from histoquant.anatomy import find_sections
    from histoquant.io import Image

    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    c0 = time.process_time()   # CPU time: steadier than wall time on a shared machine
    if kind == "tiff":
        import tifffile
        import zarr

        with tifffile.TiffFile(path) as tif:
            n_levels = len(tif.series[0].levels)
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
            px = float(ome["PhysicalSizeX"])
        data = zarr.open(tifffile.imread(path, aszarr=True, level=0), mode="r")
        image = Image(data, axes="YXC", pixel_size_um=px, rgb=True, path=Path(path),
                      metadata={"format": "ome-tiff", "levels": n_levels})
    else:
        import zarr

        # histoquant.read_image opens files under 2 GB eagerly; open the array lazily here
        group = zarr.open_group(path, mode="r")
        px = float(group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
                   [0]["scale"][0])
        image = Image(group["0"], axes="YXC", pixel_size_um=px, rgb=True, path=Path(path),
                      metadata={"format": "ome-zarr", "levels": 1})
    import tracemalloc

    tracemalloc.start()  # NumPy reports its buffers to tracemalloc: the anatomy's own arrays
    slide = find_sections(image)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    traced_mb = tracemalloc.get_traced_memory()[1] / 1024**2
    tracemalloc.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = slide.sections[0] if slide.sections else None
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "peak_mb": peak_mb, "baseline_mb": base_mb,
                      "traced_mb": traced_mb,
                      "sections": len(slide.sections), "factor": slide.factor,
                      "quality": s.quality if s else None,
                      "grey_fraction": s.metrics["grey_matter_fraction"] if s else None}))


def _measure(path: Path, kind: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), kind],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    ap.add_argument("--zarr", type=int, nargs="*", default=[10000],
                    help="sizes also benchmarked as single-level OME-Zarr (streamed)")
    ap.add_argument("--keep", type=Path, help="folder to keep the phantoms in")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_anatomy_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'case':<28}{'MP':>8}{'write s':>9}{'run s':>8}{'cpu s':>7}{'MP/s':>9}{'peak MB':>9}"
          f"{'base MB':>9}{'arrays MB':>10}  result")
    try:
        cases = [(s, "tiff") for s in args.sizes] + [(s, "zarr") for s in args.zarr]
        for size, kind in cases:
            path = folder / (f"section_{size}.ome.tif" if kind == "tiff"
                             else f"section_{size}.ome.zarr")
            t0 = time.perf_counter()
            (write_phantom_tiff if kind == "tiff" else write_phantom_zarr)(path, size)
            wt = time.perf_counter() - t0
            r = _measure(path, kind)
            mp = size * size / 1e6
            label = f"{size}x{size} RGB " + ("pyramid TIFF" if kind == "tiff" else "Zarr 1 lvl")
            print(f"{label:<28}{mp:>8.0f}{wt:>9.1f}{r['seconds']:>8.2f}{r['cpu_seconds']:>7.2f}"
                  f"{mp / r['seconds']:>9.0f}{r['peak_mb']:>9.0f}{r['baseline_mb']:>9.0f}"
                  f"{r['traced_mb']:>10.0f}  "
                  f"{r['sections']} section(s), factor {r['factor']}, "
                  f"quality {r['quality']:.2f}, grey {100 * r['grey_fraction']:.0f} %",
                  flush=True)
            if not args.keep:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
