"""Segmentation primitives shared by assays: stain separation, background, thresholds, blobs,
ridges.
"""
