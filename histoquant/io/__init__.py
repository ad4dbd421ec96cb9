"""Reading and writing images with their pixel size."""

from .image import (  # noqa: F401  (check_*, dtype_max: kept importable, not in __all__)
    Image,
    as_image,
    check_finite,
    check_not_empty,
    dtype_max,
)
from .modality import Modality, detect_modality
from .readers import IMAGE_SUFFIXES, image_levels, is_image_file, read_image
from .safe_paths import OutputFolder, check_inside, safe_file_name, safe_name
from .writers import atomic_path, write_imagej_tiff, write_ome_tiff, write_ome_zarr

# The public names. check_finite, check_not_empty and dtype_max (pixel checks the assays
# share) stay importable from here for the package's own modules, but are internal helpers,
# as in io.image's own __all__.
__all__ = [
    "Image",
    "as_image",
    "Modality",
    "detect_modality",
    "IMAGE_SUFFIXES",
    "image_levels",
    "is_image_file",
    "read_image",
    "atomic_path",
    "OutputFolder",
    "check_inside",
    "safe_file_name",
    "safe_name",
    "write_imagej_tiff",
    "write_ome_tiff",
    "write_ome_zarr",
]
