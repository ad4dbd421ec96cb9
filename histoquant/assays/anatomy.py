"""Anatomy assay: the cord sections of an image, their regions, orientation and quality.

One summary row per section (or one row saying why none was found); one objects row per
region of each section; the label image codes ``10 * section + region code``; the regions
themselves (``extra["regions"]``) are written by the CLI as ``regions/<stem>.geojson`` and
``regions/<stem>.zip`` for checking and correcting in QuPath or ImageJ.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..anatomy import REGION_NAMES, AnatomyParams, anatomy_overlay, find_sections
from ..anatomy.learned import BACKGROUND_NAMES, GREY_MATTER_NAMES
from ..anatomy.regions import REGION_CODES, SectionAnatomy
from ..anatomy.sections import SlideAnatomy
from ..io.image import Image, as_image
from ..learn.foreground import requires_class
from ..results import AssayResult
from .base import AssaySpec, ChannelRole, ModelStep, Progress, resolve_channels, resolve_params
from .contract import Measure

__all__ = ["AnatomyParams", "run", "SPEC", "SUMMARY_COLUMNS"]

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "image", "section", "status", "flags", "quality_score", "orientation_angle_deg",
    "ventral_direction", "orientation_confidence", "orientation_source", "mirrored",
    "canal_found", "canal_x_um", "canal_y_um", "tissue_area_mm2", "grey_matter_area_mm2",
    "white_matter_area_mm2", "grey_matter_fraction", "ventral_horn_left_area_mm2",
    "ventral_horn_right_area_mm2", "dorsal_horn_left_area_mm2", "dorsal_horn_right_area_mm2",
    "width_um", "height_um", "symmetry", "pixel_size_um", "working_pixel_size_um",
)


def run(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
        channels: Mapping[str, str | int] | None = None, pixel_size_um: float | None = None,
        progress: Progress | None = None, model: Any = None) -> AssayResult:
    """Find every cord cross-section and its regions.

    Parameters
    ----------
    image : Image or ndarray
        Brightfield Nissl RGB, or fluorescence with tissue contrast (role ``tissue``).
    regions : None
        Not used: the anatomy finds the regions (a warning is recorded if given).
    params : AnatomyParams, dict or path, optional
        See :class:`~histoquant.anatomy.AnatomyParams` (``ventral``, ``mirrored``, ...).
    channels : mapping, optional
        ``{"tissue": name or index}`` for fluorescence; RGB uses optical density.
    pixel_size_um : float, optional
        Pixel size override. Without one the anatomy still runs; areas are NaN.
    progress : callable, optional
        ``progress(fraction, message)``.
    model : PixelClassifier, optional
        A pixel classifier (``histoquant train pixels``, ``--model m.hqm``) with a class
        named ``grey_matter`` (or ``gray_matter``, ``gm``): its tissue (every class but
        ``background``) and grey matter replace the anatomy's thresholds, and the rest
        (cleaning, sections, horns, orientation, scores, outlines) runs on them unchanged
        (:mod:`histoquant.anatomy.learned`). ``extra["engine"]`` then says
        ``"classifier"`` and ``extra["model"]`` records the model (classes, manifest hash).

    Returns
    -------
    AssayResult
        Never raises for an image without tissue: the summary then has one row whose
        ``status`` says why (``no_tissue``, ``no_section``).
    """
    image = as_image(image, pixel_size_um)
    p = resolve_params(AnatomyParams, params)
    warnings: list[str] = []
    if regions is not None:
        warnings.append("regions given to the anatomy assay are ignored: it finds them")
    roles = resolve_channels(image, SPEC.channel_roles, channels)
    channel = roles.get("tissue")
    slide = find_sections(image, p, channel=channel, progress=progress, model=model)
    warnings.extend(slide.warnings)
    px = slide.pixel_size_um
    rows = []
    objects = []
    for s in slide.sections:
        m = s.metrics
        canal_y, canal_x = s.canal_rc
        rows.append({
            "image": image.name,
            "section": s.index,
            "status": s.status,
            "flags": ";".join(s.flags),
            "quality_score": round(s.quality, 4),
            "orientation_angle_deg": round(s.angle_deg, 2),
            "ventral_direction": s.ventral_direction,
            "orientation_confidence": round(s.orientation_confidence, 4),
            "orientation_source": s.orientation_source,
            "mirrored": s.mirrored,
            "canal_found": s.canal_found,
            "canal_x_um": canal_x * px if px else np.nan,
            "canal_y_um": canal_y * px if px else np.nan,
            **{k: m[k] for k in SUMMARY_COLUMNS if k in m},
            "pixel_size_um": px if px else np.nan,
            "working_pixel_size_um": slide.working_pixel_size_um if px else np.nan,
        })
        if s.flags:
            warnings.append(f"section {s.index}: {', '.join(s.flags)} "
                            f"(quality {s.quality:.2f})")
        objects.extend(_region_rows(image.name, s, slide, px))
    if not slide.sections:
        rows.append({"image": image.name, "section": pd.NA, "status": slide.status,
                     "flags": slide.status, "quality_score": 0.0,
                     "pixel_size_um": px if px else np.nan})
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["section"] = summary["section"].astype("Int64")
    obj = pd.DataFrame(objects, columns=["image", "section", "region", "label", "area_mm2",
                                         "centroid_x_um", "centroid_y_um"])
    labels = slide.label_image()
    qc = anatomy_overlay(image, slide, p.qc_max_size_px)
    return AssayResult(
        assay=SPEC.name, image=image.name, objects=obj, summary=summary, labels=labels,
        masks={}, qc=qc, params=p.to_dict(), pixel_size_um=px, warnings=warnings,
        extra={"regions": slide.regions(), "anatomy": slide,
               "channel": slide.working.channel,
               "engine": "classical" if slide.classifier is None else "classifier",
               **({} if slide.classifier is None else {"model": slide.classifier})})


def _region_rows(name: str, s: SectionAnatomy, slide: SlideAnatomy, px: float | None,
                 ) -> list[dict]:
    out = []
    f = slide.factor
    area_px = (px * f / 1000.0) ** 2 if px else np.nan
    for region in REGION_NAMES:
        m = s.working_mask(region)
        n = int(m.sum())
        if not n:
            continue
        rr, cc = np.nonzero(m)
        cy = (rr.mean() + s.offset[0]) * f + (f - 1) / 2.0
        cx = (cc.mean() + s.offset[1]) * f + (f - 1) / 2.0
        codes = REGION_CODES[region]
        out.append({
            "image": name, "section": s.index, "region": slide.key(region, s),
            "label": 10 * s.index + codes[0] if len(codes) == 1 else 0,
            "area_mm2": n * area_px, "centroid_x_um": cx * px if px else np.nan,
            "centroid_y_um": cy * px if px else np.nan,
        })
    return out


SPEC = AssaySpec(
    name="anatomy",
    title="Spinal cord anatomy: sections, grey/white matter, canal, horns, orientation",
    params_cls=AnatomyParams,
    run=run,
    channel_roles=(ChannelRole("tissue", required=False,
                               help="a fluorescence channel with tissue contrast (DAPI, "
                                    "autofluorescence, a vessel marker); RGB brightfield "
                                    "uses optical density"),),
    rgb=True,
    auto_regions=(),
    model_steps=(ModelStep(
        "pixels", "the tissue and grey/white matter thresholds: tissue = every class but "
        f"{BACKGROUND_NAMES[0]}, grey matter = the class "
        f"{' / '.join(GREY_MATTER_NAMES)}; the cleaning, sections, horns, orientation and "
        "scores run on those masks unchanged", check=requires_class(*GREY_MATTER_NAMES)),),
    measures=(
        Measure("status", "", "what was found (ok, no_tissue, ...)", tiles="join",
                animal="none"),
        Measure("flags", "", "problems found with the section", tiles="join", animal="none"),
        Measure("quality_score", "", "0-1 confidence in the section's outline and regions",
                tiles="min", animal="none"),
        Measure("orientation_angle_deg", "°", "rotation that puts the ventral side down",
                tiles="first", animal="none"),
        Measure("ventral_direction", "", "where the ventral side lies in the image",
                tiles="first", animal="none"),
        Measure("orientation_confidence", "", "0-1 confidence in the orientation",
                tiles="min", animal="none"),
        Measure("orientation_source", "", "the cue that set the orientation", tiles="first",
                animal="none"),
        Measure("mirrored", "", "mounted face-down", tiles="first", animal="none"),
        Measure("canal_found", "", "the central canal was found", tiles="first",
                animal="none"),
        Measure("canal_x_um", "µm", "central canal position", tiles="first", animal="none"),
        Measure("canal_y_um", "µm", "central canal position", tiles="first", animal="none"),
        Measure("tissue_area_mm2", "mm²", "section area", animal="mean"),
        Measure("grey_matter_area_mm2", "mm²", "grey matter area", animal="mean"),
        Measure("white_matter_area_mm2", "mm²", "white matter area", animal="mean"),
        Measure("grey_matter_fraction", "", "grey matter / section area", tiles="ratio",
                of=("grey_matter_area_mm2", "tissue_area_mm2")),
        Measure("*_horn_*_area_mm2", "mm²", "area of one horn", animal="mean"),
        Measure("width_um", "µm", "section width (left-right)", tiles="max"),
        Measure("height_um", "µm", "section height (dorsal-ventral)", tiles="max"),
        Measure("symmetry", "", "left-right symmetry of the outline (1 = mirror image)",
                tiles="min", animal="none"),
        Measure("pixel_size_um", "µm", "pixel size of the image", tiles="first",
                animal="none"),
        Measure("working_pixel_size_um", "µm", "pixel size anatomy worked at",
                tiles="first", animal="none"),
    ),
)
