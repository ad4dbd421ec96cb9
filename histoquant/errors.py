"""Exceptions raised by histoquant.

Every error a user can cause derives from :class:`HistoquantError`, so a batch run can catch
one type, record the message in its error table and go on with the next image. Messages name
the file (when there is one), say what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "HistoquantError",
    "ImageReadError",
    "PixelSizeError",
    "ChannelError",
    "EmptyImageError",
    "RegionError",
    "ParamsError",
    "DependencyError",
    "OutputPathError",
    "ModalityError",
    "ModelFileError",
    "TrainingDataError",
]


class HistoquantError(Exception):
    """Base class of every error histoquant raises on bad input or configuration."""


class ImageReadError(HistoquantError):
    """A file could not be read as an image (missing, corrupt, truncated, unknown format)."""


class PixelSizeError(HistoquantError):
    """The pixel size is unknown, invalid or anisotropic where a physical size is needed."""


class ChannelError(HistoquantError):
    """The image lacks a channel the assay needs, or a channel name/index is wrong."""


class EmptyImageError(HistoquantError):
    """The image holds no usable signal: empty, constant, or not finite."""


class RegionError(HistoquantError):
    """A region file or region definition is invalid or does not fit the image."""


class ParamsError(HistoquantError):
    """Assay parameters are invalid: unknown keys, wrong types or out-of-range values."""


class DependencyError(HistoquantError):
    """An optional dependency (or its model weights) needed for the request is missing."""


class OutputPathError(HistoquantError):
    """A file would be written outside the output folder; nothing is written there.

    A symbolic link leading out of it, or a name that climbs out.
    """


class ModalityError(HistoquantError):
    """The image is brightfield where the assay needs fluorescence, or the other way round."""


class ModelFileError(HistoquantError):
    """A model file (``.hqm``) is not one, is damaged or tampered with, or does not fit.

    Foreign or corrupt files, a newer format, the wrong kind of model, a payload whose hash
    does not match its manifest, types the loader does not trust, or another scikit-learn.
    """


class TrainingDataError(HistoquantError):
    """Training images and their labels do not fit together, or a class has no example."""
