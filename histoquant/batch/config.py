"""The study file (``study.yaml``): which assays read which files, with what parameters.

::

    title: SOD1G93A MSC study           # optional, shown in the report
    samples: samples.csv                # sample sheet (default: samples.csv/.tsv/.xlsx here)
    pattern: null                       # regex with named groups, when there is no sheet
    groups: [vehicle, MSC]              # group order (or {group: [animal, ...]})
    exclude: ["scratch/*"]              # globs of files to leave out
    assays:
      motor-neurons:
        files: ["*nissl*"]              # globs on paths relative to the study folder
        regions: auto                   # null (whole image), auto, or an ROI file
        channels: {}                    # role: channel name or index
        params: {min_soma_area_um2: 300}
        pixel_size_um: null             # default pixel size for this assay's files
        modality: null                  # brightfield | fluorescence; null detects it
        model: null                     # a model file (histoquant train objects) in place
                                        # of the class rules; null uses the rules
        measures: [n_motor_neurons]     # columns for Prism tables and plots (default: all)
      evans-blue:
        threshold: {scope: study, from_group: vehicle}   # one threshold for every section,
                                        # set from the vehicle sections (or: all); default
                                        # scope: image (see histoquant.batch.thresholds)
    slides: {split_sections: false, tile_px: 4096, overlap_um: 100}
    qc: {max_saturated_pct: 1.0, min_anatomy_score: 0.5}   # flag only
    exclusions:                         # sections left out of animal values, with the reason
      - {rule: min_anatomy_score, value: 0.5}
      - {rule: max_saturated_pct, value: 5}
      - {sections: ["R07_L4_s2"], reason: "folded tissue"}   # image or image#section globs

Every mistake in the file is collected and reported at once (:class:`StudyError`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assays.base import AssaySpec, get_assay
from ..errors import HistoquantError, ParamsError
from ..params import AssayParams, ParamsValidationError, load_params_file, param
from .exclusions import ExclusionRule, parse_exclusions
from .thresholds import ALL_GROUPS, STUDY_THRESHOLDS, ThresholdOption, parse_threshold_option

__all__ = ["StudyError", "AssayPlan", "SlideOptions", "QCOptions", "StudyConfig",
           "load_study", "load_study_config", "find_study_file", "STUDY_FILE_NAMES"]

STUDY_FILE_NAMES = ("study.yaml", "study.yml", "study.json")
_TOP_KEYS = ("title", "samples", "pattern", "groups", "exclude", "assays", "slides", "qc",
             "exclusions")
_ASSAY_KEYS = ("files", "regions", "channels", "params", "pixel_size_um", "measures",
               "modality", "model", "threshold")


class StudyError(ParamsError):
    """The study file, sample sheet or file names are wrong; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[str], source: str = "study"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s); nothing was run:\n{lines}")


@dataclass(frozen=True)
class SlideOptions(AssayParams):
    """How large images and whole slides are cut into sections and tiles."""

    split_sections: bool = param(
        False, help="find several sections per image (whole slides) and report each; "
        "when false every image is one section")
    tile_px: int = param(
        4096, unit="px", minimum=64,
        help="core size of a tile when an image is measured tile by tile; 4096² RGB is 48 MB, "
        "so a tile and an assay's working copies stay well under 1 GB")
    overlap_um: float = param(
        100.0, unit="µm", minimum=0,
        help="context added around each tile; must exceed the largest object (motor-neuron "
        "somata reach ≈ 60 µm) so that an object on a seam is seen whole by the tile owning "
        "its centroid")
    max_direct_mpx: float = param(
        64.0, unit="Mpx", minimum=0,
        help="images up to this many megapixels (and 2 GB of pixels) are measured in one "
        "piece, exactly as the assay's own command would; larger ones tile by tile")
    in_memory_mb: float = param(
        256.0, unit="MB", minimum=0,
        help="images up to this size are read into memory at once (one read is faster than "
        "many window reads); larger ones are read tile by tile, so memory does not grow with "
        "the slide")
    overview_max_px: int = param(
        2048, unit="px", minimum=64,
        help="longest side of the overview used to find sections and draw QC; 2048 px over a "
        "75 × 25 mm slide is ≈ 37 µm per pixel, fine enough for outlines of 4 mm sections")
    anatomy_pixel_um: float = param(
        8.0, unit="µm", minimum=0.1,
        help="regions: auto on a slide runs histoquant.anatomy on a copy of each section "
        "reduced to about this pixel size (the anatomy itself works at 10 µm), never on the "
        "full-resolution slide")
    min_section_area_mm2: float = param(
        1.0, unit="mm²", minimum=0,
        help="smaller tissue pieces are debris; a rat lumbar section is 9–11 mm² "
        "(Watson et al. 2009), so 1 mm² keeps damaged sections")


