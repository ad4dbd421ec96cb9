"""Region files: ImageJ ``.roi`` / RoiSet ``.zip`` (via roifile) and QuPath GeoJSON."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import RegionError
from ..io.safe_paths import safe_name
from ..io.writers import atomic_path
from .region import Polygon, Region

__all__ = ["read_regions", "write_regions", "read_imagej_rois", "write_imagej_rois",
           "read_geojson", "write_geojson"]

# ImageJ and QuPath put pixel corners on integer coordinates; histoquant puts pixel centres
# there (see region.py). x_here = x_file - HALF.
HALF = 0.5


def read_regions(path: str | Path) -> list[Region]:
    """Read regions from an ImageJ ``.roi``/``.zip`` or a GeoJSON/JSON file."""
    path = Path(path)
    if not path.exists():
        raise RegionError(f"{path}: no such region file")
    suffix = path.suffix.lower()
    if suffix in (".roi", ".zip"):
        return read_imagej_rois(path)
    if suffix in (".geojson", ".json"):
        return read_geojson(path)
    raise RegionError(f"{path}: unknown region format {suffix!r}; use .roi, .zip or .geojson")


def write_regions(regions: list[Region], path: str | Path) -> Path:
    """Write regions as ImageJ RoiSet (``.zip``/``.roi``) or GeoJSON (``.geojson``/``.json``)."""
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
    """
    import roifile

    path = Path(path)
    try:
        rois = roifile.roiread(str(path))
    except Exception as exc:
        raise RegionError(f"{path}: not a readable ImageJ ROI file ({exc})") from exc
    if not isinstance(rois, list):
        rois = [rois]
    by_name: dict[str, list[Polygon]] = {}
    for i, roi in enumerate(rois):
        name = roi.name or f"roi_{i + 1}"
        polys = _imagej_polygons(roi, path)
        by_name.setdefault(name, []).extend(polys)
    if not by_name:
        raise RegionError(f"{path}: holds no ROI")
    return [Region(name, polys) for name, polys in by_name.items()]


def _imagej_polygons(roi, path: Path) -> list[Polygon]:
    import roifile

    if roi.roitype in (roifile.ROI_TYPE.LINE, roifile.ROI_TYPE.POLYLINE,
                       roifile.ROI_TYPE.FREELINE, roifile.ROI_TYPE.ANGLE,
                       roifile.ROI_TYPE.POINT):
        raise RegionError(
            f"{path}: ROI {roi.name!r} is a {roi.roitype.name.lower()} ROI, which has no area; "
            "draw regions as polygon, freehand, rectangle or oval ROIs"
        )
    paths = roi.coordinates(multi=True)
    if not isinstance(paths, list):
        paths = [paths]
    polys = [np.asarray(p, dtype=float)[:, ::-1] - HALF for p in paths if len(p) >= 3]
    if not polys:
        raise RegionError(f"{path}: ROI {roi.name!r} has no polygon")
    if len(polys) == 1:
        return [Polygon(polys[0])]
    # Composite ROI: the largest path is the outline, paths inside it are holes.
    areas = [abs(_area(p)) for p in polys]
    order = np.argsort(areas)[::-1]
    outer = polys[order[0]]
    return [Polygon(outer, [polys[i] for i in order[1:]])]


def _area(p: np.ndarray) -> float:
    y, x = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def write_imagej_rois(regions: list[Region], path: str | Path) -> Path:
    """Write regions as an ImageJ RoiSet ``.zip`` (or one ``.roi`` for a single polygon).

    Each polygon becomes a sub-pixel polygon ROI named after its region; a polygon with holes
    becomes a composite ROI.
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


def read_geojson(path: str | Path) -> list[Region]:
    """Read a QuPath GeoJSON export (FeatureCollection, Feature list, or one Feature).

    The region name is the feature's ``properties.name``, else its
    ``properties.classification.name``, else ``region_<n>``. Polygon and MultiPolygon
    geometries are read with their holes.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegionError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features", [])
    elif isinstance(data, list):
        features = data
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        raise RegionError(f"{path}: expected a GeoJSON Feature or FeatureCollection")
    by_name: dict[str, list[Polygon]] = {}
    props_by_name: dict[str, dict] = {}
    for i, feat in enumerate(features):
        props = feat.get("properties") or {}
        cls = props.get("classification") or {}
        name = props.get("name") or (cls.get("name") if isinstance(cls, dict) else None) \
            or f"region_{i + 1}"
        geom = feat.get("geometry") or {}
        gtype = geom.get("type")
        coords = geom.get("coordinates")
        if gtype == "Polygon":
            polys = [coords]
        elif gtype == "MultiPolygon":
            polys = coords
        else:
            raise RegionError(
                f"{path}: feature {name!r} is a {gtype}, which has no area; only Polygon and "
                "MultiPolygon annotations are regions"
            )
        for rings in polys:
            arrs = [np.asarray(r, dtype=float)[:, ::-1] - HALF for r in rings]
            arrs = [a[:-1] if len(a) > 3 and np.allclose(a[0], a[-1]) else a for a in arrs]
            by_name.setdefault(name, []).append(Polygon(arrs[0], arrs[1:]))
        props_by_name.setdefault(name, {k: v for k, v in props.items() if k != "name"})
    if not by_name:
        raise RegionError(f"{path}: holds no region")
    return [Region(n, p, properties=props_by_name.get(n, {})) for n, p in by_name.items()]


def write_geojson(regions: list[Region], path: str | Path) -> Path:
    """Write regions as a QuPath-compatible GeoJSON FeatureCollection of annotations."""
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
        props.update({k: v for k, v in region.properties.items()
                      if isinstance(v, (str, int, float, bool))})
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                       encoding="utf-8")
    return path
