"""Every assay on every shared real image, against whatever reference exists (issue #14).

Usage::

    python benchmarks/real_data.py [--out DIR] [--only SUBSTR] [--data DIR]

Reads ``../shared/data`` beside the project (skips with a message and exit 0 when it is
absent; nothing from it is ever copied into the project; ``--data`` or the environment
variable ``HISTOQUANT_SHARED_DATA`` name another folder, for a checkout that does not sit
beside it). Prints one Markdown table, one row per image × assay × setting × figure, with
the columns

``dataset, image, assay, setting, figure, value, reference, error, note, seconds``

and writes it as ``DIR/real_data.csv`` (DIR defaults to a new temporary folder), the QC
picture of every assay run as ``DIR/qc/<dataset>/<image>__<assay>__<setting>.png`` and the
atlas masks and overlays as ``DIR/atlas/``. ``--only`` keeps the jobs whose
``dataset/image`` contains the text (``--only tumour``, ``--only chat``).

``setting`` is ``defaults`` (what a new user gets, with only the pixel size and channel roles
given, as the data README says they must be) or ``documented: ...`` (a setting the tests or
docs document for that image; see the test named in the note). Every figure comes from a real
run; a run that raises becomes rows whose value is ``error: <type>: <message>``. ``seconds`` is
the wall time of the assay run the row comes from (rows of one run share it).

References, by kind (the ``note`` column names the kind):

- ``atlas``: the atlas drawings of ``spinal_cord_fluorescent``, cord and grey matter masks
  extracted by :mod:`real_data_refs.atlas` (method in its docstring); Dice of the assay's
  ``tissue`` and ``grey_matter`` masks (all sections together) against them.
- ``by-eye``: ChAT+ ventral-horn somata counted by eye (``real_data_refs/chat_counts.csv``,
  with the method and the low–high range), the data README's counts (ventral horn field: 6,
  white matter field: 0), the canal position of ``tests/test_anatomy_real.py``.
- ``manual``: hand-drawn masks and tracings (rat cortex somata, DSB nuclei, DRIVE observers,
  vesselNN label).
- ``macro``: an ImageJ macro's result (tracer masks, gfp_dapi reference_results.csv).
- ``built``: a reference built here, independent of the assay's code (the lectin tracer
  image; see :func:`lectin_reference`).
- ``invariant``: a property that must hold whatever the truth (pericyte length ≤ vessel
  length, coverage ≤ 100 %).
- ``file``: what the file itself says (OME XML, ImageJ tags, roifile).
- ``none``: no reference; the figure is reported for the record.

Errors: relative ``+x.x %`` for counts, lengths and areas; ``Dice − 1`` for Dice; an
absolute difference in percentage points (``pp``) for percentages; ``ok``/``WRONG`` for
categories.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# ../shared/data beside the project; HISTOQUANT_SHARED_DATA (or --data) points elsewhere, e.g.
# from a git worktree that does not sit beside the shared folder.
DATA = Path(os.environ.get("HISTOQUANT_SHARED_DATA") or ROOT.parent / "shared" / "data")
COLUMNS = ["dataset", "image", "assay", "setting", "figure", "value", "reference", "error",
           "note", "seconds"]

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# --------------------------------------------------------------------------- formatting


def rel_err(value: float, ref: float) -> str:
    if ref == 0:
        return f"{value - ref:+.3g} (abs)"
    return f"{100.0 * (value - ref) / ref:+.1f} %"


def pp_err(value: float, ref: float) -> str:
    return f"{value - ref:+.2f} pp"


def fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not np.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4g}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


class Rows:
    """Collects rows; one assay run's rows share its time."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, dataset, image, assay, setting, figure, value, reference="", error="",
            note="", seconds=np.nan) -> None:
        self.rows.append({"dataset": dataset, "image": image, "assay": assay,
                          "setting": setting, "figure": figure, "value": fmt(value),
                          "reference": fmt(reference), "error": error, "note": note,
                          "seconds": round(float(seconds), 1) if seconds == seconds else ""})


