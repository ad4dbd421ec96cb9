"""GFP+ transplanted cells: rare true cells among green autofluorescent decoys.

After intravenous GFP-labelled MSCs, a lumbar section holds a handful of GFP+ cells (often
none), and many things that glow green too: lipofuscin granules, red blood cells, broad tissue
autofluorescence, cut edges. The assay

1. finds bright objects in the GFP channel on a block-averaged copy (blocks of about a quarter
   of the smallest cell), against a smooth local background and a *local* noise level, with
   hysteresis (``detection_sigma`` to seed an object, ``extent_sigma`` for its extent);
2. refines each candidate at full resolution in a crop: outline, separation of touching cells
   (watershed on the distance transform, a neck of more than a quarter cell diameter splits);
3. measures each object: area, GFP and reference-channel signal over the local background,
   their ratio, a granularity (share of the GFP signal in puncta the size of lipofuscin
   granules), and — with DAPI — whether a nucleus lies inside;
4. classes it: ``autofluorescent`` (reference/GFP ratio above ``max_reference_ratio``, or
   granularity above ``max_granularity``), ``too_small`` / ``too_large``, ``no_nucleus``
   (DAPI given, nucleus required, none inside), or ``gfp_cell`` (counted). Nothing is dropped:
   every object above ``min_object_area_um2`` is a row of the objects table with its class and
   the reason.

With ``engine="cellpose"`` steps 1–2 are replaced by Cellpose-SAM masks of the GFP channel
(:mod:`histoquant.segment.cellpose_engine`); each mask is then measured and classed by the
same code as a classical object (steps 3–4, the split of an object holding two nuclei
included), so both engines give the same tables. :func:`preflight` checks cellpose and its
weights before a batch reads any image.

The engine lives in :mod:`histoquant.segment.fluorescent_cells` (detection) and
:mod:`histoquant.segment.cell_candidates` (refinement, measurement, classes); the tables in
:mod:`histoquant.measure.cell_counts`. This module declares the parameters and runs them.

Spinal level, section and animal come from the caller (``run(...).set_ids(level="L3")``, the
CLI's ``--level`` / ``--meta``, or the study's sample sheet); :func:`aggregate_by_level` sums
sections per animal × level × region and counts sections with zero cells as sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ParamsError
from ..io.image import Image
from ..learn.foreground import find_class, requires_class
from ..measure import cell_counts as counts
from ..measure.cell_counts import aggregate_by_level
from ..params import AssayParams, param
from ..qc import FLUORESCENT_CELL_COLOURS as QC_COLOURS
from ..qc import qc_mark_radius_px
from ..results import AssayResult, normalize_level
from ..segment.cell_candidates import CLASSES, REJECT_REASONS
from ..segment.cellpose_engine import CellposeOptions
from ..segment.fluorescent_cells import (
    FieldCalibration,
    align_to_field,
    block_factor,
    calibrate_fluorescent_cells,
    cellpose_options,
    check_roles,
    detect_fluorescent_cells,
    preflight,
    untile,
    without_padding,
)
from .base import (
    AssaySpec,
    ChannelRole,
    ModelStep,
    Progress,
    prepare_image,
    region_table,
    resolve_channels,
    resolve_params,
    resolve_regions,
)
from .contract import REGION_AREA, Endpoint, ExtraTable, Measure

__all__ = ["GfpCellParams", "run", "calibrate", "SPEC", "aggregate_by_level", "normalize_level",
           "CLASSES", "cellpose_options", "preflight", "REJECT_REASONS", "QC_COLOURS",
           "qc_mark_radius_px", "GFP_CELL_NAMES"]

#: Names a pixel classifier's GFP+ class may have (case, spaces and dashes ignored).
GFP_CELL_NAMES = ("gfp_cell", "cell", "gfp")

# defaults, units and ranges of the cellpose options come from the adapter, so they are
# stated once
_CP = {f["name"]: f for f in CellposeOptions.field_info()}


@dataclass(frozen=True)
class GfpCellParams(AssayParams):
    """Parameters of the GFP+ cell assay (defaults justified in ``help``)."""

    #: Shown first in the GUI; the rest are folded away (AssayParams.common).
    common = ("min_cell_diameter_um", "max_cell_diameter_um", "require_nucleus", "count_nuclei",
              "max_reference_ratio", "engine")

    min_cell_diameter_um: float = param(
        8.0, unit="µm", minimum=1.0,
        help="Smallest GFP+ cell profile (equivalent diameter). MSCs are 13–30 µm (≈ 23 µm, "
             "Toma et al. 2009; Ge et al. 2014); a section can graze a cell, so the floor sits "
             "below 13 µm but above a single red blood cell (6–7.5 µm [S]).")
    max_cell_diameter_um: float = param(
        40.0, unit="µm", minimum=2.0,
        help="Largest single GFP+ cell profile: 30 µm (largest cultured MSC [S]) plus room "
             "for cells spread in tissue [U]. Larger objects left after splitting touching "
             "cells are classed too_large (clumps, folds, edge artefacts).")
    min_object_area_um2: float = param(
        20.0, unit="µm²", minimum=0.0,
        help="Objects smaller than this are not listed at all (noise specks, single "
             "granules); 20 µm² keeps a red blood cell (≈ 30–45 µm²) as a listed decoy.")
    background_scale_um: float = param(
        60.0, unit="µm", minimum=5.0,
        help="Size of the opening that estimates the local background: anything narrower "
             "(cells up to max_cell_diameter_um) is signal, anything broader (tissue "
             "autofluorescence, uneven illumination) is background. Must exceed "
             "max_cell_diameter_um.")
    noise_tile_um: float = param(
        150.0, unit="µm", minimum=10.0,
        help="Tile over which the local noise σ is measured; grey and white matter and the "
             "slide differ in autofluorescence texture, so one image-wide σ would be too "
             "strict in one and too lax in another. 150 µm holds several thousand blocks.")
    detection_sigma: float = param(
        4.0, unit="σ", minimum=0.5,
        help="An object must peak this many local σ (noise plus autofluorescence texture) "
             "above the local background, after block averaging. At 4 σ the phantom's dim "
             "cells (0.3–0.6 × the tissue autofluorescence over 5 % mottle) are found; at 5 σ "
             "about a third of them are missed [phantom]. Noise alone passes 4 σ about once "
             "in 30,000 blocks; such specks are mostly below min_object_area_um2 or rejected.")
    extent_sigma: float = param(
        2.5, unit="σ", minimum=0.0,
        help="An object extends over connected pixels above this many σ (hysteresis), so "
             "dim cytoplasm around a bright part belongs to the same cell.")
    max_reference_ratio: float = param(
        0.3, minimum=0.0,
        help="Objects whose reference-channel signal exceeds this fraction of their GFP "
             "signal are autofluorescent. EGFP emits only a few per cent past 570 nm [S: "
             "EGFP spectrum], while lipofuscin and red blood cells emit broadly, in green and "
             "red alike [S: Mochizuki 1995; Whittington & Wray 2017]. 0.3 assumes the two "
             "channels have comparable exposure [U]; check the ratio column of a few known "
             "cells when exposures differ.")
    max_granularity: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="Objects with more than this share of their GFP signal in puncta no larger than "
             "granule_diameter_um are autofluorescent (lipofuscin is punctate; GFP fills the "
             "cytoplasm [S]). On ten phantoms lipofuscin objects measured 0.63–1.04 and GFP "
             "cells 0.01–0.31 [phantom].")
    granule_diameter_um: float = param(
        2.5, unit="µm", minimum=0.2,
        help="Largest lipofuscin granule: granules are ≈ 1–2.5 µm [U from histology "
             "figures]. Sets the white top-hat that measures granularity.")
    max_elongation: float = param(
        3.0, minimum=1.0,
        help="Largest major/minor axis ratio of a cell body (ellipse of the same second "
             "moments). A soma or a rounded MSC in tissue is at most ≈ 2:1; a spindle MSC "
             "in culture reaches 3–5:1 [U]. Longer objects are fibres (class fibre, reason "
             "elongated): axon and dendrite segments, a glowing fold.")
    min_solidity: float = param(
        0.7, minimum=0.0, maximum=1.0,
        help="Smallest area/convex-hull ratio of a cell body. A soma with the stubs of its "
             "processes measures ≈ 0.75–1 (ChAT somata 0.71–1.0 at 2 µm/px [real]); crossing "
             "or branching fibres fill little of their hull (class fibre, reason "
             "low_solidity).")
    max_thin_fraction: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="Largest share of an object's area narrower than the smallest cell (what an "
             "opening with a disk of min_cell_diameter_um removes). A cell body is mostly "
             "wider than that; a fibre or a network of fibres is all thin (class fibre, "
             "reason thin).")
    max_texture_fraction: float = param(
        0.35, minimum=0.0, maximum=1.0,
        help="Largest share of an object's significance in structure finer than the smallest "
             "cell (what a grey opening with a disk of min_cell_diameter_um removes). GFP or "
             "ChAT fills the cytoplasm, so a soma keeps most of it (ChAT somata lose "
             "0.02–0.28 [real]; a dim phantom cell up to 0.34, its noise peaks being opened "
             "away [phantom]); a clump of puncta or fibres is bright dots with dark gaps and "
             "loses more, up to 0.6 (class texture).")
    min_ring_contrast: float = param(
        3.0, minimum=0.0,
        help="Smallest ring_contrast of a cell body: its mean significance above the median "
             "of the ring of neuropil_ring_um around it, in units of the spread of the ring's "
             "bulk (1.28 × its MAD-based σ, the 90th percentile − median were it normal; at "
             "least one noise σ), so a fibre crossing the ring, a minority of its pixels, "
             "does not set it. A filled soma is brighter than nearly everything around it "
             "(ChAT objects within 14 µm of a by-eye soma: median 4.2, 10th percentile 2.5; "
             "phantom cells ≥ 9, also on fibres as bright as they are [real, phantom]); a "
             "clump of white-matter axon profiles or a blob of neuropil is made of the same "
             "dots as its surroundings and stands out of them little (the other ChAT objects: "
             "median 2.7 [real]). 3.0 keeps the ChAT counts where the 90th-percentile spread "
             "at 1.5 had them (115/122/123/90/95 vs 115/123/121/92/96); at 2.5 they were "
             "4–9 % higher. Two-photon cells in dense fields, whose rings hold their "
             "neighbours, reach down to 2.1–2.4 (10th percentile per plane): 0–6 % of a "
             "plane's cells fall below 3.0 [real]. Below: class low_contrast.")
    max_peak_density: float = param(
        0.6, unit="1/100 µm²", minimum=0.0,
        help="Largest number of separate maxima (see min_peak_prominence) per 100 µm² of an "
             "object with three or more of them. A filled soma has one or two (ChAT somata: "
             "90th percentile 0.55 per 100 µm² [real]); a clump of axon profiles or puncta is "
             "small dots with dark gaps, one maximum each (median 0.8 per 100 µm² [real]). "
             "Above: class texture, reason punctate.")
    min_peak_prominence: float = param(
        0.3, minimum=0.0, maximum=1.0,
        help="A maximum counts for peak_density when it stands this fraction of the object's "
             "amplitude (95th percentile − ring median) above the saddle to a brighter one, "
             "and at least one noise σ: the dots of a clump are separated by gaps of about "
             "their own height, while the noise of a filled cell makes bumps a small fraction "
             "of it (two-photon cells at 0.3: 80 % one maximum, 17 % two [real]).")
    neuropil_ring_um: float = param(
        10.0, unit="µm", minimum=1.0,
        help="Width of the ring around an object read as its neighbourhood for "
             "ring_contrast: a few neuropil or white-matter structures wide, and about one "
             "cell radius, so the ring sees the tissue the cell sits in, not the next cell.")
    split_touching: bool = param(
        True, help="Separate touching cells by a watershed on the distance transform.")
    require_nucleus: bool = param(
        True, help="With a DAPI channel, count only GFP+ objects that hold a nucleus: a "
                   "transplanted cell has one, debris and a cell's cut-off process do not.")
    min_nucleus_diameter_um: float = param(
        5.0, unit="µm", minimum=0.5,
        help="Smallest nucleus: below glial nuclei (≈ 9 µm [S]) with room for grazing "
             "sections.")
    max_nucleus_diameter_um: float = param(
        20.0, unit="µm", minimum=1.0,
        help="Largest nucleus: motor-neuron nuclei reach ≈ 15–20 µm [S: soma 28 µm].")
    nucleus_threshold_sigma: float = param(
        5.0, unit="σ", minimum=0.5,
        help="DAPI threshold in noise σ above the DAPI background (Otsu when the tissue is "
             "too packed with nuclei to show a background mode); see segment_nuclei.")
    min_nucleus_overlap: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="A nucleus belongs to a GFP+ object when at least this fraction of its area "
             "lies inside the object: half, so a neighbouring nucleus that the cell only "
             "touches does not count.")
    count_nuclei: bool = param(
        False, help="Also segment every DAPI nucleus in the regions and call each GFP+ or "
                    "GFP− from the GFP in a ring around it (n_nuclei, "
                    "gfp_positive_nuclei_pct). Meant for fields with many labelled cells "
                    "(membrane GFP, reporter lines); slow on whole sections.")
    ring_um: float = param(
        2.0, unit="µm", minimum=0.2,
        help="Width of the perinuclear ring read for count_nuclei: the cytoplasm or "
             "membrane of a small cell lies within ≈ 2 µm of its nucleus [U].")
    engine: str = param(
        "classical", choices=("classical", "cellpose"),
        help="How objects are found. classical: local-background detection with hysteresis "
             "and splitting of touching cells (fast, no extra install). cellpose: "
             "Cellpose-SAM instance masks on the GFP channel (optional extra, weights on "
             "disk; see docs/cellpose.md). Either way every object is measured and classed "
             "by the same code and criteria.")
    cellpose_model: str = param(
        _CP["model"]["default"],
        help="Cellpose model name (weights file in the cellpose models folder) or path of a "
             "model file, e.g. one fine-tuned on GFP sections. engine=cellpose only. "
             "Never downloaded: see docs/cellpose.md.")
    cellpose_diameter_um: float | None = param(
        None, unit="µm", minimum=0.1,
        help="Cell diameter cellpose rescales the image for (objects ≈ 30 px for the "
             "network, which also sets its cost). None: the midpoint of "
             "min_cell_diameter_um and max_cell_diameter_um (24 µm at the defaults, close to "
             "the ≈ 23 µm MSC of Toma et al. 2009). engine=cellpose only.")
    cellpose_flow_threshold: float = param(
        _CP["flow_threshold"]["default"], minimum=_CP["flow_threshold"]["minimum"],
        help="Cellpose flow-error threshold; higher keeps more, worse-shaped masks. "
             "Cellpose's default. engine=cellpose only.")
    cellpose_cellprob_threshold: float = param(
        _CP["cellprob_threshold"]["default"], minimum=_CP["cellprob_threshold"]["minimum"],
        maximum=_CP["cellprob_threshold"]["maximum"],
        help="Cellpose cell-probability logit threshold; lower finds more and larger masks "
             "(dim cells), higher fewer and smaller. Cellpose's default. engine=cellpose only.")
    cellpose_device: str = param(
        _CP["device"]["default"], choices=_CP["device"]["choices"],
        help="Where the network runs: auto picks a CUDA GPU, else Apple MPS, else the CPU "
             "(slow: tens of seconds per 256 px network block). engine=cellpose only.")
    cellpose_batch_size: int = param(
        _CP["batch_size"]["default"], minimum=_CP["batch_size"]["minimum"],
        help="Network blocks run at once; raise on a GPU with memory to spare. Cellpose's "
             "default. engine=cellpose only.")

    def __post_init__(self) -> None:
        """Check that each max/min diameter pair, background scale and sigma pair is ordered."""
        super().__post_init__()
        if self.max_cell_diameter_um <= self.min_cell_diameter_um:
            raise ParamsError("GfpCellParams: max_cell_diameter_um must exceed "
                              "min_cell_diameter_um")
        if self.background_scale_um <= self.max_cell_diameter_um:
            raise ParamsError("GfpCellParams: background_scale_um must exceed "
                              "max_cell_diameter_um, or large cells become background")
        if self.max_nucleus_diameter_um <= self.min_nucleus_diameter_um:
            raise ParamsError("GfpCellParams: max_nucleus_diameter_um must exceed "
                              "min_nucleus_diameter_um")
        if self.extent_sigma > self.detection_sigma:
            raise ParamsError("GfpCellParams: extent_sigma must not exceed detection_sigma")


def run(
    image: Image | np.ndarray,
    regions: Any = None,
    params: GfpCellParams | Mapping[str, Any] | str | None = None,
    *,
    channels: Mapping[str, str | int] | None = None,
    pixel_size_um: float | None = None,
    progress: Progress | None = None,
    calibration: Mapping[str, Any] | None = None,
    model: Any = None,
) -> AssayResult:
    """Find and count GFP+ cells, rejecting autofluorescent look-alikes.

    Parameters
    ----------
    image : Image or ndarray
        Fluorescence image with a GFP channel, optionally DAPI and an autofluorescence
        reference channel (one where GFP does not emit: red or far red).
    regions : None, "auto", path or regions
        ``None`` measures the whole image; ``"auto"`` asks :mod:`histoquant.anatomy` for
        tissue, grey and white matter; a file or Region list gives drawn regions.
    params : GfpCellParams, dict or file, optional
    channels : mapping, optional
        Role → channel name or index: ``{"gfp": 1, "dapi": "DAPI", "reference": "TRITC"}``.
        Roles default to channels of the same name.
    pixel_size_um : float, optional
        Overrides the file's pixel size.
    progress : callable, optional
        ``progress(fraction, message)``.
    calibration : mapping, optional
        Image-wide statistics from :func:`calibrate` (backgrounds, local noise, DAPI
        threshold) of the whole image this is a tile of: applied instead of estimated from
        the tile. ``None``: measured on ``image``, as :func:`calibrate` would.
    model : PixelClassifier, optional
        A pixel classifier (``histoquant train pixels``, ``--model m.hqm``) with a class
        named ``gfp_cell`` (or ``cell``, ``gfp``): where that class is the most probable
        one is the candidate foreground, in place of the detection (steps 1–2); touching
        cells are cut apart, and every object is measured and classed as a classical one
        (steps 3–4). ``extra["engine"]`` then says ``"classifier"`` and ``extra["model"]``
        records the model. Not with ``engine="cellpose"``, which replaces the same step.

    Returns
    -------
    AssayResult
        ``objects``: one row per object and region, with class and reason; ``summary``: one
        row per region with ``n_gfp_cells``, ``gfp_cells_per_mm2``, ``n_gfp_objects``,
        ``n_gfp_nucleated``, ``n_rejected_autofluorescent``, ...; ``labels``: every object;
        ``qc``: overlay with counted cells circled green, autofluorescent objects crossed
        in vermillion.
    """
    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(frac, msg)

    img = prepare_image(image, pixel_size_um)
    px = img.require_pixel_size()
    p = resolve_params(GfpCellParams, params)
    if model is not None and p.engine == "cellpose":
        raise ParamsError("gfp-cells: a pixel classifier (--model) and engine='cellpose' "
                          "both replace the object detection; use one of them")
    ch = check_roles(img, resolve_channels(img, SPEC.channel_roles, channels), p.count_nuclei)
    has_ref, has_dapi = "reference" in ch, "dapi" in ch
    field, shift, full_shape = None, (0, 0), img.shape_yx
    regions = resolve_regions(img, regions, SPEC.auto_regions)
    if calibration is not None:
        # a tile: cut to start on the whole image's block grid, so its blocks are the
        # whole run's; positions are moved back below
        field = FieldCalibration.from_dict(calibration)
        img, regions, shift = align_to_field(img, regions, field, block_factor(p, px))
    masks, pad, union = without_padding(img, regions)
    foreground = None
    if model is not None:
        from ..learn.foreground import model_foreground

        report(0.02, "pixel classifier")
        foreground = model_foreground(model, img, GFP_CELL_NAMES)[0]
    det = detect_fluorescent_cells(
        img, ch, union, pad, p, report=report, field=field, foreground=foreground,
        cellpose=cellpose_options(p) if p.engine == "cellpose" else None)

    report(0.85, "tables")
    objects = untile(counts.objects_table(det.rows, masks, img.name, has_ref, has_dapi),
                     shift, full_shape, px)
    flag, warnings_out = det.check(objects, img.source)
    summary = counts.summarize_cells(objects, region_table(img.name, masks, px), has_dapi, flag)
    nuclei_table = None
    extra: dict[str, Any] = {"engine": p.engine, "block_factor": det.block_factor,
                             "gfp_noise_sigma_median": det.noise_sigma_median,
                             "padding_fraction": float(pad.mean()) if pad is not None else 0.0,
                             "calibrated": calibration is not None}
    if model is not None:
        from ..anatomy.learned import model_record

        extra["engine"] = "classifier"
        extra["model"] = {**model_record(model),
                          "gfp_class": find_class(model, GFP_CELL_NAMES)}
    if p.count_nuclei:
        report(0.9, "counting nuclei")
        nuclei_table, nuc_labels = counts.perinuclear_calls(det.measurer, masks, union)
        summary = counts.add_nuclei_counts(summary, nuclei_table)
        extra["nuclei_labels"] = untile(nuc_labels, shift, full_shape, px)
        nuclei_table = untile(nuclei_table, shift, full_shape, px)
    qc = det.qc_overlay(objects, masks, counts.caption_lines(img.name, objects, summary),
                        nuclei_table)
    result = AssayResult(
        assay=SPEC.name, image=img.name, objects=objects, summary=summary,
        labels=untile(det.labels, shift, full_shape, px),
        masks={k: untile(v, shift, full_shape, px) for k, v in masks.items() if not v.all()},
        qc=qc, params=p.to_dict(),
        pixel_size_um=px, warnings=warnings_out, extra=extra,
        tables={"nuclei": nuclei_table} if nuclei_table is not None else {})
    report(1.0, "done")
    return result


def calibrate(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
              channels: Mapping[str, str | int] | None = None,
              bounds: tuple[int, int, int, int] | None = None,
              pixel_size_um: float | None = None) -> dict[str, Any]:
    """Return the image-wide statistics a whole run estimates, for every tile to apply.

    Backgrounds, local noise, DAPI threshold and the image-wide checks, over the whole image
    or the section ``bounds``
    (:func:`histoquant.segment.fluorescent_cells.calibrate_fluorescent_cells`). ``run(image)``
    measures the same with the same code; ``run(tile, calibration=...)`` applies them.

    Parameters
    ----------
    image, regions, params, channels, pixel_size_um
        As for :func:`run`; ``regions`` may also be a :class:`histoquant.tiling.RegionSource`.
    bounds : tuple, optional
        (r0, r1, c0, c1): one section of a slide.

    Returns
    -------
    dict
        Plain JSON data (recorded in run.json).
    """
    from ..tiling import RegionSource

    img = prepare_image(image, pixel_size_um)
    p = resolve_params(GfpCellParams, params)
    if regions is not None and not isinstance(regions, (RegionSource, Mapping)):
        regions = resolve_regions(img, regions, SPEC.auto_regions)
    ch = check_roles(img, resolve_channels(img, SPEC.channel_roles, channels), p.count_nuclei)
    return calibrate_fluorescent_cells(img, ch, regions, p, bounds=bounds)


SPEC = AssaySpec(
    name="gfp-cells",
    title="GFP+ transplanted cells: count per section and region, autofluorescence rejected",
    model_steps=(ModelStep(
        "objects", "the GFP+ cell / autofluorescent / debris rules: the model's classes and their "
        "probability go into "
        "objects.csv and the counts are recounted"), ModelStep(
        "pixels", "the GFP+ candidate detection: where the class "
        f"{' / '.join(GFP_CELL_NAMES)} is the most probable one; touching cells are cut "
        "apart and every object is measured and classed by the same rules",
        check=requires_class(*GFP_CELL_NAMES))),
    params_cls=GfpCellParams,
    run=run,
    channel_roles=(
        ChannelRole("gfp", True, "GFP fluorescence (ex 488 / em 509 nm)"),
        ChannelRole("dapi", False, "nuclear stain; a counted cell must hold a nucleus"),
        ChannelRole("reference", False,
                    "autofluorescence reference: a red/far-red channel where GFP does not "
                    "emit; objects bright here too are autofluorescent"),
    ),
    auto_regions=("tissue", "grey_matter", "white_matter"),
    modalities=("fluorescence",),
    preflight=preflight,
    calibrate=calibrate,
    tables=(ExtraTable("nuclei", "one row per nucleus counted in the DAPI channel (with "
                                 "count_nuclei): position, area, GFP+ or not"),),
    endpoints=(
        Endpoint("gfp_cells_per_section", "n_gfp_cells", "GFP+ cells per section",
                 regions=("tissue",), summary="median_iqr"),
        Endpoint("gfp_cells_per_section_by_level", "n_gfp_cells",
                 "GFP+ cells per section, by spinal level", regions=("tissue",),
                 summary="median_iqr", by_level=True),
    ),
    measures=(
        REGION_AREA,
        Measure("n_gfp_cells", "count", "GFP+ cells (objects that pass every criterion)",
                animal="sum"),
        Measure("gfp_cells_per_mm2", "per mm²", "GFP+ cells per mm² of the region",
                tiles="ratio", of=("n_gfp_cells", "region_area_mm2")),
        Measure("n_gfp_objects", "count", "GFP+ objects before the nucleus check",
                animal="sum"),
        Measure("n_gfp_nucleated", "count", "GFP+ objects holding a DAPI nucleus",
                animal="sum"),
        Measure("n_rejected_*", "count", "objects rejected for this reason", animal="sum"),
        Measure("n_objects", "count", "every candidate object measured", animal="sum"),
        Measure("n_nuclei", "count", "DAPI nuclei counted (count_nuclei)", animal="sum"),
        Measure("n_gfp_positive_nuclei", "count", "nuclei inside GFP signal", animal="sum"),
        Measure("gfp_positive_nuclei_pct", "%", "GFP+ nuclei, % of the nuclei",
                tiles="ratio", of=("n_gfp_positive_nuclei", "n_nuclei"), scale=100.0),
        Measure("flag", "", "no_tissue_or_signal: nothing on a flat background (tiled: when "
                "every tile says so)", tiles="common", animal="none"),
    ),
)
