"""Bad inputs, run as a hostile or unlucky user would: every outcome must be a clear error or a
correct result; none may crash, hang, write outside the output folder or be silently wrong.

::

    python benchmarks/bad_inputs.py [--jobs 2] [--timeout 60] [--keep DIR] [--only SUBSTR]

Builds a corpus of bad files (corrupt, truncated, decompression bombs, NaN, implausible pixel
sizes, float images on a 0–255 scale, hostile params, YAML tags, malformed GeoJSON, traversal
region names, symlink loops, output-folder symlinks, ...) next to small good images made from
``example_images/``, runs each case as a separate ``histoquant`` command with a time limit,
and prints one row per case:

- **clear error**: exit status 1 or 2, no traceback, the error is one of histoquant's own
  (a row of ``errors.csv`` or an ``error:`` line) and, where a file is to blame, names it;
  in a batch every good image's row is still present;
- **correct result**: exit status 0 and the case's own check of the tables passes (e.g. a
  float copy of an image gives the counts of the original);
- **crash**: a traceback, an unexpected exception type, a signal;
- **hang**: the command ran past the time limit;
- **silent wrong result**: exit status 0 where an error was due, a check that fails, or a
  file written outside the output folder.

The exit status is 0 only when every case is a clear error or a correct result. The test
``tests/test_bad_inputs_corpus.py`` runs the same corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "example_images"

# histoquant's own error types (histoquant.errors and the batch's): anything else in an error
# row is an unexpected exception that escaped an assay, which is a crash, not a clear error.
CLEAR_TYPES = {"HistoquantError", "ImageReadError", "PixelSizeError", "ChannelError",
               "EmptyImageError", "RegionError", "ParamsError", "DependencyError",
               "StudyError", "OutputPathError", "WorkerDied", "ModalityError"}

ASSAYS = {  # assay -> (good example image, channel flags)
    "motor-neurons": ("nissl_R01_L3.ome.tif", []),
    "evans-blue": ("evans_blue_R01_L4.ome.tif", ["--channel", "evb=evb", "--channel",
                                                 "vessel=vessel"]),
    "gfp-cells": ("gfp_R03_L3.ome.tif", ["--channel", "gfp=gfp", "--channel", "dapi=dapi",
                                         "--channel", "reference=reference"]),
    "vasculature": ("vessels_R01_L4.ome.tif", ["--channel", "endothelium=endothelium",
                                               "--channel", "pericyte=pericyte"]),
    "anatomy": ("nissl_R01_L3.ome.tif", []),
}

Check = Callable[[Path], tuple[bool, str]]


@dataclass
class Case:
    """One bad input: the command to run, and what a right outcome is."""

    name: str
    kind: str
    argv: list[str]
    expect: str = "error"          # "error", "result" or "either"
    check: Check | None = None     # for "result" / "either": is the result right?
    names: str | None = None       # a file name the error message must contain
    good: tuple[str, ...] = ()     # images whose rows must be in the tables all the same
    prepare: Callable[[Path], None] | None = None  # called with the output folder first
    says: str | None = None        # a regular expression the error message must match
    warns: str | None = None       # for a result: a regular expression stderr must match


@dataclass
class Outcome:
    case: Case
    verdict: str
    seconds: float
    detail: str = ""
    stderr: str = field(default="", repr=False)


# --- files -------------------------------------------------------------------------------


def _tiff_header(path: Path, width: int, height: int, rows_per_strip: int,
                 samples: int = 1) -> None:
    """A small TIFF whose header claims ``width`` × ``height`` 8-bit pixels (× ``samples``).

    Every strip points at the same few bytes of deflate data: a decompression bomb (one
    strip) or a strip bomb (one row per strip, so a naive reader loops ~height times).
    """
    n_strips = -(-height // rows_per_strip)
    payload = zlib.compress(b"\0" * 64)
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8),
        (262, 3, 1, 2 if samples == 3 else 1), (273, 4, n_strips, None), (277, 3, 1, samples),
        (278, 4, 1, rows_per_strip), (279, 4, n_strips, None),
    ]
    ifd_at = 8
    ifd_size = 2 + 12 * len(entries) + 4
    data_at = ifd_at + ifd_size
    offsets_at = data_at + len(payload)
    counts_at = offsets_at + 4 * n_strips
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_at if n_strips == 1 else offsets_at
        elif tag == 279:
            value = len(payload) if n_strips == 1 else counts_at
        packed = struct.pack("<HHI", tag, typ, count)
        packed += struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += packed
    ifd += struct.pack("<I", 0)
    body = b"II*\0" + struct.pack("<I", ifd_at) + ifd + payload
    if n_strips > 1:
        body += struct.pack(f"<{n_strips}I", *([data_at] * n_strips))
        body += struct.pack(f"<{n_strips}I", *([len(payload)] * n_strips))
    path.write_bytes(body)


def _png_bomb(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` × ``height`` and whose data is a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                     chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


def _ome(path: Path, data: np.ndarray, px: float | None, *, axes: str,
         channels: list[str] | None = None, unit: str = "µm") -> Path:
    import tifffile

    meta: dict = {"axes": axes}
    if px is not None:
        meta.update(PhysicalSizeX=px, PhysicalSizeY=px, PhysicalSizeXUnit=unit,
                    PhysicalSizeYUnit=unit)
    if channels:
        meta["Channel"] = {"Name": channels}
    tifffile.imwrite(path, data, ome=True, metadata=meta,
                     photometric="rgb" if axes.endswith("S") else "minisblack")
    return path


def _imagej(path: Path, data: np.ndarray, px: float, unit: str) -> Path:
    import tifffile

    tifffile.imwrite(path, data, imagej=True, resolution=(1 / px, 1 / px),
                     metadata={"unit": unit}, photometric="rgb" if data.ndim == 3 else None)
    return path


def _read(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# What an error must be about, by the start of a generic file's name: a bomb refused for
# another reason (no pixel size, wrong channels) would hide a missing size check.
_SAYS = {"bomb": r"(?i)pixel|size|large|limit", "stripbomb": r"(?i)pixel|size|large|limit|strip",
         "rgb": r"(?i)pixel|size|large|limit|strip", "ome": r"(?i)pixel size",
         "nan": r"(?i)nan|finite|blank|empty|channel"}


# --- checks ------------------------------------------------------------------------------


def _same_as(reference: pd.DataFrame, column: str, tol: float = 0.0) -> Check:
    """The result's ``column`` equals the good image's, within ``tol`` (relative)."""
    want = float(reference[column].iloc[0])

    def check(out: Path) -> tuple[bool, str]:
        got = float(pd.read_csv(out / "summary.csv")[column].iloc[0])
        ok = abs(got - want) <= tol * max(abs(want), 1e-9)
        return ok, f"{column} {got:g} (the original gives {want:g})"

    return check


def _nothing_found(out: Path) -> tuple[bool, str]:
    """A result that finds nothing (no object, or no tissue) in an image with nothing in it."""
    summary = pd.read_csv(out / "summary.csv")
    counts = summary[[c for c in summary.columns if c.startswith("n_")]]
    empty = bool((counts.fillna(0) == 0).all().all())
    if "status" in summary:
        empty = empty and bool((summary["status"] != "ok").all())
    return empty, "nothing found" if empty else "found something in a 1-pixel image"


def _rows_of(*images: str) -> Check:
    def check(out: Path) -> tuple[bool, str]:
        table = out / "sections.csv" if (out / "sections.csv").exists() else out / "summary.csv"
        if not table.exists():
            return False, "no table"
        have = set(pd.read_csv(table)["image"].astype(str))
        missing = [i for i in images if i not in have]
        return not missing, f"missing rows: {missing}" if missing else "every image measured"

    return check


def _each_once(n: int) -> Check:
    def check(out: Path) -> tuple[bool, str]:
        sections = pd.read_csv(out / "sections.csv")
        counts = sections.groupby("image").size()
        ok = len(counts) == n and bool((counts == counts.iloc[0]).all()) and \
            sections["image"].nunique() == n and len(sections) == n * int(counts.iloc[0])
        return ok, f"{sections['image'].nunique()} image(s), {len(sections)} row(s)"

    return check


def _names_kept(*names: str) -> Check:
    def check(out: Path) -> tuple[bool, str]:
        text = (out / "sections.csv").read_text(encoding="utf-8")
        missing = [n for n in names if n not in text]
        return not missing, "original region names kept in the table" if not missing else \
            f"region names lost: {missing}"

    return check


# --- the corpus ----------------------------------------------------------------------------


def _mini_study(folder: Path, extra: dict[str, Callable[[Path], object]] | None = None,
                study: str | None = None) -> list[str]:
    """Two good Nissl images and a study file for motor neurons; returns the good images."""
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    for name in ("nissl_R01_L3.ome.tif", "nissl_R03_L3.ome.tif"):
        shutil.copy(EXAMPLES / name, folder / name)
        good.append(name.removesuffix(".ome.tif"))
    (folder / "study.yaml").write_text(study or "assays:\n  motor-neurons:\n    files: ['*']\n",
                                       encoding="utf-8")
    for rel, make in (extra or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        make(p)
    return good


def build_corpus(root: Path, references: dict[str, pd.DataFrame]) -> list[Case]:
    """Write every bad input under ``root`` and return the cases (paths relative to it)."""
    src = root / "in"
    src.mkdir(parents=True, exist_ok=True)
    nissl = _read(EXAMPLES / "nissl_R01_L3.ome.tif")
    px = 0.5
    rng = np.random.default_rng(0)
    cases: list[Case] = []

    def add(case: Case) -> None:
        cases.append(case)

    # Files broken the same way for every assay: each goes through every assay command.
    shutil.copy(EXAMPLES / "nissl_R01_L3.ome.tif", src / "good.ome.tif")
    whole = (EXAMPLES / "nissl_R01_L3.ome.tif").read_bytes()
    generic = {
        "empty.tif": lambda p: p.write_bytes(b""),
        "truncated.ome.tif": lambda p: p.write_bytes(whole[: len(whole) // 2]),
        "garbage.tif": lambda p: p.write_bytes(rng.integers(0, 256, 4096, np.uint8).tobytes()),
        "text.jpg": lambda p: _write_text(p, "this is not a JPEG\n" * 20),
        "bomb_200000.tif": lambda p: _tiff_header(p, 200_000, 200_000, 200_000),
        "stripbomb_200000.tif": lambda p: _tiff_header(p, 200_000, 200_000, 1),
        "rgb_bomb_200000.tif": lambda p: _tiff_header(p, 200_000, 200_000, 200_000, 3),
        "rgb_stripbomb_200000.tif": lambda p: _tiff_header(p, 200_000, 200_000, 1, 3),
        "bomb.png": lambda p: _png_bomb(p, 150_000, 150_000),
        "tiny_1x1.ome.tif": lambda p: _ome(p, nissl[:1, :1], px, axes="YXS"),
        "ome_px_1e-5.ome.tif": lambda p: _ome(p, nissl, 1e-5, axes="YXS"),
        "nan.ome.tif": lambda p: _ome(p, np.full((64, 64), np.nan, np.float32), px, axes="YX"),
    }
    for name, make in generic.items():
        make(src / name)
    for assay, (_good, flags) in ASSAYS.items():
        for name in generic:
            extra = [] if "px_" in name else ["--pixel-size", str(px)]
            tiny = name.startswith("tiny")
            add(Case(f"{assay}: {name}", "file", [assay, f"in/{name}", *extra, *flags],
                     names=name, says=_SAYS.get(name.split("_")[0]),
                     expect="either" if tiny else "error",
                     check=_nothing_found if tiny else None))

    # Images a reader might read wrongly without a word.
    jpeg = (src / "good.jpg")
    from PIL import Image as PILImage

    PILImage.fromarray(nissl).save(jpeg, quality=95)
    jpeg.with_name("truncated.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    add(Case("motor-neurons: truncated.jpg", "file",
             ["motor-neurons", "in/truncated.jpg", "--pixel-size", "0.5"], names="truncated.jpg"))
    _ome(src / "float255.ome.tif", nissl.astype(np.float32), px, axes="YXS")
    add(Case("motor-neurons: float RGB holding 0–255", "file",
             ["motor-neurons", "in/float255.ome.tif"], expect="result",
             check=_same_as(references["motor-neurons"], "n_motor_neurons")))
    _ome(src / "float01.ome.tif", nissl.astype(np.float32) / 255, px, axes="YXS")
    add(Case("motor-neurons: float RGB holding 0–1", "file",
             ["motor-neurons", "in/float01.ome.tif"], expect="result",
             check=_same_as(references["motor-neurons"], "n_motor_neurons")))
    inf = nissl.astype(np.float32)
    inf[10:20, 10:20] = np.inf
    _ome(src / "inf.ome.tif", inf, px, axes="YXS")
    add(Case("motor-neurons: float RGB with inf pixels", "file",
             ["motor-neurons", "in/inf.ome.tif"], expect="either",
             check=_same_as(references["motor-neurons"], "n_motor_neurons", tol=0.15),
             names="inf.ome.tif"))
    _ome(src / "zeros.ome.tif", np.zeros_like(nissl), px, axes="YXS")
    add(Case("motor-neurons: all-black RGB", "file", ["motor-neurons", "in/zeros.ome.tif"],
             expect="either", check=lambda o: (
                 int(pd.read_csv(o / "summary.csv")["n_motor_neurons"].iloc[0]) == 0,
                 "no motor neuron in a black image"), names="zeros.ome.tif"))
    _ome(src / "white.ome.tif", np.full_like(nissl, 255), px, axes="YXS")
    add(Case("motor-neurons: all-white RGB", "file", ["motor-neurons", "in/white.ome.tif"],
             expect="either", check=lambda o: (
                 int(pd.read_csv(o / "summary.csv")["n_motor_neurons"].iloc[0]) == 0,
                 "no motor neuron in a blank image"), names="white.ome.tif"))
    _ome(src / "one_row.ome.tif", nissl[:1], px, axes="YXS")
    add(Case("motor-neurons: one-row image", "file", ["motor-neurons", "in/one_row.ome.tif"],
             expect="either", check=lambda o: (
                 int(pd.read_csv(o / "summary.csv")["n_motor_neurons"].iloc[0]) == 0,
                 "no motor neuron in one row"), names="one_row.ome.tif"))
    _ome(src / "ome_px_1e5.ome.tif", nissl, 1e5, axes="YXS")
    add(Case("motor-neurons: OME pixel size 1e5 µm", "file",
             ["motor-neurons", "in/ome_px_1e5.ome.tif"], names="ome_px_1e5.ome.tif",
             says=_SAYS["ome"]))
    for assay in ("evans-blue", "vasculature"):
        good, flags = ASSAYS[assay]
        shutil.copy(EXAMPLES / good, src / good)
        data = _read(EXAMPLES / good)
        names = ["vessel", "evb"] if assay == "evans-blue" else ["endothelium", "pericyte"]
        _ome(src / f"px_1e-5_{good}", data, 1e-5, axes="CYX", channels=names)
        add(Case(f"{assay}: OME pixel size 1e-5 µm", "file",
                 [assay, f"in/px_1e-5_{good}", *flags], names=f"px_1e-5_{good}",
                 says=_SAYS["ome"]))
    _imagej(src / "ij_mm.tif", nissl, 0.3337, "mm")  # 333.7 µm/px: a file that says mm
    add(Case("motor-neurons: ImageJ calibration 333.7 µm/px (mm)", "file",
             ["motor-neurons", "in/ij_mm.tif"], expect="result",
             check=lambda o: ((o / "summary.csv").exists(), "measured, with a warning"),
             warns=r"ij_mm\.tif.*333\.7"))
    timed = np.stack([nissl, nissl[::-1]])
    _ome(src / "two_timepoints.ome.tif", timed, px, axes="TYXS")
    add(Case("motor-neurons: OME-TIFF with 2 time points", "file",
             ["motor-neurons", "in/two_timepoints.ome.tif"], expect="result",
             check=_same_as(references["motor-neurons"], "n_motor_neurons"),
             warns=r"2 time points"))
    for value in ("0", "-1", "nan", "inf", "1e-9"):
        add(Case(f"motor-neurons: --pixel-size {value}", "flag",
                 ["motor-neurons", "in/good.ome.tif", "--pixel-size", value]))
    add(Case("motor-neurons: JPEG without a pixel size", "file",
             ["motor-neurons", "in/good.jpg"], names="good.jpg"))
    gray = _ome(src / "gray_fluo.ome.tif", np.stack([nissl[..., 0], nissl[..., 1]]), px,
                axes="CYX", channels=["a", "b"])
    add(Case("motor-neurons: 2-channel fluorescence", "file",
             ["motor-neurons", f"in/{gray.name}"], expect="either",
             check=lambda o: (False, "a 2-channel image measured as Nissl RGB"),
             names=gray.name))
    add(Case("evans-blue: Nissl RGB (no EvB channel)", "file",
             ["evans-blue", "in/good.ome.tif"], names="good.ome.tif"))
    eb = ASSAYS["evans-blue"][0]
    shutil.copy(EXAMPLES / eb, src / eb)
    add(Case("evans-blue: unknown channel name", "flag",
             ["evans-blue", f"in/{eb}", "--channel", "evb=NOPE"], names=eb))
    add(Case("evans-blue: channel index 9", "flag",
             ["evans-blue", f"in/{eb}", "--channel", "evb=9"], names=eb))
    import tifffile

    tifffile.imwrite(src / "int64.tif", nissl[..., 0].astype(np.int64) * 1000)
    add(Case("evans-blue: int64 single channel", "file",
             ["evans-blue", "in/int64.tif", "--pixel-size", "0.5"], expect="either",
             check=lambda o: ((o / "summary.csv").exists(), "measured"),
             names="int64.tif"))
    add(Case("motor-neurons: missing file", "flag", ["motor-neurons", "in/nope.tif"]))
    add(Case("motor-neurons: a folder as image", "flag", ["motor-neurons", "in"]))
    (src / "dangling.tif").symlink_to(src / "nowhere.tif")
    add(Case("motor-neurons: dangling symlink", "flag", ["motor-neurons", "in/dangling.tif"]))

    # Params files.
    params = {
        "nan.yaml": "foreground_snr: .nan\n",
        "nan_text.yaml": "foreground_snr: nan\n",
        "inf.yaml": "foreground_snr: .inf\n",
        "neg_inf.json": '{"smooth_um": -Infinity}\n',
        "negative.yaml": "smooth_um: -3\n",
        "string.yaml": "smooth_um: big\n",
        "bool.yaml": "smooth_um: true\n",
        "unknown.yaml": "no_such_param: 3\n",
        "several.yaml": "smooth_um: .nan\nforeground_snr: -2\nopen_um: .inf\n",
        "python_tag.yaml": "smooth_um: !!python/object/apply:os.system ['touch pwned']\n",
        "syntax.yaml": "smooth_um: [1, 2\n",
        "list.json": "[1, 2, 3]\n",
        "empty.yaml": "",
        "huge.yaml": "smooth_um: 1e308\n",
    }
    for name, text in params.items():
        _write_text(src / name, text)
        expect = "either" if name == "empty.yaml" else "error"
        check = _same_as(references["motor-neurons"], "n_motor_neurons") \
            if name == "empty.yaml" else None
        add(Case(f"motor-neurons: params {name}", "params",
                 ["motor-neurons", "in/good.ome.tif", "--params", f"in/{name}"],
                 expect=expect, check=check, names=name if expect == "error" else None))

    # Region files.
    def feature(geometry, name="grey"):
        return {"type": "Feature", "geometry": geometry,
                "properties": {"name": name, "classification": {"name": name}}}

    geo = {
        "invalid_json.geojson": "{ not json",
        "feature_string.geojson": {"type": "FeatureCollection", "features": ["abc"]},
        "feature_number.geojson": {"type": "FeatureCollection", "features": [3]},
        "no_geometry.geojson": {"type": "FeatureCollection",
                                "features": [{"type": "Feature", "properties": {}}]},
        "geometry_string.geojson": [feature("polygon")],
        "flat_coords.geojson": [feature({"type": "Polygon", "coordinates": [1, 2, 3, 4]})],
        "text_coords.geojson": [feature({"type": "Polygon", "coordinates": "abc"})],
        "two_points.geojson": [feature({"type": "Polygon",
                                        "coordinates": [[[0, 0], [5, 5]]]})],
        "nan_coords.geojson": '{"type":"Feature","properties":{},"geometry":{"type":"Polygon",'
                              '"coordinates":[[[0,0],[NaN,5],[5,5],[0,0]]]}}',
        "top_number.geojson": "42",
        "only_points.geojson": [feature({"type": "Point", "coordinates": [5, 5]})],
        "outside.geojson": [feature({"type": "Polygon", "coordinates": [
            [[1e6, 1e6], [1e6 + 10, 1e6], [1e6 + 10, 1e6 + 10], [1e6, 1e6]]]})],
    }
    for name, body in geo.items():
        _write_text(src / name, body if isinstance(body, str) else json.dumps(body))
        add(Case(f"motor-neurons: regions {name}", "regions",
                 ["motor-neurons", "in/good.ome.tif", "--regions", f"in/{name}"], names=name))
    (src / "corrupt_roiset.zip").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    add(Case("motor-neurons: corrupt RoiSet zip", "regions",
             ["motor-neurons", "in/good.ome.tif", "--regions", "in/corrupt_roiset.zip"],
             names="corrupt_roiset.zip"))
    import zipfile

    with zipfile.ZipFile(src / "empty_roiset.zip", "w"):
        pass
    add(Case("motor-neurons: empty RoiSet zip", "regions",
             ["motor-neurons", "in/good.ome.tif", "--regions", "in/empty_roiset.zip"],
             names="empty_roiset.zip"))
    import roifile

    with zipfile.ZipFile(src / "traversal_members.zip", "w") as z:
        roi = roifile.ImagejRoi.frompoints([[10, 10], [400, 10], [400, 400], [10, 400]])
        roi.roitype = roifile.ROI_TYPE.POLYGON
        roi.name = "grey"
        z.writestr("../../../../evil.roi", roi.tobytes())
    add(Case("motor-neurons: RoiSet with ../ member names", "regions",
             ["motor-neurons", "in/good.ome.tif", "--regions", "in/traversal_members.zip"],
             expect="either", check=lambda o: ((o / "summary.csv").exists(),
                                               "read, nothing extracted")))
    pts = {"type": "FeatureCollection", "features": [
        feature({"type": "Point", "coordinates": [5, 5]}, "landmark"),
        feature({"type": "Polygon", "coordinates": [[[0, 0], [1024, 0], [1024, 1024], [0, 1024],
                                                      [0, 0]]]}, "whole")]}
    _write_text(src / "with_points.geojson", json.dumps(pts))
    add(Case("motor-neurons: GeoJSON with a landmark point", "regions",
             ["motor-neurons", "in/good.ome.tif", "--regions", "in/with_points.geojson"],
             expect="result", check=_same_as(references["motor-neurons"], "n_motor_neurons"),
             warns=r"landmark"))
    weird = src / "weird name ü (1).ome.tif"
    shutil.copy(EXAMPLES / "nissl_R01_L3.ome.tif", weird)
    add(Case("motor-neurons: spaces and unicode in the file name", "file",
             ["motor-neurons", f"in/{weird.name}"], expect="result",
             check=_same_as(references["motor-neurons"], "n_motor_neurons")))

    # Studies: bad things beside good images; every good image's row must be there.
    def study_case(name: str, extra: dict, *, expect: str = "error", study: str | None = None,
                   check: Check | None = None, names: str | None = None,
                   says: str | None = None,
                   args: tuple[str, ...] = (), setup: Callable[[Path], None] | None = None,
                   prepare: Callable[[Path], None] | None = None):
        folder = root / "studies" / name.replace(" ", "_")
        good = _mini_study(folder, extra, study)
        if setup is not None:
            setup(folder)
        rel = folder.relative_to(root).as_posix()
        add(Case(f"batch: {name}", "batch", ["batch", rel, *args], expect=expect,
                 check=check, names=names, good=tuple(good), prepare=prepare, says=says))

    study_case("corrupt image", {"bad.tif": lambda p: p.write_bytes(b"II*\0garbage")},
               names="bad.tif")
    study_case("truncated image", {"cut.ome.tif": lambda p: p.write_bytes(
        whole[: len(whole) // 3])}, names="cut.ome.tif")
    with_px = "assays:\n  motor-neurons:\n    files: ['*']\n    pixel_size_um: 0.5\n"
    study_case("decompression bomb", {"bomb.tif": lambda p: _tiff_header(
        p, 200_000, 200_000, 200_000, 3)}, names="bomb.tif", study=with_px,
        says=_SAYS["bomb"])
    study_case("strip bomb", {"strips.tif": lambda p: _tiff_header(p, 200_000, 200_000, 1, 3)},
               names="strips.tif", study=with_px, says=_SAYS["bomb"])
    study_case("OME pixel size 1e-5 µm", {"tiny_px.ome.tif": lambda p: _ome(
        p, nissl, 1e-5, axes="YXS")}, names="tiny_px.ome.tif", says=_SAYS["ome"])
    study_case("float 0–255 image", {"float.ome.tif": lambda p: _ome(
        p, nissl.astype(np.float32), px, axes="YXS")}, expect="result",
        check=_rows_of("float"))
    study_case("NaN image", {"nan.ome.tif": lambda p: _ome(
        p, np.full((64, 64, 3), np.nan, np.float32), px, axes="YXS")}, names="nan.ome.tif")
    study_case("params nan in study.yaml", {}, study=(
        "assays:\n  motor-neurons:\n    files: ['*']\n    params: {foreground_snr: .nan}\n"),
        names="study.yaml")
    study_case("YAML python tag in study.yaml", {}, study=(
        "assays: !!python/object/apply:os.system ['touch pwned']\n"), names="study.yaml")

    def traversal_regions(folder: Path) -> None:
        names = ["../../../../x", "/abs/name", "a\\b"]
        feats = [feature({"type": "Polygon", "coordinates": [[[10 + 200 * i, 10],
                                                              [200 + 200 * i, 10],
                                                              [200 + 200 * i, 300],
                                                              [10 + 200 * i, 10]]]}, n)
                 for i, n in enumerate(names)]
        (folder / "regions.geojson").write_text(json.dumps(
            {"type": "FeatureCollection", "features": feats}), encoding="utf-8")
        (folder / "study.yaml").write_text(
            "assays:\n  motor-neurons:\n    files: ['*.tif']\n    regions: regions.geojson\n",
            encoding="utf-8")

    study_case("traversal region names (GeoJSON)", {}, expect="result",
               check=_names_kept("../../../../x", "/abs/name"), setup=traversal_regions)

    def roiset_traversal(folder: Path) -> None:
        with zipfile.ZipFile(folder / "RoiSet.zip", "w") as z:
            for i, n in enumerate(["../../../../y", "/abs/roi"]):
                r = roifile.ImagejRoi.frompoints([[10 + 300 * i, 10], [250 + 300 * i, 10],
                                                  [250 + 300 * i, 300], [10 + 300 * i, 300]])
                r.roitype = roifile.ROI_TYPE.POLYGON
                r.name = n
                z.writestr(f"{i:04d}.roi", r.tobytes())
        (folder / "study.yaml").write_text(
            "assays:\n  motor-neurons:\n    files: ['*.tif']\n    regions: RoiSet.zip\n",
            encoding="utf-8")

    study_case("traversal region names (RoiSet)", {}, expect="result",
               check=_names_kept("../../../../y", "/abs/roi"), setup=roiset_traversal)

    def loop(folder: Path) -> None:
        (folder / "loop").symlink_to(folder, target_is_directory=True)

    study_case("symlink loop in the study folder", {}, expect="result", check=_each_once(2),
               setup=loop)

    def qc_link(out: Path) -> None:
        # ``elsewhere`` lies outside the output folder, inside the sandbox the run checks
        elsewhere = out.parents[2] / "elsewhere"
        elsewhere.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "qc").symlink_to(elsewhere, target_is_directory=True)

    study_case("output qc/ is a symlink out of the folder", {}, expect="error",
               prepare=qc_link)
    study_case("sample sheet naming missing files", {"samples.csv": lambda p: _write_text(
        p, "file,animal,group\nnope.tif,R9,vehicle\n")}, names="samples.csv")
    study_case("sample sheet without a file column", {"samples.csv": lambda p: _write_text(
        p, "animal,group\nR1,vehicle\n")}, names="samples.csv")
    study_case("not-an-image files beside images", {"notes.txt": lambda p: _write_text(
        p, "hello"), "data.json": lambda p: _write_text(p, "{}")}, expect="result",
        check=_each_once(2))
    return cases


# --- running -----------------------------------------------------------------------------


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_case(case: Case, root: Path, timeout: float) -> Outcome:
    """Run one case in its own copy-free sandbox ``root`` (shared inputs, own output)."""
    slug = "".join(c if c.isalnum() else "_" for c in case.name)[:80]
    box = root / "runs" / slug
    out = box / "w" / "x" / "y" / "out"  # deep, so '../../../x' would land inside ``box``
    out.parent.mkdir(parents=True, exist_ok=True)
    if case.prepare is not None:
        case.prepare(out)
    before = _snapshot(box)
    env = dict(os.environ)  # warnings shown as a user sees them: some cases expect one
    argv = [sys.executable, "-m", "histoquant", *case.argv, "-o", str(out), "-q"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(case, "hang", time.perf_counter() - t0, f"> {timeout:.0f} s")
    seconds = time.perf_counter() - t0
    err = proc.stderr
    escaped = sorted(p for p in _snapshot(box) - before if not p.startswith("w/x/y/out"))
    if (root / "pwned").exists() or (root / "studies" / "pwned").exists():
        return Outcome(case, "silent wrong result", seconds, "a YAML tag ran a command", err)
    if escaped:
        return Outcome(case, "silent wrong result", seconds,
                       f"wrote outside the output folder: {escaped[:3]}", err)
    if "Traceback" in err:
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1]
        return Outcome(case, "crash", seconds, last[:160], err)
    if proc.returncode not in (0, 1, 2):
        return Outcome(case, "crash", seconds, f"exit status {proc.returncode}", err)
    errors = pd.read_csv(out / "errors.csv") if (out / "errors.csv").exists() else None
    if proc.returncode == 0:
        if case.expect == "error":
            return Outcome(case, "silent wrong result", seconds,
                           "exit 0 where an error was due", err)
        ok, detail = case.check(out) if case.check else (True, "")
        if ok and case.warns and not re.search(case.warns, err):
            ok, detail = False, f"no warning matching {case.warns!r}"
        if ok and case.good:
            ok, detail = _rows_of(*case.good)(out)
        return Outcome(case, "correct result" if ok else "silent wrong result", seconds,
                       detail, err)
    # exit 1 (an image failed) or 2 (refused up front): is the error a clear one?
    if errors is not None and len(errors):
        kinds = set(errors["error"].astype(str))
        message = " | ".join(errors["message"].astype(str))
        if not kinds <= CLEAR_TYPES:
            return Outcome(case, "crash", seconds,
                           f"unexpected {sorted(kinds - CLEAR_TYPES)}: {message[:120]}", err)
    else:
        lines = [ln for ln in err.splitlines() if ln.startswith("error:") or "error" in ln]
        if not lines:
            return Outcome(case, "crash", seconds, f"exit {proc.returncode} without a message",
                           err)
        message = " ".join(lines)
    if case.expect == "result":
        return Outcome(case, "silent wrong result", seconds,
                       f"refused a readable input: {message[:160]}", err)
    if case.names and case.names not in message and case.names not in err:
        return Outcome(case, "silent wrong result", seconds,
                       f"error does not name {case.names}: {message[:140]}", err)
    if case.says and not re.search(case.says, message):
        return Outcome(case, "silent wrong result", seconds,
                       f"refused for another reason: {message[:140]}", err)
    if case.good and proc.returncode == 1:
        ok, detail = _rows_of(*case.good)(out)
        if not ok:
            return Outcome(case, "silent wrong result", seconds, detail, err)
    return Outcome(case, "clear error", seconds, message[:160], err)


def _references(root: Path) -> dict[str, pd.DataFrame]:
    """The good images' summaries, for the checks of cases that must give the same result."""
    refs = {}
    name, flags = ASSAYS["motor-neurons"]
    out = root / "reference" / "motor-neurons"
    subprocess.run([sys.executable, "-m", "histoquant", "motor-neurons",
                    str(EXAMPLES / name), *flags, "-o", str(out), "-q"], check=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    refs["motor-neurons"] = pd.read_csv(out / "summary.csv")
    return refs


def run_corpus(root: Path, *, jobs: int = 2, timeout: float = 60.0, only: str | None = None,
               progress: bool = False) -> list[Outcome]:
    """Build the corpus under ``root`` and run every case; outcomes in corpus order."""
    cases = build_corpus(root, _references(root))
    if only:
        cases = [c for c in cases if only in c.name]
    outcomes: list[Outcome | None] = [None] * len(cases)

    def one(i: int) -> None:
        outcomes[i] = run_case(cases[i], root, timeout)
        if progress:
            o = outcomes[i]
            print(f"  {o.verdict:<20} {o.seconds:5.1f} s  {o.case.name}", file=sys.stderr,
                  flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, range(len(cases))))
    return [o for o in outcomes if o is not None]


