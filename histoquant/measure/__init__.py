"""Measurement primitives shared by assays: object features in µm, skeleton lengths,
accuracy scores.
"""
