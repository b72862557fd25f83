"""Input and output: lazy readers, OME-Zarr writers, labelled data sets."""
