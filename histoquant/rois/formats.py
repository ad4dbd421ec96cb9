"""Region files: ImageJ ``.roi`` / RoiSet ``.zip`` (via roifile) and QuPath GeoJSON."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import RegionError
from ..io.safe_paths import safe_name
from ..io.writers import atomic_path
from .region import Polygon, Region

if TYPE_CHECKING:
    from roifile import ImagejRoi

__all__ = ["read_regions", "write_regions", "read_imagej_rois", "write_imagej_rois",
           "composite_polygons",
           "read_geojson", "write_geojson"]

# ImageJ and QuPath put pixel corners on integer coordinates; histoquant puts pixel centres
# there (see region.py). x_here = x_file - HALF.
HALF = 0.5


def read_regions(path: str | Path) -> list[Region]:
    """Read regions from an ImageJ ``.roi``/``.zip`` or a GeoJSON/JSON file.

    Parameters
    ----------
    path : str or pathlib.Path
        The region file; its suffix picks the format.

    Returns
    -------
    list of Region
        The regions, each with ``properties["source_file"]`` naming the file.

    Raises
    ------
    RegionError
        When the file is missing, of an unknown format, or malformed.
    """
    path = Path(path)
    if not path.exists():
        raise RegionError(f"{path}: no such region file")
    suffix = path.suffix.lower()
    if suffix in (".roi", ".zip"):
        regions = read_imagej_rois(path)
    elif suffix in (".geojson", ".json"):
        regions = read_geojson(path)
    else:
        raise RegionError(f"{path}: unknown region format {suffix!r}; use .roi, .zip or "
                          ".geojson")
    # Regions read once and applied to many images still name their file in any error.
    for r in regions:
        r.properties.setdefault("source_file", str(path))
    return regions


def write_regions(regions: list[Region], path: str | Path) -> Path:
    """Write regions as ImageJ RoiSet (``.zip``/``.roi``) or GeoJSON (``.geojson``/``.json``).

    Parameters
    ----------
    regions : list of Region
        The regions to write.
    path : str or pathlib.Path
        The file to write; its suffix picks the format.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    RegionError
        When the suffix is not a region format.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".roi", ".zip"):
        return write_imagej_rois(regions, path)
    if suffix in (".geojson", ".json"):
        return write_geojson(regions, path)
    raise RegionError(f"{path}: unknown region format {suffix!r}; use .zip or .geojson")


