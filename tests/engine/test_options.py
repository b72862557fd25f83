"""One options value and one size parser for every front end."""

from __future__ import annotations

import argparse

import pytest

from segloop.cli import args as types
from segloop.engine.options import SegmentOptions, parse_sizes


def test_parse_sizes_reads_commas_and_x() -> None:
    assert parse_sizes('256') == (256,)
    assert parse_sizes('256,256') == (256, 256)
    assert parse_sizes('8x256x256') == (8, 256, 256)
    assert parse_sizes('8,20.5', float) == (8.0, 20.5)
    for text, number in (('a,2', int), ('0,5', int), ('0', float)):
        with pytest.raises(ValueError, match=repr(text)):
            parse_sizes(text, number)


def test_the_command_line_reads_shapes_with_it() -> None:
    assert types.shape('8x64x64') == (8, 64, 64)
    with pytest.raises(argparse.ArgumentTypeError, match='sizes must be'):
        types.shape('0,64')


def test_with_given_keeps_what_is_not_given() -> None:
    options = SegmentOptions(axes='YX', overlap=0.25)
    changed = options.with_given(axes=None, overlap=0.5, channel=1)
    assert changed == SegmentOptions(axes='YX', overlap=0.5, channel=1)


def test_predict_takes_the_options_as_one_value() -> None:
    from segloop.api import predict
    from segloop.data.synthetic import synthetic_nuclei

    image, _ = synthetic_nuclei((64, 64), n=4, radius=5, seed=0)
    options = SegmentOptions(axes='YX', tile=(64, 64), overlap=0.25)
    given = predict(image, 'nuclei2d', options=options)
    loose = predict(image, 'nuclei2d', axes='YX', tile=(64, 64), overlap=0.25)
    assert given.settings == loose.settings
    assert (given.labels == loose.labels).all()
    changed = predict(image, 'nuclei2d', options=options, overlap=0.5)
    assert changed.settings['overlap'] == 0.5
