"""Learned engines: classifiers a lab trains on its own stain, and the files that hold them.

scikit-learn and skops are optional (``pip install 'histoquant[learn]'``); they are imported
when a model is trained, saved or loaded, so ``import histoquant.learn`` works without them.
"""

from __future__ import annotations

from .modelfile import KINDS, LoadedModel, file_sha256, image_record, load_model, save_model
from .objects import apply_model, classify_objects

__all__ = ["KINDS", "LoadedModel", "save_model", "load_model", "file_sha256", "image_record",
           "apply_model", "classify_objects"]
