"""Benchmark of study runs: throughput with 1 and 2 jobs, and whole-slide time and memory.

Part 1 — throughput: a phantom study of single-section images measured with ``--jobs 1`` and
``--jobs 2`` (sections per minute, speed-up). ``--study DIR`` measures an existing study folder
instead (e.g. ``example_images``, with its own study.yaml and real assays).

Part 2 — whole slides: phantom RGB slides written tile by tile as pyramidal OME-TIFF (never
held in memory), each measured in a fresh process (peak RSS from getrusage): slides of one
size holding 1, 2 and 4 sections (time should grow with tissue area, not slide area), and a
40,000 × 40,000 px slide (4.8 GB of pixels) with 6 sections.

The phantom runs use the toy blob counter of :mod:`histoquant.testing`: it stands for the
per-pixel work of an assay, so the figures measure the machinery (reading, tiling, merging,
bookkeeping) plus a light assay. ``--study`` runs whatever assays that study names.

    python benchmarks/bench_batch.py            # everything (about 10 min on 2 busy cores)
    python benchmarks/bench_batch.py --quick    # small sizes only
    python benchmarks/bench_batch.py --study example_images --copies 6 --skip-slides
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter so that its peak RSS is the run's own.
CHILD = r"""
import json, resource, sys, time
from histoquant.assays import base
from histoquant.testing import BLOB_SPEC
original = base.available_assays
base.available_assays = lambda: {**original(), "blobs": BLOB_SPEC}
from histoquant.batch import run_batch
folder, out, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
report = run_batch(folder, out, jobs=jobs)
seconds = time.perf_counter() - t
run = json.load(open(out + "/run.json"))
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
peak_self, peak_children = me.ru_maxrss / 1024, kids.ru_maxrss / 1024
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({"seconds": seconds, "ok": report.ok, "units": report.n_units, "cpu_s": cpu,
                  "timings": run["timings"], "peak_mb": peak_self,
                  "peak_child_mb": peak_children,
                  "tiles": sum(u["n_tiles"] or 0 for u in run["units"]),
                  "sections": sum(u["n_sections"] or 0 for u in run["units"])}))