@dataclass(frozen=True)
class QCOptions(AssayParams):
    """When an image is flagged in the report, and how large QC pictures are."""

    max_saturated_pct: float = param(
        1.0, unit="%", minimum=0, maximum=100,
        help="flag images with more than this share of pixels at the top of the range "
        "(clipped signal biases intensities and areas)")
    min_anatomy_score: float = param(
        0.5, minimum=0, maximum=1,
        help="flag images whose anatomy quality (from histoquant.anatomy on slides, or any "
        "summary column ending in 'score') is lower")
    thumbnail_px: int = param(320, unit="px", minimum=32, help="report thumbnail size")
    overlay_max_px: int = param(2048, unit="px", minimum=64, help="largest side of qc/*.png")


@dataclass(frozen=True)
class AssayPlan:
    """One assay of a study: which files it reads and how."""

    name: str
    spec: AssaySpec
    params: AssayParams
    files: tuple[str, ...] = ()
    regions: Any = None
    channels: Mapping[str, str | int] = field(default_factory=dict)
    pixel_size_um: float | None = None
    measures: tuple[str, ...] = ()
    #: "brightfield" / "fluorescence" overrides the detection from the pixels; None detects.
    modality: str | None = None
    #: a model file (``histoquant train``) that replaces a step of the assay; None: its rules
    model: str | None = None
    #: ``threshold:`` — per image (the default) or one study-wide value
    #: (:mod:`histoquant.batch.thresholds`)
    threshold: ThresholdOption = field(default_factory=ThresholdOption)

    def selects(self, rel: str) -> bool:
        """Return whether this assay reads the file at ``rel`` (relative POSIX path).

        Parameters
        ----------
        rel : str
            The file's path relative to the study folder, with ``/`` separators.

        Returns
        -------
        bool
            True when a ``files`` pattern matches it.
        """
        return not self.files or any(glob_match(rel, g) for g in self.files)


@dataclass
class StudyConfig:
    """A parsed and checked study file."""

    folder: Path
    path: Path | None = None
    title: str = ""
    samples: Path | None = None
    pattern: str | None = None
    group_order: tuple[str, ...] = ()
    group_of_animal: dict[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    assays: dict[str, AssayPlan] = field(default_factory=dict)
    slides: SlideOptions = field(default_factory=SlideOptions)
    qc: QCOptions = field(default_factory=QCOptions)
    raw: dict[str, Any] = field(default_factory=dict)
    #: sections left out of animal values, with the reason (:mod:`.exclusions`)
    exclusions: tuple[ExclusionRule, ...] = ()


def glob_match(rel: str, pattern: str) -> bool:
    """Glob on a relative POSIX path; a pattern without ``/`` also matches the file name.

    Parameters
    ----------
    rel : str
        The path, with ``/`` separators.
    pattern : str
        The glob.

    Returns
    -------
    bool
        Whether the pattern matches.
    """
    if fnmatch.fnmatchcase(rel, pattern):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)


