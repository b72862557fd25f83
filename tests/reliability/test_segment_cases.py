"""Every case of the table through ``segloop segment`` and the Python API.

Error cases: the CLI exits with 2 and prints one ``segloop: error:`` line
(no traceback), the API raises the case's exception with the same text;
the input is unchanged and no output looks complete (see conftest).
Cases that succeed: checked for what docs/reliability.md promises.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import zarr

import segloop
from segloop.cli import main
from segloop.core.errors import InputWarning, SegloopError
from segloop.io.ome_zarr import read_labels, read_segloop_metadata
from segloop.io.readers import open_image

from .conftest import IMAGE_SHAPE, assert_no_complete_output


def _argv(built) -> list[str]:
    return [
        'segment',
        str(built.input),
        '-o',
        str(built.output),
        '--model',
        built.model,
        *built.args,
    ]


def error_line(stderr: str, command: str = 'segment') -> str:
    """The one error line of a failed command.

    Apart from it, stderr may only hold the progress bar (whose updates
    are separated by carriage returns) of ``command``.
    """
    pieces = [p for p in stderr.replace('\r', '\n').split('\n') if p.strip()]
    errors = [p for p in pieces if p.startswith('segloop: error: ')]
    assert len(errors) == 1, stderr
    others = [p for p in pieces if p not in errors]
    assert all(p.startswith(f'{command}:') for p in others), stderr
    assert 'Traceback' not in stderr
    return errors[0]


def test_cli(built_case, capsys) -> None:
    case, built, _ = built_case
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # e.g. 0/0
        code = main(_argv(built))
    captured = capsys.readouterr()
    if case.error is None:
        assert code == 0, captured.err
        assert read_segloop_metadata(built.output)['complete'] is True
        return
    assert code == 2, captured.err
    assert case.match in error_line(captured.err)
    assert_no_complete_output(built.output)


def test_api(built_case) -> None:
    case, built, _ = built_case
    call = {'model': built.model, **built.kwargs}
    if case.error is None:
        with warnings.catch_warnings():
            warnings.simplefilter('error', RuntimeWarning)
            warnings.simplefilter('ignore', InputWarning)  # see nan_inf
            segloop.segment(built.input, built.output, **call)
        assert read_segloop_metadata(built.output)['complete'] is True
        return
    with pytest.raises(case.error) as raised:
        segloop.segment(built.input, built.output, **call)
    assert issubclass(case.error, SegloopError)
    assert case.match in str(raised.value)
    assert '\n' not in str(raised.value)
    assert_no_complete_output(built.output)


# -- what the cases that succeed promise -------------------------------------


def _probabilities(path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode='r')['0'][...])


@pytest.mark.parametrize('case', ['zarr_missing_chunk'], indirect=True)
def test_missing_chunk_reads_as_fill_value(built_case) -> None:
    _, built, _ = built_case
    source = open_image(built.input)
    data = np.asarray(source.data)
    assert data.shape == IMAGE_SHAPE
    assert not data[32:, 32:].any()  # the deleted chunk: fill value 0
    assert data[:32, :32].any()
    segloop.segment(built.input, built.output)
    assert read_labels(built.output).shape == IMAGE_SHAPE


@pytest.mark.parametrize('case', ['nan_inf'], indirect=True)
def test_nan_pixels_warn_once_and_give_finite_outputs(
    built_case, capsys
) -> None:
    _, built, _ = built_case
    assert main(_argv(built)) == 0
    err = capsys.readouterr().err
    warnings_ = [
        line for line in err.splitlines() if line.startswith('segloop: ')
    ]
    assert len(warnings_) == 1, err
    assert warnings_[0].startswith('segloop: warning: ')
    assert 'NaN or infinite' in warnings_[0]
    assert np.isfinite(_probabilities(built.output)).all()

    with pytest.warns(InputWarning, match='NaN or infinite'):
        result = segloop.predict(tifffile.imread(built.input))
    assert np.isfinite(result.probabilities).all()
    assert result.labels.shape == IMAGE_SHAPE


@pytest.mark.parametrize('case', ['constant_image'], indirect=True)
def test_constant_image_gives_no_objects(built_case) -> None:
    _, built, _ = built_case
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no division by zero, no NaN
        segloop.segment(built.input, built.output)
        result = segloop.predict(np.full(IMAGE_SHAPE, 7, np.uint8))
    assert read_labels(built.output).max() == 0
    assert read_segloop_metadata(built.output)['objects'] == [0]
    assert result.labels.max() == 0
    assert np.isfinite(result.probabilities).all()


@pytest.mark.parametrize('case', ['one_plane_stack'], indirect=True)
def test_one_plane_stack_keeps_its_shape(built_case) -> None:
    _, built, _ = built_case
    segloop.segment(built.input, built.output, axes='ZYX')
    assert read_labels(built.output).shape == (1, *IMAGE_SHAPE)
    assert read_segloop_metadata(built.output)['model']['name'] == ('nuclei3d')


@pytest.mark.parametrize('case', ['tile_larger_than_image'], indirect=True)
def test_tile_larger_than_the_image_is_fitted(built_case) -> None:
    _, built, _ = built_case
    segloop.segment(built.input, built.output, tile=(1024, 1024))
    tile = read_segloop_metadata(built.output)['settings']['tile']
    assert max(tile) < 1024  # shrunk to what covers the image
    assert read_labels(built.output).max() >= 1


def test_predict_refuses_a_huge_tile_before_allocating() -> None:
    # a lazy image far larger than memory: only the check may run
    import dask.array as da

    image = da.zeros((200_000, 200_000), dtype=np.uint8, chunks=4096)
    with pytest.raises(SegloopError, match='too large'):
        segloop.predict(image, tile=(100_000, 100_000))
