"""Qt widgets of the napari plugin (the top layer: may import anything).

Importing a widget module must not load torch: the engine is imported
inside the worker threads that run it.
"""