def find_study_file(folder: Path) -> Path | None:
    """Return ``study.yaml`` (or ``.yml``/``.json``) in ``folder``, if there is one.

    Parameters
    ----------
    folder : pathlib.Path
        The study folder.

    Returns
    -------
    pathlib.Path or None
        The study file, or None.
    """
    for name in STUDY_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _params_problems(exc: HistoquantError, where: str, source: Path | None = None) -> list[str]:
    """Return the problems of a params error, one per bad key, located as ``where.key``.

    ``source`` names a separate params file the values came from; without it the values
    are in the study file itself, which the StudyError's first line names.
    """
    if isinstance(exc, ParamsValidationError):
        if source is not None:
            return [f"{where}: {line}" for line in exc.at(source).lines()]
        return exc.at("", f"{where}.").lines(with_where=False)
    return [f"{where}: {source}: {exc}" if source else f"{where}: {exc}"]


def _options(cls: type[AssayParams], value: Any, where: str, problems: list[str],
             ) -> AssayParams:
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping of settings, got {value!r}")
        return cls()
    try:
        return cls.from_dict(dict(value))
    except HistoquantError as exc:
        problems.extend(_params_problems(exc, where))
        return cls()


def _str_list(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    problems.append(f"{where}: expected a list of strings, got {value!r}")
    return ()


def _assay_plan(name: str, settings: Any, folder: Path, problems: list[str],
                overrides: Mapping[str, Any]) -> AssayPlan | None:
    where = f"assays.{name}"
    try:
        spec = get_assay(name)
    except HistoquantError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        problems.append(f"{where}: expected a mapping with keys {', '.join(_ASSAY_KEYS)}")
        return None
    unknown = sorted(set(settings) - set(_ASSAY_KEYS))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
                        f"{', '.join(_ASSAY_KEYS)}")
    settings = {**settings, **{k: v for k, v in overrides.items() if v is not None}}
    raw_params = settings.get("params")
    params = spec.params_cls()
    params_file: Path | None = None
    if isinstance(raw_params, (str, Path)):
        p = Path(raw_params)
        params_file = p if p.is_absolute() else folder / p
        try:
            raw_params = load_params_file(params_file)
        except HistoquantError as exc:  # names the file already
            problems.append(f"{where}.params: {exc}")
            raw_params = None
    try:
        if raw_params is not None and not isinstance(raw_params, (Mapping, AssayParams)):
            raise ParamsError(f"params must be a mapping or a file, not {raw_params!r}")
        if isinstance(raw_params, AssayParams):
            if not isinstance(raw_params, spec.params_cls):
                raise ParamsError(f"params must be {spec.params_cls.__name__}, not "
                                  f"{type(raw_params).__name__}")
            params = raw_params
        elif raw_params is not None:
            params = spec.params_cls.from_dict(dict(raw_params))
    except HistoquantError as exc:
        problems.extend(_params_problems(exc, f"{where}.params", params_file))
    regions = settings.get("regions")
    if regions is not None and regions != "auto":
        if not isinstance(regions, (str, Path)):
            problems.append(f"{where}.regions: null, 'auto' or a region file, not {regions!r}")
            regions = None
        else:
            rp = Path(regions)
            rp = rp if rp.is_absolute() else folder / rp
            if not rp.exists():
                problems.append(f"{where}.regions: no such file {rp}")
            else:
                # Read once now: a broken region file would otherwise fail every image
                # with the same error, after the run has started.
                from ..rois import read_regions

                try:
                    read_regions(rp)
                except HistoquantError as exc:
                    problems.append(f"{where}.regions: {exc}")
            regions = str(rp)
    channels = settings.get("channels") or {}
    if not isinstance(channels, Mapping):
        problems.append(f"{where}.channels: expected role: name-or-index, got {channels!r}")
        channels = {}
    roles = {r.name for r in spec.channel_roles}
    bad_roles = sorted(set(channels) - roles)
    if bad_roles:
        problems.append(f"{where}.channels: unknown role(s) {', '.join(bad_roles)}; "
                        f"{name} reads {', '.join(sorted(roles)) or 'no named channels'}")
    px = settings.get("pixel_size_um")
    if px is not None:
        try:
            if isinstance(px, bool):  # YAML 'yes' is not a size
                raise ValueError
            px = float(px)
            if not 0 < px <= 1000:  # also refuses NaN and infinity
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{where}.pixel_size_um: a positive number of µm, not {px!r}")
            px = None
    modality = settings.get("modality")
    if modality is not None:
        from ..io.modality import MODALITIES

        if str(modality).lower() not in MODALITIES:
            problems.append(f"{where}.modality: one of {', '.join(MODALITIES)}, not "
                            f"{modality!r}")
            modality = None
        else:
            modality = str(modality).lower()
    model = settings.get("model")
    if model is not None:
        if not isinstance(model, (str, Path)):
            problems.append(f"{where}.model: a model file (.hqm), not {model!r}")
            model = None
        else:
            mp = Path(model)
            mp = mp if mp.is_absolute() else folder / mp
            # loaded once now: a foreign, tampered or unfit model is refused before any image
            try:
                from ..learn.assay_models import load_assay_model

                load_assay_model(mp, spec.name)
            except HistoquantError as exc:
                problems.append(f"{where}.model: {exc}")
            except ImportError as exc:
                problems.append(f"{where}.model: learned models need scikit-learn and skops "
                                f"(pip install 'histoquant[learn]'): {exc}")
            model = str(mp)
    threshold = parse_threshold_option(settings.get("threshold"), spec.name,
                                       f"{where}.threshold", problems)
    if threshold.study:
        why = STUDY_THRESHOLDS[spec.name].problem(params)
        if why:
            problems.append(f"{where}.threshold: {why}")
        if model is not None:
            problems.append(f"{where}.threshold: scope: study sets a threshold, but the model "
                            "replaces it (a pixel classifier gives the positive pixels); "
                            "use one or the other")
    return AssayPlan(name=spec.name, spec=spec, params=params, modality=modality, model=model,
                     threshold=threshold,
                     files=_str_list(settings.get("files"), f"{where}.files", problems),
                     regions=regions, channels=dict(channels), pixel_size_um=px,
                     measures=_str_list(settings.get("measures"), f"{where}.measures",
                                        problems))


