"""The napari reader given the table's bad files: never a crash.

A file that cannot be opened is declined (``get_reader`` returns None, so
napari tries its other readers and says none could open it); a file that
opens is read lazily, and a chunk that cannot be decoded raises a clear
:class:`InputError` when napari draws it. Cases about settings, outputs
or models do not reach the reader (it has no axes, tile or model).
"""

from __future__ import annotations

import numpy as np
import pytest

from segloop.core.errors import InputError
from segloop.plugin.reader import get_reader

DECLINED = ['missing_path', 'unreadable_path', 'truncated_tiff']
DECLINED += ['zero_size_axis']
OPENED = ['zarr_missing_chunk', 'nan_inf', 'constant_image']
OPENED += ['one_pixel_axis', 'one_plane_stack']


@pytest.mark.parametrize('case', DECLINED, indirect=True)
def test_reader_declines_files_it_cannot_open(built_case) -> None:
    _, built, _ = built_case
    assert get_reader(str(built.input)) is None


@pytest.mark.parametrize('case', OPENED, indirect=True)
def test_reader_opens_odd_but_valid_images(built_case) -> None:
    _, built, _ = built_case
    reader = get_reader(str(built.input))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(built.input))
    assert kind == 'image'
    pixels = np.asarray(data)  # what napari computes to draw it
    assert pixels.size > 0
    assert kwargs['name'] == 'in'


@pytest.mark.parametrize('case', ['zarr_corrupt_chunk'], indirect=True)
def test_corrupt_chunk_opens_and_fails_clearly_where_drawn(
    built_case,
) -> None:
    _, built, _ = built_case
    reader = get_reader(str(built.input))
    assert reader is not None  # the metadata is fine
    [(data, _, _)] = reader(str(built.input))
    np.asarray(data[:32, :32])  # good chunks draw
    with pytest.raises(InputError, match=r'cannot be read at \[32:64'):
        np.asarray(data[32:, 32:])
