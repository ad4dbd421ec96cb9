"""Object classifier: a random forest on an assay's measured objects, taught from points.

An assay such as gfp-cells lists every object it detects, decoys included, each with its
measurements (µm, µm², intensities, ratios, shape) and a class set by hand-written rules.
The object classifier replaces those rules with a
:class:`sklearn.ensemble.RandomForestClassifier` trained on the same measurements from a
lab's own labels:

1. the user clicks objects and names their class: a CSV with ``image`` (file stem),
   ``x_px, y_px`` (or ``x_um, y_um``) and ``class`` (:func:`read_points`);
2. each point labels the detected object under it in the assay's label image
   (:func:`label_points`); a point on no object, an image not given, or two points naming
   different classes for one object is an error that lists them all;
3. a forest is fitted on the numeric measurements (:func:`object_features`: never ids,
   regions, positions or the assay's own class columns) and scored by stratified
   cross-validation (:func:`train_objects`), then saved as a ``.hqm`` model file
   (:mod:`histoquant.learn.modelfile`) whose manifest names the assay, the features, the
   classes and which of them are counted;
4. applied to a result (:func:`apply_model`), the model's class and its probability go into
   the objects table (``class``, ``class_probability``; the rules' verdict is kept as
   ``rule_class`` / ``rule_reason`` and the model's own label as ``model_class``) and the
   summary is recounted from it by the assay's own summary code (:func:`recount`).

Class names in the points are the lab's own (``cell``, ``lipofuscin``, ``debris``). The model
records which are *kept*: counted as the assay's counted class (``gfp_cell`` for gfp-cells,
``motor_neuron`` for motor-neurons). Kept objects get that class in ``class`` so every table,
tile rule and per-animal sum that reads ``class`` counts them; the others keep their own name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import HistoquantError, ModelFileError, ParamsError
from ..results import ID_COLUMNS, AssayResult
from .modelfile import LoadedModel

__all__ = ["COUNTING", "Counting", "ObjectTraining", "PointsError", "read_points",
           "object_model_manifest", "trained_object_model",
           "label_points", "object_features", "train_objects", "save_object_model",
           "classify_objects", "apply_model", "recount"]


class PointsError(HistoquantError):
    """Training points are unusable: bad columns, points on no object, too few per class."""


# Never features: identifiers, where the object is, and what a classifier (rules or model)
# said about it. A position would let the forest learn where decoys happened to lie.
_NOT_FEATURES = frozenset({*ID_COLUMNS, "label", "class", "reason", "rule_class", "rule_reason",
                           "model_class", "class_probability", "padding_edge", "point",
                           "cv_class"})
_POSITION_HINTS = ("centroid", "bbox", "_row", "_col", "_px")


@dataclass(frozen=True)
class Counting:
    """How an assay counts its objects, so a model's classes can replace its rules.

    Parameters
    ----------
    counted_class : str
        The ``class`` value the assay's summary counts (``gfp_cell``, ``motor_neuron``).
    summarize : callable
        ``summarize(objects, regions) -> DataFrame``: the assay's own summary code, given the
        objects table and one row per region (``image``, ``region``, ``region_area_mm2``,
        plus the old summary's other columns when it needs them, e.g. ``flag``); returns
        the summary columns it computes.
    """

    counted_class: str
    summarize: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


def _gfp_summary(objects: pd.DataFrame, regions: pd.DataFrame) -> pd.DataFrame:
    from ..measure.cell_counts import summarize_cells

    flag = regions["flag"].to_numpy() if "flag" in regions else ""
    base = regions[["image", "region", "region_area_mm2"]].copy()
    return summarize_cells(objects, base, "nucleated" in objects.columns, flag)


def _motor_neuron_summary(objects: pd.DataFrame, regions: pd.DataFrame) -> pd.DataFrame:
    from ..assays.motor_neurons import summarize_somata

    return summarize_somata(objects, regions[["image", "region", "region_area_mm2"]])


#: Assays whose counts a learned object classifier can replace, by assay name.
COUNTING: dict[str, Counting] = {
    "gfp-cells": Counting("gfp_cell", _gfp_summary),
    "motor-neurons": Counting("motor_neuron", _motor_neuron_summary),
}


def _counting(assay: str) -> Counting:
    try:
        return COUNTING[assay]
    except KeyError:
        raise ParamsError(f"the object classifier works on {sorted(COUNTING)} objects, not "
                          f"{assay!r}") from None


# ------------------------------------------------------------------------------- points


def read_points(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read training points: one row per clicked object with its image and class.

    Parameters
    ----------
    source : str, Path or DataFrame
        A CSV file (or a table) with columns ``image`` (the image's file stem; a file name
        with its extension is accepted), ``class``, and either ``x_px, y_px`` (pixel column
        and row) or ``x_um, y_um`` (µm from the top-left pixel's centre).

    Returns
    -------
    DataFrame
        ``image``, ``class``, and ``x_px, y_px`` or ``x_um, y_um`` as floats, plus ``point``
        (the row number in the file, 1-based after the header, for messages).

    Raises
    ------
    PointsError
        Missing file or columns, both or neither coordinate pair, non-numeric coordinates,
        empty image or class names, no points.
    """
    if isinstance(source, pd.DataFrame):
        table, where = source.copy(), "points"
    else:
        where = str(source)
        try:
            table = pd.read_csv(source, dtype={"image": str, "class": str})
        except FileNotFoundError:
            raise PointsError(f"{where}: no such points file") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise PointsError(f"{where}: not a readable CSV ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    has_px = {"x_px", "y_px"} <= set(table.columns)
    has_um = {"x_um", "y_um"} <= set(table.columns)
    missing = [c for c in ("image", "class") if c not in table.columns]
    if missing or has_px == has_um:
        raise PointsError(f"{where}: points need columns image, class and either x_px, y_px "
                          f"or x_um, y_um (one pair); found {list(table.columns)}")
    if not len(table):
        raise PointsError(f"{where}: no points")
    coords = ["x_px", "y_px"] if has_px else ["x_um", "y_um"]
    out = pd.DataFrame({"point": np.arange(2, len(table) + 2)})
    out["image"] = [_image_name(str(v)) for v in table["image"]]
    out["class"] = table["class"].astype(str).str.strip().to_numpy()
    blank = out.loc[table["image"].isna().to_numpy() | table["class"].isna().to_numpy()
                    | (out["image"] == "") | (out["class"] == ""), "point"].tolist()
    if blank:
        raise PointsError(f"{where}: rows {blank} have no image or no class")
    for c in coords:
        values = pd.to_numeric(table[c], errors="coerce").to_numpy(float)
        bad = out.loc[~np.isfinite(values), "point"].tolist()
        if bad:
            raise PointsError(f"{where}: rows {bad} have no number in {c}")
        out[c] = values
    return out


def _image_name(text: str) -> str:
    """Return the name an assay gives the image (its ``image`` column) for a file name."""
    from ..io import is_image_file
    from ..io.image import _stem

    text = text.strip()
    return _stem(Path(text)) if is_image_file(Path(text)) else text


def label_points(results: Mapping[str, AssayResult] | Sequence[AssayResult],
                 points: pd.DataFrame) -> pd.DataFrame:
    """Find the detected object under each point and return its row with the point's class.

    Parameters
    ----------
    results : mapping of image name to AssayResult, or sequence of AssayResult
        The assay's results on the training images; each needs its label image
        (``labels``) and pixel size. A result's ``image`` is the name points refer to.
    points : DataFrame
        :func:`read_points` output.

    Returns
    -------
    DataFrame
        One row per labelled object (the first of its objects-table rows: an object listed
        once per region it lies in is one example), with the measurements, ``image``,
        ``label``, the point's ``class`` and ``point`` (its row in the file).

    Raises
    ------
    PointsError
        Points naming an image not among ``results``, outside their image, on no listed
        object, or two points giving one object different classes (each listed).
    """
    if not isinstance(results, Mapping):
        results = {r.image: r for r in results}
    unknown = sorted(set(points["image"]) - set(results))
    if unknown:
        raise PointsError(f"points name images that were not given: {unknown}; the images "
                          f"are {sorted(results)}")
    rows, off_image, off_object = [], [], []
    for name, pts in points.groupby("image", sort=False):
        res = results[name]
        if res.labels is None or res.pixel_size_um is None:
            raise PointsError(f"{name}: the {res.assay} result has no label image or pixel "
                              "size to find objects under points")
        px = float(res.pixel_size_um)
        if "x_px" in pts:
            cols, rws = pts["x_px"].to_numpy(), pts["y_px"].to_numpy()
        else:
            cols, rws = pts["x_um"].to_numpy() / px, pts["y_um"].to_numpy() / px
        r, c = np.rint(rws).astype(np.int64), np.rint(cols).astype(np.int64)
        h, w = res.labels.shape[:2]
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        off_image += [f"{name} row {p}" for p in pts["point"][~inside]]
        objs = res.objects.drop_duplicates("label").set_index("label", drop=False)
        for (_, pt), ok, rr, cc in zip(pts.iterrows(), inside, r, c, strict=True):
            if not ok:
                continue
            lab = int(res.labels[rr, cc])
            if lab == 0 or lab not in objs.index:
                off_object.append(f"{name} row {pt['point']} (x {cc}, y {rr} px)")
                continue
            row = objs.loc[lab].to_dict()
            row.setdefault("rule_class", row.get("class"))
            rows.append({**row, "class": pt["class"], "point": int(pt["point"])})
    problems = []
    if off_image:
        problems.append(f"points outside their image: {off_image}")
    if off_object:
        problems.append(f"points on no detected object: {off_object} (click inside an "
                        "object the assay lists; its QC picture and label image show them)")
    if problems:
        raise PointsError("; ".join(problems))
    table = pd.DataFrame(rows)
    conflict = table.groupby(["image", "label"])["class"].nunique()
    conflict = conflict[conflict > 1]
    if len(conflict):
        names = [f"{img} object {lab}: rows "
                 f"{table.loc[(table['image'] == img) & (table['label'] == lab), 'point'].tolist()}"
                 for img, lab in conflict.index]
        raise PointsError(f"points give one object different classes: {names}")
    return table.drop_duplicates(["image", "label"]).reset_index(drop=True)


def object_features(objects: pd.DataFrame) -> list[str]:
    """Return the objects-table columns a classifier may read: numeric measurements only.

    Identifiers (image, region, label, animal, section, ...), positions (centroids, boxes,
    pixel coordinates), and what a classifier said (class, reason, rule_class, ...) are left
    out, as is ``padding_edge`` (where the object lies, not what it is).

    Parameters
    ----------
    objects : DataFrame
        An assay's objects table.

    Returns
    -------
    list of str
        Column names, in table order.
    """
    out = []
    for col in objects.columns:
        name = str(col)
        if name in _NOT_FEATURES or any(h in name for h in _POSITION_HINTS):
            continue
        dtype = objects[col].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            out.append(name)
        elif pd.api.types.is_object_dtype(dtype) and objects[col].dropna().map(
                lambda v: isinstance(v, (bool, np.bool_))).all() and objects[col].notna().any():
            out.append(name)  # a bool column with missing values pandas keeps as objects
    return out


def _matrix(objects: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Return the features as a float matrix; missing values stay NaN (the forest reads them)."""
    cols = []
    for f in features:
        s = objects[f]
        if s.dtype == object:  # bools with missing values
            s = pd.to_numeric(s.map(lambda v: np.nan if v is None or v is pd.NA else float(v)),
                              errors="coerce")
        cols.append(s.astype("Float64").to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(cols) if cols else np.empty((len(objects), 0))


# ------------------------------------------------------------------------------- training


@dataclass
class ObjectTraining:
    """A trained object classifier with what its manifest records.

    Attributes
    ----------
    estimator : RandomForestClassifier
        Fitted on every labelled object.
    features : list of str
        Columns it reads, in order.
    classes : list of str
        Its classes.
    kept : list of str
        Classes counted as the assay's counted class.
    assay : str
        The assay whose objects it classifies.
    scores : dict
        Held-out scores: ``cv_accuracy``, ``cv_balanced_accuracy``, ``cv_recall`` per class,
        ``cv_folds``, ``confusion`` (rows true, columns predicted, in ``classes`` order),
        ``n_per_class``; and, when the training objects had rule classes, the rules'
        ``rule_accuracy`` on the same objects (kept vs not).
    table : DataFrame
        The labelled objects with the cross-validated prediction (``cv_class``).
    """

    estimator: Any
    features: list[str]
    classes: list[str]
    kept: list[str]
    assay: str
    scores: dict = field(default_factory=dict)
    table: pd.DataFrame | None = None


def train_objects(examples: pd.DataFrame, *, assay: str, keep: Sequence[str] | None = None,
                  features: Sequence[str] | None = None, min_per_class: int = 3,
                  n_estimators: int = 200, random_state: int = 0) -> ObjectTraining:
    """Fit a random forest on labelled objects and score it by cross-validation.

    Parameters
    ----------
    examples : DataFrame
        :func:`label_points` output (measurements and ``class``).
    assay : str
        The assay that measured the objects (a key of :data:`COUNTING`).
    keep : sequence of str, optional
        Classes to count as the assay's counted class. Default: the assay's counted class
        name itself (``gfp_cell``, ``motor_neuron``) when the points use it.
    features : sequence of str, optional
        Columns to read; default :func:`object_features` of ``examples`` that every
        labelled object has a value of (see the comment in the code).
    min_per_class : int
        Fewest labelled objects a class needs (at least 2, for cross-validation).
    n_estimators : int
        Trees in the forest; 200 is well past where accuracy stops changing on tabular data
        of a few dozen features, and costs well under a second to train on hundreds of objects.
    random_state : int
        Seed of the forest and of the folds, so a training run is repeatable.

    Returns
    -------
    ObjectTraining

    Raises
    ------
    PointsError
        Fewer than two classes, a class with fewer than ``min_per_class`` objects (all
        listed), a kept class that no point names (the classes are listed), no feature.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    counting = _counting(assay)
    counts = examples["class"].value_counts().sort_index()
    classes = [str(c) for c in counts.index]
    if len(classes) < 2:
        raise PointsError(f"training needs objects of at least two classes; the points name "
                          f"only {classes}")
    few = {c: int(n) for c, n in counts.items() if n < max(2, min_per_class)}
    if few:
        raise PointsError(f"classes with too few labelled objects (need {max(2, min_per_class)}"
                          f" each): {few}; label more objects of these classes or drop them")
    if keep is None:
        if counting.counted_class not in classes:
            raise PointsError(f"which classes are counted? none is named "
                              f"{counting.counted_class!r}; give keep (--keep) among the "
                              f"classes {classes}")
        keep = [counting.counted_class]
    unknown = sorted(set(keep) - set(classes))
    if unknown:
        raise PointsError(f"kept classes {unknown} are not among the labelled classes "
                          f"{classes}")
    if features is None:
        # Only measurements every labelled object has: the rules skip what cannot change
        # their verdict (no shape for an object already rejected as autofluorescent, no
        # nucleus search outside counted cells), so a missing value says what the rules
        # decided, and a forest would learn that instead of the object.
        features = [f for f in object_features(examples) if examples[f].notna().all()]
    missing = [f for f in features if f not in examples.columns]
    if missing or not features:
        raise PointsError(f"features missing from the objects table: {missing or 'all'}")
    X = _matrix(examples, features)
    y = examples["class"].astype(str).to_numpy()
    forest = RandomForestClassifier(n_estimators=n_estimators, class_weight="balanced",
                                    random_state=random_state, n_jobs=1)
    folds = int(min(5, counts.min()))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    predicted = cross_val_predict(forest, X, y, cv=cv)
    recall = recall_score(y, predicted, labels=classes, average=None, zero_division=0)
    scores: dict[str, Any] = {
        "cv_folds": folds,
        "cv_accuracy": float(np.mean(predicted == y)),
        "cv_balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "cv_recall": {c: float(r) for c, r in zip(classes, recall, strict=True)},
        "confusion": confusion_matrix(y, predicted, labels=classes).tolist(),
        "n_per_class": {c: int(n) for c, n in counts.items()},
    }
    table = examples.copy()
    table["cv_class"] = predicted
    if "class" in examples and "rule_class" in examples:
        rules_kept = examples["rule_class"].eq(counting.counted_class).to_numpy()
        scores["rule_accuracy"] = float(np.mean(rules_kept == np.isin(y, list(keep))))
    forest.fit(X, y)
    return ObjectTraining(estimator=forest, features=list(features),
                          classes=[str(c) for c in forest.classes_], kept=list(keep),
                          assay=assay, scores=scores, table=table)


def object_model_manifest(training: ObjectTraining, *, pixel_size_um: float | None,
                          training_images: Sequence[dict] = (),
                          params: Mapping[str, Any] | None = None,
                          channels: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the manifest an ``objects`` model file records for a trained classifier.

    Parameters
    ----------
    training : ObjectTraining
        :func:`train_objects` output.
    pixel_size_um, training_images, params, channels
        As for :func:`save_object_model`.

    Returns
    -------
    dict
        Classes, features, counted and kept classes, scores, assay, parameters, channels.
    """
    counting = _counting(training.assay)
    return {
        "classes": training.classes, "features": training.features,
        "pixel_size_um": pixel_size_um, "training_images": list(training_images),
        "scores": training.scores, "assay": training.assay,
        "counted_class": counting.counted_class, "kept_classes": training.kept,
        "assay_params": dict(params or {}),
        "channels": {str(k): v for k, v in (channels or {}).items()},
        "estimator": "sklearn.ensemble.RandomForestClassifier",
    }


def trained_object_model(training: ObjectTraining, *,
                         pixel_size_um: float | None = None) -> LoadedModel:
    """Return a trained classifier as the model a file would load, without writing one.

    A preview (the napari Teach dock) classifies with exactly what
    :func:`save_object_model` would write and :func:`classify_objects` would read.

    Parameters
    ----------
    training : ObjectTraining
        :func:`train_objects` output.
    pixel_size_um : float, optional
        Pixel size of the training images.

    Returns
    -------
    LoadedModel
        An ``objects`` model.
    """
    return LoadedModel(training.estimator,
                       object_model_manifest(training, pixel_size_um=pixel_size_um),
                       "objects")


def save_object_model(path: str | Path, training: ObjectTraining, *,
                      pixel_size_um: float | None,
                      training_images: Sequence[dict] = (),
                      params: Mapping[str, Any] | None = None,
                      channels: Mapping[str, Any] | None = None) -> Path:
    """Write a trained object classifier as an ``objects`` model file.

    Parameters
    ----------
    path : str or Path
        The ``.hqm`` file to write.
    training : ObjectTraining
        :func:`train_objects` output.
    pixel_size_um : float or None
        Pixel size of the training images (their median when they differ).
    training_images : sequence of dict
        :func:`~histoquant.learn.modelfile.image_record` of each training image.
    params : mapping, optional
        The assay parameters the objects were detected with: the model classifies objects
        detected the same way.
    channels : mapping, optional
        The channel roles used.

    Returns
    -------
    Path
        The file written.
    """
    from .modelfile import save_model

    manifest = object_model_manifest(training, pixel_size_um=pixel_size_um,
                                     training_images=training_images, params=params,
                                     channels=channels)
    return save_model(path, training.estimator, kind="objects", manifest=manifest)


# ------------------------------------------------------------------------------- applying


def _check_model(model: LoadedModel, assay: str | None) -> None:
    if model.kind != "objects":
        raise ModelFileError(f"a {model.kind!r} model cannot classify objects; an 'objects' "
                             "model is needed")
    trained_for = model.manifest.get("assay")
    if assay is not None and trained_for != assay:
        raise ModelFileError(f"this model classifies {trained_for} objects, not {assay} "
                             "objects")


def classify_objects(result_or_objects: AssayResult | pd.DataFrame,
                     model: LoadedModel) -> pd.DataFrame:
    """Return the objects table with the model's class and its probability.

    Parameters
    ----------
    result_or_objects : AssayResult or DataFrame
        An assay result (its objects are read) or an objects table.
    model : LoadedModel
        An ``objects`` model (:func:`~histoquant.learn.modelfile.load_model`).

    Returns
    -------
    DataFrame
        A copy of the table with ``model_class`` (the model's class), ``class`` (the assay's
        counted class for a kept model class, else the model's class), ``class_probability``
        (the forest's probability of ``model_class``), and the rules' verdict kept as
        ``rule_class`` and ``rule_reason``; ``reason`` is empty for a counted object and
        ``model`` otherwise.

    Raises
    ------
    ModelFileError
        Not an objects model, trained on another assay's objects, or the table lacks
        features the model reads (listed).
    """
    if isinstance(result_or_objects, AssayResult):
        objects, assay = result_or_objects.objects, result_or_objects.assay
    else:
        objects, assay = result_or_objects, None
    _check_model(model, assay)
    features = model.features
    missing = [f for f in features if f not in objects.columns]
    if missing and len(objects):
        raise ModelFileError(f"the objects table lacks features the model reads: {missing} "
                             "(was it measured with other channels than the model's "
                             f"training, {model.manifest.get('channels')}?)")
    out = objects.copy()
    kept = set(model.manifest.get("kept_classes") or [])
    counted = model.manifest.get("counted_class", "")
    if "rule_class" not in out:  # applying twice keeps the rules' verdict, not the model's
        out["rule_class"] = out["class"] if "class" in out else pd.NA
        out["rule_reason"] = out["reason"] if "reason" in out else pd.NA
    if len(out):
        proba = model.estimator.predict_proba(_matrix(out, features))
        best = proba.argmax(axis=1)
        predicted = np.asarray(model.estimator.classes_)[best].astype(str)
        probability = proba[np.arange(len(out)), best]
    else:
        predicted, probability = np.array([], dtype=str), np.array([], dtype=float)
    is_kept = np.isin(predicted, list(kept))
    out["model_class"] = predicted
    out["class"] = np.where(is_kept, counted, predicted)
    out["class_probability"] = probability
    out["reason"] = np.where(is_kept, "", "model")
    for col in ("class", "model_class", "reason"):
        out[col] = out[col].astype("string")
    return out


def recount(result: AssayResult, objects: pd.DataFrame) -> pd.DataFrame:
    """Recompute the count columns of a result's summary from a (re)classed objects table.

    The assay's own summary code (:data:`COUNTING`) counts ``objects`` per region; the
    summary keeps its other columns (region area, ids, flags, nuclei counts) and their order.

    Parameters
    ----------
    result : AssayResult
        The result whose summary rows (one per region) are recounted.
    objects : DataFrame
        Its objects table with the classes to count.

    Returns
    -------
    DataFrame
        A new summary.
    """
    counting = _counting(result.assay)
    old = result.summary.reset_index(drop=True)
    fresh = counting.summarize(objects, old.copy()).reset_index(drop=True)
    out = old.copy()
    for col in fresh.columns:
        if col in ("image", "region", "region_area_mm2"):
            continue
        out[col] = fresh[col].to_numpy()
    return out


def apply_model(result: AssayResult, model: LoadedModel) -> AssayResult:
    """Classify a result's objects with an object model and recount its summary.

    Parameters
    ----------
    result : AssayResult
        A result of the assay the model was trained on.
    model : LoadedModel
        An ``objects`` model.

    Returns
    -------
    AssayResult
        A copy with the classified objects (:func:`classify_objects`), the recounted summary
        (:func:`recount`), ``extra["object_model"]`` describing the model, and a warning
        when the pixel size differs from the training images' by more than a factor 1.5
        (measurements in µm carry over; detection at another resolution may not). The QC
        picture still shows the rules' classes.
    """
    import dataclasses

    objects = classify_objects(result, model)
    summary = recount(result, objects)
    warnings = list(result.warnings)
    trained_px = model.pixel_size_um
    if trained_px and result.pixel_size_um and not (
            1 / 1.5 <= result.pixel_size_um / trained_px <= 1.5):
        warnings.append(f"the object model was trained at {trained_px:g} µm/px, this image is "
                        f"{result.pixel_size_um:g} µm/px: check its classes")
    extra = {**result.extra, "object_model": {
        "classes": model.classes, "kept_classes": model.manifest.get("kept_classes"),
        "features": model.features, "created": model.manifest.get("created"),
        "payload_sha256": model.manifest.get("payload_sha256"),
        "scores": model.manifest.get("scores")}}
    return dataclasses.replace(result, objects=objects, summary=summary, warnings=warnings,
                               extra=extra)
