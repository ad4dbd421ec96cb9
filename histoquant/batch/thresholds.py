"""Study-wide thresholds: one threshold for every section of an assay, set in a first pass.

In ``study.yaml``::

    assays:
      evans-blue:
        threshold: {scope: study, from_group: vehicle}   # or from_group: all

Before any section is measured, each chosen section (those of ``from_group``, or all) is
read, background-corrected as the assay corrects it inside the regions it measures (grey
matter from ``regions: auto``, or the ROI file) and a regular sample of at most
``samples_per_section`` corrected pixels is drawn from it, so every section weighs the same.
The samples are pooled in the plan's order and the assay's automatic method (``mad``,
``otsu`` or ``triangle``) is applied to the pool once; every section of the assay is then
measured with that fixed value. The sampling runs through the same machinery as the
measuring (:func:`~histoquant.batch.execute.execute`: here, ``--jobs N`` or Dask); samples
are kept in the part store (``.parts/samples``) and reused by ``--resume``. The threshold's
value is part of each measured unit's key, so a resumed run reuses its results when the
threshold is the same and measures again when it changed (say, the vehicle sections did).

:data:`STUDY_THRESHOLDS` holds the assays that have such a threshold: how one section is
sampled, how the pool becomes a value, and the parameters that apply it. Today that is
``evans-blue`` only: the GFP+ cell and vasculature assays threshold in units of each
image's own local noise (robust z-scores), already on one scale across sections, not on a
raw intensity that a pooled sample could set.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import HistoquantError
from ..params import AssayParams

if TYPE_CHECKING:  # imported where used: config.py imports this module, and units config
    from .plan import StudyPlan
    from .samples import Sample
    from .store import PartStore
    from .units import Unit, UnitOutput

__all__ = ["ThresholdOption", "StudyThresholdKind", "StudyThreshold", "SampleJob",
           "STUDY_THRESHOLDS", "SCOPES", "ALL_GROUPS", "DEFAULT_SAMPLES_PER_SECTION",
           "sample_job", "encode_sample", "decode_sample", "apply_study_thresholds",
           "parse_threshold_option", "chosen_units", "withheld_sections"]

log = logging.getLogger(__name__)

#: ``scope`` values: ``image`` (each image sets its own threshold) and ``study``.
SCOPES = ("image", "study")
#: ``from_group`` value that pools every section of the assay.
ALL_GROUPS = "all"
#: Corrected pixels drawn per section: a median and MAD of 10⁵ pixels are within ≈ 0.5 % of
#: an SD of the section's own, and 100 sections keep the pool at 40 MB.
DEFAULT_SAMPLES_PER_SECTION = 100_000


@dataclass(frozen=True)
class ThresholdOption:
    """An assay's ``threshold`` key in ``study.yaml``.

    Attributes
    ----------
    scope : {"image", "study"}
        ``image``: each image sets its own threshold (the assay's default behaviour).
    from_group : str or None
        The group whose sections set a study threshold, or ``"all"``.
    samples_per_section : int
        Most corrected pixels drawn from each chosen section.
    """

    scope: str = "image"
    from_group: str | None = None
    samples_per_section: int = DEFAULT_SAMPLES_PER_SECTION

    @property
    def study(self) -> bool:
        """True for a study-wide threshold."""
        return self.scope == "study"


@dataclass(frozen=True)
class StudyThresholdKind:
    """How one assay's threshold is set study-wide (an entry of :data:`STUDY_THRESHOLDS`).

    Attributes
    ----------
    assay : str
        The assay's name.
    what : str
        What is thresholded, for messages and the docs.
    sample : callable
        ``sample(image, params, channels=, regions=, samples_per_image=)`` → an object with
        ``values`` (1-D float32) and ``step`` (float): one section's share of the pool.
    pool : callable
        ``pool(samples, params)`` → the threshold (float).
    apply : callable
        ``apply(params, value)`` → parameters that measure with that fixed threshold.
    method : callable
        ``method(params)`` → the automatic method's name (for the label).
    problem : callable
        ``problem(params)`` → why these parameters cannot take a study threshold, or None.
    column : str
        The summary column that says how the threshold was set (its value becomes the
        label, e.g. ``study:mad(vehicle)``).
    """

    assay: str
    what: str
    sample: Callable[..., Any]
    pool: Callable[[Sequence[Any], AssayParams], float]
    apply: Callable[[AssayParams, float], AssayParams]
    method: Callable[[AssayParams], str]
    problem: Callable[[AssayParams], str | None]
    column: str = "threshold_method"


def _evb_sample(image: Any, params: AssayParams, **kw: Any) -> Any:
    from ..assays.evans_blue import threshold_sample

    return threshold_sample(image, params, **kw)


def _evb_pool(samples: Sequence[Any], params: AssayParams) -> float:
    from ..assays.evans_blue import pooled_threshold

    return pooled_threshold(samples, params)


def _evb_problem(params: AssayParams) -> str | None:
    if params.threshold_method == "fixed":
        return ("params.threshold_method is 'fixed'; a study-wide threshold computes the "
                "value: give an automatic method (mad, otsu or triangle)")
    return None


#: The assays whose threshold can be set study-wide, by name.
STUDY_THRESHOLDS: dict[str, StudyThresholdKind] = {
    "evans-blue": StudyThresholdKind(
        assay="evans-blue",
        what="the EvB threshold on background-corrected intensity (threshold_method, "
             "threshold_k)",
        sample=_evb_sample, pool=_evb_pool,
        apply=lambda p, v: p.replace(threshold_method="fixed", threshold=float(v)),
        method=lambda p: str(p.threshold_method), problem=_evb_problem),
}


def parse_threshold_option(value: Any, assay: str, where: str,
                           problems: list[str]) -> ThresholdOption:
    """Read an assay's ``threshold`` key; add every mistake to ``problems``.

    Parameters
    ----------
    value : mapping or None
        The key's value in the study file.
    assay : str
        The assay's name.
    where : str
        Where the key is, for the messages (``assays.evans-blue.threshold``).
    problems : list of str
        Collects the mistakes.

    Returns
    -------
    ThresholdOption
        The option (the default, per-image, one after a mistake).
    """
    if value is None:
        return ThresholdOption()
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping like {{scope: study, from_group: "
                        f"vehicle}}, got {value!r}")
        return ThresholdOption()
    keys = ("scope", "from_group", "samples_per_section")
    unknown = sorted(str(k) for k in set(value) - set(keys))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
                        f"{', '.join(keys)}")
    scope = value.get("scope", "image")
    if scope not in SCOPES:
        problems.append(f"{where}.scope: one of {', '.join(SCOPES)}, not {scope!r}")
        return ThresholdOption()
    n = value.get("samples_per_section", DEFAULT_SAMPLES_PER_SECTION)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1000:
        problems.append(f"{where}.samples_per_section: a whole number ≥ 1000, not {n!r}")
        n = DEFAULT_SAMPLES_PER_SECTION
    group = value.get("from_group")
    if scope == "image":
        if group is not None:
            problems.append(f"{where}.from_group: only with scope: study")
        return ThresholdOption()
    if assay not in STUDY_THRESHOLDS:
        problems.append(f"{where}: {assay} has no study-wide threshold (its thresholds are "
                        "in units of each image's own noise); scope: study is for "
                        f"{', '.join(sorted(STUDY_THRESHOLDS))}")
        return ThresholdOption()
    if group is None or not isinstance(group, (str, int)) or isinstance(group, bool) \
            or not str(group):
        problems.append(f"{where}.from_group: the group whose sections set the threshold "
                        f"(a group name, or '{ALL_GROUPS}'), not {group!r}")
        return ThresholdOption()
    return ThresholdOption("study", str(group), n)


# ------------------------------------------------------------------------------------------
# The first pass: one sampling job per chosen section
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleJob:
    """One chosen section to sample; carries ``key``, ``sample`` and ``assay`` as a Unit does.

    Attributes
    ----------
    key : str
        The sample's key: the measuring unit's key before the threshold (input hash and every
        setting) and the sampling settings.
    unit : Unit
        The section's measuring unit (image, regions, channels, params).
    samples_per_section : int
        Most pixels drawn.
    """

    key: str
    unit: Unit
    samples_per_section: int

    @property
    def sample(self) -> Sample:
        """The section's sample-sheet entry."""
        return self.unit.sample

    @property
    def assay(self) -> str:
        """The assay's name."""
        return self.unit.assay


def encode_sample(values: np.ndarray, step: float) -> bytes:
    """Return a section's threshold sample as ``.npz`` bytes.

    Parameters
    ----------
    values : ndarray
        The corrected pixel values (float32).
    step : float
        The raw channel's quantisation step.

    Returns
    -------
    bytes
        What :func:`decode_sample` reads.
    """
    buf = io.BytesIO()
    np.savez(buf, values=np.asarray(values, np.float32), step=np.float64(step))
    return buf.getvalue()


@dataclass(frozen=True)
class _Sample:
    values: np.ndarray
    step: float


def decode_sample(data: bytes) -> Any:
    """Return a sample (``values``, ``step``) from :func:`encode_sample`'s bytes.

    Parameters
    ----------
    data : bytes
        The encoded sample.

    Returns
    -------
    object
        With ``values`` (float32 array) and ``step`` (float).
    """
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return _Sample(np.asarray(z["values"], np.float32), float(z["step"]))


def _readable_in_one_piece(unit: Unit, image: Any) -> None:
    from ..io import limits
    from ..io.readers import LAZY_BYTES

    h, w = image.shape_yx
    nbytes = h * w * image.n_channels * image.dtype.itemsize * (
        image.data.shape[0] if image.axes.startswith("Z") else 1)
    if unit.split_sections or h * w > min(unit.slides.max_direct_mpx * 1e6,
                                          limits.MAX_IN_MEMORY_PIXELS) or nbytes > LAZY_BYTES:
        raise HistoquantError(
            f"{unit.sample.rel}: a study-wide threshold samples images measured in one piece; "
            "this one is measured section by section or tile by tile (a whole slide), which "
            "the first pass does not sample yet: use scope: image for it, or export its "
            "sections as separate images")


def sample_job(job: SampleJob) -> UnitOutput:
    """Draw one section's threshold sample, in a worker; never raises for a bad image.

    Parameters
    ----------
    job : SampleJob
        The section and how to sample it.

    Returns
    -------
    UnitOutput
        ``ok`` with the encoded sample in ``part`` and ``meta`` (``n``, ``step``), or ``ok``
        False with ``meta['error']``.
    """
    from ..io import read_image
    from .units import UnitOutput

    t0 = time.perf_counter()
    unit, s = job.unit, job.unit.sample
    meta: dict[str, Any] = {"image": s.image, "file": s.rel, "assay": unit.assay,
                            "key": job.key}
    try:
        kind = STUDY_THRESHOLDS[unit.spec.name]
        image = read_image(s.path, unit.pixel_size_um, channel_names=s.channel_names,
                           lazy=True, modality=unit.modality)
        _readable_in_one_piece(unit, image)
        image = dataclasses.replace(image, data=np.asarray(image.data[...]),
                                    modality=image.known_modality)
        image.metadata["name"] = s.image
        regions = str(s.roi) if s.roi is not None else unit.regions
        got = kind.sample(image, unit.params, channels=unit.channels, regions=regions,
                          samples_per_image=job.samples_per_section)
        meta.update(n=int(got.values.size), step=float(got.step))
        out = UnitOutput(key=job.key, ok=True, meta=meta,
                         part=encode_sample(got.values, got.step))
    except Exception as exc:  # one bad section must not stop the study
        meta["error"] = {"image": s.image, "file": s.rel, "assay": unit.assay,
                         "error": type(exc).__name__,
                         "message": " ".join(str(exc).split()) or type(exc).__name__}
        out = UnitOutput(key=job.key, ok=False, meta=meta)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    return out


@dataclass
class StudyThreshold:
    """One assay's study-wide threshold, as set by the first pass.

    Attributes
    ----------
    assay : str
        The assay.
    value : float or None
        The threshold (None when no chosen section could be sampled).
    method : str
        The automatic method applied to the pool (``mad``, ``otsu``, ``triangle``).
    from_group : str
        The group whose sections set it, or ``"all"``.
    sections : list of str
        The sampled sections' files (relative to the study folder), in pooling order.
    failed : list of dict
        Chosen sections whose sample could not be drawn (``file``, ``error``, ``message``):
        left out of the pool.
    samples_per_section : int
        Most pixels drawn per section.
    n_reused : int
        Samples read back from an earlier run (``--resume``).
    column : str
        The summary column the label goes to.
    """

    assay: str
    value: float | None
    method: str
    from_group: str
    sections: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    samples_per_section: int = DEFAULT_SAMPLES_PER_SECTION
    n_reused: int = 0
    column: str = "threshold_method"

    @property
    def label(self) -> str:
        """How the tables say the threshold was set: ``study:mad(vehicle)``."""
        return f"study:{self.method}({self.from_group})"

    def unit_record(self) -> dict[str, Any]:
        """Return what a measuring unit carries (and its key holds): value, method, group.

        Returns
        -------
        dict
            ``value``, ``method``, ``from_group``, ``label``, ``column``. The list of
            sections is left out: two runs with the same value measure the same.
        """
        return {"value": self.value, "method": self.method, "from_group": self.from_group,
                "label": self.label, "column": self.column}

    def record(self) -> dict[str, Any]:
        """Return the ``run.json`` record.

        Returns
        -------
        dict
            JSON-ready: value, method, label, from_group, n_sections, sections, failed,
            samples_per_section, samples_reused.
        """
        return {"value": self.value, "method": self.method, "label": self.label,
                "from_group": self.from_group, "n_sections": len(self.sections),
                "sections": list(self.sections), "failed": list(self.failed),
                "samples_per_section": self.samples_per_section,
                "samples_reused": self.n_reused}


def withheld_sections(threshold: StudyThreshold) -> StudyThreshold:
    """Return a threshold's record as a blinded run may show it: no section named.

    The sections that set a threshold ``from_group`` a group are that group's: listing them
    would unblind the study. Their number stays; failures keep only their error type.

    Parameters
    ----------
    threshold : StudyThreshold
        The threshold set on the study's own plan.

    Returns
    -------
    StudyThreshold
        The same value and method, its sections replaced by placeholders.
    """
    return dataclasses.replace(
        threshold, sections=["[withheld while blinded]"] * len(threshold.sections),
        failed=[{"file": "[withheld while blinded]", "error": f.get("error", ""),
                 "message": "[withheld while blinded]"} for f in threshold.failed])


def chosen_units(units: Sequence[Unit], assay: str, from_group: str) -> list[Unit]:
    """Return the units of ``assay`` whose section sets its study threshold, in plan order.

    Parameters
    ----------
    units : sequence of Unit
        The plan's units.
    assay : str
        The assay.
    from_group : str
        A group name, or ``"all"``.

    Returns
    -------
    list of Unit
        The chosen units.
    """
    return [u for u in units if u.assay == assay
            and (from_group == ALL_GROUPS or u.sample.group == from_group)]


def _sample_key(unit: Unit, n: int) -> str:
    from .units import unit_key

    # the measuring unit's key before any threshold holds the input's hash and every setting
    # the correction depends on (params, regions and their file's hash, channels, pixel size)
    return unit_key(unit.key, "threshold-sample", {"samples_per_section": n})


def apply_study_thresholds(plan: StudyPlan, store: PartStore, *, jobs: int = 1,
                           scheduler: Any = None, resume: bool = False) -> dict[str,
                                                                                 StudyThreshold]:
    """Run the first pass of every study-wide threshold and set it on the plan's units.

    For each assay whose ``threshold`` has ``scope: study``: sample its chosen sections
    (through :func:`~histoquant.batch.execute.execute`, with ``jobs`` or ``scheduler``;
    with ``resume``, samples kept in ``store`` are read back instead), pool them in the
    plan's order, compute the threshold, and replace each of the assay's units by one
    measured with it (its params fixed to the value, its key extended by the threshold's
    record). When no chosen section could be sampled the assay's units fail with that
    reason. ``plan.units``, ``plan.failed``, ``plan.notes`` and ``plan.thresholds`` are
    updated in place.

    Parameters
    ----------
    plan : StudyPlan
        The checked plan.
    store : PartStore
        Where the samples are kept.
    jobs : int
        Worker processes.
    scheduler : str or distributed.Client, optional
        A Dask scheduler; overrides ``jobs``.
    resume : bool
        Read back samples an earlier run kept.

    Returns
    -------
    dict of str to StudyThreshold
        By assay.
    """
    out: dict[str, StudyThreshold] = {}
    for name, ap in plan.config.assays.items():
        if ap.threshold.study:
            out[name] = _first_pass(plan, name, store, jobs=jobs, scheduler=scheduler,
                                    resume=resume)
            _set_units(plan, name, out[name], STUDY_THRESHOLDS[ap.spec.name])
    plan.thresholds.update(out)
    return out


def _first_pass(plan: StudyPlan, name: str, store: PartStore, *, jobs: int, scheduler: Any,
                resume: bool) -> StudyThreshold:
    """Sample the chosen sections of one assay (or read their samples back) and pool them."""
    from .execute import execute

    ap = plan.config.assays[name]
    opt = ap.threshold
    kind = STUDY_THRESHOLDS[ap.spec.name]
    chosen = chosen_units(plan.units, name, opt.from_group)
    jobs_ = [SampleJob(_sample_key(u, opt.samples_per_section), u, opt.samples_per_section)
             for u in chosen]
    got: dict[str, Any] = {}
    failed: dict[str, dict[str, str]] = {}
    n_reused = 0
    todo = []
    for j in jobs_:
        data = store.read_sample(j.key) if resume else None
        if data is not None:
            try:
                got[j.key] = decode_sample(data)
                n_reused += 1
                continue
            except (OSError, ValueError, KeyError):  # a damaged file: sample again
                pass
        todo.append(j)

    def on_done(job: SampleJob, result: UnitOutput) -> None:
        if result.ok:
            store.write_sample(job.key, result.part)
            got[job.key] = decode_sample(result.part)
        else:
            err = result.meta["error"]
            failed[job.key] = {"file": job.sample.rel, "error": err["error"],
                               "message": err["message"]}
            log.warning("%s: no threshold sample: %s", job.sample.rel, err["message"])

    if todo:
        log.info("%s: sampling %d section(s) for the study-wide threshold", name, len(todo))
    execute(todo, on_done, jobs=jobs, scheduler=scheduler, work=sample_job)
    # pooled in the plan's order, whatever order the workers finished in
    ok = [j for j in jobs_ if j.key in got]
    value = kind.pool([got[j.key] for j in ok], ap.params) if ok else None
    # chosen sections whose file could not be read at planning are left out too: say so
    group_of = {smp.rel: smp.group for smp in plan.samples.values()}
    unread = [{"file": f.meta["file"], "error": f.meta["error"]["error"],
               "message": f.meta["error"]["message"]} for f in plan.failed
              if f.meta.get("assay") == name and "error" in f.meta
              and (opt.from_group == ALL_GROUPS
                   or group_of.get(f.meta["file"]) == opt.from_group)]
    return StudyThreshold(name, value, kind.method(ap.params), opt.from_group,
                          sections=[j.sample.rel for j in ok],
                          failed=unread + [failed[j.key] for j in jobs_ if j.key in failed],
                          samples_per_section=opt.samples_per_section, n_reused=n_reused,
                          column=kind.column)


def _set_units(plan: StudyPlan, assay: str, rec: StudyThreshold,
               kind: StudyThresholdKind) -> None:
    from .units import failed_output, unit_key

    units: list[Unit] = []
    for u in plan.units:
        if u.assay != assay:
            units.append(u)
            continue
        if rec.value is None:
            why = f" ({rec.failed[0]['message']})" if rec.failed else ""
            plan.failed.append(failed_output(
                u, "StudyThresholdError",
                f"no study-wide threshold: none of the {len(rec.failed)} section(s) of "
                f"{rec.from_group} could be sampled{why}", "failed: no study threshold"))
            continue
        record = rec.unit_record()
        units.append(dataclasses.replace(
            u, params=kind.apply(u.params, rec.value), study_threshold=record,
            key=unit_key(u.key, assay, {"study_threshold": record})))
    plan.units = units
    if rec.value is None:
        plan.notes.append(f"{assay}: no study-wide threshold could be set; its sections "
                          "were not measured")
    else:
        plan.notes.append(
            f"{assay}: one study-wide threshold {rec.value:.4g} ({rec.label}) from "
            f"{len(rec.sections)} section(s)"
            + (f"; {len(rec.failed)} chosen section(s) could not be sampled and were left "
               "out" if rec.failed else ""))