def timed(fn: Callable):
    """(result, None, seconds) or (None, 'error: Type: message', seconds); never raises."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
        return out, None, time.perf_counter() - t0
    except Exception as exc:  # every failure becomes a row
        msg = " ".join(str(exc).split())
        if len(msg) > 300:
            msg = msg[:300] + "…"
        return None, f"error: {type(exc).__name__}: {msg}", time.perf_counter() - t0


def fail_rows(rows: Rows, err: str, dataset, image, assay, setting, figures, secs) -> None:
    for fig, ref, note in figures:
        rows.add(dataset, image, assay, setting, fig, err, ref, "", note, secs)


def save_qc(out: Path, dataset: str, image: str, assay: str, setting: str, qc) -> None:
    if qc is None:
        return
    from PIL import Image as PILImage

    tag = re.sub(r"[^A-Za-z0-9._=-]+", "_", setting.split(":")[0])[:30]
    folder = out / "qc" / dataset.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(qc)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    PILImage.fromarray(arr).save(folder / f"{image}__{assay}__{tag}.png")


# --------------------------------------------------------------------------- jobs

Job = tuple[str, str, Callable[[Rows, Path], None]]


def spinal_cord_fluorescent() -> Iterator[Job]:
    folder = DATA / "spinal_cord_fluorescent"
    tissue_channel = {"nissl": "B", "chat": "R", "neun": "B", "th": "G"}
    for stain in ("nissl", "chat", "neun", "th"):
        for path in sorted((folder / stain).glob("*.jpg")):
            yield ("spinal_cord_fluorescent", f"{stain}/{path.stem}",
                   lambda rows, out, p=path, s=stain: _fluorescent_section(
                       rows, out, p, s, tissue_channel[s]))


def _section_px(rows_in_image: int) -> float:
    # README: ≈ 2.02 µm/px for the 1,200- and 1,070-row images, ≈ 2.30 for the 750-row ones
    return 2.30 if rows_in_image <= 800 else 2.02


def _found_masks(result, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    slide = result.extra["anatomy"]
    out = {}
    for name in ("tissue", "grey_matter"):
        m = None
        for s in slide.sections:
            mm = s.mask(name)
            m = mm if m is None else (m | mm)
        out[name] = m if m is not None else np.zeros(shape, bool)
    return out


_ATLAS_CACHE: dict[tuple, object] = {}


def _atlas_for(section_id: str, shape: tuple[int, int], out: Path):
    from PIL import Image as PILImage
    from real_data_refs.atlas import extract_atlas

    path = DATA / "spinal_cord_fluorescent" / "atlas" / f"{section_id}_atlas.png"
    if not path.exists():
        return None
    key = (section_id, shape)
    if key not in _ATLAS_CACHE:
        a = extract_atlas(path, shape)
        _ATLAS_CACHE[key] = a
        d = out / "atlas"
        d.mkdir(parents=True, exist_ok=True)
        vis = np.zeros((*shape, 3), np.uint8)
        vis[a.cord] = (90, 90, 90)
        vis[a.grey] = (230, 200, 0)
        vis[a.strokes] = (255, 255, 255)
        PILImage.fromarray(vis).save(d / f"{section_id}_atlas_masks.png")
    return _ATLAS_CACHE[key]


def _fluorescent_section(rows: Rows, out: Path, path: Path, stain: str, channel: str) -> None:
    from PIL import Image as PILImage
    from real_data_refs.atlas import atlas_qc, dice

    from histoquant.assays import anatomy, motor_neurons
    from histoquant.io import read_image

    ds, name = "spinal_cord_fluorescent", f"{stain}/{path.stem}"
    section_id = "_".join(path.stem.split("_")[:2])
    image = read_image(path)
    px = _section_px(image.shape_yx[0])
    image = image.with_pixel_size(px)
    atlas = _atlas_for(section_id, image.shape_yx, out)
    pxnote = f"{px} µm/px (README scale bars)"
    for setting, channels in (("defaults", None),
                              (f"documented: tissue={channel}", {"tissue": channel})):
        res, err, secs = timed(lambda c=channels: anatomy.run(image, channels=c))
        figs = [("n_sections", 1, "by-eye: one section per image"),
                ("ventral_direction", "down", "by-eye: README, ventral down in all")]
        if atlas is not None:
            figs += [("tissue_dice_vs_atlas", 1, "atlas: thick outline, filled"),
                     ("grey_matter_dice_vs_atlas", 1, "atlas: thin solid outline, filled")]
        if err:
            fail_rows(rows, err, ds, name, "anatomy", setting, figs, secs)
            continue
        save_qc(out, ds, name.replace("/", "_"), "anatomy", setting, res.qc)
        slide = res.extra["anatomy"]
        n = len(slide.sections)
        status = ";".join(sorted(set(res.summary["status"].astype(str))))
        rows.add(ds, name, "anatomy", setting, "n_sections", n, 1,
                 "ok" if n == 1 else f"{n - 1:+d}",
                 f"by-eye; status {status}; {pxnote}", secs)
        dirs = [s.ventral_direction for s in slide.sections]
        v = ",".join(dirs) if dirs else "none"
        conf = ",".join(f"{s.orientation_confidence:.2f}" for s in slide.sections)
        rows.add(ds, name, "anatomy", setting, "ventral_direction", v, "down",
                 "ok" if dirs and all(d == "down" for d in dirs) else "WRONG",
                 f"by-eye; confidence {conf or '-'}", secs)
        if atlas is not None:
            found = _found_masks(res, image.shape_yx)
            for fig, key, ref in (("tissue_dice_vs_atlas", "tissue", atlas.cord),
                                  ("grey_matter_dice_vs_atlas", "grey_matter", atlas.grey)):
                dv = dice(found[key], ref)
                area = found[key].sum() / max(1, ref.sum())
                rows.add(ds, name, "anatomy", setting, fig, dv, 1, f"{dv - 1:+.3f}",
                         f"atlas; area found/atlas {area:.2f}", secs)
            tag = setting.split(":")[0]
            qc = atlas_qc(np.asarray(image.data), atlas, found)
            d = out / "atlas"
            d.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(qc).save(d / f"{path.stem}__anatomy_{tag}.png")
    if stain != "chat":
        return
    _chat_as_gfp(rows, out, image, name, section_id)
    refs = pd.read_csv(HERE / "real_data_refs" / "chat_counts.csv").set_index("section")
    ref = refs.loc[section_id] if section_id in refs.index else None
    res, err, secs = timed(lambda: motor_neurons.run(image, regions="auto"))
    refval = int(ref["count"]) if ref is not None else ""
    note = (f"by-eye ChAT+ ventral-horn somata, range {ref['count_low']}–{ref['count_high']}"
            if ref is not None else "no by-eye count")
    if err:
        rows.add(ds, name, "motor-neurons", "defaults (regions=auto: ventral horns)",
                 "n_motor_neurons", "refused: " + err[len("error: "):], refval, "",
                 note + "; the assay takes Nissl brightfield only", secs)
        return
    save_qc(out, ds, name.replace("/", "_"), "motor-neurons", "defaults", res.qc)
    n = int(res.summary["n_motor_neurons"].sum())
    regions = ",".join(res.summary["region"].astype(str))
    rows.add(ds, name, "motor-neurons", "defaults (regions=auto: ventral horns)",
             "n_motor_neurons", n, refval, rel_err(n, refval) if refval != "" else "",
             f"{note}; regions {regions}; fluorescence read as brightfield RGB", secs)


def _chat_as_gfp(rows: Rows, out: Path, image, name: str, section_id: str) -> None:
    """gfp-cells on the ChAT channel: cell bodies anywhere in the section, against every
    ChAT+ soma marked by eye (``real_data_refs/chat_somata.py``)."""
    from real_data_refs.chat_somata import counts

    from histoquant.assays import gfp_cells

    ds = "spinal_cord_fluorescent"
    ref = counts().loc[section_id] if section_id in counts().index else None
    setting = "defaults (gfp=R, the ChAT channel)"
    refval = round(float(ref["estimate"])) if ref is not None else ""
    note = (f"by-eye ChAT+ somata, whole section, range {int(ref['low'])}–{int(ref['high'])}"
            if ref is not None else "no by-eye count")
    res, err, secs = timed(lambda: gfp_cells.run(image, channels={"gfp": "R"}))
    if err:
        rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", err, refval, "", note, secs)
        return
    save_qc(out, ds, name.replace("/", "_"), "gfp-cells", setting, res.qc)
    s = res.summary.iloc[0]
    n = int(s["n_gfp_cells"])
    rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", n, refval,
             rel_err(n, refval) if refval != "" else "",
             f"{note}; rejected low_contrast {s['n_rejected_low_contrast']}, punctate "
             f"{s['n_rejected_punctate']}, thin {s['n_rejected_thin']}", secs)


def spinal_cord_nissl() -> Iterator[Job]:
    folder = DATA / "spinal_cord_nissl"
    yield ("spinal_cord_nissl", "whole_section",
           lambda rows, out: _nissl_whole(rows, out, folder / "whole_section.jpg"))
    for stem, ref in (("ventral_horn_field", 6), ("white_matter_field", 0)):
        yield ("spinal_cord_nissl", stem,
               lambda rows, out, s=stem, r=ref: _nissl_field(rows, out, folder / f"{s}.jpg", r))


def _nissl_whole(rows: Rows, out: Path, path: Path) -> None:
    from histoquant.assays import anatomy
    from histoquant.io import read_image

    ds, name = "spinal_cord_nissl", "whole_section"
    image = read_image(path)
    for setting, px in (("defaults (pixel size unknown)", None),
                        ("documented: 6.7 µm/px (tests/test_anatomy_real.py)", 6.7)):
        res, err, secs = timed(lambda p=px: anatomy.run(image, pixel_size_um=p))
        figs = [("n_sections", 1, "by-eye"), ("ventral_direction", "down", "by-eye"),
                ("canal_offset_px", 0, "by-eye canal (505, 538), tests/test_anatomy_real.py")]
        if err:
            fail_rows(rows, err, ds, name, "anatomy", setting, figs, secs)
            continue
        save_qc(out, ds, name, "anatomy", setting, res.qc)
        slide = res.extra["anatomy"]
        n = len(slide.sections)
        rows.add(ds, name, "anatomy", setting, "n_sections", n, 1,
                 "ok" if n == 1 else f"{n - 1:+d}", "by-eye", secs)
        dirs = [s.ventral_direction for s in slide.sections]
        rows.add(ds, name, "anatomy", setting, "ventral_direction",
                 ",".join(dirs) or "none", "down",
                 "ok" if dirs and all(d == "down" for d in dirs) else "WRONG", "by-eye", secs)
        if slide.sections:
            s = slide.sections[0]
            off = float(np.hypot(s.canal_rc[0] - 505, s.canal_rc[1] - 538))
            rows.add(ds, name, "anatomy", setting, "canal_offset_px", off, 0, f"{off:+.1f} px",
                     f"by-eye canal (505, 538); canal_found={s.canal_found}", secs)
            frac = s.metrics.get("grey_matter_fraction", np.nan)
            rows.add(ds, name, "anatomy", setting, "grey_matter_fraction", frac,
                     "0.12–0.30", "ok" if 0.12 <= frac <= 0.30 else "outside",
                     "none (range asserted by tests/test_anatomy_real.py)", secs)


def _nissl_field(rows: Rows, out: Path, path: Path, ref: int) -> None:
    from histoquant.assays import motor_neurons
    from histoquant.io import read_image

    ds = "spinal_cord_nissl"
    image = read_image(path)
    setting = "defaults (0.5 µm/px assumed, README)"
    res, err, secs = timed(lambda: motor_neurons.run(image, pixel_size_um=0.5))
    if err:
        rows.add(ds, path.stem, "motor-neurons", setting, "n_motor_neurons", err, ref, "",
                 "by-eye (README)", secs)
        return
    save_qc(out, ds, path.stem, "motor-neurons", setting, res.qc)
    n = int(res.summary["n_motor_neurons"].sum())
    mn = res.objects[res.objects["class"] == "motor_neuron"]
    diam = ", ".join(f"{d:.0f}" for d in mn["equivalent_diameter_um"])
    rows.add(ds, path.stem, "motor-neurons", setting, "n_motor_neurons", n, ref,
             rel_err(n, ref), f"by-eye (README); diameters µm: {diam or '-'}; "
             f"{len(res.objects)} somata in all", secs)


def nissl_cortex() -> Iterator[Job]:
    for raw in sorted((DATA / "nissl_cortex" / "raw").glob("*.tif")):
        yield ("nissl_cortex", raw.stem, lambda rows, out, r=raw: _cortex(rows, out, r))


def _cortex(rows: Rows, out: Path, raw: Path) -> None:
    from histoquant.assays import motor_neurons
    from histoquant.io import read_image
    from histoquant.measure.scores import match_labels

    ds, name = "nissl_cortex", raw.stem[:22]
    image = read_image(raw)
    gt = np.asarray(read_image(DATA / "nissl_cortex" / "gt" / raw.name).data).astype(np.int32)
    n_gt = len(np.unique(gt)) - 1
    for setting, params in (
            ("defaults", None),
            ("documented: relative_prominence=0, foreground_od=0.03 "
             "(tests/test_motor_neurons_realdata.py)",
             {"relative_prominence": 0.0, "foreground_od": 0.03})):
        res, err, secs = timed(lambda p=params: motor_neurons.run(image, params=p))
        if err:
            fail_rows(rows, err, ds, name, "motor-neurons", setting,
                      [("soma_f1_iou50", 1, "manual masks"), ("n_somata", n_gt, "manual")],
                      secs)
            continue
        save_qc(out, ds, name, "motor-neurons", setting, res.qc)
        s = match_labels(gt, res.labels.astype(np.int32), 0.5)
        rows.add(ds, name, "motor-neurons", setting, "soma_f1_iou50", s.f1, 1,
                 f"{s.f1 - 1:+.3f}", f"manual masks; TP {s.true_positives} FP "
                 f"{s.false_positives} FN {s.false_negatives}", secs)
        n = int(res.labels.max() and len(np.unique(res.labels)) - 1)
        rows.add(ds, name, "motor-neurons", setting, "n_somata", n, n_gt, rel_err(n, n_gt),
                 "manual masks (every soma)", secs)


def fluorescent_nuclei() -> Iterator[Job]:
    yield ("fluorescent_nuclei", "img2d", _nuclei)


def _nuclei(rows: Rows, out: Path) -> None:
    import tifffile

    from histoquant.assays import gfp_cells
    from histoquant.io import Image
    from histoquant.measure.scores import match_labels
    from histoquant.segment.nuclei import segment_nuclei

    ds, name = "fluorescent_nuclei", "img2d"
    img = tifffile.imread(DATA / ds / "img2d.tif")
    gt = tifffile.imread(DATA / ds / "mask2d.tif")
    n_gt = len(np.unique(gt)) - 1
    setting = "documented: segment_nuclei at 0.5 µm/px (tests/test_gfp_cells.py)"
    lab, err, secs = timed(lambda: segment_nuclei(img, 0.5))
    if err:
        fail_rows(rows, err, ds, name, "gfp-cells (segment_nuclei)", setting,
                  [("nuclei_f1_iou50", 1, "manual"), ("n_nuclei", n_gt, "manual")], secs)
    else:
        s = match_labels(gt, lab, 0.5)
        rows.add(ds, name, "gfp-cells (segment_nuclei)", setting, "nuclei_f1_iou50", s.f1, 1,
                 f"{s.f1 - 1:+.3f}", f"manual masks; TP {s.true_positives} FP "
                 f"{s.false_positives} FN {s.false_negatives}", secs)
        n = len(np.unique(lab)) - 1
        rows.add(ds, name, "gfp-cells (segment_nuclei)", setting, "n_nuclei", n, n_gt,
                 rel_err(n, n_gt), "manual masks", secs)
    setting = "defaults (image as the GFP channel, 0.5 µm/px assumed)"
    res, err, secs = timed(lambda: gfp_cells.run(Image(img, pixel_size_um=0.5)))
    if err:
        rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", err, n_gt, "", "manual", secs)
        return
    save_qc(out, ds, name, "gfp-cells", setting, res.qc)
    n = int(res.summary["n_gfp_cells"].iloc[0])
    rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", n, n_gt, rel_err(n, n_gt),
             f"manual masks (nuclei, not cells: a stand-in); {len(res.objects)} objects", secs)


def gfp_dapi() -> Iterator[Job]:
    yield ("gfp_dapi", "tie2cre_mtmg_e13_5", _gfp_dapi)


def _gfp_dapi(rows: Rows, out: Path) -> None:
    from histoquant.assays import gfp_cells
    from histoquant.io import read_image

    ds, name = "gfp_dapi", "tie2cre_mtmg_e13_5"
    image = read_image(DATA / ds / f"{name}.tif")
    ref = pd.read_csv(DATA / ds / "reference_results.csv")
    n_dapi, n_gfp = int((ref["Label"] == "DAPI").sum()), int((ref["Label"] == "GFP").sum())
    macro = "macro (ImageJ, inside an unknown hand-drawn region: loose)"
    setting = "defaults (gfp=1, dapi=2)"
    res, err, secs = timed(lambda: gfp_cells.run(image, channels={"gfp": 1, "dapi": 2}))
    if err:
        rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", err, n_gfp, "", macro, secs)
    else:
        save_qc(out, ds, name, "gfp-cells", setting, res.qc)
        n = int(res.summary["n_gfp_cells"].iloc[0])
        rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", n, n_gfp, rel_err(n, n_gfp),
                 macro + f"; {image.pixel_size_um:.3f} µm/px from the file", secs)
    params = {"count_nuclei": True, "min_nucleus_diameter_um": 4.0,
              "max_nucleus_diameter_um": 12.0, "min_cell_diameter_um": 5.0,
              "max_cell_diameter_um": 25.0, "background_scale_um": 30.0}
    setting = "documented: count_nuclei, nuclei 4–12 µm (tests/test_gfp_cells.py)"
    res, err, secs = timed(lambda: gfp_cells.run(image, channels={"gfp": 1, "dapi": 2},
                                                 params=params))
    figs = [("n_nuclei", n_dapi, macro), ("n_gfp_positive_nuclei", n_gfp, macro),
            ("gfp_positive_nuclei_pct", 100 * n_gfp / n_dapi, macro)]
    if err:
        fail_rows(rows, err, ds, name, "gfp-cells", setting, figs, secs)
        return
    save_qc(out, ds, name, "gfp-cells", setting, res.qc)
    s = res.summary.iloc[0]
    rows.add(ds, name, "gfp-cells", setting, "n_nuclei", int(s["n_nuclei"]), n_dapi,
             rel_err(int(s["n_nuclei"]), n_dapi), macro + "; whole image vs region", secs)
    rows.add(ds, name, "gfp-cells", setting, "n_gfp_positive_nuclei",
             int(s["n_gfp_positive_nuclei"]), n_gfp,
             rel_err(int(s["n_gfp_positive_nuclei"]), n_gfp), macro, secs)
    pct = float(s["gfp_positive_nuclei_pct"])
    rows.add(ds, name, "gfp-cells", setting, "gfp_positive_nuclei_pct", pct,
             100 * n_gfp / n_dapi, pp_err(pct, 100 * n_gfp / n_dapi), macro, secs)


def gfp_twophoton() -> Iterator[Job]:
    for p0 in sorted((DATA / "gfp_twophoton" / "ch0").glob("*.tif")):
        plane = p0.stem[3:]  # ch0NNNN.tif / ch1NNNN.tif
        p1 = DATA / "gfp_twophoton" / "ch1" / f"ch1{plane}.tif"
        yield ("gfp_twophoton", f"plane{plane}",
               lambda rows, out, a=p0, b=p1, k=plane: _twophoton(rows, out, a, b, k))


def _twophoton(rows: Rows, out: Path, p0: Path, p1: Path, plane: str) -> None:
    import tifffile

    from histoquant.assays import gfp_cells
    from histoquant.io import Image

    ds, name = "gfp_twophoton", f"plane{plane}"
    data = np.stack([tifffile.imread(p0), tifffile.imread(p1)], axis=-1)
    image = Image(data, axes="YXC", pixel_size_um=2.0, channel_names=("ch0", "ch1"),
                  metadata={"name": name})
    setting = "defaults (gfp=ch0, reference=ch1, 2 µm/px)"
    res, err, secs = timed(lambda: gfp_cells.run(image, channels={"gfp": 0, "reference": 1}))
    figs = [("n_gfp_cells", "", "none"), ("gfp_cells_per_mm2", "", "none"),
            ("median_cell_diameter_um", "10–15", "expected cell-body size")]
    if err:
        fail_rows(rows, err, ds, name, "gfp-cells", setting, figs, secs)
        return
    save_qc(out, ds, name, "gfp-cells", setting, res.qc)
    s = res.summary.iloc[0]
    n = int(s["n_gfp_cells"])
    rows.add(ds, name, "gfp-cells", setting, "n_gfp_cells", n, "", "",
             f"none; {int(s['n_objects'])} objects, {int(s['n_rejected_autofluorescent'])} "
             "rejected autofluorescent", secs)
    rows.add(ds, name, "gfp-cells", setting, "gfp_cells_per_mm2", float(s["gfp_cells_per_mm2"]),
             "", "", "none", secs)
    cells = res.objects[res.objects["class"] == "gfp_cell"]
    if len(cells):
        d = float(cells["equivalent_diameter_um"].median())
        e = 0.0 if 10 <= d <= 15 else (d - 15 if d > 15 else d - 10)
        rows.add(ds, name, "gfp-cells", setting, "median_cell_diameter_um", d, "10–15",
                 "ok" if e == 0 else f"{e:+.1f} µm outside",
                 f"expected cell bodies; diameters 10–90th pct "
                 f"{cells['equivalent_diameter_um'].quantile(0.1):.0f}–"
                 f"{cells['equivalent_diameter_um'].quantile(0.9):.0f} µm", secs)
    else:
        rows.add(ds, name, "gfp-cells", setting, "median_cell_diameter_um", "no cell",
                 "10–15", "", "expected cell bodies", secs)


def tracer_leakage() -> Iterator[Job]:
    for jpg in sorted((DATA / "tracer_leakage" / "fov").glob("*.jpg")):
        yield ("tracer_leakage", jpg.stem, lambda rows, out, j=jpg: _tracer(rows, out, j))


def _tracer(rows: Rows, out: Path, jpg: Path) -> None:
    import tifffile
    from compare_tracer_macro import MACRO, PX

    from histoquant.assays import evans_blue
    from histoquant.io import read_image

    ds, name = "tracer_leakage", jpg.stem
    overlay = tifffile.imread(DATA / ds / "mask_macro_output" / f"{name}_DextranOverlay.tif")
    macro_pct = 100.0 * float((overlay[..., 1] > 0).mean())
    image = read_image(jpg, pixel_size_um=PX)
    ch = {"evb": "G", "vessel": "R"}
    for setting, params in (("defaults (evb=G, vessel=R, 0.69 µm/px)", None),
                            ("documented: the macro's fixed rule "
                             "(benchmarks/compare_tracer_macro.py)", MACRO)):
        res, err, secs = timed(lambda p=params: evans_blue.run(image, params=p, channels=ch))
        note = "macro masks (extravascular = G>25 and not R>30)"
        if err:
            rows.add(ds, name, "evans-blue", setting, "extravascular_area_pct", err, macro_pct,
                     "", note, secs)
            continue
        save_qc(out, ds, name, "evans-blue", setting, res.qc)
        v = float(res.summary["extravascular_area_pct"].iloc[0])
        rows.add(ds, name, "evans-blue", setting, "extravascular_area_pct", v, macro_pct,
                 f"{pp_err(v, macro_pct)} ({rel_err(v, macro_pct)})", note, secs)


def drive() -> Iterator[Job]:
    for i in range(1, 6):
        yield ("vessels/drive", f"{i:02d}_test", lambda rows, out, k=i: _drive(rows, out, k))


DRIVE_PARAMS = {"vessel_scales_um": [1.0, 2.0, 4.0], "min_vessel_area_um2": 20,
                "threshold_high": 2.5, "threshold_low": 0.5, "max_gap_um": 10,
                "edge_level_pct": 35}
VESSELNN_PARAMS = {"vessel_scales_um": [2.0, 4.0, 8.0, 16.0], "background_radius_um": 150.0,
                   "min_vessel_area_um2": 100.0, "max_hole_um2": 500.0}


def _drive(rows: Rows, out: Path, i: int) -> None:
    from PIL import Image as PILImage

    from histoquant.assays import vasculature
    from histoquant.io import Image
    from histoquant.measure.skeleton import trace_skeleton

    ds, name = "vessels/drive", f"{i:02d}_test"
    folder = DATA / "vessels" / "drive"
    rgb = np.asarray(PILImage.open(folder / "images" / f"{i:02d}_test.tif"))
    green_inverted = 255 - rgb[..., 1].astype(np.float32)
    fov = np.asarray(PILImage.open(folder / "fov" / f"{i:02d}_test_mask.gif")) > 0
    m1 = np.asarray(PILImage.open(folder / "manual1" / f"{i:02d}_manual1.gif")) > 0
    m2 = np.asarray(PILImage.open(folder / "manual2" / f"{i:02d}_manual2.gif")) > 0
    l1 = trace_skeleton(m1, 1.0).length_in(fov)
    l2 = trace_skeleton(m2, 1.0).length_in(fov)
    image = Image(green_inverted, pixel_size_um=1.0, metadata={"name": name})
    for setting, params in (("defaults (inverted green, px=1, FOV region)", None),
                            ("documented: DRIVE_PARAMS (tests/test_vasculature.py)",
                             DRIVE_PARAMS)):
        res, err, secs = timed(lambda p=params: vasculature.run(image, regions={"fov": fov},
                                                                params=p))
        figs = [("vessel_length_px_vs_manual1", l1, "manual (observer 1)"),
                ("vessel_length_px_vs_manual2", l2, "manual (observer 2)")]
        if err:
            fail_rows(rows, err, ds, name, "vasculature", setting, figs, secs)
            continue
        save_qc(out, ds, name, "vasculature", setting, res.qc)
        v = float(res.summary["vessel_length_um"].iloc[0])
        for fig, ref, note in figs:
            rows.add(ds, name, "vasculature", setting, fig, v, ref, rel_err(v, ref),
                     note + f"; observers differ {rel_err(l2, l1)}", secs)


def vesselnn() -> Iterator[Job]:
    yield ("vessels/vesselnn", "burgess2014", _vesselnn)


def _vesselnn(rows: Rows, out: Path) -> None:
    import tifffile

    from histoquant.assays import vasculature
    from histoquant.io import Image
    from histoquant.measure.skeleton import trace_skeleton

    ds, name = "vessels/vesselnn", "burgess2014"
    folder = DATA / "vessels" / "vesselnn"
    stack = tifffile.imread(folder / "burgess2014_noisySparseVessels_BM4D_denoised.tif")
    label = tifffile.imread(folder / "burgess2014_noisySparseVessels_labels_v1.tif").max(0) > 0
    ref = trace_skeleton(label, 0.994).total_length_um
    image = Image(stack, axes="ZYX", pixel_size_um=0.994, metadata={"name": name})
    for setting, params in (("defaults (0.994 µm/px, max projection)", None),
                            ("documented: large-vessel scales (tests/test_vasculature.py)",
                             VESSELNN_PARAMS)):
        res, err, secs = timed(lambda p=params: vasculature.run(image, params=p))
        note = "manual label, max-projected and skeletonised (loose: covers 56 % of field)"
        if err:
            rows.add(ds, name, "vasculature", setting, "vessel_length_um", err, ref, "", note,
                     secs)
            continue
        save_qc(out, ds, name, "vasculature", setting, res.qc)
        v = float(res.summary["vessel_length_um"].iloc[0])
        rows.add(ds, name, "vasculature", setting, "vessel_length_um", v, ref, rel_err(v, ref),
                 note, secs)


def tumour() -> Iterator[Job]:
    folder = DATA / "vessels" / "tumour_cd31_ng2"
    yield ("vessels/tumour_cd31_ng2", "cd31_ng2_1",
           lambda rows, out: _cd31_ng2(rows, out, folder / "cd31_ng2_1.jpg"))
    yield ("vessels/tumour_cd31_ng2", "lectin_cd31_1",
           lambda rows, out: _lectin(rows, out, folder / "lectin_cd31_1.jpg"))


def _cd31_ng2(rows: Rows, out: Path, path: Path) -> None:
    from histoquant.assays import vasculature
    from histoquant.io import read_image

    ds, name = "vessels/tumour_cd31_ng2", "cd31_ng2_1"
    image = read_image(path, pixel_size_um=0.65)
    setting = "defaults (endothelium=G, pericyte=R, dapi=B, 0.65 µm/px)"
    res, err, secs = timed(lambda: vasculature.run(
        image, channels={"endothelium": "G", "pericyte": "R", "dapi": "B"}))
    if err:
        fail_rows(rows, err, ds, name, "vasculature", setting,
                  [("vessel_length_um", "", "none"),
                   ("pericyte_length_minus_vessel_length_um", "≤ 0", "invariant")], secs)
        return
    save_qc(out, ds, name, "vasculature", setting, res.qc)
    s = res.summary.iloc[0]
    vl, pl = float(s["vessel_length_um"]), float(s["pericyte_length_um"])
    add = lambda fig, v, ref, e, note: rows.add(ds, name, "vasculature", setting, fig, v,  # noqa: E731
                                                ref, e, note, secs)
    add("vessel_length_um", vl, "", "", "none (deliberately low-quality image)")
    add("pericyte_length_um", pl, f"≤ {vl:.0f}",
        "ok" if pl <= vl else f"excess {pl - vl:+.0f} µm ({rel_err(pl, vl)} of vessel)",
        "invariant: pericytes lie on vessels, so their length cannot exceed the vessels'")
    cov = float(s["pericyte_coverage_length_pct"])
    trace = res.extra["trace"]
    rc = trace.entry_rc
    covered = res.masks.get("covered_skeleton")
    raw = float("nan")
    if covered is not None and len(rc):
        on = covered[rc[:, 0], rc[:, 1]]
        raw = 100.0 * float(trace.entry_length_um[on].sum()) / float(trace.entry_length_um.sum())
    add("pericyte_coverage_length_pct", cov, "≤ 100",
        "ok" if cov <= 100 else f"{cov - 100:+.1f} pp",
        f"invariant; recomputed from the covered skeleton entries: {raw:.1f} %")
    ends = int(s["n_vessel_ends"])
    add("free_ends_per_mm", ends / (vl / 1000.0) if vl else float("nan"), "", "",
        f"none; n_vessel_ends {ends} (extra['free_ends_um']: {len(res.extra['free_ends_um'])}) "
        f"per mm of vessel length; a real network has few free ends, fragmented tracing many")
    add("n_branch_points", int(s["n_branch_points"]), "", "", "none")
    add("n_vessel_segments", int(s["n_vessel_segments"]), "", "", "none")
    add("pericyte_coverage_area_pct", float(s["pericyte_coverage_area_pct"]), "≤ 100",
        "ok" if float(s["pericyte_coverage_area_pct"]) <= 100 else "over", "invariant")
    if "n_pericyte_bodies" in s and s["n_pericyte_bodies"] == s["n_pericyte_bodies"]:
        add("n_pericyte_bodies", int(s["n_pericyte_bodies"]), "", "", "none")


def lectin_reference(rgb: np.ndarray, px: float) -> dict:
    """An extravascular-tracer reference for ``lectin_cd31_1.jpg``, independent of the assay.

    G = perfused lectin (the tracer), R = CD31 (endothelium), B = DAPI.

    1. **Detection level of each channel from its clear background.** The background is the
       90 % dimmest pixels of the channel (vessels cover ≈ 5 % of the field, so the upper
       decile holds them and their glow); the level is that background's mean + 5 SD
       (G: ≈ 12 of 255, with 45 % exact zeros; R: ≈ 73). Tracer = G above its level;
       vessel = R above its level, opened by a 3 × 3 square (single noisy pixels).
    2. **Margin.** A wide-field image of a bright vessel glows around it: the mean G in
       1.3 µm rings around the CD31 mask falls from ≈ 25 at the wall to background over a
       few µm. The margin is the distance of the first ring whose mean G is below the tracer
       level (≈ 4 µm here): tracer nearer the CD31 mask than that cannot be told from the
       vessel's own glow, and counts as intravascular. (Margin 0 would give ≈ 6.6 % of the
       image, 10 µm ≈ 0.9 %: the figure is sensitive to it, which the note reports.)
    3. **Extravascular** = tracer and not within the margin of the vessel mask; reported as
       % of the image and % of the tracer area. Lectin-bright profiles with little CD31
       (they exist in this field) count as extravascular: the reference does not guess.
    """
    from scipy import ndimage as ndi

    g = rgb[..., 1].astype(np.float32)
    r = rgb[..., 0].astype(np.float32)

    def level(v: np.ndarray) -> float:
        bg = v[v <= np.percentile(v, 90)]
        return float(bg.mean() + 5 * bg.std())

    tg, tr = level(g), level(r)
    tracer = g > tg
    vessel = ndi.binary_opening(r > tr, np.ones((3, 3), bool))
    dist = ndi.distance_transform_edt(~vessel)
    ring = 2  # px per ring (1.3 µm)
    margin_px = 0
    for k in range(0, 60, ring):
        sel = (dist > k) & (dist <= k + ring)
        if sel.any() and float(g[sel].mean()) < tg:
            margin_px = k
            break
    zone = dist <= margin_px
    extra = tracer & ~zone
    sens = {}
    for m_um in (0.0, 10.0):
        z = dist <= round(m_um / px) if m_um else vessel
        sens[m_um] = 100.0 * float((tracer & ~z).mean())
    return {"tracer_level": tg, "vessel_level": tr, "margin_um": margin_px * px,
            "extravascular_area_pct": 100.0 * float(extra.mean()),
            "extravascular_fraction_pct": 100.0 * float(extra.sum()) / max(1, int(tracer.sum())),
            "tracer_area_pct": 100.0 * float(tracer.mean()), "sensitivity": sens}


def _lectin(rows: Rows, out: Path, path: Path) -> None:
    from histoquant.assays import evans_blue
    from histoquant.io import read_image

    ds, name = "vessels/tumour_cd31_ng2", "lectin_cd31_1"
    image = read_image(path, pixel_size_um=0.65)
    ref = lectin_reference(np.asarray(image.data), 0.65)
    note = (f"built: G>{ref['tracer_level']:.0f} and not within {ref['margin_um']:.1f} µm of "
            f"CD31 R>{ref['vessel_level']:.0f} (tracer {ref['tracer_area_pct']:.1f} % of image;"
            f" margin 0 → {ref['sensitivity'][0.0]:.1f} %, 10 µm → "
            f"{ref['sensitivity'][10.0]:.1f} %)")
    for setting, params in (("defaults (evb=G, vessel=R, 0.65 µm/px)", None),
                            ("flatfield=none (what the defaults' error message advises)",
                             {"flatfield": "none"})):
        res, err, secs = timed(lambda p=params: evans_blue.run(
            image, params=p, channels={"evb": "G", "vessel": "R"}))
        if err:
            fail_rows(rows, err, ds, name, "evans-blue", setting,
                      [("extravascular_area_pct", ref["extravascular_area_pct"], note),
                       ("extravascular_fraction_pct", ref["extravascular_fraction_pct"], note)],
                      secs)
            continue
        save_qc(out, ds, name, "evans-blue", setting, res.qc)
        s = res.summary.iloc[0]
        for fig in ("extravascular_area_pct", "extravascular_fraction_pct"):
            v = float(s[fig])
            rows.add(ds, name, "evans-blue", setting, fig, v, ref[fig], pp_err(v, ref[fig]),
                     note, secs)
        v = float(s["evb_positive_area_pct"])
        rows.add(ds, name, "evans-blue", setting, "evb_positive_area_pct", v,
                 ref["tracer_area_pct"], pp_err(v, ref["tracer_area_pct"]),
                 "built: tracer = G above background mean + 5 SD", secs)


def readers() -> Iterator[Job]:
    folder = DATA / "readers"
    for p in [*sorted((folder / "ome").glob("*.tif")), folder / "roiset" / "EdU.tif"]:
        yield ("readers", p.name, lambda rows, out, q=p: _read_image_row(rows, q))
    for p in sorted((folder / "roiset").glob("*.zip")):
        yield ("readers", p.name, lambda rows, out, q=p: _read_roiset(rows, q))
    for p in sorted((folder / "geojson").glob("*.geojson")):
        yield ("readers", p.name, lambda rows, out, q=p: _read_geojson(rows, q))


def _file_says(path: Path) -> tuple[str, str, str]:
    """(axes and shape, pixel size in µm, source) according to tifffile and the file's tags."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        s = tif.series[0]
        ome = tif.ome_metadata or ""
        ij = tif.imagej_metadata or {}
        page = tif.pages[0]
        shape = f"{s.axes} {tuple(s.shape)}"
        m = re.search(r'PhysicalSizeX="([^"]+)"', ome)
        if m:
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome)
            sizes = dict(re.findall(r'Size([CZT])="(\d+)"', ome))
            return (shape + f"; OME SizeC/Z/T {sizes.get('C')}/{sizes.get('Z')}/{sizes.get('T')}",
                    m.group(1), f"OME XML ({unit.group(1) if unit else 'µm'})")
        xr = page.tags.get("XResolution")
        if xr:
            num, den = xr.value
            per_unit = num / den
            unit = str(ij.get("unit", "")).encode().decode("unicode_escape")
            factor = {"mm": 1000.0, "µm": 1.0, "um": 1.0, "micron": 1.0}.get(unit, np.nan)
            return shape, fmt(factor / per_unit), f"ImageJ unit {unit!r}, {per_unit:g} px/unit"
        return shape, "", "none"


