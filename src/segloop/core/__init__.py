"""Numerical core of segloop.

May import numpy, torch, scipy and scikit-image only: never napari, Qt,
magicgui, zarr or dask (enforced by import-linter, see pyproject.toml).
Works on anything sliceable that returns numpy arrays.
"""
