"""Every output file of the batch and the single-assay commands, before and after a change.

Usage::

    # from the tree before the change (a `git archive` of it, say), then the tree after;
    # each run measures with the histoquant of the current folder
    cd BEFORE_TREE && python SCRIPT produce /tmp/out_before --phantom /tmp/phantom_study
    cd AFTER_TREE && python SCRIPT produce /tmp/out_after --phantom /tmp/phantom_study
    python SCRIPT compare /tmp/out_before /tmp/out_after BEFORE_TREE AFTER_TREE

``produce`` runs: the README's main job (``histoquant batch example_images``); single-assay
commands (motor-neurons with ``--meta``, evans-blue with a region file, anatomy, gfp-cells, and
a run with an unreadable image); the batch tests' phantom study (toy blob assay) with 1 job, 2
jobs and resumed; and a study with an unreadable image with 1 and 2 jobs. The phantom study is
written once to ``--phantom`` and reused, so that both trees see the same input bytes (its
OME-TIFF headers hold a random UUID, which changes the unit keys).

``compare`` checks every file: CSV, JSON, GeoJSON and text byte-equal once each run's own
output and source folders are replaced by a placeholder; ``run.json`` equal without its
timestamps, durations and command line; the HTML report with its timestamp masked; PNG, TIFF
and region ``.zip`` byte-equal; ``study.xlsx`` cell by cell (the file holds its creation
time); each ``.parts`` zip member by member (``meta.json`` without its durations). Exit status
1 when a file differs or is missing on one side.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

TIME_KEYS = {"created", "finished", "timings", "seconds", "command"}
SKIP_DIRS = {"logs", "inputs"}
STAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00")

PHANTOM = """
import sys
from pathlib import Path
import pytest
from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register
from histoquant.batch import run_batch
folder, out = Path(sys.argv[1]), Path(sys.argv[2])
if not folder.exists():
    folder.mkdir(parents=True)
    write_phantom_study(folder, groups=["vehicle", "MSC-single", "MSC-repeated"], seed=7)
    (folder / "notes.txt").write_text("lab notes, not an image")
with pytest.MonkeyPatch.context() as mp:
    register(mp, BLOB_SPEC)
    ok = [run_batch(folder, out / "phantom_j1").ok,
          run_batch(folder, out / "phantom_j2", jobs=2).ok,
          run_batch(folder, out / "phantom_j1", resume=True).ok]
