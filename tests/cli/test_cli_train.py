"""`segloop train` / `segloop tune` on a tiny synthetic labelled folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from segloop.cli import main
from segloop.core.checkpoint import load_model
from segloop.data.synthetic import synthetic_nuclei


@pytest.fixture
def labelled(tmp_path):
    root = tmp_path / 'data' / 'blobs'
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    for seed in range(6):
        image, labels = synthetic_nuclei((48, 48), n=4, radius=5, seed=seed)
        name = f'img{seed}.tif'
        tifffile.imwrite(
            root / 'images' / name, (image * 200).clip(0, 255).astype(np.uint8)
        )
        tifffile.imwrite(root / 'masks' / name, labels.astype(np.uint16))
    return root


TINY = [
    '--depth',
    '2',
    '--base-channels',
    '4',
    '--patch',
    '32',
    '--batch-size',
    '2',
    '--fp32',
]


def test_train_writes_a_loadable_model_with_provenance(tmp_path, labelled):
    out = tmp_path / 'model'
    argv = [
        'train',
        str(labelled),
        '-o',
        str(out),
        '--steps',
        '4',
        '--checkpoint-every',
        '2',
        '--val-fraction',
        '0.34',
        *TINY,
    ]
    assert main(argv) == 0
    model, info = load_model(out)
    assert info.provenance['steps'] == 4
    assert info.provenance['training_data'] == ['data/blobs']
    val = info.provenance['validation_names']['data/blobs']
    assert len(val) == 2
    assert info.provenance['n_train_images'] == 4
    # what it ran on and for how long (issue: record device and time)
    assert info.provenance['device'].startswith('cpu: ')
    assert info.provenance['train_seconds'] >= 0
    assert model.config.depth == 2
    # radius-5 blobs: a median diameter near 10 px, for --diameter
    assert 7 < info.object_size['median_diameter'][0] < 12

    child = tmp_path / 'child'
    argv = [
        'train',
        str(labelled),
        '-o',
        str(child),
        '--steps',
        '2',
        '--init',
        str(out),
        '--seed',
        '5',
        '--val-fraction',
        '0.34',
        *TINY,
    ]
    assert main(argv) == 0
    child_info = load_model(child)[1]
    assert child_info.provenance['parent_model'] == str(out)
    assert child_info.provenance['validation_names']['data/blobs'] == val


def test_train_refuses_existing_output(tmp_path, labelled, capsys):
    out = tmp_path / 'model'
    out.mkdir()
    (out / 'x').write_text('keep')
    assert main(['train', str(labelled), '-o', str(out), *TINY]) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert (out / 'x').read_text() == 'keep'


def test_tune_writes_settings_and_scores(tmp_path, labelled, capsys):
    out = tmp_path / 'model'
    argv = [
        'train',
        str(labelled),
        '-o',
        str(out),
        '--steps',
        '2',
        '--val-fraction',
        '0.34',
        *TINY,
    ]
    assert main(argv) == 0
    assert main(['tune', str(out), str(labelled), '--write']) == 0
    assert 'accuracy' in capsys.readouterr().out
    config = json.loads((out / 'config.json').read_text())
    assert config['instances']['fg_threshold'] == 0.5
    scores = config['provenance']['scores']['validation']
    assert scores['n_images'] == 2
    assert scores['at_iou'][0]['threshold'] == 0.5


def test_train_3d_with_anisotropic_pooling(tmp_path):
    root = tmp_path / 'vol' / 'train'
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    for seed in range(3):
        image, labels = synthetic_nuclei((5, 32, 32), n=3, radius=4, seed=seed)
        name = f'v{seed}.tif'
        tifffile.imwrite(
            root / 'images' / name, (image * 200).clip(0, 255).astype(np.uint8)
        )
        tifffile.imwrite(root / 'masks' / name, labels.astype(np.uint16))
    out = tmp_path / 'model3d'
    argv = [
        'train',
        str(root),
        '-o',
        str(out),
        '--dims',
        '3',
        '--depth',
        '2',
        '--base-channels',
        '4',
        '--patch',
        '5,32,32',
        '--pool-factors',
        '1,2,2;1,2,2',
        '--batch-size',
        '1',
        '--steps',
        '2',
        '--val-fraction',
        '0.34',
        '--fp32',
    ]
    assert main(argv) == 0
    model, info = load_model(out)
    assert info.axes == 'ZYX'
    assert model.config.divisor() == (1, 4, 4)


def test_train_flows_head_writes_a_format_3_model_that_segments(
    tmp_path, labelled
):
    import segloop
    from segloop.io.ome_zarr import read_labels, read_segloop_metadata

    out = tmp_path / 'flows'
    argv = ['train', str(labelled), '-o', str(out), '--steps', '5']
    augment = ['--scale-aug', '0.5,2', '--invert-aug', '0.5', '--balance']
    assert main([*argv, '--head', 'flows', *augment, *TINY]) == 0
    model, info = load_model(out)
    assert model.config.head == 'flows'
    assert model.config.out_channels == 3
    assert info.format_version == 3
    assert info.class_names == ['background', 'flow_y', 'flow_x']
    assert np.isfinite(info.provenance['final_loss'])
    recipe = info.provenance['train_config']
    assert (recipe['scale_range'], recipe['invert_p']) == ([0.5, 2.0], 0.5)
    # the sizes it saw, which auto-size leaves unzoomed
    assert info.object_size['scale_range'] == [0.5, 2.0]
    assert info.provenance['balance_folders'] is True

    image = tifffile.imread(next((labelled / 'images').glob('*.tif')))
    result = segloop.predict(image, model=str(out), mc_samples=2)
    assert result.probabilities.shape == (3, 48, 48)
    assert result.labels.shape == (48, 48)
    assert 0 <= result.probabilities[0].min()
    assert result.probabilities[0].max() <= 1
    assert np.isfinite(result.probabilities).all()

    zarr_out = tmp_path / 'out.zarr'
    segment = ['segment', str(labelled / 'images' / 'img0.tif')]
    blocks = ['--block', '24,24', '--tile', '32,32']
    assert (
        main([*segment, '-o', str(zarr_out), '--model', str(out), *blocks])
        == 0
    )
    assert read_labels(zarr_out).shape == (48, 48)
    assert read_segloop_metadata(zarr_out)['complete'] is True


def test_train_with_sampler_workers(tmp_path, labelled):
    """--workers 2: patches cut in two processes, targets made in two."""
    out = tmp_path / 'model'
    argv = [
        'train',
        str(labelled),
        '-o',
        str(out),
        '--steps',
        '3',
        '--workers',
        '2',
        '--head',
        'flows',
        *TINY,
    ]
    assert main(argv) == 0
    _, info = load_model(out)
    assert info.provenance['steps'] == 3
    assert info.provenance['sampler_workers'] == 2