def _read_image_row(rows: Rows, path: Path) -> None:
    from histoquant.io import read_image

    ds, name = "readers", path.name
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Grab(level=logging.WARNING)
    hq = logging.getLogger("histoquant")
    # main() quiets the root logger to ERROR; the reader's warnings are what is checked here
    old_level = hq.level
    hq.setLevel(logging.WARNING)
    hq.addHandler(handler)
    caught: list = []
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_image(path)
        err = None
    except Exception as exc:
        err = f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    finally:
        hq.removeHandler(handler)
        hq.setLevel(old_level)
    secs = time.perf_counter() - t0
    shape_ref, px_ref, px_src = _file_says(path)
    msgs = records + [str(w.message) for w in caught]
    said = ("; warned: " + " | ".join(m[:160] for m in msgs)) if msgs else "; no warning"
    if err:
        fail_rows(rows, err, ds, name, "read_image", "defaults",
                  [("axes_shape", shape_ref, "file"), ("pixel_size_um", px_ref, "file")], secs)
        return
    got = f"{image.axes} {tuple(image.data.shape)} {image.dtype}"
    if image.rgb:
        got += " rgb"
    rows.add(ds, name, "read_image", "defaults", "axes_shape", got, shape_ref, "",
             "file (tifffile series; histoquant puts channels last)", secs)
    pxv = image.pixel_size_um
    if px_ref not in ("", "nan"):
        e = rel_err(pxv, float(px_ref)) if pxv else "missing"
    else:
        e = ""
    rows.add(ds, name, "read_image", "defaults", "pixel_size_um",
             fmt(pxv) if pxv else "None", px_ref, e, f"file: {px_src}{said}", secs)
    if pxv and pxv > 50:
        # a calibration in mm (or a wrong unit) gives an implausible microscope pixel size:
        # the reader is expected to say so rather than pass it on silently
        rows.add(ds, name, "read_image", "defaults", "warns_on_implausible_pixel_size",
                 bool(msgs), True, "ok" if msgs else "no warning",
                 f"expected: a warning ({pxv:.1f} µm/px is not a microscope pixel)", secs)