"""


def _child(folder: Path, out: Path, jobs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(out), str(jobs)],
                         env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def replicate_study(study: Path, dest: Path, copies: int) -> Path:
    """``study`` with its animals repeated ``copies`` times (files copied under new names).

    A real study is hundreds of sections; the example study is 14 images, too few for the
    fixed costs (starting workers, compiling skan's Numba code in each, assembling the tables)
    to be amortised as they are in real use.
    """
    import csv

    shutil.copytree(study, dest)
    with open(dest / "samples.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = list(rows)
    for k in range(2, copies + 1):
        for row in rows:
            new = dict(row)
            for col in ("file", "roi"):
                if row.get(col):
                    name = row[col]
                    stem, dot, ext = name.partition(".")
                    new[col] = f"{stem}_c{k}{dot}{ext}"
                    shutil.copy(dest / name, dest / new[col])
            new["animal"] = f"{row['animal']}c{k}"
            out.append(new)
    with open(dest / "samples.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(out)
    return dest


def throughput(tmp: Path, quick: bool, study: Path | None, copies: int = 1) -> None:
    from histoquant.synthetic.study import write_phantom_study

    if study is not None and copies > 1:
        study = replicate_study(study, tmp / "replicated", copies)
    if study is None:
        study = tmp / "study"
        size = 600 if quick else 1400
        write_phantom_study(study, groups=("vehicle", "MSC"), group_means=(60, 90),
                            animals_per_group=2 if quick else 3, levels=("L3", "L4"),
                            size_px=size, pixel_size_um=1.0, cell_radius_um=6, slide_every=0,
                            png_every=0, seed=1, study_yaml=True)
        # single-section images measured whole: no section finding, one tile each
        text = (study / "study.yaml").read_text().replace("split_sections: true",
                                                          "split_sections: false")
        (study / "study.yaml").write_text(text)
    print(f"\n## Throughput ({study})  load average before: {_load()}")
    rows = []
    for jobs in (1, 2):
        out = tmp / f"out_j{jobs}"
        r = _child(study, out, jobs)
        per_min = r["sections"] / r["seconds"] * 60
        rows.append((jobs, r, per_min))
        print(f"jobs {jobs}: {r['units']} images, {r['sections']} sections in "
              f"{r['seconds']:.1f} s (measuring {r['timings']['measuring_s']:.1f} s) -> "
              f"{per_min:.1f} sections/min; CPU {r['cpu_s']:.1f} s, i.e. "
              f"{r['cpu_s'] / r['seconds']:.2f} cores obtained; peak RSS main "
              f"{r['peak_mb']:.0f} MB, worker {r['peak_child_mb']:.0f} MB; load average now "
              f"{_load()}")
        shutil.rmtree(out, ignore_errors=True)
    speedup = rows[1][2] / rows[0][2]
    m1 = rows[0][1]["timings"]["measuring_s"]
    m2 = rows[1][1]["timings"]["measuring_s"]
    print(f"speed-up 2 jobs vs 1: {speedup:.2f}x overall, {m1 / m2:.2f}x in the measuring "
          f"phase (CPU count {os.cpu_count()}; other work on the machine lowers this)")


def slide_study(folder: Path, shape: tuple[int, int], n_sections: int, px: float,
                seed: int) -> tuple[float, int]:
    """Write a one-slide study; returns (tissue area in mm², cells)."""
    from histoquant.synthetic.slide import phantom_slide

    folder.mkdir(parents=True)
    h, w = shape
    # sections 4 × 3 mm (semi-axes 2 × 1.5 mm), on a grid of up to 3 columns
    ay, ax = 1500 / px, 2000 / px
    cols = min(3 if n_sections > 4 else 2, n_sections)
    rows = -(-n_sections // cols)
    secs = []
    for i in range(n_sections):
        r, c = divmod(i, cols)
        secs.append(((r + 0.5) * h / rows, (c + 0.5) * w / cols, ay, ax))
    n_cells = [400] * n_sections
    slide = phantom_slide(shape, secs, n_cells, pixel_size_um=px, cell_radius_um=10,
                          seed=seed)
    t = time.perf_counter()
    slide.write_ome_tiff(folder / "slide.ome.tif", tile=512, levels=6)
    print(f"  wrote {h}x{w} slide ({(folder / 'slide.ome.tif').stat().st_size / 1e6:.0f} MB "
          f"on disk) in {time.perf_counter() - t:.0f} s", flush=True)
    (folder / "samples.csv").write_text("file,animal,group,level\nslide.ome.tif,A1,g,L4\n")
    (folder / "study.yaml").write_text(
        "assays: {blobs: {params: {min_area_um2: 100}}}\n"
        "slides: {split_sections: true, tile_px: 4096, overlap_um: 100}\n")
    area = sum(s.area_px for s in slide.sections) * px**2 / 1e6
    return area, sum(n_cells)


def slides(tmp: Path, quick: bool) -> None:
    px = 1.0 if quick else 0.5
    print(f"\n## Whole slides (pixel {px} µm, RGB, pyramidal OME-TIFF, tiles 4096 px + "
          f"100 µm overlap)  load average before: {_load()}")
    side = 12000 if quick else 20000
    cases = [((side, side), n) for n in (1, 2, 4)]
    if not quick:
        cases.append(((40000, 40000), 6))
    for i, (shape, n) in enumerate(cases):
        folder = tmp / f"slide{i}"
        area, cells = slide_study(folder, shape, n, px, seed=i)
        r = _child(folder, tmp / f"slide_out{i}", 1)
        out = json.loads((tmp / f"slide_out{i}" / "run.json").read_text())
        counted = int(sum(_read_counts(tmp / f"slide_out{i}")))
        mpx = shape[0] * shape[1] / 1e6
        print(f"{shape[0]}x{shape[1]} ({mpx:.0f} Mpx, {mpx * 3 / 1000:.1f} GB RGB), "
              f"{n} section(s), tissue {area:.1f} mm²: {r['seconds']:.1f} s total "
              f"(measuring {out['timings']['measuring_s']:.1f} s, {r['tiles']} tiles) = "
              f"{out['timings']['measuring_s'] / area:.2f} s/mm²; peak RSS "
              f"{r['peak_mb']:.0f} MB; cells {counted}/{cells}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tmp / f"slide_out{i}", ignore_errors=True)


def _read_counts(out: Path):
    import pandas as pd

    return pd.read_csv(out / "sections.csv")["n_blobs"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--study", type=Path, help="measure this study folder for throughput")
    ap.add_argument("--copies", type=int, default=1,
                    help="repeat the --study animals this many times (a study of realistic "
                         "size from the example study)")
    ap.add_argument("--skip-slides", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--tmp", type=Path, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hq_bench_", dir=args.tmp))
    print(f"histoquant batch benchmark; {os.cpu_count()} CPU(s); scratch {tmp}")
    try:
        if not args.skip_throughput:
            throughput(tmp, args.quick, args.study, args.copies)
        if not args.skip_slides:
            slides(tmp, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
