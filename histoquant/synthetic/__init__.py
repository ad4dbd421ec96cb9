"""Phantoms with exact ground truth, for tests, examples and benchmarks.

Each generator is seeded, returns the image (with its pixel size) and its truth, and is fast
enough to make test-sized images in well under a second.
"""