def _imagej_union(path: Path, shape: tuple[int, int]) -> tuple[int, int, int]:
    """(number of ROIs, number of distinct names, union area in px) as ImageJ fills them:
    each ROI's polygon(s) rasterised at pixel centres (even–odd for composite ROIs)."""
    import roifile
    from skimage.draw import polygon

    rois = roifile.roiread(str(path))
    rois = rois if isinstance(rois, list) else [rois]
    union = np.zeros(shape, bool)
    for roi in rois:
        paths = roi.coordinates(multi=True)
        paths = paths if isinstance(paths, list) else [paths]
        m = np.zeros(shape, bool)
        for p in paths:
            p = np.asarray(p, float)
            if len(p) < 3:
                continue
            rr, cc = polygon(p[:, 1] - 0.5, p[:, 0] - 0.5, shape)
            sub = np.zeros(shape, bool)
            sub[rr, cc] = True
            m ^= sub
        union |= m
    return len(rois), len({r.name for r in rois}), int(union.sum())


def _read_roiset(rows: Rows, path: Path) -> None:
    from histoquant.rois import normalize_regions, read_regions

    ds, name = "readers", path.name
    canvas = path.parent / "EdU.tif"
    if path.name.startswith("EduROIs") and canvas.exists():
        from histoquant.io import read_image

        shape = read_image(canvas).shape_yx
        shape_note = "EdU.tif canvas"
    else:
        import roifile

        rois = roifile.roiread(str(path))
        rois = rois if isinstance(rois, list) else [rois]
        bottom = max(int(r.bottom) for r in rois) + 2
        right = max(int(r.right) for r in rois) + 2
        shape = (bottom, right)
        shape_note = f"canvas {shape} (the ROIs' extent; no image)"
    n_rois, n_names, ref_area = _imagej_union(path, shape)
    regions, err, secs = timed(lambda: read_regions(path))
    if err:
        fail_rows(rows, err, ds, name, "read_regions", "defaults",
                  [("n_regions", n_names, "file (roifile)"),
                   ("union_area_px", ref_area, "file (roifile, rasterised)")], secs)
        return
    masks = normalize_regions(regions, shape)
    union = np.zeros(shape, bool)
    for m in masks.values():
        union |= m
    rows.add(ds, name, "read_regions", "defaults", "n_regions", len(regions), n_names,
             rel_err(len(regions), n_names),
             f"file (roifile): {n_rois} ROIs, {n_names} distinct names (same name = one "
             "region)", secs)
    area = int(union.sum())
    rows.add(ds, name, "read_regions", "defaults", "union_area_px", area, ref_area,
             rel_err(area, ref_area),
             f"file (roifile polygons filled at pixel centres, even–odd); {shape_note}", secs)