def read_imagej_rois(path: str | Path) -> list[Region]:
    """Read an ImageJ ``.roi`` file or RoiSet ``.zip`` as named regions.

    ROIs sharing a name are merged into one region (several polygons). Composite ROIs keep
    their holes. Line and point ROIs are refused: they have no area.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.roi`` or ``.zip`` file.

    Returns
    -------
    list of Region
        One region per ROI name.

    Raises
    ------
    RegionError
        When the file cannot be read or holds a ROI without area.
    """
    import roifile

    path = Path(path)
    try:
        rois = roifile.roiread(str(path))
    except Exception as exc:
        # A corrupt or truncated file surfaces as zipfile.BadZipFile, struct.error,
        # ValueError... from roifile: all mean the same to the user.
        raise RegionError(f"{path}: not a readable ImageJ ROI file ({exc})") from exc
    if not isinstance(rois, list):
        rois = [rois]
    by_name: dict[str, list[Polygon]] = {}
    skipped: list[str] = []
    for i, roi in enumerate(rois):
        try:
            name = roi.name if isinstance(roi.name, str) and roi.name else f"roi_{i + 1}"
            if _imagej_has_no_area(roi):
                skipped.append(f"{name!r} ({roi.roitype.name.lower()})")
                continue
            polys = _imagej_polygons(roi, path)
        except RegionError:
            raise
        except Exception as exc:
            # roifile decodes coordinates lazily: a damaged ROI fails only here.
            raise RegionError(f"{path}: ROI {i + 1} is damaged and cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
        by_name.setdefault(name, []).extend(polys)
    if skipped and by_name:  # with no region left the error below names them
        warnings.warn(f"{path}: skipped {len(skipped)} ROI(s) with no area (points, lines): "
                      f"{', '.join(skipped[:10])}" + (" ..." if len(skipped) > 10 else ""),
                      stacklevel=2)
    if not by_name:
        extra = (f"; skipped {', '.join(skipped[:10])}, which have no area: draw regions as "
                 "polygon, freehand, rectangle or oval ROIs") if skipped else ""
        raise RegionError(f"{path}: holds no ROI{extra}")
    return [Region(name, polys) for name, polys in by_name.items()]


def _imagej_has_no_area(roi: ImagejRoi) -> bool:
    import roifile

    return roi.roitype in (roifile.ROI_TYPE.LINE, roifile.ROI_TYPE.POLYLINE,
                           roifile.ROI_TYPE.FREELINE, roifile.ROI_TYPE.ANGLE,
                           roifile.ROI_TYPE.POINT)


def _imagej_polygons(roi: ImagejRoi, path: Path) -> list[Polygon]:
    paths = roi.coordinates(multi=True)
    if not isinstance(paths, list):
        paths = [paths]
    arrays = [np.asarray(p, dtype=float) for p in paths]
    polys = [a[:, ::-1] - HALF for a in arrays if a.ndim == 2 and a.shape[1] == 2 and len(a) >= 3]
    if not polys:
        raise RegionError(f"{path}: ROI {roi.name!r} has no polygon")
    if not all(np.isfinite(p).all() for p in polys):
        raise RegionError(f"{path}: ROI {roi.name!r} has coordinates that are not finite")
    if len(polys) == 1:
        return [Polygon(polys[0])]
    return composite_polygons(polys)


def composite_polygons(paths: list[np.ndarray]) -> list[Polygon]:
    """Return the polygons an ImageJ composite (shape) ROI covers, as ImageJ fills it.

    ImageJ fills a shape ROI's sub-paths by the even–odd rule: a path inside no other path is
    an outline, a path inside one is a hole, a path inside a hole is an island again, and
    disjoint paths are separate pieces — nine disjoint rectangles are nine pieces, not one
    rectangle with eight holes outside it. Nesting is decided by the share of a path's
    vertices inside another path (sub-paths of a shape ROI do not cross).

    Parameters
    ----------
    paths : list of ndarray
        Closed sub-paths, (N, 2) arrays of (row, col).

    Returns
    -------
    list of Polygon
        One polygon per outline or island, with its direct holes.
    """
    from skimage.measure import points_in_poly

    n = len(paths)
    areas = np.array([abs(_area(p)) for p in paths])
    # inside[i, j]: path i lies inside path j (a larger path, by a majority of i's vertices)
    inside = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            if i != j and areas[j] > areas[i]:
                inside[i, j] = points_in_poly(paths[i], paths[j]).mean() > 0.5
    depth = inside.sum(axis=1)
    polygons: dict[int, Polygon] = {}
    for i in np.argsort(depth, kind="stable"):
        if depth[i] % 2 == 0:
            polygons[int(i)] = Polygon(paths[i])
        else:
            # a hole of the smallest outline holding it: the one just one level up
            parents = [int(j) for j in np.flatnonzero(inside[i]) if depth[j] == depth[i] - 1]
            if parents:
                polygons[min(parents, key=lambda j: areas[j])].holes.append(paths[i])
            else:  # inconsistent nesting (crossing paths): keep the area rather than lose it
                polygons[int(i)] = Polygon(paths[i])
    return list(polygons.values())


def _area(p: np.ndarray) -> float:
    y, x = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def write_imagej_rois(regions: list[Region], path: str | Path) -> Path:
    """Write regions as an ImageJ RoiSet ``.zip`` (or one ``.roi`` for a single polygon).

    Each polygon becomes a sub-pixel polygon ROI named after its region; a polygon with holes
    becomes a composite ROI.

    Parameters
    ----------
    regions : list of Region
        The regions to write (a mask-only region is traced into polygons).
    path : str or pathlib.Path
        The ``.zip`` (or ``.roi``) file to write.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    import roifile

    path = Path(path)
    rois = []
    for region in regions:
        for poly in region.to_polygons():
            rings = [poly.exterior, *poly.holes]
            xy = [(r[:, ::-1] + HALF).astype(np.float32) for r in rings]
            roi = roifile.ImagejRoi.frompoints(xy[0], name=region.name)
            roi.roitype = roifile.ROI_TYPE.POLYGON
            if len(xy) > 1:
                # A polygon with holes is an ImageJ shape (composite) ROI.
                roi.roitype = roifile.ROI_TYPE.RECT
                roi.multi_coordinates = _composite_path(xy)
                roi.shape_roi_size = len(roi.multi_coordinates)
                roi.subpixel_coordinates = None
                roi.integer_coordinates = None
                roi.n_coordinates = 0
            rois.append(roi)
    if not rois:
        raise RegionError(f"{path}: no region to write")
    if path.suffix.lower() == ".roi" and len(rois) > 1:
        raise RegionError(f"{path}: {len(rois)} ROIs need a RoiSet .zip, not a single .roi")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".roi":
            tmp.write_bytes(rois[0].tobytes())
        else:
            # ImageJ's RoI Manager takes the label from the ROI's name; entry names only
            # need to be unique inside the zip. They are made safe, so that unpacking the
            # RoiSet cannot write outside its folder (a region named "../../x").
            used: set[str] = set()
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for roi in rois:
                    base = entry = safe_name(roi.name)
                    n = 1
                    while entry in used:
                        n += 1
                        entry = f"{base}-{n}"
                    used.add(entry)
                    zf.writestr(f"{entry}.roi", roi.tobytes())
    return path


def _composite_path(rings: list[np.ndarray]) -> np.ndarray:
    # ImageJ shape-ROI path: MOVETO=0 x y, LINETO=1 x y, CLOSE=4
    seg = []
    for ring in rings:
        seg.extend([0.0, float(ring[0, 0]), float(ring[0, 1])])
        for x, y in ring[1:]:
            seg.extend([1.0, float(x), float(y)])
        seg.append(4.0)
    return np.asarray(seg, dtype=np.float32)


# Geometries that mark places or paths, not areas: skipped with a warning, so a QuPath export
# that also holds point annotations (cell counts) or line annotations (measurements) still
# gives its regions.
_NO_AREA_GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString")


def read_geojson(path: str | Path) -> list[Region]:
    """Read a QuPath GeoJSON export as named regions.

    The file holds a FeatureCollection, a list of Features, one Feature, or one bare
    Polygon/MultiPolygon geometry. The region name is the feature's ``properties.name``, else
    its ``properties.classification.name``, else ``region_<n>``. Polygon and MultiPolygon
    geometries are read with their holes; Point and LineString annotations have no area and
    are skipped with a warning.

    Every part of the structure is checked, so a malformed file gives a
    :class:`~histoquant.errors.RegionError` naming the file, the feature and what is wrong
    (never a Python AttributeError, IndexError or TypeError).

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.geojson`` or ``.json`` file.

    Returns
    -------
    list of Region
        The regions, features sharing a name merged into one.

    Raises
    ------
    RegionError
        The file is unreadable, not JSON, not GeoJSON, or holds no area.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError a
        # pathologically deep nesting of brackets.
        raise RegionError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    features = _geojson_features(data, path)
    by_name: dict[str, list[Polygon]] = {}
    props_by_name: dict[str, dict] = {}
    skipped: list[str] = []
    for i, feat in enumerate(features):
        where = f"{path}: features[{i}]"
        if not isinstance(feat, dict):
            raise RegionError(f"{where}: a feature must be a JSON object, got "
                              f"{_json_kind(feat)}")
        props = feat.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise RegionError(f"{where}: 'properties' must be an object, got "
                              f"{_json_kind(props)}")
        name = _feature_name(props) or f"region_{i + 1}"
        where = f"{where} ({name!r})"
        geom = feat.get("geometry")
        if not isinstance(geom, dict):
            what = "has no geometry" if geom is None else \
                f"has a geometry that is {_json_kind(geom)}, not an object"
            raise RegionError(f"{where}: {what}")
        gtype = geom.get("type")
        if gtype in _NO_AREA_GEOMETRIES:
            skipped.append(f"{name!r} ({gtype})")
            continue
        polys = _geometry_polygons(geom, where)
        by_name.setdefault(name, []).extend(polys)
        props_by_name.setdefault(name, {k: v for k, v in props.items() if k != "name"})
    if skipped and by_name:  # with no region left the error below names them
        warnings.warn(f"{path}: skipped {len(skipped)} annotation(s) with no area (points, "
                      f"lines): {', '.join(skipped[:10])}"
                      + (" ..." if len(skipped) > 10 else ""), stacklevel=2)
    if not by_name:
        extra = (f"; skipped {', '.join(skipped[:10])}, which have no area: only Polygon "
                 "and MultiPolygon annotations are regions") if skipped else ""
        raise RegionError(f"{path}: holds no region{extra}")
    return [Region(n, p, properties=props_by_name.get(n, {})) for n, p in by_name.items()]


def _json_kind(value: object) -> str:
    """How a JSON value reads in a message: ``a string 'abc'``, ``a list``, ``null``."""
    if value is None:
        return "null"
    kind = {bool: "true/false", str: "a string", int: "a number", float: "a number",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = repr(value)
        return f"{kind} {text if len(text) < 40 else text[:37] + '...'}"
    return kind


def _geojson_features(data: object, path: Path) -> list:
    """Return the list of features of any GeoJSON top level histoquant accepts."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        kind = data.get("type")
        if kind == "FeatureCollection":
            features = data.get("features", [])
            if not isinstance(features, list):
                raise RegionError(f"{path}: 'features' of the FeatureCollection must be a "
                                  f"list, got {_json_kind(features)}")
            return features
        if kind == "Feature":
            return [data]
        if kind in ("Polygon", "MultiPolygon", *_NO_AREA_GEOMETRIES):
            return [{"type": "Feature", "geometry": data, "properties": {}}]
        raise RegionError(f"{path}: expected a GeoJSON FeatureCollection, Feature or "
                          f"Polygon, got an object of type {kind!r}")
    raise RegionError(f"{path}: expected a GeoJSON FeatureCollection, Feature or Polygon, got "
                      f"{_json_kind(data)}")


def _feature_name(props: dict) -> str | None:
    """``properties.name``, else ``properties.classification.name`` (QuPath's class)."""
    cls = props.get("classification")
    for value in (props.get("name"), cls.get("name") if isinstance(cls, dict) else None):
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    return None


def _geometry_polygons(geom: dict, where: str) -> list[Polygon]:
    """Return the polygons of a Polygon/MultiPolygon geometry, every coordinate checked."""
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        polys, what = [coords], "Polygon"
    elif gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise RegionError(f"{where}: MultiPolygon coordinates must be a non-empty list of "
                              f"polygons, got {_json_kind(coords)}")
        polys, what = coords, "MultiPolygon polygon"
    elif gtype is None:
        raise RegionError(f"{where}: the geometry has no 'type'")
    else:
        raise RegionError(f"{where}: geometry type {str(gtype)[:40]!r} is not a region; only "
                          "Polygon and MultiPolygon annotations are regions")
    out = []
    for j, rings in enumerate(polys):
        at = f"{where}: {what} {j}" if gtype == "MultiPolygon" else f"{where}: Polygon"
        if not isinstance(rings, list) or not rings:
            raise RegionError(f"{at}: coordinates must be a non-empty list of rings (lists of "
                              f"[x, y] points), got {_json_kind(rings)}")
        arrs = [_ring(r, f"{at}, ring {k}") for k, r in enumerate(rings)]
        arrs = [a[:-1] if len(a) > 3 and np.allclose(a[0], a[-1]) else a for a in arrs]
        try:
            out.append(Polygon(arrs[0], arrs[1:]))
        except RegionError as exc:
            raise RegionError(f"{at}: {exc}") from None
    return out


def _ring(ring: object, where: str) -> np.ndarray:
    """One ring of [x, y] points as (row, col) vertices in histoquant's pixel convention."""
    if not isinstance(ring, list):
        raise RegionError(f"{where}: a ring must be a list of [x, y] points, got "
                          f"{_json_kind(ring)}")
    if len(ring) < 3:
        raise RegionError(f"{where}: a ring needs at least 3 points, got {len(ring)}")
    xy = np.empty((len(ring), 2), dtype=float)
    for n, point in enumerate(ring):
        if (not isinstance(point, list) or len(point) < 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool)
                           for c in point[:2])):
            raise RegionError(f"{where}: point {n} must be [x, y] numbers, got "
                              f"{_json_kind(point)}"
                              + (f" {point[:4]!r}" if isinstance(point, list) else ""))
        try:
            xy[n] = point[0], point[1]
        except OverflowError:  # an integer beyond float range
            xy[n] = np.inf
    if not np.isfinite(xy).all():
        raise RegionError(f"{where}: holds a coordinate that is not a finite number (NaN or "
                          "infinity)")
    return xy[:, ::-1] - HALF


def write_geojson(regions: list[Region], path: str | Path) -> Path:
    """Write regions as a QuPath-compatible GeoJSON FeatureCollection of annotations.

    Parameters
    ----------
    regions : list of Region
        The regions to write (a mask-only region is traced into polygons).
    path : str or pathlib.Path
        The ``.geojson`` file to write.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    features = []
    for region in regions:
        polys = region.to_polygons()
        coords = []
        for poly in polys:
            rings = []
            for ring in [poly.exterior, *poly.holes]:
                xy = (ring[:, ::-1] + HALF).tolist()
                xy.append(xy[0])
                rings.append(xy)
            coords.append(rings)
        geometry = ({"type": "Polygon", "coordinates": coords[0]} if len(coords) == 1
                    else {"type": "MultiPolygon", "coordinates": coords})
        props = {"objectType": "annotation", "name": region.name,
                 "classification": {"name": region.name}}
        # source_file is where this process read the region, not part of the region
        props.update({k: v for k, v in region.properties.items()
                      if isinstance(v, (str, int, float, bool)) and k != "source_file"})
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                       encoding="utf-8")
    return path
