"""Package resources: the plugin icon (napari.yaml)."""