def _read_geojson(rows: Rows, path: Path) -> None:
    from histoquant.rois import normalize_regions, read_regions

    ds, name = "readers", path.name
    data = json.loads(path.read_text(encoding="utf-8"))
    feats = data["features"] if isinstance(data, dict) else data
    kinds = [f.get("geometry", {}).get("type") for f in feats]
    n_area = sum(k in ("Polygon", "MultiPolygon") for k in kinds)
    n_pts = sum(k in ("Point", "MultiPoint") for k in kinds)
    note = (f"file: {len(feats)} features: {n_area} Polygon/MultiPolygon, {n_pts} points "
            "(points carry no area: expected skipped, not fatal)")
    regions, err, secs = timed(lambda: read_regions(path))
    if err:
        rows.add(ds, name, "read_regions", "defaults", "n_regions", err, n_area, "", note, secs)
        return
    rows.add(ds, name, "read_regions", "defaults", "n_regions", len(regions), n_area,
             rel_err(len(regions), n_area), note, secs)
    allpts = np.concatenate([p.exterior for r in regions for p in r.to_polygons()])
    shape = (int(allpts[:, 0].max()) + 2, int(allpts[:, 1].max()) + 2)
    masks = normalize_regions(regions, shape)
    rows.add(ds, name, "read_regions", "defaults", "total_area_px",
             int(sum(int(m.sum()) for m in masks.values())), "", "", "none", secs)


