"""Model files (``.hqm``) that load without running code and say what they hold.

A model file is a zip with two members:

``manifest.json``
    What the model is: ``format`` (``"histoquant-model"``), ``format_version``, ``kind``
    (``"pixels"``, ``"objects"`` or ``"somata"``), ``classes``, ``features``, the pixel size
    trained at (``pixel_size_um``), the library versions that wrote it (histoquant,
    scikit-learn, skops, numpy), the training images (name and SHA-256), held-out
    ``scores``, the time it was ``created`` and the SHA-256 of the payload
    (``payload_sha256``). The trainer's own keys are kept as given.
``model.skops``
    The scikit-learn estimator, written by :func:`skops.io.dumps`. Unlike pickle, skops
    rebuilds only the types it is told to trust and runs no code from the file; this module
    trusts scikit-learn's and numpy's own types plus the short list
    :data:`TRUSTED_TYPES` and refuses a file that names anything else.

Loading refuses, with :class:`~histoquant.errors.ModelFileError`: a file that is not a zip or
not a histoquant model, a member name that climbs out (``../``, absolute) or is not one of the
two, members whose uncompressed size is absurd (a zip bomb), a newer ``format_version``, the
wrong ``kind``, a payload whose hash differs from the manifest's (tampered or damaged), and a
payload naming untrusted types.

A model written by another scikit-learn major.minor version is refused too, unless the caller
allows it: scikit-learn documents no compatibility of saved estimators across versions, and
its tree internals change between minor versions (1.3 added a field to every node), so an
old forest may fail to load or, worse, load and predict differently. A count silently off
is worse than a clear request to retrain or to install the version named in the error; a
patch-level difference (1.5.1 vs 1.5.2) only changes bug fixes and loads without a word.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DependencyError, ModelFileError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "TRUSTED_TYPES",
    "LoadedModel",
    "save_model",
    "load_model",
    "file_sha256",
    "image_record",
]

#: The ``format`` every histoquant model manifest carries.
FORMAT = "histoquant-model"
#: The newest format version this code writes and reads.
FORMAT_VERSION = 1
#: Model kinds: which step of an assay the model replaces.
KINDS = ("pixels", "objects", "somata")
#: Types skops does not trust by default that a histoquant model may hold: the fitted tree
#: structure of scikit-learn's forests. Anything else in a payload is refused.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)

_MANIFEST = "manifest.json"
_PAYLOAD = "model.skops"
_MEMBERS = (_MANIFEST, _PAYLOAD)
# A manifest is a few kB; a forest of a few hundred trees on a large training set is at most
# a few hundred MB. Anything beyond is not a model this project writes.
_MAX_MANIFEST_BYTES = 16 * 2**20
_MAX_PAYLOAD_BYTES = 2 * 2**30
_MAX_INNER_BYTES = 4 * 2**30
# Reserved manifest keys: written by save_model, never taken from the trainer's dict.
_RESERVED = ("format", "format_version", "kind", "versions", "created", "payload_sha256")


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a ``.hqm`` file.

    Parameters
    ----------
    estimator : object
        The fitted scikit-learn estimator.
    manifest : dict
        The file's manifest (see the module documentation).
    kind : str
        ``"pixels"``, ``"objects"`` or ``"somata"``.
    """

    estimator: Any
    manifest: dict
    kind: str

    @property
    def classes(self) -> list:
        """The classes the model predicts, as in the manifest."""
        return list(self.manifest.get("classes", []))

    @property
    def features(self) -> list[str]:
        """The features the model reads, in the order it reads them."""
        return list(self.manifest.get("features", []))

    @property
    def pixel_size_um(self) -> float | None:
        """The pixel size (µm) the model was trained at, or ``None`` when it does not apply."""
        value = self.manifest.get("pixel_size_um")
        return None if value is None else float(value)


def _skops():
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyError(
            "model files need skops and scikit-learn: pip install 'histoquant[learn]'") from exc
    return sio


