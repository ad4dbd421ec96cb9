"""Segmentation primitives shared by assays.

Stain separation, background, thresholds, blobs, ridges.
"""