GROUPS: list[Callable[[], Iterator[Job]]] = [
    spinal_cord_fluorescent, spinal_cord_nissl, nissl_cortex, fluorescent_nuclei, gfp_dapi,
    gfp_twophoton, tracer_leakage, drive, vesselnn, tumour, readers]


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(str(r[c]).replace("|", "/").replace("\n", " ")
                                     for c in cols) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new temporary folder)")
    parser.add_argument("--only", default=None,
                        help="run only the jobs whose dataset/image contains this text")
    parser.add_argument("--data", type=Path, default=None,
                        help="the shared data folder (default ../shared/data beside the "
                             "project, or $HISTOQUANT_SHARED_DATA)")
    args = parser.parse_args(argv)
    global DATA
    if args.data is not None:
        DATA = args.data
    if not DATA.is_dir():
        print(f"{DATA} is absent (real images are not distributed); nothing to measure")
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="histoquant_real_data_"))
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.ERROR)
    rows = Rows()
    t_all = time.perf_counter()
    for group in GROUPS:
        try:
            jobs = list(group())
        except Exception as exc:  # a missing folder must not stop the rest
            rows.add(group.__name__, "-", "-", "-", "-", f"error: {type(exc).__name__}: {exc}")
            continue
        for dataset, image, job in jobs:
            if args.only and args.only.lower() not in f"{dataset}/{image}".lower():
                continue
            print(f"[{time.perf_counter() - t_all:6.0f} s] {dataset}/{image}", file=sys.stderr,
                  flush=True)
            n0 = len(rows.rows)
            t0 = time.perf_counter()
            try:
                job(rows, out)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                msg = " ".join(str(exc).split())[:300]
                rows.add(dataset, image, "-", "-", "job", f"error: {type(exc).__name__}: {msg}",
                         seconds=time.perf_counter() - t0)
            if len(rows.rows) == n0:
                rows.add(dataset, image, "-", "-", "job", "no row produced")
    df = pd.DataFrame(rows.rows, columns=COLUMNS)
    df.to_csv(out / "real_data.csv", index=False)
    print(to_markdown(df))
    print(f"\n{len(df)} rows in {time.perf_counter() - t_all:.0f} s; CSV, QC pictures and "
          f"atlas masks in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
