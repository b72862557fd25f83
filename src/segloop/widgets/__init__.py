"""Qt widgets of the napari plugin (the top layer: may import anything).

:mod:`~segloop.widgets.segment` is the dock: the form and the wiring. Its
panels (:mod:`~segloop.widgets.segment_run`,
:mod:`~segloop.widgets.update_labels`, :mod:`~segloop.widgets.retrain`,
:mod:`~segloop.widgets.export_panel`, :mod:`~segloop.widgets.diameter`)
share one :class:`~segloop.widgets.session.Session` and report by
signals; the run's layers are :mod:`~segloop.widgets.output_layers`; what
runs off the GUI thread is in :mod:`~segloop.widgets.runner` and
:mod:`~segloop.widgets.retrain_worker`. Imports point down that list
(an import-linter contract in ``pyproject.toml``).

Importing a widget module must not load torch: the engine is imported
inside the worker threads that run it.
"""