print("phantom study ok:", ok)
"""


def _cli(out: Path, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "histoquant", *args], capture_output=True,
                       text=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{len(list(logs.iterdir())):02d}_{args[0]}.stderr").write_text(r.stderr)
    print(f"histoquant {args[0]}: exit {r.returncode}", flush=True)


def produce(out: Path, phantom: Path) -> None:
    """Run every job into ``out`` with the histoquant of the current folder."""
    out.mkdir(parents=True, exist_ok=True)
    ex = Path("example_images").resolve()
    nissl = sorted(glob.glob(str(ex / "nissl_R0*.ome.tif")))
    _cli(out, "batch", str(ex), "-o", str(out / "batch"), "-q")
    _cli(out, "motor-neurons", *nissl, "-o", str(out / "mn"), "--level", "L3",
         "--meta", "animal=R01", "-q")
    _cli(out, "evans-blue", str(ex / "evans_blue_R01_L4.ome.tif"),
         str(ex / "evans_blue_R02_L4.ome.tif"),
         "--regions", str(ex / "evans_blue_R01_L4_grey_matter.geojson"),
         "--channel", "evb=evb", "--channel", "vessel=vessel", "-o", str(out / "evb"), "-q")
    _cli(out, "anatomy", *nissl[:2], "-o", str(out / "anat"), "-q")
    _cli(out, "gfp-cells", str(ex / "gfp_R03_L3.ome.tif"), "--channel", "gfp=gfp",
         "--channel", "dapi=dapi", "--channel", "reference=reference", "-o", str(out / "gfp"),
         "-q")
    inputs = out / "inputs"
    inputs.mkdir(exist_ok=True)
    bad = inputs / "nissl_R05_L3.tif"
    bad.write_bytes(b"not a tiff")
    _cli(out, "motor-neurons", nissl[0], str(bad), "-o", str(out / "mn_bad"), "-q")
    study = inputs / "err_study"
    study.mkdir(exist_ok=True)
    for f in [*nissl[:2], str(bad)]:
        (study / Path(f).name).write_bytes(Path(f).read_bytes())
    for jobs in ("1", "2"):
        _cli(out, "batch", str(study), "--assay", "motor-neurons", "--pixel-size", "0.5",
             "-j", jobs, "-o", str(out / f"errbatch_j{jobs}"), "-q")
    r = subprocess.run([sys.executable, "-c", PHANTOM, str(phantom), str(out)],
                       capture_output=True, text=True)
    print(r.stdout.strip() or r.stderr[-2000:])


def _norm(text: str, root: Path, src: Path) -> str:
    return text.replace(str(root), "<OUT>").replace(str(src), "<SRC>")


def _strip(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in TIME_KEYS}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def _xlsx(p: Path, root: Path, src: Path) -> dict[str, list[tuple]]:
    """Every sheet's cell values, the run's own folders replaced in text cells."""
    from openpyxl import load_workbook

    wb = load_workbook(p, read_only=True)
    return {ws.title: [tuple(_norm(v, root, src) if isinstance(v, str) else v for v in r)
                       for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")
            if p.is_file() and not set(p.relative_to(root).parts) & SKIP_DIRS}


def _same(rel: Path, a: tuple[Path, Path], b: tuple[Path, Path]) -> bool:
    pa, pb = a[0] / rel, b[0] / rel
    ext = pa.suffix.lower()
    if ext == ".xlsx":
        return _xlsx(pa, *a) == _xlsx(pb, *b)
    if rel.name == "hashes.json":  # a cache keyed by absolute path and mtime
        return len(json.loads(pa.read_text())) == len(json.loads(pb.read_text()))
    if rel.name == "run.json":
        return _strip(json.loads(_norm(pa.read_text(), *a))) == \
            _strip(json.loads(_norm(pb.read_text(), *b)))
    if ext == ".html":
        return STAMP.sub("<T>", _norm(pa.read_text(), *a)) == \
            STAMP.sub("<T>", _norm(pb.read_text(), *b))
    if ext == ".zip" and ".parts" in rel.parts:
        with zipfile.ZipFile(pa) as za, zipfile.ZipFile(pb) as zb:
            if sorted(za.namelist()) != sorted(zb.namelist()):
                return False
            for m in za.namelist():
                da, db = za.read(m), zb.read(m)
                if m == "meta.json":
                    da = json.dumps(_strip(json.loads(_norm(da.decode(), *a))))
                    db = json.dumps(_strip(json.loads(_norm(db.decode(), *b))))
                if da != db:
                    return False
        return True
    if ext in (".png", ".tif", ".tiff", ".zip"):
        return pa.read_bytes() == pb.read_bytes()
    return _norm(pa.read_text(), *a) == _norm(pb.read_text(), *b)


def compare(before: Path, after: Path, src_before: Path, src_after: Path) -> int:
    """Compare every file of two ``produce`` folders; the exit status."""
    fa, fb = _files(before), _files(after)
    bad = [f"only before: {p}" for p in sorted(fa - fb)] + \
        [f"only after: {p}" for p in sorted(fb - fa)]
    both = sorted(fa & fb)
    bad += [f"differs: {rel}" for rel in both
            if not _same(rel, (before, src_before), (after, src_after))]
    print(f"{len(both)} files in both; {len(bad)} differ or are missing")
    for line in bad:
        print(line)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("out", type=Path)
    p.add_argument("--phantom", type=Path, required=True,
                   help="phantom study folder, written once and then reused")
    c = sub.add_parser("compare")
    for name in ("before", "after", "src_before", "src_after"):
        c.add_argument(name, type=Path)
    args = ap.parse_args()
    if args.cmd == "produce":
        produce(args.out.resolve(), args.phantom.resolve())
        return 0
    return compare(*(p.resolve() for p in (args.before, args.after, args.src_before,
                                            args.src_after)))


if __name__ == "__main__":
    sys.exit(main())
