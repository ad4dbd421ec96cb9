"""A toy assay for testing and benchmarking the study machinery (batch, tiling, reports).

``BLOB_SPEC`` counts dark (brightfield) or bright (fluorescence) round blobs by a fixed
threshold. It follows the assay contract exactly — an :class:`AssaySpec`, a params dataclass,
``run(image, regions, params, channels=...) -> AssayResult`` with ``objects`` and ``summary``
tables — so the batch code can be tested on it before, and independently of, the real assays.
It is not a measurement method and is not listed by :func:`histoquant.assays.available_assays`.
Register it in a test with ``monkeypatch`` (see :func:`register`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .assays.base import AssaySpec, ChannelRole, prepare_image, resolve_params, resolve_regions
from .assays.contract import REGION_AREA, Measure
from .io import Image
from .params import AssayParams, param
from .results import AssayResult

if TYPE_CHECKING:
    import pytest

__all__ = ["BlobParams", "run_blobs", "BLOB_SPEC", "register"]


@dataclass(frozen=True)
class BlobParams(AssayParams):
    """Parameters of the toy blob counter."""

    threshold: float = param(0.45, help="signal above which a pixel belongs to a blob (0–1)",
                             minimum=0.0, maximum=1.0)
    min_area_um2: float = param(20.0, unit="µm²", help="smaller blobs are noise", minimum=0)


def _signal(image: Image, channels: Mapping[str, str | int] | None) -> np.ndarray:
    if image.rgb:
        rgb = np.asarray(image.data, dtype=np.float32)
        if image.axes.startswith("Z"):
            rgb = rgb.max(axis=0)
        return 1.0 - rgb.mean(axis=-1) / image.max_value()
    from .assays.base import resolve_channels

    idx = resolve_channels(image, BLOB_SPEC.channel_roles, channels)["signal"]
    return image.channel(idx) / image.max_value()


def run_blobs(image: Image | np.ndarray, regions: Any = None,
              params: BlobParams | Mapping[str, Any] | str | None = None, *,
              channels: Mapping[str, str | int] | None = None,
              pixel_size_um: float | None = None,
              progress: Callable[[float, str], None] | None = None) -> AssayResult:
    """Count blobs per region; objects are assigned to the region holding their centroid.

    A minimal assay with the signature of every assay's ``run``, for tests of the machinery
    around assays.

    Parameters
    ----------
    image : Image or numpy.ndarray
        The image (bright blobs; dark blobs on an RGB image).
    regions : object, optional
        As every assay takes them (None, ``"auto"``, Regions, masks or a region file).
    params : BlobParams, mapping or str, optional
        The parameters (defaults when not given).
    channels : mapping, optional
        Channel role ``signal`` → name or index.
    pixel_size_um : float, optional
        Pixel size override.
    progress : callable, optional
        ``progress(fraction_done, message)``.

    Returns
    -------
    AssayResult
        One summary row per region and one object row per blob.
    """
    from skimage.measure import label, regionprops_table

    image = prepare_image(image, pixel_size_um)
    p = resolve_params(BlobParams, params)
    px = image.require_pixel_size()
    masks = resolve_regions(image, regions, BLOB_SPEC.auto_regions)
    sig = _signal(image, channels)
    fg = sig > p.threshold
    lab = label(fg, connectivity=1)
    props = pd.DataFrame(regionprops_table(lab, properties=("label", "centroid", "area")))
    props = props[props["area"] * px**2 >= p.min_area_um2]
    rows, summary = [], []
    r = np.floor(props["centroid-0"].to_numpy() + 0.5).astype(int)
    c = np.floor(props["centroid-1"].to_numpy() + 0.5).astype(int)
    for name, mask in masks.items():
        inside = mask[r, c] if len(props) else np.zeros(0, bool)
        sel = props[inside]
        area_mm2 = float(mask.sum()) * (px / 1000) ** 2
        for _, o in sel.iterrows():
            rows.append({"image": image.name, "region": name, "label": int(o["label"]),
                         "y_um": o["centroid-0"] * px, "x_um": o["centroid-1"] * px,
                         "area_um2": o["area"] * px**2, "class": "blob"})
        summary.append({
            "image": image.name, "region": name, "region_area_mm2": area_mm2,
            "n_blobs": len(sel),
            "blob_density_per_mm2": len(sel) / area_mm2 if area_mm2 else np.nan,
            "positive_area_pct": 100.0 * float((fg & mask).sum()) / max(int(mask.sum()), 1),
            "mean_blob_area_um2": float(sel["area"].mean() * px**2) if len(sel) else np.nan,
        })
    objects = pd.DataFrame(rows, columns=["image", "region", "label", "y_um", "x_um",
                                          "area_um2", "class"])
    return AssayResult(assay="blobs", image=image.name, objects=objects,
                       summary=pd.DataFrame(summary), labels=lab, masks=dict(masks),
                       qc=None, params=p.to_dict(), pixel_size_um=px)


BLOB_SPEC = AssaySpec(
    name="blobs", title="Toy blob counter (testing only)", params_cls=BlobParams, run=run_blobs,
    channel_roles=(ChannelRole("signal", help="channel with bright blobs"),),
    auto_regions=("grey_matter",),
    positions=(("y_um", "x_um"),),
    measures=(
        REGION_AREA,
        Measure("n_blobs", "count", "blobs found", animal="sum"),
        Measure("blob_density_per_mm2", "per mm²", "blobs per mm²", tiles="ratio",
                of=("n_blobs", "region_area_mm2")),
        Measure("positive_area_pct", "%", "area above the threshold", tiles="weighted",
                of=("region_area_mm2",)),
        Measure("mean_blob_area_um2", "µm²", "mean blob area", tiles="objects",
                of=("area_um2",), animal="weighted", animal_weight="n_blobs"),
    ))


def register(monkeypatch: pytest.MonkeyPatch, spec: AssaySpec = BLOB_SPEC) -> AssaySpec:
    """Make ``spec`` findable by name (``get_assay``, the CLI and batch) for one test.

    Parameters
    ----------
    monkeypatch : pytest.MonkeyPatch
        The test's monkeypatch fixture (undoes the registration after the test).
    spec : AssaySpec
        The assay to register.

    Returns
    -------
    AssaySpec
        ``spec``.
    """
    import sys

    from .assays import base

    original = base.available_assays

    def patched():
        return {**original(), spec.name: spec}

    monkeypatch.setattr(base, "available_assays", patched)
    if "histoquant.cli" in sys.modules:
        monkeypatch.setattr(sys.modules["histoquant.cli"], "available_assays", patched)
    return spec