GOOD = ("clear error", "correct result")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    ap.add_argument("--keep", type=Path, help="build the corpus here and keep it")
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("--verbose", action="store_true", help="print each case as it ends")
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="hq_bad_inputs_"))
    try:
        outcomes = run_corpus(root, jobs=args.jobs, timeout=args.timeout, only=args.only,
                              progress=args.verbose)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    width = max(len(o.case.name) for o in outcomes)
    print(f"| {'case':<{width}} | outcome | s | detail |")
    print(f"|{'-' * (width + 2)}|---|---|---|")
    for o in outcomes:
        detail = o.detail.replace("|", "/").replace("\n", " ")[:110]
        print(f"| {o.case.name:<{width}} | {o.verdict} | {o.seconds:.1f} | {detail} |")
    tally = pd.Series([o.verdict for o in outcomes]).value_counts()
    print()
    print(f"{len(outcomes)} cases: " + ", ".join(f"{n} {v}" for v, n in tally.items()))
    bad = [o for o in outcomes if o.verdict not in GOOD]
    print(f"{100 * (len(outcomes) - len(bad)) / len(outcomes):.0f} % clear errors or correct "
          f"results; {sum(o.verdict == 'crash' for o in outcomes)} crashes, "
          f"{sum(o.verdict == 'hang' for o in outcomes)} hangs")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