def _check_threshold_groups(plan: AssayPlan, cfg: StudyConfig, problems: list[str]) -> None:
    """Check that a study threshold's group is a group of the study, on unsplit images.

    Groups named only in the sample sheet are checked when the run is planned.
    """
    opt = plan.threshold
    if not opt.study:
        return
    where = f"assays.{plan.name}.threshold"
    known = list(cfg.group_order) or sorted(set(cfg.group_of_animal.values()))
    if opt.from_group != ALL_GROUPS and known and opt.from_group not in known:
        problems.append(f"{where}.from_group: no group {opt.from_group!r}; the groups are "
                        f"{', '.join(known)} (or {ALL_GROUPS})")
    if cfg.slides.split_sections:
        problems.append(f"{where}: slides.split_sections is on, and a study-wide threshold "
                        "samples images measured in one piece; whole slides split into "
                        "sections are not sampled yet")


def load_study_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Return the assays of a study file as ``{assay: {files, regions, channels, params, ...}}``.

    The plain-dict view of :func:`load_study` (kept for callers of the first folder batch,
    such as the napari plugin's sample menu); ``params`` is the full parameter mapping.

    Parameters
    ----------
    path : str or pathlib.Path
        The study file.

    Returns
    -------
    dict of str to dict
        One plain mapping of settings per assay.

    Raises
    ------
    StudyError
        Listing every problem of the file.
    """
    cfg = load_study(path)
    return {name: {"files": list(a.files), "regions": a.regions, "channels": dict(a.channels),
                   "params": a.params.to_dict(), "pixel_size_um": a.pixel_size_um,
                   "measures": list(a.measures)} for name, a in cfg.assays.items()}


def load_study(
    path: str | Path | None,
    folder: str | Path | None = None,
    *,
    assays: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> StudyConfig:
    """Read and check a study file.

    Parameters
    ----------
    path : path or None
        The study YAML/JSON. ``None`` builds a study from ``assays`` alone.
    folder : path, optional
        The study folder (default: the study file's folder); relative paths in the file are
        relative to it.
    assays : sequence of str
        Restrict to these assays (with a file), or the assays to run (without one).
    overrides : mapping, optional
        Settings applied to every assay (``params``, ``regions``, ``channels``,
        ``pixel_size_um``), from the command line.

    Returns
    -------
    StudyConfig

    Raises
    ------
    StudyError
        Listing every problem found.
    """
    problems: list[str] = []
    overrides = dict(overrides or {})
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = load_params_file(path)
        except HistoquantError as exc:
            raise StudyError([str(exc)], str(path)) from exc
    folder = Path(folder) if folder is not None else (path.parent if path else Path("."))
    source = str(path) if path else "command line"
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}; valid keys: "
                        f"{', '.join(_TOP_KEYS)}")
    cfg = StudyConfig(folder=folder, path=path, raw=data, title=str(data.get("title") or ""))
    samples = data.get("samples")
    if samples is not None:
        sp = Path(str(samples))
        sp = sp if sp.is_absolute() else folder / sp
        if not sp.is_file():
            problems.append(f"samples: no such sample sheet {sp}")
        cfg.samples = sp
    pattern = data.get("pattern")
    if pattern is not None:
        try:
            rx = re.compile(str(pattern))
            if "animal" not in rx.groupindex:
                problems.append("pattern: needs a named group (?P<animal>...) for the animal")
            cfg.pattern = str(pattern)
        except re.error as exc:
            problems.append(f"pattern: not a valid regular expression ({exc})")
    groups = data.get("groups")
    if isinstance(groups, Mapping):
        cfg.group_order = tuple(str(g) for g in groups)
        for g, animals in groups.items():
            for a in _str_list([str(x) for x in (animals or [])], f"groups.{g}", problems):
                if a in cfg.group_of_animal and cfg.group_of_animal[a] != str(g):
                    problems.append(f"groups: animal {a} is in both {cfg.group_of_animal[a]} "
                                    f"and {g}")
                cfg.group_of_animal[a] = str(g)
    elif groups is not None:
        cfg.group_order = tuple(str(g) for g in _str_list(groups, "groups", problems))
    cfg.exclude = _str_list(data.get("exclude"), "exclude", problems)
    cfg.slides = _options(SlideOptions, data.get("slides"), "slides", problems)
    cfg.qc = _options(QCOptions, data.get("qc"), "qc", problems)
    cfg.exclusions = parse_exclusions(data.get("exclusions"), problems)
    raw_assays = data.get("assays")
    wanted = [a.replace("_", "-") for a in assays]
    if path is not None and raw_assays is None and not wanted:
        problems.append("assays: the study file names no assays; add an 'assays' mapping")
    if raw_assays is not None and not isinstance(raw_assays, Mapping):
        problems.append("assays: expected a mapping of assay name to settings")
        raw_assays = {}
    raw_assays = dict(raw_assays or {})
    if wanted and raw_assays:
        missing = [a for a in wanted if a not in raw_assays]
        if missing:
            problems.append(f"--assay {', '.join(missing)}: not in the study file's assays "
                            f"({', '.join(raw_assays)})")
        raw_assays = {k: v for k, v in raw_assays.items() if k in wanted}
    elif wanted:
        raw_assays = {a: {} for a in wanted}
    if not raw_assays and not problems:
        problems.append("no assay to run: name one with --assay or in the study file")
    for name, settings in raw_assays.items():
        plan = _assay_plan(str(name), settings, folder, problems, overrides)
        if plan is not None:
            cfg.assays[plan.name] = plan
            _check_threshold_groups(plan, cfg, problems)
    if problems:
        raise StudyError(problems, source)
    return cfg
