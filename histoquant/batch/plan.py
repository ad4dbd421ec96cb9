"""Planning a study run: find the images, read the study file and sample sheet, check it all.

:func:`plan_study` turns a study folder into a :class:`StudyPlan` — one
:class:`~histoquant.batch.units.Unit` per image × assay, keyed by a hash of the input and every
setting that shapes its result — and raises one :class:`~histoquant.batch.config.StudyError`
listing every problem before any image is measured. Nothing here measures or writes results
(the input hashes are cached in ``OUTDIR/.parts/hashes.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.safe_paths import OutputFolder
from .config import StudyConfig, StudyError, find_study_file, glob_match, load_study
from .samples import SHEET_NAMES, Sample, build_samples, discover, natural_key, read_sample_sheet
from .store import PartStore
from .thresholds import ALL_GROUPS, StudyThreshold, chosen_units
from .units import Unit, UnitOutput, failed_output, unit_key

__all__ = ["StudyPlan", "plan_study", "study_overrides"]


@dataclass
class StudyPlan:
    """The checked plan of a study: config, samples, units, and notes for the report.

    Attributes
    ----------
    config : StudyConfig
        The study file as read, with the command line's overrides.
    samples : dict of Path to Sample
        Every selected image and its animal, group, level, section.
    units : list of Unit
        The image × assay pairs to measure, in the sample sheet's natural order.
    failed : list of UnitOutput
        Pairs failed already (an unreadable file): rows of ``errors.csv``, never run.
    notes : list of str
        What the user should know (skipped files, exclusions, defaults taken).
    inputs : dict of str to str
        Image path relative to the study folder → SHA-256, for ``run.json``.
    sheet : Path or None
        The sample sheet read.
    thresholds : dict of str to StudyThreshold
        The study-wide thresholds, by assay, once the first pass
        (:func:`~histoquant.batch.thresholds.apply_study_thresholds`) has set them; until
        then the units of those assays hold the per-image parameters and keys.
    """

    config: StudyConfig
    samples: dict[Path, Sample]
    units: list[Unit]
    failed: list[UnitOutput]
    notes: list[str]
    inputs: dict[str, str]
    sheet: Path | None
    thresholds: dict[str, StudyThreshold] = field(default_factory=dict)


def _preflight(cfg: StudyConfig) -> None:
    """Let each assay check its needs once, before any image (cellpose weights, say).

    An assay declares the check as ``AssaySpec.preflight(params)``, which raises a
    HistoquantError (usually a DependencyError) that says what is missing.
    """
    for plan in cfg.assays.values():
        if plan.spec.preflight is not None:
            plan.spec.preflight(plan.params)


def plan_study(
    folder: str | Path,
    outdir: str | Path,
    *,
    config: str | Path | None = None,
    samples: str | Path | None = None,
    assays: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    hash_store: PartStore | None = None,
) -> StudyPlan:
    """Find images, read the study file and sample sheet, and check everything.

    Parameters
    ----------
    folder : path
        The study folder, searched recursively for images.
    outdir : path
        The output folder; its ``.parts/hashes.json`` caches the input hashes.
    config : path, optional
        Study file (default ``folder/study.yaml`` when there is one).
    samples : path, optional
        Sample sheet (default: the study file's, else ``folder/samples.csv``...).
    assays : sequence of str
        Run only these assays of the study file, or these assays when there is no file.
    overrides : mapping, optional
        Settings for every assay, from :func:`study_overrides`.
    hash_store : PartStore, optional
        Where the input hashes are cached (default ``outdir/.parts``; a blinded run keeps
        them beside its key, since the cache names every file).

    Returns
    -------
    StudyPlan
        The units to measure and what the report needs to say.

    Raises
    ------
    StudyError
        With every problem found, before any image is measured.
    OutputPathError
        When the output folder holds a symbolic link leading out of it (checked first,
        before anything is written there).
    """
    folder = Path(folder).resolve()
    outdir = Path(outdir).resolve()
    if not folder.is_dir():
        raise StudyError([f"{folder}: not a folder"], "study")
    # A link planted in the output folder (outdir/qc -> /elsewhere) would carry writes out
    # of it; refuse the run now, before the input hashes are cached or any image measured.
    OutputFolder(outdir).check()
    cfg_path = Path(config) if config is not None else find_study_file(folder)
    if config is not None and not cfg_path.is_file():
        raise StudyError([f"no such study file: {cfg_path}"], "study")
    cfg = load_study(cfg_path, folder, assays=assays, overrides=overrides)
    _preflight(cfg)
    sheet_path = Path(samples) if samples is not None else cfg.samples
    if sheet_path is None:
        sheet_path = next((folder / n for n in SHEET_NAMES if (folder / n).is_file()), None)
    elif not sheet_path.is_file():
        raise StudyError([f"no such sample sheet: {sheet_path}"], "study")
    sheet = read_sample_sheet(sheet_path) if sheet_path is not None else None
    notes: list[str] = []
    images, others = discover(folder, skip=[outdir], notes=notes)
    if cfg.exclude:
        kept = [p for p in images
                if not any(glob_match(p.relative_to(folder).as_posix(), g) for g in cfg.exclude)]
        if len(kept) < len(images):
            notes.append(f"{len(images) - len(kept)} image(s) excluded by the study file")
        images = kept
    own = {p for p in (cfg_path, sheet_path) if p is not None}
    skipped = [p.relative_to(folder).as_posix() for p in others if p.resolve() not in
               {q.resolve() for q in own}]
    if skipped:
        notes.append(f"{len(skipped)} file(s) that are not images skipped: "
                     f"{', '.join(skipped[:8])}{' ...' if len(skipped) > 8 else ''}")
    rels = {p: p.relative_to(folder).as_posix() for p in images}
    selected = [p for p in images if any(a.selects(rels[p]) for a in cfg.assays.values())]
    smp, more = build_samples(cfg, images, sheet=sheet, sheet_path=sheet_path,
                              selected=selected)
    notes.extend(more)
    problems: list[str] = []
    store = hash_store if hash_store is not None else PartStore(outdir)
    paths = sorted(smp, key=lambda p: natural_key(rels[p]))
    extra_files = sorted({s.roi for s in smp.values() if s.roi is not None}
                         | {Path(a.regions) for a in cfg.assays.values()
                            if a.regions not in (None, "auto")}
                         | {Path(a.model) for a in cfg.assays.values() if a.model is not None})
    hashes, unreadable = store.hashes(paths + list(extra_files))
    units: list[Unit] = []
    failed: list[UnitOutput] = []
    seen_sections: dict[tuple, str] = {}
    for p in paths:
        s = smp[p]
        for plan in cfg.assays.values():
            if not plan.selects(s.rel) or (s.assays is not None and plan.name not in s.assays):
                continue
            split = s.split_sections if s.split_sections is not None \
                else cfg.slides.split_sections
            if s.section and not split:
                k = (plan.name, s.animal, s.level, s.section)
                if k in seen_sections:
                    problems.append(f"{s.rel}: animal {s.animal} level {s.level} section "
                                    f"{s.section} is also {seen_sections[k]} ({plan.name})")
                seen_sections[k] = s.rel
            regions = str(s.roi) if s.roi is not None else plan.regions
            px = s.pixel_size_um if s.pixel_size_um is not None else plan.pixel_size_um
            settings = {
                "params": plan.params.to_dict(), "channels": dict(plan.channels),
                "regions": regions if regions in (None, "auto") else
                {"file": Path(regions).name, "sha256": hashes.get(Path(regions))},
                "pixel_size_um": px, "channel_names": s.channel_names, "split": bool(split),
                "slides": cfg.slides.to_dict(), "image_name": s.image,
                "section": s.section,
            }
            if plan.modality is not None:  # absent otherwise: earlier results stay reusable
                settings["modality"] = plan.modality
            if plan.model is not None:  # the same: absent without a model
                settings["model"] = {"file": Path(plan.model).name,
                                     "sha256": hashes.get(Path(plan.model))}
            key = unit_key(hashes.get(p, "unreadable"), plan.spec.name, settings)
            unit = Unit(key=key, sample=s, assay=plan.name, spec=plan.spec, params=plan.params,
                        channels=dict(plan.channels), regions=plan.regions,
                        pixel_size_um=px, split_sections=bool(split), slides=cfg.slides,
                        qc=cfg.qc, modality=plan.modality, model=plan.model)
            if p in unreadable:
                failed.append(failed_output(unit, "ImageReadError",
                                            f"cannot read the file ({unreadable[p]})",
                                            "failed: unreadable"))
                continue
            units.append(unit)
    problems.extend(_threshold_problems(cfg, units))
    for f in extra_files:
        if f in unreadable:
            problems.append(f"{f}: cannot read the file ({unreadable[f]})")
    if not units and not failed and not problems:
        problems.append(f"no image in {folder} is read by any assay "
                        f"({', '.join(cfg.assays)}); check the 'files' globs and the sheet")
    if problems:
        raise StudyError(problems, "study")
    inputs = {smp[p].rel: hashes[p] for p in paths if p in hashes}
    return StudyPlan(config=cfg, samples=smp, units=units, failed=failed, notes=notes,
                     inputs=inputs, sheet=sheet_path)


def _threshold_problems(cfg: StudyConfig, units: Sequence[Unit]) -> list[str]:
    """Return why a study threshold cannot be set: no section of its group, or whole slides."""
    problems = []
    for name, ap in cfg.assays.items():
        opt = ap.threshold
        if not opt.study:
            continue
        where = f"assays.{name}.threshold"
        mine = [u for u in units if u.assay == name]
        groups = sorted({u.sample.group for u in mine})
        chosen = chosen_units(mine, name, opt.from_group)
        if mine and not chosen:
            problems.append(f"{where}.from_group: no section of {name} is in group "
                            f"{opt.from_group!r}; its sections' groups are "
                            f"{', '.join(map(repr, groups))} (or {ALL_GROUPS})")
        split = [u.sample.rel for u in chosen if u.split_sections]
        if split:
            problems.append(f"{where}: {', '.join(split[:4])}{' ...' if len(split) > 4 else ''}"
                            " are whole slides split into sections, which a study-wide "
                            "threshold does not sample yet; export the sections as images "
                            "or use scope: image")
    return problems


def study_overrides(*, params: Any = None, regions: Any = None,
                    channels: Mapping[str, str | int] | None = None,
                    pixel_size_um: float | None = None) -> dict[str, Any]:
    """Return settings given for every assay (the command line's), as :func:`plan_study` takes them.

    Parameters
    ----------
    params : params object, dict or file path, optional
        A file path is made absolute here: it is relative to the current folder, not to the
        study folder.
    regions : "auto" or a region file path, optional
        A file path is made absolute for the same reason.
    channels : mapping, optional
        Channel role → name or index.
    pixel_size_um : float, optional
        Pixel size in µm for every image.

    Returns
    -------
    dict
        Only the settings given, under the study file's keys.
    """
    overrides: dict[str, Any] = {}
    if params is not None:
        overrides["params"] = str(Path(params).resolve()) if isinstance(params, (str, Path)) \
            else params
    if regions is not None:
        overrides["regions"] = regions if regions == "auto" else str(Path(regions).resolve())
    if channels:
        overrides["channels"] = dict(channels)
    if pixel_size_um is not None:
        overrides["pixel_size_um"] = pixel_size_um
    return overrides