def _versions() -> dict[str, str]:
    import numpy
    import sklearn
    import skops

    from .. import __version__
    return {"histoquant": __version__, "scikit-learn": sklearn.__version__,
            "skops": skops.__version__, "numpy": numpy.__version__}


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 (hex) of a file's bytes.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_record(path: str | Path) -> dict[str, str]:
    """Return a training image's manifest entry: its file name and SHA-256.

    Parameters
    ----------
    path : str or Path
        The training image.

    Returns
    -------
    dict
        ``{"name": file name, "sha256": hex digest}``.
    """
    return {"name": Path(path).name, "sha256": file_sha256(path)}


def _jsonable(value: Any, where: str) -> Any:
    """Return ``value`` with numpy scalars and arrays turned into JSON types, or refuse."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[]") for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v, f"{where}[]") for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ModelFileError(f"manifest entry {where} is a {type(value).__name__}, which a JSON "
                         "manifest cannot hold")


def save_model(path: str | Path, estimator: Any, *, kind: str, manifest: dict) -> Path:
    """Write a fitted estimator and its manifest to a ``.hqm`` model file.

    Parameters
    ----------
    path : str or Path
        Where to write (conventionally ``*.hqm``); an existing file is replaced.
    estimator : object
        A fitted scikit-learn estimator built only from types skops trusts plus
        :data:`TRUSTED_TYPES` (a random forest, a pipeline of scikit-learn steps).
    kind : str
        ``"pixels"``, ``"objects"`` or ``"somata"``.
    manifest : dict
        The trainer's description: ``features`` (list of str, required), ``pixel_size_um``
        (float or None, required), ``classes`` (default: ``estimator.classes_``),
        ``training_images`` (list of :func:`image_record`), ``scores`` (held-out scores) and
        any other JSON-serialisable keys. ``format``, ``format_version``, ``kind``,
        ``versions``, ``created`` and ``payload_sha256`` are written here and may not be given.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ModelFileError
        Unknown kind, a missing or reserved manifest key, a manifest JSON cannot hold, or an
        estimator holding types the loader would refuse.
    """
    sio = _skops()
    if kind not in KINDS:
        raise ModelFileError(f"model kind must be one of {KINDS}, not {kind!r}")
    given = dict(manifest)
    reserved = sorted(set(given) & set(_RESERVED))
    if reserved:
        raise ModelFileError(f"manifest keys {reserved} are written by save_model, not given")
    missing = [key for key in ("features", "pixel_size_um") if key not in given]
    if missing:
        raise ModelFileError(f"the manifest needs {missing}")
    if "classes" not in given:
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise ModelFileError("the manifest needs 'classes' (the estimator has no classes_)")
        given["classes"] = classes
    given.setdefault("training_images", [])
    given.setdefault("scores", {})
    payload = sio.dumps(estimator)
    untrusted = sorted(set(sio.get_untrusted_types(data=payload)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ModelFileError(f"the estimator holds types a model file may not hold: {untrusted}")
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
            **_jsonable(given, "manifest"), "versions": _versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "payload_sha256": hashlib.sha256(payload).hexdigest()}
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_MANIFEST, json.dumps(full, indent=2, ensure_ascii=False))
        # the payload is a zip of .npy files already; stored, not compressed twice
        zf.writestr(zipfile.ZipInfo(_PAYLOAD, date_time=(1980, 1, 1, 0, 0, 0)), payload,
                    compress_type=zipfile.ZIP_STORED)
    tmp.replace(path)
    return path


def _check_members(zf: zipfile.ZipFile, name: str, limits: dict[str, int], total: int) -> None:
    """Refuse members that climb out, unexpected members and absurd uncompressed sizes."""
    declared = 0
    for info in zf.infolist():
        member = info.filename
        parts = PurePosixPath(member.replace("\\", "/")).parts
        if member.startswith(("/", "\\")) or ".." in parts or ":" in member:
            raise ModelFileError(f"{name}: member {member!r} points outside the file (path "
                                 "traversal); refusing it")
        if limits and member not in limits:
            raise ModelFileError(f"{name}: unexpected member {member!r}; a histoquant model "
                                 f"holds only {list(limits)}")
        limit = limits.get(member, total)
        if info.file_size > limit:
            raise ModelFileError(f"{name}: member {member!r} would unpack to {info.file_size} "
                                 f"bytes (limit {limit}); refusing a possible zip bomb")
        declared += info.file_size
    if declared > total:
        raise ModelFileError(f"{name}: members would unpack to {declared} bytes (limit "
                             f"{total}); refusing a possible zip bomb")


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def load_model(path: str | Path, *, kind: str | None = None,
               allow_version_mismatch: bool = False) -> LoadedModel:
    """Read a ``.hqm`` model file, refusing anything unsafe, foreign or unfit.

    Parameters
    ----------
    path : str or Path
        The model file.
    kind : str, optional
        The kind the caller needs (``"pixels"``, ``"objects"``, ``"somata"``); another kind
        is refused. ``None`` accepts any.
    allow_version_mismatch : bool
        Load a model written by another scikit-learn major.minor version with a warning
        instead of refusing it (see the module documentation for why refusing is the default).

    Returns
    -------
    LoadedModel
        The estimator, the manifest and the kind.

    Raises
    ------
    ModelFileError
        The file is missing, not a zip, not a histoquant model, of a newer format, of another
        kind, tampered with, names untrusted types, has unsafe members, or was written by
        another scikit-learn version (unless allowed).
    """
    sio = _skops()
    path = Path(path)
    name = str(path)
    if kind is not None and kind not in KINDS:
        raise ModelFileError(f"model kind must be one of {KINDS}, not {kind!r}")
    if not path.is_file():
        raise ModelFileError(f"{name}: no such model file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if _MANIFEST not in names:
                raise ModelFileError(f"{name}: not a histoquant model (no {_MANIFEST} inside)")
            _check_members(zf, name, {_MANIFEST: _MAX_MANIFEST_BYTES,
                                      _PAYLOAD: _MAX_PAYLOAD_BYTES},
                           _MAX_MANIFEST_BYTES + _MAX_PAYLOAD_BYTES)
            raw_manifest = zf.read(_MANIFEST)
            payload = zf.read(_PAYLOAD) if _PAYLOAD in names else None
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{name}: not a histoquant model file (not a readable zip: "
                             f"{exc})") from exc
    try:
        manifest = json.loads(raw_manifest.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{name}: the manifest is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{name}: not a histoquant model (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{name}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{name}: model format version {version} is newer than this "
                             f"histoquant reads ({FORMAT_VERSION}); update histoquant")
    file_kind = manifest.get("kind")
    if file_kind not in KINDS:
        raise ModelFileError(f"{name}: unknown model kind {file_kind!r}")
    if kind is not None and file_kind != kind:
        raise ModelFileError(f"{name}: this is a {file_kind!r} model; a {kind!r} model is "
                             "needed here")
    if payload is None:
        raise ModelFileError(f"{name}: the model file has no {_PAYLOAD}")
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise ModelFileError(f"{name}: the model payload does not match the hash in its "
                             "manifest: the file was damaged or tampered with; refusing it")
    written = dict(manifest.get("versions") or {})
    import sklearn
    theirs = written.get("scikit-learn")
    if theirs is None or _major_minor(theirs) != _major_minor(sklearn.__version__):
        message = (f"{name}: written with scikit-learn {theirs}, this is "
                   f"{sklearn.__version__}; saved estimators are not compatible across "
                   f"scikit-learn versions: retrain the model, or install scikit-learn=="
                   f"{theirs}")
        if not allow_version_mismatch:
            raise ModelFileError(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as inner:
            _check_members(inner, f"{name}:{_PAYLOAD}", {}, _MAX_INNER_BYTES)
        named = set(sio.get_untrusted_types(data=payload))
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{name}: the model payload is not a skops file ({exc})") from exc
    except ModelFileError:
        raise
    except Exception as exc:  # skops' own schema errors: a damaged or foreign payload
        raise ModelFileError(f"{name}: the model payload is unreadable ({exc})") from exc
    untrusted = sorted(named - set(TRUSTED_TYPES))
    if untrusted:
        raise ModelFileError(f"{name}: the model payload names types histoquant does not "
                             f"trust: {untrusted}; refusing to load it")
    # only the listed types that this payload names; skops' defaults cover the rest
    trusted = sorted(named)
    try:
        estimator = sio.loads(payload, trusted=trusted)
    except Exception as exc:
        raise ModelFileError(f"{name}: the model payload could not be loaded ({exc})") from exc
    return LoadedModel(estimator=estimator, manifest=manifest, kind=file_kind)
