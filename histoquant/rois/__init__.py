"""Named regions: polygons and masks, rasterised one way, read from and written to files."""

from .formats import (
    read_geojson,
    read_imagej_rois,
    read_regions,
    write_geojson,
    write_imagej_rois,
    write_regions,
)
from .region import IMAGE_REGION, Polygon, Region, mask_to_polygons, normalize_regions, rasterize

__all__ = [
    "IMAGE_REGION",
    "Polygon",
    "Region",
    "mask_to_polygons",
    "normalize_regions",
    "rasterize",
    "read_geojson",
    "read_imagej_rois",
    "read_regions",
    "write_geojson",
    "write_imagej_rois",
    "write_regions",
]
