"""Motor neurons in Nissl (cresyl violet) brightfield sections of the ventral horn.

What it does, per image and region (normally ``ventral_horn_left`` / ``ventral_horn_right``):

1. **stain separation**: optical density relative to the unstained light, projected on the
   cresyl-violet OD colour (:mod:`histoquant.segment.stain`), averaged to a working pixel
   size of about ``work_pixel_size_um`` in the same pass;
2. **background flattening**: the neuropil level (the densest part of the density histogram
   in blocks of half ``background_scale_um``) is subtracted, which removes uneven staining
   and illumination;
3. **soma segmentation** (``engine="classical"``, :mod:`histoquant.segment.somata`): every
   stained soma — motor neurons, small neurons, glial nuclei — with touching cells split;
4. **measurement** of every soma in µm (:mod:`histoquant.measure.objects`), its mean optical
   density and whether a nucleolus is visible (:mod:`histoquant.measure.nucleolus`);
5. **classification**: a soma is a ``motor_neuron`` when it meets every criterion below,
   otherwise ``other``.

Criteria and why (published figures; sources in brackets):

- ``min_equivalent_diameter_um = 20``: the usual counting cut-off for ventral-horn motor
  neurons (diameter > 20 µm; Tsukagoshi et al. 1979, Weber et al. 1997). It excludes glial
  nuclei (≈ 9 µm) and small neurons / γ-motor neurons (≈ 16 µm) while α-motor neurons are
  ≈ 28 µm across (rat anterior-horn stereology, Mayhew & Momoh 1974, J Anat).
- ``max_equivalent_diameter_um = 80``: motor-neuron profiles are 10–60 µm; larger objects are
  clumps or folds.
- ``min_area_um2 = 0`` (off): set 440 µm² to count α-motor neurons only (α/γ cut-off of
  Lalancette-Hébert et al. 2016, mouse).
- ``min_feret_max_um = 0`` (off) and ``require_nucleolus = False``: counting only profiles with
  a visible nucleolus avoids double counts across sections (Tomlinson & Irving 1977); it
  roughly halves the count, so it is opt-in.

In fluorescence (a somata stain, :func:`_run_fluorescence`) the size criteria are the same;
brightness is the mean signal-to-noise ratio (``fluorescence_min_mean_snr``, or the lower
``fluorescence_dim_min_mean_snr`` for a round soma from which nothing bright continues), and
an object elongated and continuing past both ends of its long axis, or longer than
``fluorescence_max_elongation``, is a piece of a fibre bundle, not a soma
(:func:`histoquant.segment.fluorescent_somata.axial_continuation`; docs/motor_neurons.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..calibration import grid_positions, grid_record, region_view, tile_origin
from ..errors import ChannelError, EmptyImageError, ModelFileError, ParamsError
from ..io.image import Image, check_finite, check_not_empty
from ..measure.nucleolus import nucleolus_contrast
from ..measure.objects import assign_regions, measure_objects
from ..params import AssayParams, param
from ..qc import CLASS_COLOURS, add_caption, draw_mask_outlines
from ..results import AssayResult
from ..segment.background import background_level, subtract_block_grid
from ..segment.cellpose_engine import CellposeOptions, require_cellpose, segment_cellpose
from ..segment.fluorescent_somata import (
    FluorescentSomaParams,
    axial_continuation,
    local_background_noise,
    pick_soma_channel,
    segment_fluorescent_somata,
    signal_to_noise,
)
from ..segment.padding import find_padding
from ..segment.somata import SomaSegmentationParams, neuropil_noise, segment_somata
from ..segment.stain import CRESYL_VIOLET_OD, estimate_stain_vector, estimate_white, stain_density
from ..segment.statistics import (
    block_any,
    block_mean,
    noise_floor,
    quantisation_step,
    sample_pixels,
)
from .base import (
    AssaySpec,
    ChannelRole,
    ModelStep,
    Progress,
    check_image_modality,
    prepare_image,
    region_table,
    resolve_channels,
    resolve_params,
    resolve_regions,
)
from .contract import REGION_AREA, Endpoint, Measure

__all__ = ["MotorNeuronParams", "run", "calibrate", "SPEC", "OBJECT_CLASSES", "summarize_somata",
           "SOMA_CLASS_NAMES"]

OBJECT_CLASSES = ("motor_neuron", "other")

#: Names a pixel classifier's class may have for it to serve as the soma foreground
#: (``--model`` with a ``pixels`` model, :func:`histoquant.learn.foreground.find_class`).
SOMA_CLASS_NAMES = ("soma", "somata", "neuron", "cell")

log = logging.getLogger(__name__)

# QC overlays are drawn at most this many pixels on their long side.
_QC_MAX_PX = 4096


# Cellpose options the assay exposes take their defaults and reasons from the adapter's own
# options, so they are written down once.
_CELLPOSE = {f["name"]: f for f in CellposeOptions.field_info()}


@dataclass(frozen=True)
class MotorNeuronParams(AssayParams):
    """Parameters of the motor-neuron assay; every size in µm."""

    #: Shown first in the GUI; the rest are folded away (AssayParams.common).
    common = ("modality", "min_equivalent_diameter_um", "max_equivalent_diameter_um",
              "require_nucleolus", "engine")

    modality: str = param(
        "auto", choices=("auto", "brightfield", "fluorescence"),
        help="what the image is: 'brightfield' (cresyl-violet Nissl, dark somata on a light "
             "background, read as optical density) or 'fluorescence' (a somata stain — "
             "fluorescent Nissl / NeuroTrace, ChAT, NeuN — bright somata on a dark "
             "background, read as signal-to-noise). 'auto' takes the image's modality, "
             "declared (--modality) or detected. 'brightfield' on an image detected as "
             "fluorescence with confidence is refused")
    engine: str = param(
        "classical", choices=("classical", "cellpose"),
        help="soma segmentation engine: 'classical' (threshold, distance/intensity "
             "watershed, per-object threshold; no model, no GPU) or 'cellpose' (a Cellpose "
             "model on the stain-density image; needs histoquant[cellpose] and the model "
             "file). Either way the same measurements and criteria follow")
    cellpose_model: str = param(
        _CELLPOSE["model"]["default"], help=_CELLPOSE["model"]["help"])
    cellpose_diameter_um: float | None = param(
        25.0, unit="µm", minimum=_CELLPOSE["diameter_um"]["minimum"],
        help="typical soma diameter handed to cellpose, which rescales the image so it is "
             "≈ 30 px: 25 µm sits between glial nuclei (≈ 9 µm) and α-motor neurons "
             "(≈ 28 µm, Mayhew & Momoh 1974) so both stay within the model's size range [U]; "
             "None = no rescaling")
    cellpose_flow_threshold: float = param(
        _CELLPOSE["flow_threshold"]["default"], help=_CELLPOSE["flow_threshold"]["help"],
        minimum=0.0)
    cellpose_cellprob_threshold: float = param(
        _CELLPOSE["cellprob_threshold"]["default"],
        minimum=_CELLPOSE["cellprob_threshold"]["minimum"],
        maximum=_CELLPOSE["cellprob_threshold"]["maximum"],
        help=_CELLPOSE["cellprob_threshold"]["help"])
    cellpose_device: str = param(
        _CELLPOSE["device"]["default"], choices=_CELLPOSE["device"]["choices"],
        help=_CELLPOSE["device"]["help"])
    cellpose_batch_size: int = param(
        _CELLPOSE["batch_size"]["default"], help=_CELLPOSE["batch_size"]["help"], minimum=1)
    stain_vector: tuple[float, float, float] = param(
        CRESYL_VIOLET_OD, unit="OD (R, G, B)", minimum=0.0, maximum=10.0,
        help="optical-density colour of cresyl violet; the default is the mean direction of "
             "the darkest 1 % of pixels in four real Nissl fields (rat cortex and spinal "
             "cord); no published vector exists [U]")
    estimate_stain_vector: bool = param(
        False, help="measure the stain colour in each image from its darkest pixels instead "
                    "(falls back to stain_vector when the image has too little stain); off "
                    "by default so every image of a study is measured the same way")
    work_pixel_size_um: float = param(
        1.0, unit="µm", minimum=0.0,
        help="segment on the image averaged to about this pixel size (never finer than the "
             "image; 0 = full resolution). 1 µm draws a 9 µm glial nucleus 9 px and a 20 µm "
             "motor neuron 20 px across, enough for their outlines; finer costs time as the "
             "square")
    background_scale_um: float = param(
        100.0, unit="µm", minimum=1.0,
        help="scale of the background (neuropil level) estimate: blocks of half this size; "
             "larger than the largest soma (≈ 60 µm) so a motor neuron is not taken as "
             "background")
    smooth_um: float = param(
        0.5, unit="µm", minimum=0.0,
        help="Gaussian smoothing before thresholding: merges Nissl granules and camera "
             "noise, keeps the 1–2 µm pale gaps between touching cells")
    foreground_od: float = param(
        0.06, unit="OD", minimum=0.0,
        help="a pixel belongs to a soma when its stain density is this far above the "
             "neuropil level; cell bodies are ≥ 0.1 OD above the neuropil in the Nissl "
             "fields examined, the neuropil grain about ±0.03")
    foreground_snr: float = param(
        3.0, minimum=0.0,
        help="a soma pixel must also be this many times the neuropil's own fluctuation "
             "above the neuropil (its standard deviation, measured below the neuropil "
             "level), so a coarse-grained neuropil does not break into false somata")
    max_hole_um2: float = param(
        400.0, unit="µm²", minimum=0.0,
        help="pale holes up to this area inside a soma are filled: the pale nucleus of a "
             "motor neuron (≈ 12–18 µm across, ≤ 250 µm²), not the neuropil enclosed by a "
             "ring of cells")
    open_um: float = param(
        1.5, unit="µm", minimum=0.0,
        help="radius of the opening that cuts processes: dendrites and axons thinner than "
             "twice this are removed from the somata")
    first_prominence_um: float = param(
        0.5, unit="µm", minimum=0.0,
        help="prominence of the seeds of the first (over-)split, before each object gets "
             "its own threshold")
    seed_prominence_um: float = param(
        1.5, unit="µm", minimum=0.0,
        help="a soma is split from its neighbour when its centre rises at least this much "
             "(in µm of distance to the edge, plus intensity) above the neck between them; "
             "a glial nucleus (radius ≈ 4.5 µm) touching a soma over a narrow contact rises "
             "2–4 µm")
    relative_prominence: float = param(
        0.25, minimum=0.0, maximum=1.0,
        help="the rise that splits two somata must also be this fraction of the lower "
             "centre's height, so a large soma needs a proportionally deeper neck: an "
             "elongated motor neuron (distance ridge ≈ 12 µm high) is not cut across its "
             "middle by a 1.5 µm ripple of its outline or Nissl texture")
    intensity_weight_um_per_od: float = param(
        20.0, unit="µm/OD", minimum=0.0,
        help="weight of the stain density in the splitting landscape: a pale gap of 0.1 OD "
             "between two cells counts like a 2 µm neck")
    intensity_cap_od: float = param(
        0.2, unit="OD", minimum=0.0,
        help="density above this counts as this in the splitting landscape, so the coarse "
             "Nissl bodies of a dark motor neuron do not split it")
    refine_fraction: float = param(
        0.4, minimum=0.0, maximum=1.0,
        help="each object keeps its pixels above this fraction of its own upper-quartile "
             "density: a dark glial nucleus does not take the paler neuropil around it, a "
             "pale neuron keeps its cytoplasm")
    refine_cap_od: float = param(
        0.1, unit="OD", minimum=0.0,
        help="the per-object level of refine_fraction is at most this density: the edge of "
             "a dark soma is sharp, and a higher level would cut the paler cytoplasm "
             "between Nissl bodies")
    seam_ratio: float = param(
        0.9, minimum=0.0,
        help="after the first split, a seam between two touching objects is opened when it "
             "is paler than this fraction of the paler object's mean density (a gap between "
             "two cells, not a cut through one)")
    trim_fraction: float = param(
        0.3, minimum=0.0, maximum=1.0,
        help="large somata are finally opened with a disk of this fraction of their "
             "equivalent radius: the stumps of dendrites (narrower than 0.6 × the soma's "
             "radius) are cut off, so soma sizes are of the cell body as when measured by "
             "hand; 0 = off")
    min_soma_area_um2: float = param(
        8.0, unit="µm²", minimum=0.0,
        help="smaller stained objects are debris or cut processes, not somata (a glial "
             "nucleus is ≈ 60 µm²)")
    min_equivalent_diameter_um: float = param(
        20.0, unit="µm", minimum=0.0,
        help="motor-neuron criterion: the counting cut-off of the literature (diameter > "
             "20 µm); glial nuclei are ≈ 9 µm, small neurons ≈ 16 µm, α-motor neurons "
             "≈ 28 µm")
    max_equivalent_diameter_um: float = param(
        80.0, unit="µm", minimum=0.0,
        help="motor-neuron criterion: profiles are 10–60 µm; larger objects are clumps, "
             "folds or tissue edges")
    min_mean_od: float = param(
        0.3, unit="OD", minimum=0.0,
        help="motor-neuron criterion: mean stain density above the neuropil. Motor neurons "
             "are Nissl-rich and among the darkest profiles (0.39–0.77 OD in the real "
             "ventral-horn field examined); pale profiles of motor-neuron size are "
             "tangentially cut dendrites or neuropil patches (0.20–0.25 OD there). Caveat: "
             "chromatolytic (pale) motor neurons are excluded too; set 0 to keep them")
    min_area_um2: float = param(
        0.0, unit="µm²", minimum=0.0,
        help="optional motor-neuron criterion on soma area; 440 µm² keeps α-motor neurons "
             "only (α/γ cut-off, Lalancette-Hébert et al. 2016, mouse); 0 = off")
    min_feret_max_um: float = param(
        0.0, unit="µm", minimum=0.0,
        help="optional motor-neuron criterion on the longest caliper width; 0 = off")
    require_nucleolus: bool = param(
        False, help="count only motor neurons with a visible nucleolus (avoids counting a "
                    "cell in two sections; about halves the count)")
    nucleolus_contrast_od: float = param(
        0.6, unit="OD", minimum=0.0,
        help="a nucleolus is visible when the darkest spot of the soma's pale, round, "
             "enclosed nucleus is this much above the nucleus' median density; nucleoli are "
             "near-black dots (≥ 1 OD above the nucleus in the real field examined), Nissl "
             "texture in a nucleus ≤ 0.5")

    fluorescence_snr: float = param(
        3.0, unit="σ", minimum=0.0,
        help="fluorescence: a soma pixel is at least this many times the local noise above "
             "the local background (median of the tissue pixels in blocks of half "
             "background_scale_um; the noise is their spread below it). 3 σ keeps the "
             "neuropil's bright fibres out of most of the foreground while motor-neuron "
             "somata stand 4–8 σ above the ventral-horn neuropil in the ChAT sections "
             "examined (2 µm/px)")
    fluorescence_smooth_um: float = param(
        1.0, unit="µm",
        help="fluorescence: Gaussian smoothing before thresholding; evens camera noise and "
             "JPEG blocking (8 px blocks) without merging somata 2–3 µm apart")
    fluorescence_open_um: float = param(
        3.0, unit="µm",
        help="fluorescence: radius of the opening that cuts processes and fibres off the "
             "somata. Stained fibres and dendrites (ChAT+, Nissl) are ≤ 5 µm thick, a "
             "motor-neuron soma ≥ 20 µm: a 3 µm radius removes the first and keeps the "
             "second (brightfield uses open_um; the fluorescent neuropil is full of bright "
             "fibres the Nissl neuropil does not have)")
    fluorescence_intensity_weight_um_per_snr: float = param(
        0.4, unit="µm/σ", minimum=0.0,
        help="fluorescence: weight of the signal-to-noise ratio in the splitting "
             "landscape: a dim gap of 5 σ between two somata counts like a 2 µm neck (the "
             "brightfield 20 µm/OD at a 0.1 OD gap)")
    fluorescence_intensity_cap_snr: float = param(
        10.0, unit="σ", minimum=0.0,
        help="fluorescence: signal-to-noise above this counts as this in the splitting "
             "landscape (at most 4 µm of brightness, as brightfield's 0.2 OD cap), so the "
             "bright granules of one soma do not split it")
    fluorescence_refine_fraction: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="fluorescence: each object keeps its pixels above this fraction of its own "
             "upper-quartile signal above background: 0.5 puts the outline at half the "
             "soma's brightness, where the edge of a blurred bright object lies (full width "
             "at half maximum), so a soma's size does not grow with the blur of a low "
             "magnification or a JPEG export")
    fluorescence_min_mean_snr: float = param(
        5.0, unit="σ", minimum=0.0,
        help="fluorescence, motor-neuron criterion: mean signal-to-noise of the soma (the "
             "role brightfield's min_mean_od plays). ChAT+ motor neurons average 5–16 σ "
             "above the ventral-horn neuropil in the sections examined (2 µm/px), while "
             "patches of bright fibres and tangentially cut dendrites of their size that "
             "pass the pixel threshold average 4–5 σ. Caveat: a faintly stained soma is "
             "excluded too, unless it passes the dim-soma criteria below; lower it to keep "
             "them all")
    fluorescence_dim_min_mean_snr: float = param(
        4.0, unit="σ", minimum=0.0,
        help="fluorescence, motor-neuron criterion: a soma dimmer than "
             "fluorescence_min_mean_snr but at least this bright is still a motor neuron "
             "when it is a round body standing alone (fluorescence_dim_max_elongation, "
             "fluorescence_dim_min_solidity, nothing bright continuing from it: "
             "fluorescence_continuation) — the rule of the by-eye counts ('a round body "
             "distinct from the neuropil, whatever its brightness'). In a bright, "
             "fibre-dense ventral horn the local noise is high and faintly ChAT+ motor "
             "neurons average 4.5–4.9 σ; fibre patches of their size are irregular or "
             "continue into the plexus. Set it equal to fluorescence_min_mean_snr to turn "
             "the rule off")
    fluorescence_dim_max_elongation: float = param(
        1.5, minimum=1.0,
        help="fluorescence, dim-soma rule: at most this ratio of the long to the short axis "
             "(a round body; the somata of the phantom and most cut motor neurons are "
             "≤ 1.5, fibre patches longer)")
    fluorescence_dim_min_solidity: float = param(
        0.9, minimum=0.0, maximum=1.0,
        help="fluorescence, dim-soma rule: at least this solidity (area / area of the "
             "convex hull of its pixel squares): a soma profile is convex (a digitised disc "
             "10 px across, a 20 µm soma at 2 µm/px, scores ≈ 0.92), a patch of crossing "
             "fibres ragged (0.65–0.85 in the ChAT sections examined)")
    fluorescence_max_elongation: float = param(
        4.5, minimum=1.0,
        help="fluorescence, motor-neuron criterion: a profile more than this many times as "
             "long as wide is a fibre bundle or a dendrite, not a soma, however it ends: "
             "fusiform motor neurons reach ≈ 3.5 : 1 in the ChAT sections examined, a whole "
             "bundle left in one piece 10–25 : 1")
    fluorescence_continuation: float = param(
        0.3, minimum=0.0,
        help="fluorescence: an object 'continues' beyond an end of its long axis when the "
             "mean signal-to-noise in a box as wide as the object just past that end is at "
             "least this fraction of the object's own "
             "(histoquant.segment.fluorescent_somata.axial_continuation). Pieces of a bright "
             "fibre bundle reach 0.3–1 (the bundle goes on past the watershed's cut), "
             "isolated somata 0–0.25 (dim neuropil, or a dendrite narrower than the box)")
    fluorescence_fibre_min_elongation: float = param(
        2.5, minimum=1.0,
        help="fluorescence, motor-neuron criterion: an object at least this elongated that "
             "continues beyond both ends of its long axis (fluorescence_continuation) is a "
             "piece of a fibre bundle, not a soma. A piece of motor-neuron size (≥ 20 µm "
             "equivalent diameter, ≥ 314 µm²) of a bundle w µm wide is ≥ 314 / w² times as "
             "long as wide: ≥ 2.5 for bundles up to 11 µm, the bundles of the ChAT sections "
             "(8–12 µm). Round somata in a cluster, which find a neighbour past their ends, "
             "stay below it; fusiform motor neurons (up to 3.5 : 1) end in the dim neuropil "
             "at least on one side and stay. Both ends, not one: a soma in a row of cells or "
             "with a thick dendrite in line continues on one side (such motor neurons of "
             "238_L2 and 290_L6 were lost with one end). A large value (e.g. 100) turns the "
             "rule off")

    def __post_init__(self) -> None:
        """Validate the fields, and refuse a stain vector of all zeros."""
        super().__post_init__()
        # A zero colour has no direction to project on: say so now, not once per image.
        if not any(self.stain_vector):
            raise ParamsError("MotorNeuronParams: stain_vector: the three OD values are all "
                              "0; give the stain's colour, e.g. "
                              f"{list(CRESYL_VIOLET_OD)}")

    def fluorescent_segmentation(self) -> FluorescentSomaParams:
        """Return the fluorescent soma-segmentation part of these parameters.

        Returns
        -------
        FluorescentSomaParams
            The parameters :func:`~histoquant.segment.fluorescent_somata.segment_fluorescent_somata`
            takes.
        """
        return FluorescentSomaParams(
            background_scale_um=self.background_scale_um,
            smooth_um=self.fluorescence_smooth_um, snr=self.fluorescence_snr,
            max_hole_um2=self.max_hole_um2, open_um=self.fluorescence_open_um,
            first_prominence_um=self.first_prominence_um,
            seed_prominence_um=self.seed_prominence_um,
            relative_prominence=self.relative_prominence,
            intensity_weight_um_per_snr=self.fluorescence_intensity_weight_um_per_snr,
            intensity_cap_snr=self.fluorescence_intensity_cap_snr,
            refine_fraction=self.fluorescence_refine_fraction, seam_ratio=self.seam_ratio,
            trim_fraction=self.trim_fraction, min_area_um2=self.min_soma_area_um2)

    def segmentation(self) -> SomaSegmentationParams:
        """Return the soma-segmentation part of these parameters.

        Returns
        -------
        SomaSegmentationParams
            The parameters the classical engine of :mod:`histoquant.segment.somata` takes.
        """
        return SomaSegmentationParams(
            smooth_um=self.smooth_um, foreground_od=self.foreground_od,
            foreground_snr=self.foreground_snr, refine_cap_od=self.refine_cap_od,
            max_hole_um2=self.max_hole_um2, open_um=self.open_um,
            first_prominence_um=self.first_prominence_um,
            seed_prominence_um=self.seed_prominence_um,
            intensity_weight_um_per_od=self.intensity_weight_um_per_od,
            intensity_cap_od=self.intensity_cap_od, refine_fraction=self.refine_fraction,
            relative_prominence=self.relative_prominence, seam_ratio=self.seam_ratio,
            trim_fraction=self.trim_fraction,
            min_area_um2=self.min_soma_area_um2)


def _crop_box(masks: dict[str, np.ndarray], margin_px: int) -> tuple[slice, slice]:
    """Bounding box of the union of the region masks, grown by ``margin_px``."""
    any_rows = np.zeros(next(iter(masks.values())).shape[0], bool)
    any_cols = np.zeros(next(iter(masks.values())).shape[1], bool)
    for m in masks.values():
        any_rows |= m.any(axis=1)
        any_cols |= m.any(axis=0)
    rows, cols = np.nonzero(any_rows)[0], np.nonzero(any_cols)[0]
    h, w = len(any_rows), len(any_cols)
    return (slice(max(0, rows[0] - margin_px), min(h, rows[-1] + 1 + margin_px)),
            slice(max(0, cols[0] - margin_px), min(w, cols[-1] + 1 + margin_px)))


def _upsample_labels(small: np.ndarray, factor: int, shape: tuple[int, int],
                     out: np.ndarray) -> None:
    """Write ``small`` enlarged ``factor`` times (nearest) into ``out`` of ``shape``."""
    h, w = shape
    strip = max(1, (1 << 18) // max(1, w))
    for r0 in range(0, small.shape[0], strip):
        block = small[r0:r0 + strip].astype(out.dtype, copy=False)
        big = np.repeat(np.repeat(block, factor, axis=0), factor, axis=1)
        rr = min(h - r0 * factor, big.shape[0])
        out[r0 * factor:r0 * factor + rr] = big[:rr, :w]


def cellpose_options(p: MotorNeuronParams) -> CellposeOptions:
    """Return the cellpose adapter's options from the assay's ``cellpose_*`` parameters.

    Parameters
    ----------
    p : MotorNeuronParams
        The assay's parameters.

    Returns
    -------
    CellposeOptions
        The options of :mod:`histoquant.segment.cellpose_engine`.
    """
    return CellposeOptions(model=p.cellpose_model, diameter_um=p.cellpose_diameter_um,
                           flow_threshold=p.cellpose_flow_threshold,
                           cellprob_threshold=p.cellpose_cellprob_threshold,
                           device=p.cellpose_device, batch_size=p.cellpose_batch_size)


def preflight(params: MotorNeuronParams | None = None) -> None:
    """Check once before a batch that the chosen engine can run (cellpose and its model).

    Parameters
    ----------
    params : MotorNeuronParams, optional
        The assay's parameters (the defaults when not given).

    Raises
    ------
    DependencyError
        When the cellpose engine is chosen and cellpose or its model is missing.
    """
    p = resolve_params(MotorNeuronParams, params)
    if p.engine == "cellpose":
        require_cellpose(p.cellpose_model)


def classify(objects: pd.DataFrame, p: MotorNeuronParams,
             modality: str = "brightfield") -> np.ndarray:
    """Return ``True`` where a soma meets every motor-neuron criterion of ``p``.

    The size criteria (µm) are the same in both modalities; the brightness criterion is the
    mean optical density in brightfield and the mean signal-to-noise ratio in fluorescence.

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per soma, with the columns of the assay's object table.
    p : MotorNeuronParams
        The criteria.
    modality : {"brightfield", "fluorescence"}
        Which brightness criterion applies.

    Returns
    -------
    numpy.ndarray
        Boolean, one value per row of ``objects``.
    """
    ok = (objects["equivalent_diameter_um"] >= p.min_equivalent_diameter_um) & \
         (objects["equivalent_diameter_um"] <= p.max_equivalent_diameter_um) & \
         (objects["area_um2"] >= p.min_area_um2) & \
         (objects["feret_max_um"].fillna(0) >= p.min_feret_max_um)
    if modality == "fluorescence":
        snr = objects["mean_snr"]
        cont_max = objects["continuation_max"] if "continuation_max" in objects else np.nan
        elong = objects["elongation"] if "elongation" in objects else np.nan
        # NaN (not measured) compares False: neither a dim soma nor a fibre piece
        dim_soma = (snr >= p.fluorescence_dim_min_mean_snr) & \
                   (elong <= p.fluorescence_dim_max_elongation) & \
                   (objects["solidity"] >= p.fluorescence_dim_min_solidity) & \
                   (cont_max < p.fluorescence_continuation)
        cont_min = objects["continuation_min"] if "continuation_min" in objects else np.nan
        fibre = (elong >= p.fluorescence_fibre_min_elongation) & \
                (cont_min >= p.fluorescence_continuation)
        fibre |= elong > p.fluorescence_max_elongation
        ok &= ((snr >= p.fluorescence_min_mean_snr) | dim_soma) & ~fibre
    else:
        ok &= objects["mean_optical_density"] >= p.min_mean_od
    if p.require_nucleolus:
        ok &= objects["nucleolus_visible"].astype(bool)
    return ok.to_numpy()


def guess_modality(image: Image) -> str:
    """Return ``"brightfield"`` or ``"fluorescence"``: the image's modality.

    The one the image was declared (``read_image(..., modality=...)``, ``--modality``) or
    detected from its tissue pixels (:func:`histoquant.io.modality.detect_modality`: light
    background and absorbing stain, or dark background and emitting stain).

    Parameters
    ----------
    image : Image
        The image.

    Returns
    -------
    str
        The modality's name.
    """
    return str(image.modality)


def _resolve_modality(image: Image, p: MotorNeuronParams) -> str:
    return guess_modality(image) if p.modality == "auto" else p.modality


# --------------------------------------------------------------------------------------------
# Image-wide statistics (calibration)
# --------------------------------------------------------------------------------------------


def _margin_px(p: MotorNeuronParams, px: float) -> int:
    """Context read around the regions: the background blocks reach that far."""
    return int(np.ceil(max(60.0, p.background_scale_um / 2) / px))


def _factor(p: MotorNeuronParams, px: float) -> int:
    return max(1, int(np.floor(p.work_pixel_size_um / px + 1e-6)))


def _block_px(p: MotorNeuronParams, pxw: float) -> int:
    """Background block in working pixels (half the background scale)."""
    return round(p.background_scale_um / 2 / pxw)


def _white_and_stain(rgb: np.ndarray, p: MotorNeuronParams) -> tuple[np.ndarray, Any]:
    """Return the unstained light and the stain colour, from a subsample of the image."""
    white = estimate_white(rgb)
    stain = estimate_stain_vector(rgb, white, fallback=p.stain_vector) \
        if p.estimate_stain_vector else p.stain_vector
    return white, stain


def _check_contrast(density: np.ndarray, source: str) -> None:
    if float(density.max()) - float(density.min()) < 1e-3:
        raise EmptyImageError(f"{source}: the image holds no stain contrast (blank or "
                              "overexposed); there are no cells to measure")


def _soma_signal(image: Image, plane: np.ndarray, rs: slice, cs: slice,
                 channels: Mapping[str, str | int] | None, factor: int,
                 masks: Mapping[str, np.ndarray], margin_px: int) -> tuple[Any, ...]:
    """Return the fluorescence soma channel of the crop and what goes with it.

    That is the channel at the working size, its tissue, the full-resolution channel, its
    index and the channel scores.
    """
    crop = plane[rs, cs]
    tissue_full = ~find_padding(crop)
    idx, scores = _soma_channel(image, channels, tissue_full, crop)
    chan = crop[..., idx] if crop.ndim == 3 else crop
    signal = block_mean(chan, factor)
    tissue = block_any(tissue_full, factor, min_fraction=0.5)
    del tissue_full
    px = float(image.pixel_size_um)
    if not tissue.any():
        raise EmptyImageError(f"{image.source}: the regions ({', '.join(masks)}) and the "
                              f"{margin_px * px:.0f} µm around them hold no tissue, only "
                              "padding (the export's constant canvas); check where the regions "
                              "lie")
    if float(signal[tissue].max()) - float(signal[tissue].min()) <= 0:
        raise EmptyImageError(f"{image.source}: the soma channel "
                              f"{image.channel_names[idx]!r} holds no contrast in the "
                              "tissue (blank, saturated or all padding); there are no cells "
                              "to measure")
    return signal, tissue, chan, idx, scores


def _quantisation_floor(chan: np.ndarray, dtype: np.dtype) -> float:
    # A noise below the data's quantisation step is not measurable noise: the shared floor
    # (histoquant.segment.statistics) keeps one-level JPEG ripples out of the somata.
    return noise_floor(quantisation_step(sample_pixels(chan, None, 50_000), dtype))


def _align(rs: slice, cs: slice, image: Image, back: Mapping[str, Any],
           factor: int) -> tuple[slice, slice]:
    """Move a tile's crop to start on the calibration's working-pixel grid.

    Working pixels average ``factor`` × ``factor`` blocks; a tile whose blocks fall where the
    whole image's do gives the same working image, hence the same somata, as a whole run.
    The start moves back (or, at the image's edge, forward) by less than ``factor``.
    """
    cell = float(back["cell_px"])
    if factor <= 1 or abs(cell - factor) > 1e-9:
        return rs, cs
    origin = tile_origin(image)
    out = []
    for sl, o, first in zip((rs, cs), origin, back["origin_yx"]):
        start0 = float(first) - (factor - 1) / 2  # first full-resolution pixel of the grid
        shift = round(o + sl.start - start0) % factor
        start = sl.start - shift if sl.start >= shift else sl.start + (factor - shift) % factor
        out.append(slice(start, sl.stop))
    return out[0], out[1]


def calibrate(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
              channels: Mapping[str, str | int] | None = None,
              bounds: tuple[int, int, int, int] | None = None,
              pixel_size_um: float | None = None) -> dict[str, Any]:
    """Measure the assay's image-wide statistics over the regions' bounding box.

    What a whole run estimates from the whole image, for a tiled run to apply to every tile
    (``run(tile, calibration=...)``, :func:`histoquant.tiling.run_tiled`):

    - ``modality`` (``params.modality`` or the image's);
    - brightfield: ``white`` (unstained light per channel, a subsample of the whole image),
      ``stain_vector`` (measured when ``estimate_stain_vector``), ``background`` (the
      neuropil level on blocks of half ``background_scale_um``, a grid placed in
      full-resolution coordinates: a tile reads its window) and ``neuropil_sd`` (the
      neuropil's noise, which sets the soma threshold with ``foreground_snr``);
    - fluorescence: the soma channel (``soma_channel_index``, ``channel_scores``), the
      ``noise_floor`` (quantisation), ``background`` (grids of the local background level
      and noise), ``noise`` and ``background_level`` (their tissue medians).

    The box (regions grown by the background's reach) is read whole up to
    :data:`histoquant.calibration.CALIBRATION_BUDGET_PX` pixels. Beyond, a lower-resolution
    view is read (``step`` > 1 in the result; a pyramid level no coarser than the working
    pixel, else every ``step``-th pixel): the background grids are then measured on fewer,
    coarser pixels (close: they are smooth over 50 µm blocks), while ``neuropil_sd``, the
    fluorescence ``noise`` grid and ``noise_floor`` are approximate — the noise of the view's
    pixels is that of the working pixel only when the view's pixel is one (a level of the
    working pixel's size); strided single pixels are noisier than a working pixel's mean,
    and a view coarser than the working pixel less noisy.

    Parameters
    ----------
    image : Image or ndarray
        Full-resolution image (lazy arrays are read only inside the box).
    regions : None, mapping of masks, or RegionSource
        Where the assay measures (``None``: the whole image; ``"auto"`` and region files as
        :func:`run` takes them).
    params : MotorNeuronParams, dict or path, optional
        Parameters.
    channels : mapping, optional
        As for :func:`run`.
    bounds : tuple, optional
        (r0, r1, c0, c1): one section of a slide.
    pixel_size_um : float, optional
        Pixel size override.

    Returns
    -------
    dict
        Plain numbers and lists (JSON), with ``assay``, ``modality`` and ``step``.
    """
    from ..tiling import RegionSource

    p = resolve_params(MotorNeuronParams, params)
    image = prepare_image(image, pixel_size_um)
    modality = _resolve_modality(image, p)
    if p.modality == "brightfield":
        check_image_modality(image, ("brightfield",), SPEC.name)  # as run does
    px = float(image.pixel_size_um)
    if regions is not None and not isinstance(regions, (RegionSource, Mapping)):
        regions = resolve_regions(image, regions, SPEC.auto_regions)
    # a pyramid level no coarser than the working pixel: its pixels are the working
    # pixel's block means, whose noise sets the threshold
    view = region_view(image, regions, bounds=bounds, margin_px=_margin_px(p, px),
                       max_level_downsample=_factor(p, px))
    vimg = view.image
    s = view.step
    pxv = px * s
    f = _factor(p, pxv)
    # where the view's working pixel 0 is centred, and full-resolution pixels per working one
    origin = tuple(o + (f - 1) / 2 * s for o in view.origin_yx)
    cell = f * s
    out: dict[str, Any] = {"assay": SPEC.name, "modality": modality, "step": s,
                           "pyramid_level_downsample": view.level_downsample,
                           "origin_yx": [float(v) for v in view.origin_yx]}
    if modality == "fluorescence":
        plane = np.asarray(vimg.plane())
        check_not_empty(plane, image.source)
        full = (slice(0, plane.shape[0]), slice(0, plane.shape[1]))
        signal, tissue, chan, idx, scores = _soma_signal(vimg, plane, *full, channels, f,
                                                         view.masks, _margin_px(p, px))
        quant = _quantisation_floor(chan, plane.dtype)
        del chan
        block = max(2, _block_px(p, pxv * f))  # as in signal_to_noise
        bg, noise, global_sd = local_background_noise(signal, tissue, block, quant)
        out.update(soma_channel_index=int(idx), soma_channel=image.channel_names[idx],
                   channel_scores=None if scores is None else [float(v) for v in scores],
                   noise_floor=float(quant), noise=float(global_sd),
                   background_level=float(np.median(bg)),
                   background=grid_record(bg, block, cell, origin,
                                          noise=np.asarray(noise, np.float32).tolist()))
        return out
    from scipy import ndimage as ndi

    rgb = vimg.require_rgb()
    check_not_empty(np.asarray(rgb), image.source)
    white, stain = _white_and_stain(image.require_rgb(), p)
    density = stain_density(rgb, stain, white, factor=f)
    _check_contrast(density, image.source)
    block = _block_px(p, pxv * f)
    grid = background_level(density, block)
    subtract_block_grid(density, grid, block, np.arange(density.shape[0], dtype=float),
                        np.arange(density.shape[1], dtype=float))
    seg = p.segmentation()
    smoothed = ndi.gaussian_filter(density, seg.smooth_um / (pxv * f)) \
        if seg.smooth_um > 0 else density
    out.update(white=[float(v) for v in white],
               stain_vector=[float(v) for v in np.asarray(stain, float)],
               neuropil_sd=float(neuropil_noise(smoothed)),
               background=grid_record(grid, max(1, int(block)), cell, origin))
    return out


# --------------------------------------------------------------------------------------------
# Learned models in place of the soma segmentation (``--model``)
# --------------------------------------------------------------------------------------------

#: The plane kind a learned model reads (its manifest), for each path of the assay.
_PLANES = {"brightfield": "stain_od", "fluorescence": "intensity"}


@dataclass(frozen=True)
class _Step:
    """A learned model the run uses: ``somata`` (a SomaModel) or ``pixels`` (a classifier)."""

    kind: str
    model: Any


def _model_planes(model: Any) -> str | None:
    """Return the input planes a soma model or pixel classifier was trained on, if recorded."""
    planes = getattr(model, "plane_kind", None)
    if planes is None:
        planes = (getattr(model, "manifest", None) or {}).get("planes")
    return planes if isinstance(planes, str) else None


def _modality_of_planes(planes: str) -> str:
    return {v: k for k, v in _PLANES.items()}.get(planes, planes)


def _check_soma_model(model: Any, file_name: str) -> None:
    """ModelStep check: a soma model whose input planes one of the two paths reads."""
    from ..learn.somata import SomaModel

    if not isinstance(model, SomaModel):
        raise ModelFileError(f"{file_name}: not a soma model (histoquant train somata)")
    planes = _model_planes(model)
    if planes is not None and planes not in _PLANES.values():
        raise ModelFileError(f"{file_name}: the soma model reads {planes!r} planes; the "
                             "motor-neuron assay gives it brightfield stain densities "
                             "('stain_od') or a fluorescence channel ('intensity')")


def _check_pixel_model(model: Any, file_name: str) -> None:
    """ModelStep check: a brightfield pixel classifier with a soma class."""
    from ..learn.foreground import requires_class

    requires_class(*SOMA_CLASS_NAMES)(model, file_name)
    if _model_planes(model) not in (None, _PLANES["brightfield"]):
        raise ModelFileError(
            f"{file_name}: the pixel classifier was trained on "
            f"{_modality_of_planes(str(_model_planes(model)))} planes; in the motor-neuron "
            "assay a pixel classifier gives the soma foreground of brightfield (Nissl) "
            "images only — for fluorescence train a soma model (histoquant train somata)")


def _model_step(model: Any, modality: str, source: Any) -> _Step | None:
    """Return how ``model`` enters the run, refusing one of the other modality."""
    if model is None:
        return None
    from ..learn.pixels import PixelClassifier
    from ..learn.somata import SomaModel

    if isinstance(model, SomaModel):
        kind = "somata"
        _check_soma_model(model, "the soma model")
    elif isinstance(model, PixelClassifier):
        kind = "pixels"
        _check_pixel_model(model, "the pixel classifier")
        if modality != "brightfield":
            raise ModelFileError(
                f"{source}: a pixel classifier gives the soma foreground of brightfield "
                "images only; this image is fluorescence (train a soma model on it: "
                "histoquant train somata)")
    else:
        raise ModelFileError(
            f"{source}: the motor-neuron assay takes a soma model (SomaModel) or a pixel "
            f"classifier with a soma class as model=, not {type(model).__name__}; an "
            "objects model is applied to the result (histoquant.learn.assay_models)")
    planes = _model_planes(model)
    if planes is not None and planes != _PLANES[modality]:
        raise ModelFileError(
            f"{source}: the {'soma model' if kind == 'somata' else 'pixel classifier'} was "
            f"trained on {_modality_of_planes(planes)} images and this one is {modality}: "
            f"train one on {modality} images (histoquant train {kind})")
    return _Step(kind, model)


def _to_working_grid(labels: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Labels of full-resolution pixels on the working grid: each block's centre pixel.

    A working pixel k covers full pixels k·f … k·f + f − 1 (a partial block at the end:
    its pixels up to the edge), as :func:`~histoquant.segment.stain.stain_density` averages
    them.
    """
    if factor <= 1:
        out = labels
    else:
        h, w = labels.shape
        rows = np.minimum(np.arange(shape[0]) * factor + (factor - 1) // 2, h - 1)
        cols = np.minimum(np.arange(shape[1]) * factor + (factor - 1) // 2, w - 1)
        out = labels[np.ix_(rows, cols)]
    if out.shape != tuple(shape):
        raise EmptyImageError(f"model labels of shape {out.shape} for a working grid of "
                              f"{tuple(shape)}")
    return np.ascontiguousarray(out, dtype=np.int32)


def _model_labels(model: Any, crop: Any, px: float, factor: int,
                  shape: tuple[int, int]) -> np.ndarray:
    """Somata of a soma model, on the crop's working grid.

    The model sees the full-resolution crop (it rescales to its own working pixel size) and
    its labels come back at the crop's size, then go onto the assay's working grid, where
    the measurements, criteria, nucleolus and label image follow unchanged.
    """
    from ..learn.somata import segment_somata as model_somata

    labels = model_somata(model, np.asarray(crop), pixel_size_um=px)
    return _to_working_grid(labels, factor, shape)


def _model_foreground(model: Any, crop: Any, px: float, factor: int,
                      shape: tuple[int, int]) -> np.ndarray:
    """Where a pixel classifier's soma class wins, on the crop's working grid (majority)."""
    from ..learn.foreground import model_foreground

    mask, _ = model_foreground(model, np.asarray(crop), SOMA_CLASS_NAMES, pixel_size_um=px)
    out = block_mean(mask.astype(np.float32), factor, copy=False) >= 0.5
    if out.shape != tuple(shape):
        raise EmptyImageError(f"model foreground of shape {out.shape} for a working grid of "
                              f"{tuple(shape)}")
    return out


def _model_record(step: _Step) -> dict[str, Any]:
    """Return the model's kind and identity, for the result (the tables say what ran)."""
    m = step.model
    if step.kind == "somata":
        man = m.manifest
        return {"kind": "somata", "sha256": man.get("payload_sha256"),
                "planes": man.get("planes"), "pixel_size_um": man.get("pixel_size_um"),
                "training_images": [r.get("image", {}).get("sha256")
                                    for r in man.get("training_images", [])]}
    return {"kind": "pixels", "classes": list(m.classes), "planes": m.plane_kind,
            "pixel_size_um": m.pixel_size_um,
            "training_images": [r.get("sha256") for r in m.training.get("images", [])
                                if isinstance(r, dict)]}


def _engine_name(p: MotorNeuronParams, step: _Step | None) -> str:
    if step is None:
        return p.engine
    return "model" if step.kind == "somata" else "classical+pixels"


def _engine_record(p: MotorNeuronParams, step: _Step | None) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": _engine_name(p, step)}
    if step is not None:
        out["model"] = _model_record(step)
    return out


def _params_record(p: MotorNeuronParams, step: _Step | None) -> dict[str, Any]:
    """Return the parameters as run: a model replaces ``engine``."""
    d = p.to_dict()
    if step is not None:
        d.update(_engine_record(p, step))
    return d


def _mark_engine(objects: pd.DataFrame, step: _Step | None) -> None:
    """Model runs say so in objects.csv: ``engine`` and the model's hash (short)."""
    if step is None:
        return
    rec = _model_record(step)
    objects["engine"] = "model" if step.kind == "somata" else "classical+pixels"
    sha = rec.get("sha256") or next((s for s in rec["training_images"] if s), None)
    objects["model_sha256"] = str(sha)[:12] if sha else ""


def _engine_note(step: _Step | None) -> str:
    if step is None:
        return ""
    rec = _model_record(step)
    sha = rec.get("sha256") or next((s for s in rec["training_images"] if s), "")
    what = "soma model" if step.kind == "somata" else "pixel classifier foreground"
    return f"; {what} {str(sha)[:12]}"



def run(image: Image | np.ndarray, regions: Any = None,
        params: MotorNeuronParams | Mapping[str, Any] | str | Path | None = None, *,
        channels: Mapping[str, str | int] | None = None, pixel_size_um: float | None = None,
        progress: Progress | None = None,
        calibration: Mapping[str, Any] | None = None, model: Any = None) -> AssayResult:
    """Count and measure motor neurons in a brightfield Nissl or a fluorescence image.

    Parameters
    ----------
    image : Image or ndarray
        Brightfield RGB image (Y, X, 3) of a cresyl-violet section, or a fluorescence image
        of a somata stain (fluorescent Nissl / NeuroTrace, ChAT, NeuN: one channel, a
        multichannel stack, or an RGB export), with a known pixel size. Which of the two is
        the ``modality`` parameter (default: detected).
    regions : None, "auto", path or regions
        Where to count: ``None`` = the whole image (region ``image``); ``"auto"`` = the
        ventral horns found by :mod:`histoquant.anatomy`; an ImageJ RoiSet / GeoJSON file;
        or masks / :class:`~histoquant.rois.Region` objects.
    params : MotorNeuronParams, dict or path, optional
        Parameters (defaults when omitted).
    channels : mapping, optional
        Fluorescence: ``{"soma": NAME_OR_INDEX}``, the channel of the somata stain. Left out,
        a single channel is used as it is and the stained channel of an RGB export is
        picked automatically (recorded in ``extra["soma_channel"]``); a multichannel stack
        needs it. Brightfield reads the RGB image and takes no channel.
    pixel_size_um : float, optional
        Pixel size in µm when the image does not carry one (or to override it).
    progress : callable, optional
        ``progress(fraction, message)``.
    calibration : mapping, optional
        Image-wide statistics from :func:`calibrate` (modality, white level, stain colour,
        background grid, noise; the soma channel in fluorescence), applied instead of
        estimating them from ``image`` — a tile of a larger image
        (:func:`histoquant.tiling.run_tiled`; the tile's place is
        ``image.metadata["tile_origin_yx"]``). Without it they are estimated from ``image``,
        through the same code as :func:`calibrate`.
    model : SomaModel or PixelClassifier, optional
        A learned model in place of a step (``--model``, see
        :func:`histoquant.learn.assay_models.run_kwargs`): a
        :class:`~histoquant.learn.somata.SomaModel` (``histoquant train somata``) segments
        the somata instead of ``params.engine``, in either modality if it was trained on
        it; a :class:`~histoquant.learn.pixels.PixelClassifier` with a soma class
        (:data:`SOMA_CLASS_NAMES`) gives the foreground of the classical brightfield
        segmentation, whose splits follow. Measurements and criteria are the same.

    Returns
    -------
    AssayResult
        ``objects``: one row per soma in a region (``class`` = ``motor_neuron`` or
        ``other``); ``summary``: one row per region; ``labels``: every soma at image
        resolution; ``qc``: the overlay. ``extra["modality"]`` says which path ran,
        ``extra["engine"]`` which segmentation (``classical``, ``cellpose``, ``model`` for
        a soma model, ``classical+pixels`` for a pixel classifier's foreground), and
        ``extra["model"]`` (also in ``params``) the model's kind and hash.

    Raises
    ------
    ModelFileError
        ``model`` was trained on the other modality, or is not a model this assay takes.
    """
    p = resolve_params(MotorNeuronParams, params)

    def report(f: float, msg: str) -> None:
        if progress is not None:
            progress(float(np.clip(f, 0, 1)), msg)

    image = prepare_image(image, pixel_size_um)
    cal = dict(calibration) if calibration is not None else None
    modality = cal["modality"] if cal is not None else _resolve_modality(image, p)
    step = _model_step(model, modality, image.source)
    if modality == "fluorescence":
        return _run_fluorescence(image, regions, p, channels, report, cal, step)
    if p.modality == "brightfield" and cal is None:
        # Optical density against a dark background would turn the background into stain
        # (the 100,000 µm² "somata" of a fluorescence export): refuse a confident detection.
        # (A calibrated tile was checked with the whole image, by calibrate.)
        check_image_modality(image, ("brightfield",), SPEC.name)
    if channels and any(v is not None for v in dict(channels).values()):
        raise ChannelError(f"{image.source}: a brightfield analysis reads the RGB image and "
                           f"takes no channel (got {dict(channels)}); for a fluorescence "
                           "image set modality='fluorescence'")
    px = float(image.pixel_size_um)
    rgb = image.require_rgb()
    if cal is None:
        if np.issubdtype(np.asarray(rgb[:1, :1]).dtype, np.floating):
            check_finite(np.asarray(rgb), image.source)
        check_not_empty(np.asarray(rgb), image.source)
    masks = resolve_regions(image, regions, SPEC.auto_regions)
    h, w = image.shape_yx
    report(0.02, "stain separation")
    rs, cs = _crop_box(masks, _margin_px(p, px))
    factor = _factor(p, px)
    pxw = px * factor
    if cal is None:
        white, stain = _white_and_stain(rgb, p)
        density = stain_density(rgb[rs, cs], stain, white, factor=factor)
        _check_contrast(density, image.source)
        report(0.15, "background flattening")
        block = _block_px(p, pxw)
        grid = background_level(density, block)
        subtract_block_grid(density, grid, block, np.arange(density.shape[0], dtype=float),
                            np.arange(density.shape[1], dtype=float))
        noise_sd = None  # measured by the segmentation on this density
    else:
        white = np.asarray(cal["white"], np.float64)
        stain = np.asarray(cal["stain_vector"], np.float64)
        back = cal["background"]
        rs, cs = _align(rs, cs, image, back, factor)
        density = stain_density(rgb[rs, cs], stain, white, factor=factor)
        report(0.15, "background flattening")
        origin = tile_origin(image)
        ys, xs = grid_positions(back, (origin[0] + rs.start, origin[1] + cs.start),
                                density.shape, factor)
        subtract_block_grid(density, np.asarray(back["values"], np.float32),
                            back["block_px"], ys, xs)
        noise_sd = float(cal["neuropil_sd"])
    report(0.2, "soma segmentation")
    if step is not None and step.kind == "somata":
        labels_w = _model_labels(step.model, rgb[rs, cs], px, factor, density.shape)
    elif p.engine == "cellpose" and step is None:
        # Somata are the dark (high-density) objects; cellpose sees the stain density at
        # the working pixel size, so its masks line up with the measurements below.
        labels_w = segment_cellpose(density, pxw, cellpose_options(p),
                                    progress=lambda f, m: report(0.2 + 0.55 * f, m))
    else:
        more: dict[str, Any] = {} if noise_sd is None else {"noise_sd": noise_sd}
        if step is not None:  # a pixel classifier's soma class is the foreground
            more["foreground"] = _model_foreground(step.model, rgb[rs, cs], px, factor,
                                                   density.shape)
        labels_w = segment_somata(
            density, pxw, "classical" if step is not None else p.engine,
            params=p.segmentation(), progress=lambda f, m: report(0.2 + 0.55 * f, m), **more)
    report(0.75, "measuring somata")
    offset = (rs.start * px, cs.start * px)
    # Centroids in the full image's pixel-centre convention: a working pixel k spans full
    # pixels k·f … k·f + f − 1, whose centre is at k·f + (f − 1)/2.
    shift = (factor - 1) / 2 * px
    objects = measure_objects(labels_w, pxw, intensities={"density_od": density},
                              offset_um=(offset[0] + shift, offset[1] + shift))
    objects = objects.rename(columns={"mean_density_od": "mean_optical_density"})
    # The nucleolus is looked for in the somata that meet every other criterion (it only
    # matters for them, and it is the costly measure); the others get NaN and False.
    objects["nucleolus_contrast_od"] = np.nan
    objects["nucleolus_visible"] = False
    candidate = classify(objects, p.replace(require_nucleolus=False))
    contrast = np.zeros(int(candidate.sum()))
    if candidate.any():
        contrast = nucleolus_contrast(density, labels_w, pxw,
                                      objects.loc[candidate, "label"].to_numpy())
    objects.loc[candidate, "nucleolus_contrast_od"] = contrast
    objects.loc[candidate, "nucleolus_visible"] = contrast >= p.nucleolus_contrast_od
    objects["class"] = np.where(classify(objects, p), "motor_neuron", "other")
    objects = assign_regions(objects, masks, px)
    objects.insert(0, "image", image.name)
    report(0.85, "label image and QC")

    kept = np.zeros(int(labels_w.max()) + 1, dtype=bool)
    kept[objects["label"].to_numpy()] = True
    labels_w[~kept[labels_w]] = 0
    del density
    dtype = np.uint16 if labels_w.max(initial=0) < 65536 else np.int32
    labels = np.zeros((h, w), dtype=dtype)
    _upsample_labels(labels_w, factor, (rs.stop - rs.start, cs.stop - cs.start),
                     labels[rs, cs])
    del labels_w

    summary = _summary(image.name, objects, masks, px)
    _mark_engine(objects, step)
    qc = _qc_overlay(rgb, labels, objects, masks, summary, image.name,
                     note=_engine_note(step))
    report(1.0, "done")
    return AssayResult(
        assay=SPEC.name, image=image.name, objects=objects.reset_index(drop=True),
        summary=summary, labels=labels, masks=masks, qc=qc, params=_params_record(p, step),
        pixel_size_um=px,
        extra={"modality": "brightfield",
               "stain_vector": [float(v) for v in np.asarray(stain, float)],
               "white": [float(v) for v in white], "work_pixel_size_um": pxw,
               "calibrated": cal is not None, **_engine_record(p, step)})


def _soma_channel(image: Image, channels: Mapping[str, str | int] | None,
                  tissue: np.ndarray | None,
                  plane: np.ndarray) -> tuple[int, list[float] | None]:
    """Index of the somata channel: named, the only one, or picked in an RGB export."""
    named = resolve_channels(image, SPEC.channel_roles, channels)
    if "soma" in named:
        return named["soma"], None
    if image.n_channels == 1:
        return 0, None
    if image.rgb and image.n_channels == 3:
        idx, scores = pick_soma_channel(plane, tissue)
        return idx, scores
    raise ChannelError(
        f"{image.source}: which channel holds the somata stain (fluorescent Nissl, ChAT, "
        f"NeuN)? The image has {image._channel_list()}. Give it with --channel soma=NAME|INDEX "
        "or channels={'soma': ...}.")


def _run_fluorescence(image: Image, regions: Any, p: MotorNeuronParams,
                      channels: Mapping[str, str | int] | None,
                      report: Callable[[float, str], None],
                      cal: dict[str, Any] | None = None,
                      step: _Step | None = None) -> AssayResult:
    """Return the fluorescence path of :func:`run`: bright somata on a dark background."""
    if p.require_nucleolus:
        raise ParamsError(f"{image.source}: require_nucleolus needs the brightfield path (a "
                          "nucleolus is looked for as a dark spot in a pale Nissl nucleus); "
                          "turn it off for a fluorescence image")
    px = float(image.pixel_size_um)
    plane = np.asarray(image.plane())
    if cal is None:
        if np.issubdtype(plane.dtype, np.floating):
            check_finite(plane, image.source)
        check_not_empty(plane, image.source)
    masks = resolve_regions(image, regions, SPEC.auto_regions)
    h, w = image.shape_yx
    report(0.02, "tissue and soma channel")
    rs, cs = _crop_box(masks, _margin_px(p, px))
    factor = _factor(p, px)
    pxw = px * factor
    if cal is None:
        signal, tissue, chan, idx, scores = _soma_signal(image, plane, rs, cs, channels,
                                                         factor, masks, _margin_px(p, px))
        quant = _quantisation_floor(chan, plane.dtype)
        del chan
        report(0.1, "background and noise")
        snr, excess, stats = signal_to_noise(signal, tissue, _block_px(p, pxw),
                                             noise_floor=quant)
    else:
        back = cal["background"]
        rs, cs = _align(rs, cs, image, back, factor)
        crop = plane[rs, cs]
        idx = int(cal["soma_channel_index"])
        scores = cal["channel_scores"]
        chan = crop[..., idx] if crop.ndim == 3 else crop
        signal = block_mean(chan, factor)
        tissue = block_any(~find_padding(crop), factor, min_fraction=0.5)
        del chan, crop
        report(0.1, "background and noise")
        origin = tile_origin(image)
        pos = grid_positions(back, (origin[0] + rs.start, origin[1] + cs.start), signal.shape,
                             factor)
        grids = (np.asarray(back["values"], np.float32),
                 np.asarray(back["noise"], np.float32), float(cal["noise"]))
        snr, excess, stats = signal_to_noise(signal, tissue, back["block_px"], grids=grids,
                                             positions=pos)
        stats = {"noise": float(cal["noise"]), "background": float(cal["background_level"])}
    del signal
    report(0.2, "soma segmentation")
    if step is not None:  # a soma model (_model_step refuses a pixel classifier here)
        crop = plane[rs, cs]
        # a model trained on whole RGB exports reads their three channels, else the soma's
        n_planes = len(step.model.manifest.get("plane_names") or ())
        chan = crop if crop.ndim == 3 and crop.shape[-1] == n_planes else \
            crop[..., idx] if crop.ndim == 3 else crop
        labels_w = _model_labels(step.model, chan, px, factor, excess.shape)
        del crop, chan
    elif p.engine == "cellpose":
        np.maximum(excess, 0, out=excess)
        labels_w = segment_cellpose(excess, pxw, cellpose_options(p),
                                    progress=lambda f, m: report(0.2 + 0.55 * f, m))
    else:
        labels_w = segment_fluorescent_somata(
            snr, pxw, p.fluorescent_segmentation(),
            progress=lambda f, m: report(0.2 + 0.55 * f, m))
    labels_w[~tissue] = 0
    report(0.75, "measuring somata")
    offset = (rs.start * px, cs.start * px)
    shift = (factor - 1) / 2 * px
    objects = measure_objects(labels_w, pxw, intensities={"intensity": excess, "snr": snr},
                              offset_um=(offset[0] + shift, offset[1] + shift))
    _add_axial_continuation(objects, labels_w, snr, p)
    # The brightfield columns stay, empty, so both paths give the same table.
    objects["mean_optical_density"] = np.nan
    objects["nucleolus_contrast_od"] = np.nan
    objects["nucleolus_visible"] = False
    objects["class"] = np.where(classify(objects, p, "fluorescence"), "motor_neuron", "other")
    objects = assign_regions(objects, masks, px)
    objects.insert(0, "image", image.name)
    report(0.85, "label image and QC")
    kept = np.zeros(int(labels_w.max()) + 1, dtype=bool)
    kept[objects["label"].to_numpy()] = True
    labels_w[~kept[labels_w]] = 0
    del snr, excess
    dtype = np.uint16 if labels_w.max(initial=0) < 65536 else np.int32
    labels = np.zeros((h, w), dtype=dtype)
    _upsample_labels(labels_w, factor, (rs.stop - rs.start, cs.stop - cs.start),
                     labels[rs, cs])
    del labels_w
    summary = _summary(image.name, objects, masks, px)
    display = _fluorescence_display(plane, idx, int(np.ceil(max(h, w) / _QC_MAX_PX)))
    how = "named" if scores is None else "picked"
    log.info("%s: fluorescence, soma channel %s (%s)", image.source, image.channel_names[idx],
             how)
    _mark_engine(objects, step)
    qc = _qc_overlay(display, labels, objects, masks, summary, image.name, prestrided=True,
                     note=f"; fluorescence, soma channel {image.channel_names[idx]} ({how})"
                          + _engine_note(step))
    report(1.0, "done")
    return AssayResult(
        assay=SPEC.name, image=image.name, objects=objects.reset_index(drop=True),
        summary=summary, labels=labels, masks=masks, qc=qc, params=_params_record(p, step),
        pixel_size_um=px,
        extra={"modality": "fluorescence", "soma_channel": image.channel_names[idx],
               "soma_channel_index": int(idx),
               "channel_scores": None if scores is None else [float(v) for v in scores],
               "background": stats["background"], "noise": stats["noise"],
               "work_pixel_size_um": pxw, "calibrated": cal is not None,
               **_engine_record(p, step)})


def _add_axial_continuation(objects: pd.DataFrame, labels: np.ndarray, snr: np.ndarray,
                            p: MotorNeuronParams) -> None:
    """Elongation and axial continuation columns (in place), for the objects they can decide.

    Measured only on the somata of motor-neuron size at least as bright as the dimmer of the
    two brightness criteria (the others cannot become motor neurons): a few hundred objects
    of a whole section, not its thousands of specks. NaN elsewhere.
    """
    d = objects["equivalent_diameter_um"]
    need = (d >= p.min_equivalent_diameter_um) & (d <= p.max_equivalent_diameter_um) & \
           (objects["mean_snr"] >= min(p.fluorescence_dim_min_mean_snr,
                                       p.fluorescence_min_mean_snr))
    for col in ("elongation", "continuation_min", "continuation_max"):
        objects[col] = np.nan
    if not need.any():
        return
    m = axial_continuation(labels, snr, objects.loc[need, "label"].to_numpy())
    pos = pd.Index(objects["label"]).get_indexer(m["label"])
    for col in ("elongation", "continuation_min", "continuation_max"):
        objects.iloc[pos, objects.columns.get_loc(col)] = m[col]


def _fluorescence_display(plane: np.ndarray, idx: int, step: int) -> np.ndarray:
    """Return the soma channel, strided by ``step``, stretched to grey (1st–99.8th percentile)."""
    chan = plane[::step, ::step, idx] if plane.ndim == 3 else plane[::step, ::step]
    chan = np.asarray(chan, np.float32)
    lo, hi = np.percentile(chan, [1, 99.8])
    grey = np.clip((chan - lo) / max(float(hi - lo), 1e-12) * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _summary(name: str, objects: pd.DataFrame, masks: dict[str, np.ndarray],
             px: float) -> pd.DataFrame:
    return summarize_somata(objects, region_table(name, masks, px))


def summarize_somata(objects: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Count motor neurons per region from a classed objects table.

    Parameters
    ----------
    objects : DataFrame
        The assay's objects table (``region``, ``class``, ``area_um2``,
        ``equivalent_diameter_um``, ``nucleolus_visible``).
    table : DataFrame
        One row per region with ``image``, ``region`` and ``region_area_mm2``
        (:func:`~histoquant.assays.base.region_table`).

    Returns
    -------
    DataFrame
        ``table`` with the count, density and mean-size columns of the summary; an object
        counts when its ``class`` is ``motor_neuron`` (the hand-set rules' or a learned
        object classifier's, :mod:`histoquant.learn.objects`).
    """
    table = table.reset_index(drop=True)
    rows = []
    for region in table["region"]:
        o = objects[objects["region"] == region]
        mn = o[o["class"] == "motor_neuron"]
        rows.append({
            "n_motor_neurons": len(mn),
            "n_motor_neurons_with_nucleolus": int(mn["nucleolus_visible"].sum()),
            "n_somata": len(o),
            "mean_motor_neuron_area_um2": float(mn["area_um2"].mean()) if len(mn) else np.nan,
            "mean_motor_neuron_equivalent_diameter_um":
                float(mn["equivalent_diameter_um"].mean()) if len(mn) else np.nan,
            "mean_soma_area_um2": float(o["area_um2"].mean()) if len(o) else np.nan,
        })
    out = pd.concat([table, pd.DataFrame(rows)], axis=1)
    area = out["region_area_mm2"].to_numpy()
    out.insert(4, "motor_neurons_per_mm2",
               np.where(area > 0, out["n_motor_neurons"] / np.maximum(area, 1e-12), np.nan))
    return out


def _outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object with a 4-neighbour outside it: a one-pixel inner outline."""
    edge = np.zeros(labels.shape, bool)
    d = labels[1:, :] != labels[:-1, :]
    edge[1:, :] |= d
    edge[:-1, :] |= d
    d = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= d
    edge[:, :-1] |= d
    edge &= labels > 0
    return edge


def _qc_overlay(rgb: np.ndarray, labels: np.ndarray, objects: pd.DataFrame,
                masks: dict[str, np.ndarray],
                summary: pd.DataFrame, name: str, prestrided: bool = False,
                note: str = "") -> np.ndarray:
    """RGB uint8 overlay: soma outlines by class, region outlines, counts as a caption.

    Drawn at most ``_QC_MAX_PX`` pixels on the long side (a strided view of the image);
    ``prestrided``: ``rgb`` is already the strided uint8 display image; ``note`` is added
    to the first caption line.
    """
    h, w = labels.shape
    step = int(np.ceil(max(h, w) / _QC_MAX_PX))
    lines = [f"{name}: motor neurons (green) / other somata (orange){note}"]
    for _, row in summary.iterrows():
        lines.append(f"{row['region']}: {row['n_motor_neurons']} motor neurons "
                     f"({row['motor_neurons_per_mm2']:.1f} per mm2), {row['n_somata']} somata")
    lab = labels[::step, ::step]
    hq, wq = lab.shape
    # The caption band alone (add_caption on a one-row image), then the overlay is drawn in
    # place below it: one full-size copy of the image instead of three.
    band = add_caption(np.zeros((1, wq, 3), np.uint8), lines)[:-1]
    out = np.empty((band.shape[0] + hq, wq, 3), np.uint8)
    out[:band.shape[0]] = band
    disp = out[band.shape[0]:]
    src = rgb[:hq, :wq, :3] if prestrided else rgb[::step, ::step, :3]
    if np.asarray(src[:1, :1]).dtype == np.uint8:
        disp[:] = src
    else:
        from ..qc import to_display_rgb

        disp[:] = to_display_rgb(np.asarray(src))
    lut = np.zeros((int(lab.max(initial=0)) + 1, 3), np.uint8)
    has = np.zeros(len(lut), bool)
    classes = objects.drop_duplicates("label")
    ids = classes["label"].to_numpy()
    colour = np.array([CLASS_COLOURS[c] for c in classes["class"]], np.uint8).reshape(-1, 3)
    ok = ids < len(lut)
    lut[ids[ok]] = colour[ok]
    has[ids[ok]] = True
    edge = _outline_mask(lab)
    edge &= has[lab]
    disp[edge] = lut[lab[edge]]
    del edge
    draw_mask_outlines(disp, {k: m[::step, ::step] for k, m in masks.items()})
    return out


SPEC = AssaySpec(
    name="motor-neurons",
    title="Motor neurons in Nissl (cresyl violet) brightfield or somata-stained (NeuroTrace, "
          "ChAT, NeuN) fluorescence sections: count, soma size, density per mm²",
    model_steps=(
        ModelStep(
            "objects", "the motor neuron / other rules (classify): the model's classes and "
            "their probability go into objects.csv and the counts are recounted"),
        ModelStep(
            "somata", "the soma segmentation (engine): the soma model's somata, in the "
            "modality it was trained on, are measured, classed and counted as the "
            "classical engine's", check=_check_soma_model),
        ModelStep(
            "pixels", "the soma foreground of the classical brightfield segmentation: where "
            "the classifier's soma class (soma, somata, neuron or cell) wins, then split "
            "into somata as usual", check=_check_pixel_model),
    ),
    params_cls=MotorNeuronParams,
    run=run,
    channel_roles=(ChannelRole(
        "soma", required=False,
        help="fluorescence only: the somata stain (fluorescent Nissl / NeuroTrace, ChAT, "
             "NeuN); picked automatically in an RGB export"),),
    rgb=True,
    auto_regions=("ventral_horn_left", "ventral_horn_right"),
    modalities=("brightfield", "fluorescence"),
    preflight=preflight,
    endpoints=(
        Endpoint("motor_neurons_per_ventral_horn", "n_motor_neurons",
                 "Motor neurons per ventral horn", regions=("ventral_horn_*",)),
        Endpoint("motor_neuron_soma_area", "mean_motor_neuron_area_um2",
                 "Motor neuron soma area", regions=("ventral_horn_*",),
                 weight="n_motor_neurons"),
    ),
    measures=(
        REGION_AREA,
        Measure("n_motor_neurons", "count", "somata classed as motor neurons", animal="sum"),
        Measure("motor_neurons_per_mm2", "per mm²", "motor neurons per mm² of the region",
                tiles="ratio", of=("n_motor_neurons", "region_area_mm2")),
        Measure("n_motor_neurons_with_nucleolus", "count",
                "motor neurons whose nucleolus is visible in the section plane", animal="sum"),
        Measure("n_somata", "count", "every soma found (motor neurons and others)",
                animal="sum"),
        Measure("mean_motor_neuron_area_um2", "µm²", "mean soma area of the motor neurons",
                tiles="objects", of=("area_um2",), where=(("class", "motor_neuron"),),
                animal="weighted", animal_weight="n_motor_neurons"),
        Measure("mean_motor_neuron_equivalent_diameter_um", "µm",
                "mean equivalent-circle diameter of the motor neurons", tiles="objects",
                of=("equivalent_diameter_um",), where=(("class", "motor_neuron"),),
                animal="weighted", animal_weight="n_motor_neurons"),
        Measure("mean_soma_area_um2", "µm²", "mean area of every soma found",
                tiles="objects", of=("area_um2",), animal="weighted", animal_weight="n_somata"),
    ),
    calibrate=calibrate,
)
