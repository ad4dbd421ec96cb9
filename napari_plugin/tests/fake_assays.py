"""Two small assays with the registry's interface, for testing the plugin's plumbing.

``fake-count`` (RGB): dark objects counted per region. ``fake-fluo`` (two channel roles, one
optional): mean intensity and bright area per region. They use histoquant's own input helpers,
so they behave like real assays at the edges (pixel size required, regions, channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from histoquant.assays.base import (
    AssaySpec,
    ChannelRole,
    prepare_image,
    region_table,
    resolve_channels,
    resolve_params,
    resolve_regions,
)
from histoquant.assays.contract import REGION_AREA, Measure
from histoquant.params import AssayParams, param
from histoquant.results import AssayResult


@dataclass(frozen=True)
class CountParams(AssayParams):
    min_area_um2: float = param(20.0, unit="µm²", help="objects smaller than this are noise",
                                minimum=0.0)
    darkness: float = param(0.25, help="fraction below white that counts as dark",
                            minimum=0.0, maximum=1.0)
    method: str = param("mean", choices=("mean", "min"), help="how RGB becomes grey")
    fill_holes: bool = param(True, help="fill holes in objects")


def run_count(image, regions=None, params=None, *, channels=None, pixel_size_um=None,
              progress=None):
    from skimage.measure import label, regionprops_table

    p = resolve_params(CountParams, params)
    image = prepare_image(image, pixel_size_um)
    rgb = image.require_rgb().astype(float)
    px = image.pixel_size_um
    masks = resolve_regions(image, regions)
    if progress:
        progress(0.2, "thresholding")
    grey = rgb.mean(axis=-1) if p.method == "mean" else rgb.min(axis=-1)
    dark = grey < 255 * (1 - p.darkness)
    lab = label(dark)
    props = pd.DataFrame(regionprops_table(lab, properties=("label", "area", "centroid")))
    props["area_um2"] = props.pop("area") * px * px
    keep = props["area_um2"] >= p.min_area_um2
    lab[~np.isin(lab, props.loc[keep, "label"])] = 0
    props = props[keep]
    rows = []
    for _, row in props.iterrows():
        r, c = round(row["centroid-0"]), round(row["centroid-1"])
        for name, m in masks.items():
            if m[r, c]:
                rows.append({"image": image.name, "region": name, "label": int(row["label"]),
                             "centroid_y_um": row["centroid-0"] * px,
                             "centroid_x_um": row["centroid-1"] * px,
                             "area_um2": row["area_um2"]})
    objects = pd.DataFrame(rows, columns=["image", "region", "label", "centroid_y_um",
                                          "centroid_x_um", "area_um2"])
    summary = region_table(image.name, masks, px)
    summary["n_objects"] = [int((objects["region"] == n).sum()) for n in masks]
    summary["density_per_mm2"] = summary["n_objects"] / summary["region_area_mm2"]
    if progress:
        progress(1.0, "done")
    return AssayResult("fake-count", image.name, objects, summary, labels=lab,
                       params=p.to_dict(), pixel_size_um=px)


@dataclass(frozen=True)
class FluoParams(AssayParams):
    threshold: float = param(500.0, help="intensity above which a pixel is positive")
    offset: float | None = param(None, help="value subtracted first; none = 0")


def run_fluo(image, regions=None, params=None, *, channels=None, pixel_size_um=None,
             progress=None):
    p = resolve_params(FluoParams, params)
    image = prepare_image(image, pixel_size_um)
    idx = resolve_channels(image, FLUO.channel_roles, channels)
    signal = image.channel(idx["signal"]) - (p.offset or 0.0)
    px = image.pixel_size_um
    masks = resolve_regions(image, regions)
    positive = signal > p.threshold
    summary = region_table(image.name, masks, px)
    summary["mean_signal"] = [float(signal[m].mean()) for m in masks.values()]
    summary["positive_area_um2"] = [float((positive & m).sum()) * px * px
                                    for m in masks.values()]
    if "reference" in idx:
        ref = image.channel(idx["reference"])
        summary["mean_reference"] = [float(ref[m].mean()) for m in masks.values()]
    return AssayResult("fake-fluo", image.name, pd.DataFrame(columns=["image", "region"]),
                       summary, masks={"positive": positive}, params=p.to_dict(),
                       pixel_size_um=px)


COUNT = AssaySpec("fake-count", "Fake counter", CountParams, run_count, rgb=True,
                  measures=(REGION_AREA,
                            Measure("n_objects", "count", "dark objects", animal="sum"),
                            Measure("density_per_mm2", "per mm²", "objects per mm²",
                                    tiles="ratio", of=("n_objects", "region_area_mm2"))))
FLUO = AssaySpec("fake-fluo", "Fake fluorescence", FluoParams, run_fluo,
                 channel_roles=(ChannelRole("signal", help="the stained channel"),
                                ChannelRole("reference", required=False, help="background")),
                 measures=(REGION_AREA,
                           Measure("mean_signal", "a.u.", "mean signal", tiles="weighted",
                                   of=("region_area_mm2",)),
                           Measure("positive_area_um2", "µm²", "area above the threshold",
                                   animal="sum"),
                           Measure("mean_reference", "a.u.", "mean reference",
                                   tiles="weighted", of=("region_area_mm2",))))
SPECS = {"fake-count": COUNT, "fake-fluo": FLUO}
