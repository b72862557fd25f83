"""The 'flows' head: config, network outputs, targets, loss, augmentation,
instances, blockwise stitching, uncertainty and model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries, relabel_sequential

from segloop.core import training
from segloop.core.augment import (
    apply_geometry,
    apply_geometry_to_flows,
    draw_geometry,
)
from segloop.core.blocks import plan_blocks
from segloop.core.checkpoint import (
    ModelInfo,
    load_model,
    read_info,
    save_model,
)
from segloop.core.config import ModelConfig, binary_head
from segloop.core.errors import InputError
from segloop.core.flows import (
    FLOW_SCALE,
    flow_channels,
    instances_to_flow_targets,
    instances_to_flows,
)
from segloop.core.instances import InstanceParams, probabilities_to_instances
from segloop.core.metrics import count_merges, evaluate_pairs
from segloop.core.relabel import block_raw_ids, extended_region, mask_digest
from segloop.core.stitch import id_stride, stitch_blocks
from segloop.core.training import PatchSampler, flow_loss, masked_loss
from segloop.core.unet import UNet
from segloop.data.synthetic import synthetic_nuclei

FLOWS_3D = {
    'spatial_dims': 3,
    'out_channels': 4,
    'depth': 2,
    'base_channels': 4,
    'pool_factors': ((1, 2, 2), (2, 2, 2)),
    'head': 'flows',
}


def _touching(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Round objects (radius 7) packed so that many touch, centres at
    least 8 pixels apart (as nuclei: no two centres side by side)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    for _ in range(20 * max(4, int(np.prod(shape)) // 400)):
        point = rng.integers(0, shape)
        if all(np.sum((point - c) ** 2) >= 64 for c in centres):
            centres.append(point)
    markers = np.zeros(shape, np.int32)
    markers[tuple(np.array(centres).T)] = np.arange(1, len(centres) + 1)
    distance, nearest = ndi.distance_transform_edt(
        markers == 0, return_indices=True
    )
    labels = markers[tuple(nearest)]
    labels[distance > 7] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def _untied(labels: np.ndarray) -> np.ndarray:
    """``labels`` less the objects whose centre is a tie.

    An object's flows point to its pixel nearest its centroid; where two
    pixels are as near, which one wins depends on the pixel order, so a
    flipped object may flow to the other one.
    """
    out = labels.copy()
    for index in range(1, labels.max() + 1):
        points = np.argwhere(labels == index)
        if not len(points):
            continue
        squared = ((points - points.mean(axis=0)) ** 2).sum(axis=1)
        if np.sum(squared - squared.min() < 1e-9) > 1:
            out[labels == index] = 0
    return relabel_sequential(out)[0]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def test_flows_head_needs_one_channel_per_axis_plus_one():
    assert ModelConfig(head='flows').out_channels == 3
    assert ModelConfig(**FLOWS_3D).head == 'flows'
    with pytest.raises(ValueError, match='out_channels 4'):
        ModelConfig(**{**FLOWS_3D, 'out_channels': 3})
    with pytest.raises(ValueError, match='out_channels 3'):
        ModelConfig(out_channels=4, head='flows')
    assert binary_head('flows')
    assert not binary_head('classes')
    for retired in ('distances', 'cells'):
        with pytest.raises(ValueError, match='head must be'):
            ModelConfig(head=retired)
    assert flow_channels(2) == ('background', 'flow_y', 'flow_x')
    assert flow_channels(3) == ('background', 'flow_z', 'flow_y', 'flow_x')


@pytest.mark.parametrize(
    ('config', 'shape'),
    [
        (ModelConfig(depth=2, base_channels=4, head='flows'), (32, 32)),
        (ModelConfig(**FLOWS_3D), (8, 32, 32)),
    ],
)
def test_flows_network_gives_background_probability_and_flows(config, shape):
    torch.manual_seed(0)
    network = UNet(config).eval()
    with torch.inference_mode():
        logits = network(torch.rand(2, 1, *shape) * 4)
        maps = network.probabilities(logits)
    assert maps.shape == (2, 1 + len(shape), *shape)
    assert maps.dtype == torch.float32
    assert 0 <= maps[:, 0].min()
    assert maps[:, 0].max() <= 1
    torch.testing.assert_close(maps[:, 0], torch.sigmoid(logits[:, 0]))
    torch.testing.assert_close(maps[:, 1:], logits[:, 1:] / FLOW_SCALE)


def test_flows_model_saves_as_format_3_and_loads(tmp_path):
    config = ModelConfig(depth=2, base_channels=4, head='flows')
    network = UNet(config).eval()
    info = ModelInfo(network=config, class_names=list(flow_channels(2)))
    save_model(tmp_path / 'm', network, info)
    assert read_info(tmp_path / 'm').format_version == 3
    loaded, loaded_info = load_model(tmp_path / 'm')
    assert loaded.config.head == 'flows'
    assert loaded_info.class_names == ['background', 'flow_y', 'flow_x']


def test_flow_targets_decode_to_the_objects_with_instance_params():
    labels = _touching((64, 80), seed=1)
    targets = instances_to_flow_targets(labels)
    np.testing.assert_array_equal(targets[0], labels == 0)
    params = InstanceParams(head='flows', min_size=0, fill_holes=False)
    found = probabilities_to_instances(targets, params)
    assert _same_partition(found, labels)
    assert count_merges(labels, found) == 0
    with pytest.raises(ValueError, match='flow_steps'):
        InstanceParams(head='flows', flow_steps=0)
    with pytest.raises(ValueError, match='flow_steps'):
        InstanceParams.from_dict({'head': 'flows', 'flow_steps': 'many'})


@pytest.mark.parametrize('shape', [(40, 48), (10, 24, 28)])
def test_augmenting_then_making_flows_equals_augmented_flows(shape):
    labels = _untied(_touching(shape, seed=4))
    dims = len(shape)
    flows = instances_to_flows(labels)[1:]
    rng = np.random.default_rng(0)
    cases = [((), t) for t in range(4)] + [
        ((axis,), 0) for axis in range(dims)
    ]
    cases += [draw_geometry(rng, dims) for _ in range(6)]
    for flips, turns in cases:
        moved = apply_geometry(labels, flips, turns, dims)
        expected = instances_to_flows(moved)[1:]
        turned = apply_geometry_to_flows(flows, flips, turns)
        np.testing.assert_allclose(
            turned, expected, atol=1e-4, err_msg=f'{flips} {turns}'
        )


@pytest.mark.parametrize('shape', [(40, 40), (8, 24, 24)])
def test_sampler_turns_flow_targets_with_the_image(monkeypatch, shape):
    # geometry only: the image carries the labels themselves
    monkeypatch.setattr(training, 'augment_intensity', lambda x, rng: x)
    labels = _untied(_touching(shape, seed=2))
    targets = instances_to_flow_targets(labels)
    image = labels.astype(np.float32)[None]
    sampler = PatchSampler([image], [targets], shape, head='flows')
    x, y = sampler(np.random.default_rng(1), 8)
    assert y.shape == (8, 1 + len(shape), *shape)
    for patch, target in zip(x[:, 0], y, strict=True):
        expected = instances_to_flow_targets(patch.astype(np.int32))
        np.testing.assert_allclose(target, expected, atol=1e-4)


def test_sampler_pads_small_flow_targets_with_nan():
    targets = instances_to_flow_targets(_touching((20, 20), seed=3))
    sampler = PatchSampler(
        [np.ones((1, 20, 20), np.float32)], [targets], (32, 32), head='flows'
    )
    _, y = sampler(np.random.default_rng(0), 4)
    assert y.shape == (4, 3, 32, 32)
    assert np.isnan(y).any()
    assert not np.isnan(y).all()


def test_flow_loss_ignores_unlabelled_pixels_and_trains_background_flows():
    torch.manual_seed(0)
    labels = _touching((40, 60), seed=3)
    target = torch.from_numpy(instances_to_flow_targets(labels))[None]
    unlabelled = torch.zeros(40, 60, dtype=torch.bool)
    unlabelled[:, 30:] = True
    target[0, :, unlabelled] = torch.nan
    logits = torch.randn(1, 3, 40, 60, requires_grad=True)
    loss = masked_loss(logits, target)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(flow_loss(logits, target).item())
    loss.backward()
    assert logits.grad[0, :, unlabelled].abs().max() == 0
    assert logits.grad[0, :, ~unlabelled].abs().max() > 0
    background = torch.from_numpy(labels == 0) & ~unlabelled
    assert logits.grad[0, 1:][:, background].abs().min() > 0
    # perfect outputs: the flow error is 0
    perfect = torch.nan_to_num(target.clone())
    perfect[:, 0] = (0.5 - perfect[:, 0]) * -40
    perfect[:, 1:] *= FLOW_SCALE
    assert flow_loss(perfect, target, dice_weight=0).item() < 1e-6


def _blockwise(
    probabilities: np.ndarray, params: InstanceParams
) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-block ids (block + a margin of about one object diameter, as
    the engine labels them) and their stitched labels."""
    shape = probabilities.shape[1:]
    block_shape = tuple(max(8, s // 3) for s in shape)
    blocks = plan_blocks(shape, block_shape)
    margin = (16,) * len(shape)
    stride = id_stride(len(blocks))
    raw = np.zeros(shape, np.uint32)
    for block in blocks:
        extended = extended_region(block.region, margin, shape)
        raw[block.region] = block_raw_ids(
            probabilities[(slice(None), *extended)],
            extended,
            block,
            params,
            (1.0,) * len(shape),
            stride,
        )
    stitched = np.zeros(shape, np.uint32)

    def write(region, ids):
        stitched[region] = ids

    stitch_blocks(
        blocks,
        lambda r: raw[r],
        write,
        read_probabilities=lambda r: probabilities[(slice(None), *r)],
        head=params.head,
    )
    return raw, stitched, blocks


@pytest.mark.parametrize('shape', [(96, 112), (24, 48, 40)])
def test_flows_blocks_label_their_pixels_as_the_whole_image(shape):
    """Basins are local: with a margin of an object's size, every block
    gives its pixels the whole image's objects, touching ones too."""
    labels = _touching(shape, seed=5)
    probabilities = instances_to_flow_targets(labels)
    params = InstanceParams(head='flows', min_size=0)
    whole = probabilities_to_instances(probabilities, params)
    (score,) = evaluate_pairs([(labels, whole)], (0.9,))
    assert score.accuracy == 1.0
    raw, _, blocks = _blockwise(probabilities, params)
    assert len(blocks) > 4
    for block in blocks:
        assert _same_partition(raw[block.region], whole[block.region])


@pytest.mark.parametrize('shape', [(96, 112), (24, 48, 40)])
def test_flows_blocks_stitch_to_the_whole_image_labels(shape):
    """As tests/core/test_stitch.py: objects apart across block faces."""
    labels = _touching(shape, seed=5)
    labels[find_boundaries(labels, mode='inner')] = 0
    labels = relabel_sequential(labels)[0]
    probabilities = instances_to_flow_targets(labels)
    params = InstanceParams(head='flows', min_size=0)
    whole = probabilities_to_instances(probabilities, params)
    _, stitched, _ = _blockwise(probabilities, params)
    assert _same_partition(stitched, whole)


@pytest.mark.parametrize('shape', [(96, 112), (24, 48, 40)])
def test_flows_objects_touching_across_a_face_stay_apart(shape):
    """Without a boundary class, two objects of neighbouring blocks that
    touch along the face are kept apart by the flows there."""
    labels = _touching(shape, seed=5)
    probabilities = instances_to_flow_targets(labels)
    params = InstanceParams(head='flows', min_size=0)
    whole = probabilities_to_instances(probabilities, params)
    raw, stitched, blocks = _blockwise(probabilities, params)
    assert _same_partition(stitched, whole)
    # the flows are what keeps them apart: by contact alone, touching
    # pairs of this packing join
    joined = np.zeros_like(stitched)

    def write(region, ids):
        joined[region] = ids

    stitch_blocks(blocks, lambda r: raw[r], write)
    assert not _same_partition(joined, whole)


def test_mask_digest_of_flows_sees_the_flows():
    probabilities = instances_to_flow_targets(_touching((32, 32), seed=6))
    params = InstanceParams(head='flows')
    changed = probabilities.copy()
    changed[1:] *= 0.5
    assert mask_digest(changed, params) != mask_digest(probabilities, params)
    assert mask_digest(probabilities.copy(), params) == mask_digest(
        probabilities, params
    )


def test_mc_uncertainty_of_a_flows_model_is_the_foreground_bernoulli():
    from segloop.core.predict import Predictor

    torch.manual_seed(0)
    config = ModelConfig(depth=2, base_channels=4, head='flows')
    predictor = Predictor(UNet(config).eval(), 'cpu', 'fp32')
    tiles = np.random.default_rng(0).random((2, 1, 32, 32), np.float32)
    out = predictor.forward_mc(tiles, samples=4, tile_seeds=[1, 2])
    assert out.shape == (2, 6, 32, 32)
    assert np.isfinite(out).all()
    background, entropy = out[:, 0], out[:, 3]
    p = np.clip(background, 1e-7, 1 - 1e-7)
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(entropy, expected, atol=1e-5)
    assert out[:, 4].max() <= np.log(2) + 1e-6  # mutual information


def test_painted_objects_teach_the_flows_head_over_their_whole_area():
    from segloop.core.corrections import class_targets_to_flows
    from segloop.core.targets import IGNORE, instances_to_classes

    yy, xx = np.mgrid[:40, :60]
    labels = np.zeros((40, 60), np.int32)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 < 12**2] = 1
    labels[((yy - 20) ** 2 + (xx - 41) ** 2 < 12**2) & (labels == 0)] = 2
    targets = instances_to_classes(labels).astype(np.int8)
    targets[:, 50:] = IGNORE  # unpainted
    dense = class_targets_to_flows(targets)
    assert dense.shape == (3, 40, 60)
    assert np.isnan(dense[:, :, 50:]).all()
    painted = dense[:, :, :50]
    assert not np.isnan(painted).any()
    # the two touching painted nuclei flow apart: two objects
    params = InstanceParams(head='flows', min_size=0, fill_holes=False)
    found = probabilities_to_instances(painted, params)
    assert count_merges(labels[:, :50], found) == 0
    assert len(np.unique(found)) == 3


def test_painted_flows_turn_with_the_patch():
    """Fine-tuning patches of a flows model: the flow targets of a painted
    object point to its centre in the flipped / turned patch too."""
    from segloop.core.corrections import class_targets_to_flows
    from segloop.core.painted import PaintedPatchSampler
    from segloop.core.targets import instances_to_classes

    labels = np.zeros((64, 64), np.int32)
    yy, xx = np.mgrid[:64, :64]
    labels[(yy - 30) ** 2 + (xx - 35) ** 2 <= 49] = 1  # off-centre
    classes = instances_to_classes(labels).astype(np.int64)
    dense = class_targets_to_flows(classes)
    assert np.isfinite(dense).all()  # every pixel painted here
    image = (labels > 0).astype(np.float32)[None]
    sampler = PaintedPatchSampler(
        [image], [classes], (48, 48), elastic=1.0, dense=[dense]
    )
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 8:
        _, y = sampler(rng, 1)
        inside = y[0, 0] == 0  # background target 0: the object
        if inside.sum() != (labels > 0).sum():
            continue  # the patch cut the object
        points = np.argwhere(inside)
        towards = points.mean(axis=0) - points
        flows = y[0, 1:][:, inside].T
        far = np.linalg.norm(towards, axis=1) > 2
        agree = (flows * towards).sum(axis=1) > 0
        assert agree[far].mean() > 0.95
        checked += 1


def test_a_flows_model_fine_tunes_on_painted_objects():
    from segloop.core.finetune import FinetuneConfig, iter_finetune

    torch.manual_seed(0)
    network = UNet(ModelConfig(depth=2, base_channels=4, head='flows'))
    parent = {k: v.clone() for k, v in network.state_dict().items()}
    image, labels = synthetic_nuclei((64, 64), 6, 6, seed=0)
    from segloop.core.corrections import targets_to_corrections
    from segloop.core.targets import instances_to_classes

    corrections = targets_to_corrections(instances_to_classes(labels))
    corrections[:, :24] = 0  # a part unpainted: replayed from the parent
    config = FinetuneConfig(
        steps=30,
        batch_size=4,
        patch_shape=(32, 32),
        learning_rate=5e-3,
        bf16=False,
        time_limit_s=None,
        interpolate=1.0,
    )
    events = iter_finetune(network, image, corrections, config)
    losses = []
    while True:
        try:
            losses.append(next(events).loss)
        except StopIteration as stop:
            result = stop.value
            break
    assert len(losses) == 30
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    after = network.state_dict()
    assert all(torch.equal(parent[k], after[k]) for k in parent)
    tuned = result.model.state_dict()
    assert not torch.equal(parent['head.weight'], tuned['head.weight'])
    # no replay data: batch-norm statistics stay the parent's
    stats = [k for k in parent if k.endswith('running_mean')]
    assert all(torch.equal(parent[k], tuned[k]) for k in stats)
    with pytest.raises(InputError, match='held-back'):
        next(
            iter_finetune(
                network,
                image,
                corrections,
                FinetuneConfig(val_fraction=0.2),
            )
        )


def test_self_replay_of_a_flows_model_is_its_own_outputs():
    from segloop.core.corrections import class_targets_to_flows
    from segloop.core.forgetting import self_replay
    from segloop.core.predict import Predictor
    from segloop.core.targets import IGNORE, instances_to_classes

    torch.manual_seed(0)
    network = UNet(ModelConfig(depth=2, base_channels=4, head='flows'))
    image, labels = synthetic_nuclei((64, 64), 6, 6, seed=0)
    norm = (image / image.max()).astype(np.float32)[None]
    classes = instances_to_classes(labels).astype(np.int64)
    classes[:, :32] = IGNORE
    dense = class_targets_to_flows(classes)
    _, (targets,) = self_replay(
        network, [norm], [classes], torch.device('cpu'), [dense]
    )
    outputs = Predictor(network, 'cpu').predict(norm)
    painted = np.isfinite(dense[0])
    assert targets.shape == dense.shape
    assert np.isfinite(targets).all()
    np.testing.assert_array_equal(targets[:, painted], dense[:, painted])
    np.testing.assert_allclose(targets[:, ~painted], outputs[:, ~painted])
