"""What every assay shares: its description for the CLI/GUI and the input plumbing."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ChannelError, HistoquantError, ModalityError, ParamsError, RegionError
from ..io.image import Image, as_image
from ..params import AssayParams
from ..progress import Progress
from ..results import AssayResult
from ..rois import Region, normalize_regions, read_regions
from .contract import Endpoint, ExtraTable, Measure, find_measure

__all__ = ["ChannelRole", "ModelStep", "AssaySpec", "Measure", "ExtraTable", "Endpoint",
           "get_assay",
           "available_assays", "resolve_regions", "resolve_channels", "check_result",
           "resolve_params", "region_table", "Progress", "check_image_modality"]



@dataclass(frozen=True)
class ChannelRole:
    """A channel an assay reads: its role name, whether it is required, and what it holds."""

    name: str
    required: bool = True
    help: str = ""


@dataclass(frozen=True)
class ModelStep:
    """A step of an assay that a learned model (``histoquant train``) can replace.

    Parameters
    ----------
    kind : str
        The model kind (``"objects"``, ``"pixels"``, ``"somata"``;
        :data:`histoquant.learn.modelfile.KINDS`).
    replaces : str
        What the model does in place of the classical step, in words (shown in errors, the
        CLI help and the docs).
    check : callable, optional
        ``check(model, path)`` raises :class:`~histoquant.errors.ModelFileError` when a model
        of this kind does not fit the assay (say a pixel classifier without the class the
        assay reads), so a run refuses it before measuring any image. ``model`` is what
        :func:`histoquant.learn.assay_models.step_model` returns.

    Notes
    -----
    An ``objects`` model is applied to the assay's result (its classes replace the class
    rules and the summary is recounted); a model of any other kind is handed to the assay's
    ``run(..., model=...)``, which uses it in place of the step.
    """

    kind: str
    replaces: str
    check: Callable[[Any, str], None] | None = None


@dataclass(frozen=True)
class AssaySpec:
    """How the CLI, the batch runner and the napari plugin see an assay.

    ``run(image, regions=None, params=None, *, channels=None, progress=None,
    calibration=None) -> AssayResult``

    Everything the batch, the tiler and the plugin need to know about the assay's tables is
    declared here (see :mod:`histoquant.assays.contract`): the summary columns with their
    units and combination rules, the extra tables, the object position columns, and a
    preflight check.

    ``calibrate``, when an assay has one, measures the statistics the assay estimates over
    the whole image (background, noise, thresholds, stain colour, ...):
    ``calibrate(image, regions, params, *, channels=None, bounds=None) -> dict``, with
    ``regions`` full-size masks ``{name: bool array}`` or a
    :class:`histoquant.tiling.RegionSource` and ``bounds`` (r0, r1, c0, c1) one section's box
    (passed only when a tiled run has one); :func:`histoquant.calibration.region_view` reads
    the pixels within a memory budget. The dict holds plain floats, strings and lists
    (JSON, recorded in run.json); ``run(tile, ..., calibration=that_dict)`` then applies
    them to a tile instead of estimating its own, so a tiled run measures as a whole one
    (:func:`histoquant.tiling.run_tiled`). ``run(image)`` alone is ``calibrate`` followed by
    that application, on the whole image.
    """

    name: str
    title: str
    params_cls: type[AssayParams]
    run: Callable[..., AssayResult]
    channel_roles: tuple[ChannelRole, ...] = ()
    rgb: bool = False
    auto_regions: tuple[str, ...] = ("grey_matter",)
    #: The modalities the assay measures; other images are refused with a ModalityError.
    modalities: tuple[str, ...] = ("brightfield", "fluorescence")
    #: Every summary column: unit, meaning, and how it combines over tiles and per animal.
    measures: tuple[Measure, ...] = ()
    #: Tables besides summary and objects, each written as ``<name>.csv``.
    tables: tuple[ExtraTable, ...] = ()
    #: ``preflight(params)`` raises a HistoquantError before a batch starts when the run
    #: cannot work (a missing optional engine, a model file that is not there).
    preflight: Callable[[Any], None] | None = None
    #: (row, column) pairs of object columns in µm that are positions; the first is where an
    #: object is (which tile keeps it, where the viewer puts it); all are moved when tiles are
    #: put back into slide coordinates.
    positions: tuple[tuple[str, str], ...] = (("centroid_y_um", "centroid_x_um"),)
    #: Image-wide statistics for tiled runs (see the class docstring); None: each tile
    #: estimates its own.
    calibrate: Callable[..., dict] | None = None
    #: The steps a learned model can replace (``--model m.hqm``); the model's kind picks one.
    model_steps: tuple[ModelStep, ...] = ()
    #: The few measures a paper reports (:class:`~histoquant.assays.contract.Endpoint`):
    #: the report's first panel, the statistics and the Prism file are built from these.
    endpoints: tuple[Endpoint, ...] = ()

    def model_step(self, kind: str) -> ModelStep | None:
        """Return the step a model of ``kind`` replaces in this assay, or ``None``.

        Parameters
        ----------
        kind : str
            A model kind.

        Returns
        -------
        ModelStep or None
            The declaration, or ``None`` when the assay takes no model of that kind.
        """
        return next((m for m in self.model_steps if m.kind == kind), None)

    def __post_init__(self) -> None:
        """Check the modalities and declarations; wrap ``run`` with the result checks."""
        from ..io.modality import MODALITIES

        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ValueError(f"{self.name}: modalities must be among {MODALITIES}, not {bad}")
        names = [m.name for m in self.measures]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a summary column is declared twice")
        for e in self.endpoints:
            for col in (e.measure, e.weight):
                if col is not None and find_measure(self.measures, col) is None:
                    raise ValueError(f"{self.name}: endpoint {e.name} reads {col!r}, which "
                                     "is not a declared summary column")
        if len({e.name for e in self.endpoints}) != len(self.endpoints):
            raise ValueError(f"{self.name}: an endpoint is declared twice")
        if set(self.modalities) != set(MODALITIES) or self.measures or self.tables:
            # One check for every caller (CLI, batch, napari, Python): the spec's run refuses
            # an image of the other modality before the assay reads a pixel, and what it
            # returns holds only declared summary columns and tables.
            object.__setattr__(self, "run", _checked(self.run, self))
            if self.calibrate is not None:
                object.__setattr__(self, "calibrate",
                                   _checked(self.calibrate, self, check_result=False))

    def measure(self, column: str) -> Measure:
        """Return the declaration of summary column ``column``.

        Parameters
        ----------
        column : str
            A summary column the assay reports.

        Returns
        -------
        Measure
            Its declaration (an exact name, else the first matching glob, see
            :func:`~histoquant.assays.contract.find_measure`).

        Raises
        ------
        HistoquantError
            When the assay does not declare it (a bug in the assay: every summary column is
            declared in its ``SPEC``).
        """
        found = find_measure(self.measures, column)
        if found is None:
            raise HistoquantError(
                f"assay {self.name!r} reports summary column {column!r}, which its SPEC does "
                "not declare (AssaySpec.measures): its unit and how it combines are unknown")
        return found


def _checked(run: Callable[..., Any], spec: AssaySpec, *,
             check_result: bool = True) -> Callable[..., Any]:
    return _CheckedRun(run.__wrapped__ if isinstance(run, _CheckedRun) else run, spec,
                       check_result)


class _CheckedRun:
    """Run an assay with the checks every caller gets.

    A class, not a closure, so that a spec pickles into the batch's worker processes.
    """

    def __init__(self, run: Callable[..., Any], spec: AssaySpec,
                 check_output: bool = True) -> None:
        import functools

        functools.update_wrapper(self, run)
        self.spec = spec
        self.check_output = check_output

    def __call__(self, image: Any, *args: Any, **kwargs: Any) -> Any:
        from ..io.modality import MODALITIES

        spec = self.spec
        if set(spec.modalities) != set(MODALITIES) and isinstance(image, (Image, np.ndarray)):
            image = as_image(image)
            check_image_modality(image, spec.modalities, spec.name)
        result = self.__wrapped__(image, *args, **kwargs)
        if self.check_output:
            check_result(spec, result)
        return result


def check_result(spec: AssaySpec, result: AssayResult) -> None:
    """Raise HistoquantError when ``result`` holds a summary column or table ``spec`` lacks.

    Every column's unit and combination rule, and every table's name, are declared in the
    assay's ``SPEC``; an undeclared one is a bug in the assay, caught on its first test run.

    Parameters
    ----------
    spec : AssaySpec
        The assay's declaration.
    result : AssayResult
        What the assay returned.

    Raises
    ------
    HistoquantError
        A summary column not declared in ``spec.measures`` (when the assay declares any), or a
        table not in ``spec.tables``.
    """
    from ..results import ID_COLUMNS

    if spec.measures and isinstance(result.summary, pd.DataFrame):
        for col in result.summary.columns:
            if col not in ID_COLUMNS:
                spec.measure(col)
    declared = {t.name for t in spec.tables}
    extra = sorted(set(result.tables) - declared)
    if extra:
        raise HistoquantError(f"assay {spec.name!r} returns table(s) {extra} that its SPEC "
                              "does not declare (AssaySpec.tables)")


def available_assays() -> dict[str, AssaySpec]:
    """Every assay module under ``histoquant.assays`` that defines ``SPEC``, by name.

    Returns
    -------
    dict of str to AssaySpec
        The assays by name (``motor-neurons``, ``evans-blue``, ...), sorted by name.
    """
    from .. import assays as pkg

    out: dict[str, AssaySpec] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, AssaySpec):
            out[spec.name] = spec
    return dict(sorted(out.items()))


def get_assay(name: str) -> AssaySpec:
    """Return the assay called ``name`` (``motor-neurons``, ``evans-blue``, ...).

    Parameters
    ----------
    name : str
        The assay's name; underscores are read as hyphens (``evans_blue`` = ``evans-blue``).

    Returns
    -------
    AssaySpec
        The assay's declaration.

    Raises
    ------
    HistoquantError
        No assay has that name (the message lists the available ones).
    """
    assays = available_assays()
    key = name.replace("_", "-")
    if key not in assays:
        raise HistoquantError(f"unknown assay {name!r}; available: {', '.join(assays)}")
    return assays[key]


def resolve_params(params_cls: type[AssayParams], params: Any) -> AssayParams:
    """Accept None (defaults), a params object, a mapping, or a JSON/YAML file path.

    Parameters
    ----------
    params_cls : type of AssayParams
        The assay's parameter class.
    params : AssayParams, mapping, str, Path or None
        Its parameters: None for the defaults, an instance of ``params_cls`` (returned as is),
        a mapping of field values, or the path of a JSON/YAML file.

    Returns
    -------
    AssayParams
        An instance of ``params_cls``.

    Raises
    ------
    ParamsError
        ``params`` is of another type, or (from ``params_cls``) a value or the file is bad.
    """
    if params is None:
        return params_cls()
    if isinstance(params, params_cls):
        return params
    if isinstance(params, Mapping):
        return params_cls.from_dict(dict(params))
    if isinstance(params, (str, Path)):
        return params_cls.from_file(params)
    raise ParamsError(f"params must be a {params_cls.__name__}, a dict or a file path, "
                      f"not {type(params).__name__}")


def resolve_channels(image: Image, roles: tuple[ChannelRole, ...],
                     channels: Mapping[str, str | int] | None) -> dict[str, int]:
    """Map each channel role to a channel index of ``image``.

    Roles not named in ``channels`` fall back to a channel of the same name in the image
    (case-insensitive), then to the one channel whose name is a marker, dye or wavelength of
    the role (``EGFP``, ``Hoechst 33342``, ``Alexa 647``; see
    :func:`histoquant.io.channel_roles.guess_roles`) when no other channel's name is as good.
    Display colours (LUTs) are never used here, only named in the error. A required role left
    unresolved raises ChannelError.

    Parameters
    ----------
    image : Image
        The image the assay reads.
    roles : tuple of ChannelRole
        The channels the assay reads.
    channels : mapping of str to str or int, optional
        Channel name or index per role name, as the user gave them.

    Returns
    -------
    dict of str to int
        Channel index per resolved role; an optional role not found is left out. A single
        required role of a one-channel image is channel 0.

    Raises
    ------
    ChannelError
        ``channels`` names a role the assay does not read, or a required role is unresolved
        (the message says how to give it); from :meth:`Image.channel_index
        <histoquant.io.image.Image.channel_index>`, a channel that the image lacks.
    """
    channels = dict(channels or {})
    known = {r.name for r in roles}
    unknown = sorted(set(channels) - known)
    if unknown:
        raise ChannelError(
            f"{image.source}: unknown channel role(s) {', '.join(unknown)}; this assay reads "
            f"{', '.join(r.name for r in roles)}"
        )
    from ..io.channel_roles import ALIAS, guess_roles

    out: dict[str, int] = {}
    given = {r.name: image.channel_index(channels[r.name]) for r in roles
             if r.name in channels and channels[r.name] is not None}
    open_roles = [r for r in roles if r.name not in given]
    guesses = guess_roles(image, open_roles, min_strength=ALIAS).chosen
    for role in roles:
        if role.name in given:
            out[role.name] = given[role.name]
        elif role.name in guesses and guesses[role.name].index not in given.values():
            out[role.name] = guesses[role.name].index
        elif role.required:
            if image.n_channels == 1 and sum(r.required for r in roles) == 1:
                out[role.name] = 0
                continue
            raise ChannelError(
                f"{image.source}: which channel holds {role.name!r} ({role.help})? The image "
                f"has {image._channel_list()}{_colour_hint(image, role)}. Give it with "
                f"--channel {role.name}=NAME|INDEX or channels={{'{role.name}': ...}}."
            )
    return out


def _colour_hint(image: Image, role: ChannelRole) -> str:
    """Return which channel the display colours (LUTs) suggest for ``role``, for an error."""
    from ..io.channel_roles import COLOUR, guess_roles

    found = guess_roles(image, (role,), min_strength=COLOUR)
    if role.name in found.chosen:
        g = found.chosen[role.name]
        return (f"; the file's display colours suggest {image.channel_names[g.index]!r} "
                f"({g.reason})")
    return ""


def resolve_regions(image: Image, regions: Any,
                    auto_regions: tuple[str, ...] = ("grey_matter",)) -> dict[str, np.ndarray]:
    """Turn the ``regions`` argument of an assay into ``{name: bool mask}`` at image size.

    ``None`` measures the whole image as region ``"image"``; ``"auto"`` runs
    :mod:`histoquant.anatomy` and keeps the regions named in ``auto_regions`` (for example
    ``("ventral_horn_left", "ventral_horn_right")``); a path reads an
    ImageJ RoiSet or GeoJSON file; anything :func:`histoquant.rois.normalize_regions` takes is
    accepted as well.

    Parameters
    ----------
    image : Image
        The image the regions belong to.
    regions : Any
        None, ``"auto"``, the path of a region file, a :class:`~histoquant.rois.Region`, or
        anything :func:`~histoquant.rois.normalize_regions` takes.
    auto_regions : tuple of str
        The anatomy regions kept under ``"auto"``.

    Returns
    -------
    dict of str to ndarray of bool
        One full-resolution mask of the image's (Y, X) shape per region.

    Raises
    ------
    RegionError
        ``"auto"`` without :mod:`histoquant.anatomy`; from the readers and
        :func:`~histoquant.rois.normalize_regions`, a region file or value that cannot be used.
    """
    shape = image.shape_yx
    if isinstance(regions, str) and regions == "auto":
        try:
            from ..anatomy import auto_regions as find_auto_regions
        except ImportError as exc:
            raise RegionError("regions='auto' needs histoquant.anatomy, which is missing") \
                from exc
        return find_auto_regions(image, auto_regions)
    source = image.source
    if isinstance(regions, (str, Path)):
        # both files in messages: the region file may simply belong to another image
        source = f"{regions} (regions of {image.source})"
        regions = read_regions(regions)
    if isinstance(regions, Region):
        regions = [regions]
    if isinstance(regions, (list, tuple)) and regions and source == image.source:
        files = {r.properties.get("source_file") for r in regions if isinstance(r, Region)}
        if len(files) == 1 and None not in files:
            source = f"{files.pop()} (regions of {image.source})"
    return normalize_regions(regions, shape, source=source)


def region_table(image_name: str, masks: Mapping[str, np.ndarray],
                 pixel_size_um: float) -> pd.DataFrame:
    """One row per region with ``image``, ``region`` and ``region_area_mm2``.

    Parameters
    ----------
    image_name : str
        Value of the ``image`` column.
    masks : mapping of str to ndarray of bool
        Mask per region name.
    pixel_size_um : float
        Pixel size of the masks in µm.

    Returns
    -------
    DataFrame
        One row per mask, in ``masks`` order; ``region_area_mm2`` is its pixel count × the
        pixel area in mm².
    """
    px_mm2 = (pixel_size_um / 1000.0) ** 2
    return pd.DataFrame({
        "image": [image_name] * len(masks),
        "region": list(masks),
        "region_area_mm2": [float(m.sum()) * px_mm2 for m in masks.values()],
    })


def prepare_image(image: Image | np.ndarray, pixel_size_um: float | None = None, *,
                  modalities: tuple[str, ...] | None = None, assay: str = "") -> Image:
    """Wrap arrays, apply a pixel-size override, require a pixel size and the right modality.

    ``modalities`` are those the assay measures (its ``SPEC.modalities``); an image of another
    modality raises :class:`~histoquant.errors.ModalityError`.

    Parameters
    ----------
    image : Image or ndarray
        The image; an array is wrapped by :func:`~histoquant.io.image.as_image`.
    pixel_size_um : float, optional
        Pixel size in µm, overriding the file's.
    modalities : tuple of str, optional
        Modalities the assay measures; None checks none.
    assay : str
        The assay's name, for the error message.

    Returns
    -------
    Image
        The image, with a known pixel size.

    Raises
    ------
    PixelSizeError
        The pixel size is neither in the file nor given.
    ModalityError
        The image's modality is not among ``modalities`` (see :func:`check_image_modality`).
    """
    image = as_image(image, pixel_size_um)
    image.require_pixel_size()
    if modalities is not None:
        check_image_modality(image, modalities, assay)
    return image


def check_image_modality(image: Image, modalities: tuple[str, ...], assay: str = "") -> str:
    """Return the image's modality, or raise ModalityError when ``modalities`` do not include it.

    The message says what was seen (the detection's evidence) and how to override it.

    Parameters
    ----------
    image : Image
        The image.
    modalities : tuple of str
        Modalities the assay measures.
    assay : str
        The assay's name, for the message.

    Returns
    -------
    str
        The image's modality (also when its detection was a toss-up below
        ``REFUSE_CONFIDENCE``: no ground to refuse).

    Raises
    ------
    ModalityError
        The modality was declared, or detected with confidence, and is not in ``modalities``.
    """
    from ..io.modality import REFUSE_CONFIDENCE

    kind = image.modality
    if kind in modalities:
        return kind
    meta = image.metadata
    if "modality_evidence" in meta and meta.get("modality_confidence", 1.0) < REFUSE_CONFIDENCE:
        return kind  # a toss-up (blank image, pure noise): no ground to refuse
    if "modality_evidence" in meta:
        seen = (f"it looks like {kind} ({meta['modality_evidence']}; confidence "
                f"{meta.get('modality_confidence', float('nan')):.2f})")
    else:
        seen = f"it was declared {kind}"
    want = " or ".join(modalities)
    other = modalities[0]
    raise ModalityError(
        f"{image.source}: {assay + ' ' if assay else ''}measures {want} images, but {seen}. "
        f"If the image really is {other}, say so: --modality {other} on the command line, "
        f"read_image(path, modality={other!r}) or Image(..., modality={other!r}) in Python, "
        f"'modality: {other}' in the study file."
    )
