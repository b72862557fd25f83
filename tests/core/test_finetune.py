"""Fine-tuning on painted corrections: targets, loss mask, copy, stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segloop.core.augment import augment_elastic
from segloop.core.checkpoint import ModelInfo, load_model, save_model
from segloop.core.errors import InputError
from segloop.core.finetune import (
    FinetuneConfig,
    FinetuneResult,
    PaintedPatchSampler,
    corrections_to_targets,
    finetuned_info,
    instances_to_targets,
    iter_finetune,
    split_painted,
    targets_to_corrections,
    touched_mask,
)
from segloop.core.forgetting import self_replay
from segloop.core.predict import Predictor
from segloop.core.targets import IGNORE, instances_to_classes
from segloop.core.training import masked_loss
from segloop.core.unet import UNet
from segloop.data.synthetic import synthetic_nuclei


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run fastest on one thread (and the CPU is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(generator):
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return stop.value, events


def _task(seed: int = 0, shape=(64, 64)):
    image, labels = synthetic_nuclei(shape, n=6, radius=6, seed=seed)
    corrections = targets_to_corrections(instances_to_classes(labels))
    return image, labels, corrections


def _config(**kwargs) -> FinetuneConfig:
    base = {
        'steps': 20,
        'batch_size': 2,
        'patch_shape': (32, 32),
        'learning_rate': 5e-3,
        'bf16': False,
        'time_limit_s': None,
        'val_every': 5,
    }
    base.update(kwargs)
    return FinetuneConfig(**base)


def _state(model: UNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_corrections_map_to_classes_and_ignore() -> None:
    corrections = np.array([[0, 1, 2, 3]], np.uint8)
    targets = corrections_to_targets(corrections)
    assert targets.tolist() == [[IGNORE, 0, 1, 2]]
    assert (targets_to_corrections(targets) == corrections).all()
    with pytest.raises(InputError, match='0 \\(unpainted\\) to 3'):
        corrections_to_targets(np.array([[4]]))
    with pytest.raises(InputError, match='integer'):
        corrections_to_targets(np.zeros((2, 2), np.float32))


def test_targets_from_edited_instances_only_where_touched() -> None:
    original = np.zeros((20, 20), np.int32)
    original[2:8, 2:8] = 1
    original[12:18, 12:18] = 2
    edited = original.copy()
    edited[2:8, 2:8] = 0  # user erased object 1
    edited[12:18, 2:8] = 3  # and painted a new one
    touched = touched_mask(original, edited, margin=1)
    assert touched[2:8, 2:8].all()
    assert touched[12:18, 2:8].all()
    assert not touched[12:18, 12:18].any()  # untouched object stays out
    targets = instances_to_targets(edited, touched)
    assert (targets[3:7, 3:7] == 0).all()  # erased -> background
    assert targets[14, 4] == 1
    assert targets[12, 4] == 2
    assert (targets[~touched] == IGNORE).all()
    dense = instances_to_targets(edited)
    assert (dense != IGNORE).all()


def test_unpainted_pixels_get_exactly_zero_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    corrections = np.zeros((2, 16, 16), np.uint8)
    corrections[:, 3:7, 3:9] = 2
    corrections[1, 10:12] = 1
    corrections[0, 12, 12] = 3
    target = torch.from_numpy(corrections_to_targets(corrections)).long()
    masked_loss(logits, target, torch.tensor([1.0, 1.0, 2.0])).backward()
    grad = logits.grad.abs().sum(1)
    painted = torch.from_numpy(corrections > 0)
    assert (grad[~painted] == 0).all()
    assert (grad[painted] > 0).all()


def test_elastic_keeps_labels_and_shapes() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 32, 32)).astype(np.float32)
    target = rng.integers(-1, 3, (3, 32, 32))
    out_image, out_target = augment_elastic(image, target, rng)
    assert out_image.shape == image.shape
    assert out_image.dtype == np.float32
    assert set(np.unique(out_target)) <= {-1, 0, 1, 2}


def test_sampler_centres_patches_on_painted_pixels() -> None:
    image = np.zeros((1, 200, 200), np.float32)
    target = np.full((200, 200), IGNORE, np.int8)
    target[150:154, 20:24] = 1
    sampler = PaintedPatchSampler([image], [target], (32, 32), elastic=0.5)
    x, y = sampler(np.random.default_rng(0), 6)
    assert x.shape == (6, 1, 32, 32)
    assert y.shape == (6, 32, 32)
    assert all((patch != IGNORE).any() for patch in y)


def test_sampler_object_fraction_shows_the_few_painted_objects() -> None:
    # a wide background stroke and one small painted object far from it
    image = np.zeros((1, 200, 200), np.float32)
    target = np.full((200, 200), IGNORE, np.int8)
    target[10:190, 10:60] = 0
    target[150:154, 170:174] = 1

    def patches_with_object(fraction: float) -> int:
        sampler = PaintedPatchSampler(
            [image], [target], (32, 32), elastic=0.0, object_fraction=fraction
        )
        _, y = sampler(np.random.default_rng(0), 40)
        return sum(bool((patch > 0).any()) for patch in y)

    assert patches_with_object(1.0) == 40
    assert patches_with_object(0.0) == 0
    assert 10 <= patches_with_object(0.5) <= 30


def test_split_holds_back_whole_regions() -> None:
    _, labels, corrections = _task()
    targets = corrections_to_targets(corrections)
    targets[labels == 0] = IGNORE  # objects only: separate regions
    train, val = split_painted(targets, 0.3, np.random.default_rng(0))
    assert (val != IGNORE).any()
    assert (train != IGNORE).any()
    assert not ((val != IGNORE) & (train != IGNORE)).any()
    for obj in np.unique(labels[val != IGNORE]):
        assert (train[labels == obj] == IGNORE).all()


def test_finetune_reduces_loss_and_never_touches_the_parent(
    tiny_unet_2d: UNet,
) -> None:
    image, _, corrections = _task()
    corrections[:, :16] = 0  # sparse: a part is unpainted
    parent = _state(tiny_unet_2d)
    result, events = _run(
        iter_finetune(
            tiny_unet_2d,
            image,
            corrections,
            _config(
                steps=60,
                patience=None,
                freeze_norm=False,
                val_every=20,
                val_fraction=0.2,
                self_replay=False,  # the painting alone: its loss falls
            ),
        )
    )
    assert isinstance(result, FinetuneResult)
    assert result.model is not tiny_unet_2d
    assert _same(parent, _state(tiny_unet_2d))
    assert not _same(parent, _state(result.model))
    first = np.mean([e.loss for e in events[:5]])
    last = np.mean([e.loss for e in events[-5:]])
    assert last < 0.8 * first
    assert any(e.val_loss is not None for e in events)
    assert result.painted_pixels['total'] == int((corrections > 0).sum())
    assert result.steps == 60
    assert not result.model.training


def test_finetune_is_deterministic(tiny_unet_2d: UNet) -> None:
    image, _, corrections = _task()
    config = _config(steps=6)
    a, events_a = _run(iter_finetune(tiny_unet_2d, image, corrections, config))
    b, events_b = _run(iter_finetune(tiny_unet_2d, image, corrections, config))
    assert [e.loss for e in events_a] == [e.loss for e in events_b]
    assert _same(_state(a.model), _state(b.model))


def test_stop_leaves_the_previous_model_intact(tiny_unet_2d: UNet) -> None:
    image, _, corrections = _task()
    parent = _state(tiny_unet_2d)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 3

    result, events = _run(
        iter_finetune(
            tiny_unet_2d, image, corrections, _config(), should_stop=stop
        )
    )
    assert len(events) == 3
    assert result.stopped == 'user'
    assert _same(parent, _state(tiny_unet_2d))
    # abandoning the generator half-way (GUI closed) is just as safe
    generator = iter_finetune(tiny_unet_2d, image, corrections, _config())
    next(generator)
    generator.close()
    assert _same(parent, _state(tiny_unet_2d))


def test_freeze_encoder_keeps_encoder_weights(tiny_unet_2d: UNet) -> None:
    image, _, corrections = _task()
    result, _ = _run(
        iter_finetune(
            tiny_unet_2d,
            image,
            corrections,
            _config(steps=4, freeze_encoder=True, freeze_norm=False),
        )
    )
    for old, new in zip(
        tiny_unet_2d.encoders.state_dict().values(),
        result.model.encoders.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(old, new)
    assert not torch.equal(tiny_unet_2d.head.weight, result.model.head.weight)
    assert all(p.requires_grad for p in result.model.parameters())


def test_finetune_3d_and_2d_model_on_a_volume(
    tiny_unet_2d: UNet, tiny_unet_3d: UNet
) -> None:
    image, labels = synthetic_nuclei((4, 48, 48), n=4, radius=6, seed=1)
    corrections = targets_to_corrections(instances_to_classes(labels))
    corrections[:2] = 0
    for model, patch in ((tiny_unet_3d, (4, 32, 32)), (tiny_unet_2d, None)):
        result, events = _run(
            iter_finetune(
                model,
                image,
                corrections,
                # batch 4 and no replay of the parent's images at all:
                # batch norm adapted, then recomputed on 2 batches
                _config(
                    steps=3,
                    patch_shape=patch,
                    val_fraction=0.0,
                    batch_size=4,
                    norm_batches=2,
                    self_replay=False,
                ),
            )
        )
        assert len(events) == 3
        assert np.isfinite(result.final_loss)
        old, new = _state(model), _state(result.model)
        means = [k for k in old if k.endswith('running_mean')]
        assert all(not torch.equal(old[k], new[k]) for k in means)


def test_self_replay_labels_the_unpainted_pixels_with_the_parent(
    tiny_unet_3d: UNet,
) -> None:
    image, labels = synthetic_nuclei((4, 48, 48), n=4, radius=6, seed=1)
    norm = (image / image.max()).astype(np.float32)[None]
    painted = np.full(labels.shape, IGNORE, np.int8)
    painted[1] = instances_to_classes(labels)[1]
    images, targets = self_replay(
        tiny_unet_3d, [norm], [painted], torch.device('cpu')
    )
    parent = Predictor(tiny_unet_3d, 'cpu').predict(norm).argmax(0)
    mask = painted != IGNORE
    assert images[0] is norm
    assert targets[0].dtype == np.int8
    assert (targets[0] != IGNORE).all()
    np.testing.assert_array_equal(targets[0][mask], painted[mask])
    np.testing.assert_array_equal(targets[0][~mask], parent[~mask])


def test_without_replay_data_the_parent_statistics_are_kept(
    tiny_unet_3d: UNet,
) -> None:
    """No replay data (the 3D model): the painted volume is replayed and
    the batch-norm statistics stay the parent's, not the painting's."""
    image, labels = synthetic_nuclei((4, 48, 48), n=4, radius=6, seed=1)
    corrections = targets_to_corrections(instances_to_classes(labels))
    corrections[:2] = 0
    parent = _state(tiny_unet_3d)
    result, _ = _run(
        iter_finetune(
            tiny_unet_3d,
            image,
            corrections,
            _config(
                steps=3,
                patch_shape=(4, 32, 32),
                val_fraction=0.0,
                batch_size=4,
                norm_batches=2,
            ),
        )
    )
    new = _state(result.model)
    stats = [k for k in parent if k.endswith(('running_mean', 'running_var'))]
    assert stats
    assert all(torch.equal(parent[k], new[k]) for k in stats)
    assert not torch.equal(
        parent['head.weight'], new['head.weight']
    )  # it trained


def test_user_mistakes_are_clear(tiny_unet_2d: UNet) -> None:
    image, _, corrections = _task()
    with pytest.raises(InputError, match='nothing is painted'):
        next(iter_finetune(tiny_unet_2d, image, np.zeros_like(corrections)))
    with pytest.raises(InputError, match='shape'):
        next(iter_finetune(tiny_unet_2d, image, corrections[:10]))


def test_saved_model_round_trips_with_provenance(
    tiny_unet_2d: UNet, tmp_path
) -> None:
    image, _, corrections = _task()
    result, _ = _run(
        iter_finetune(tiny_unet_2d, image, corrections, _config(steps=3))
    )
    parent = ModelInfo(
        network=tiny_unet_2d.config,
        name='tiny',
        provenance={'steps': 99, 'training_data': ['x']},
        instances={'h': 1.0},
    )
    info = finetuned_info(parent, result, 'tiny-folder')
    save_model(tmp_path / 'ft', result.model, info)
    model, loaded = load_model(tmp_path / 'ft')
    assert _same(_state(model), _state(result.model))
    provenance = loaded.provenance
    assert provenance['parent_model'] == 'tiny-folder'
    assert provenance['steps'] == 3
    assert provenance['finetune']['painted_pixels']['total'] > 0
    assert provenance['finetune']['painted_objects'] >= 1
    assert provenance['package_version']
    assert provenance['created']
    assert provenance['parent_provenance']['steps'] == 99
    assert loaded.instances == {'h': 1.0}
    assert loaded.name == 'tiny-finetuned'


def test_time_limited_runs_finish_warm_up_and_anneal() -> None:
    from segloop.core.config import TrainConfig
    from segloop.core.training import _learning_rate

    config = TrainConfig(steps=2000, learning_rate=1e-3, time_limit_s=100)
    # a slow machine: few steps, yet warm-up ends by 5 % of the time
    assert _learning_rate(3, 6.0, config) == pytest.approx(
        1e-3 * 0.5 * (1 + np.cos(np.pi * 0.06))
    )
    assert _learning_rate(3, 2.5, config) == pytest.approx(0.5e-3)
    assert _learning_rate(50, 100.0, config) == pytest.approx(0.0)


def _distance(a: UNet, b: UNet) -> float:
    with torch.no_grad():
        return float(
            sum(
                (p - q).pow(2).sum()
                for p, q in zip(a.parameters(), b.parameters(), strict=True)
            )
        )


def test_distillation_is_zero_for_the_parent_itself(
    tiny_unet_2d: UNet,
) -> None:
    from segloop.core.forgetting import distillation_loss, keep_parent_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    for t in (1.0, 2.0):
        assert float(distillation_loss(logits, logits, t)) == pytest.approx(
            0.0, abs=1e-6
        )
        assert float(distillation_loss(logits.flip(1), logits, t)) > 0.01
    extra = keep_parent_loss(
        tiny_unet_2d,
        torch.device('cpu'),
        n_replay=2,
        distill_weight=1.0,
        l2sp_weight=1.0,
        bf16=False,
    )
    assert extra is not None
    x = torch.rand(3, 1, 32, 32)
    y = torch.zeros(3, 32, 32, dtype=torch.long)
    student = tiny_unet_2d  # the parent itself, in eval mode
    with torch.no_grad():
        assert float(extra(student, x, y, student(x))) == pytest.approx(
            0.0, abs=1e-6
        )
        other = torch.zeros_like(student(x))
        assert float(extra(student, x, y, other)) > 0.0
    # neither weight: no extra loss at all
    assert (
        keep_parent_loss(tiny_unet_2d, torch.device('cpu'), n_replay=2) is None
    )


def test_l2sp_is_zero_at_the_parent_and_keeps_weights_close(
    tiny_unet_2d: UNet,
) -> None:
    from segloop.core.forgetting import l2sp_penalty, weight_anchor

    anchor = weight_anchor(tiny_unet_2d)
    with torch.no_grad():
        assert float(l2sp_penalty(tiny_unet_2d, anchor)) == 0.0
    image, _, corrections = _task()
    free, _ = _run(
        iter_finetune(
            tiny_unet_2d,
            image,
            corrections,
            _config(steps=10, l2sp_weight=0.0, interpolate=1.0),
        )
    )
    held, _ = _run(
        iter_finetune(
            tiny_unet_2d,
            image,
            corrections,
            _config(steps=10, l2sp_weight=10.0, interpolate=1.0),
        )
    )
    with torch.no_grad():
        assert float(l2sp_penalty(free.model, anchor)) > 0
    assert _distance(held.model, tiny_unet_2d) < _distance(
        free.model, tiny_unet_2d
    )


def test_distillation_runs_on_replayed_patches(tiny_unet_2d: UNet) -> None:
    from segloop.core.training import PatchSampler

    image, _, corrections = _task()
    other, other_labels = synthetic_nuclei((64, 64), n=5, radius=5, seed=3)
    replay = PatchSampler(
        [other[None].astype(np.float32) / 255],
        [instances_to_classes(other_labels).astype(np.int8)],
        (32, 32),
    )
    config = _config(
        steps=4, batch_size=4, replay_fraction=0.5, distill_weight=1.0
    )
    result, events = _run(
        iter_finetune(tiny_unet_2d, image, corrections, config, replay=replay)
    )
    assert len(events) == 4
    assert np.isfinite(result.final_loss)
    assert result.provenance()['finetune']['config']['distill_weight'] == 1.0


def test_encoder_lr_scale_zero_keeps_encoder_weights(
    tiny_unet_2d: UNet,
) -> None:
    image, _, corrections = _task()
    result, _ = _run(
        iter_finetune(
            tiny_unet_2d,
            image,
            corrections,
            _config(steps=4, encoder_lr_scale=0.0),
        )
    )
    for old, new in zip(
        tiny_unet_2d.encoders.parameters(),
        result.model.encoders.parameters(),
        strict=True,
    ):
        assert torch.equal(old, new)
    assert not torch.equal(tiny_unet_2d.head.weight, result.model.head.weight)


def test_cpu_clock_counts_process_time(
    tiny_unet_2d: UNet, monkeypatch
) -> None:
    import time

    image, _, corrections = _task()
    ticks = iter(range(0, 10_000, 7))  # a fake CPU clock: 7 s per call
    monkeypatch.setattr(time, 'process_time', lambda: float(next(ticks)))
    result, events = _run(
        iter_finetune(
            tiny_unet_2d,
            image,
            corrections,
            _config(steps=50, clock='cpu', time_limit_s=30.0),
        )
    )
    assert result.stopped == 'time'
    assert result.steps < 50
    assert events[-1].elapsed_s > 30.0
    assert all(e.elapsed_s % 7 == 0 for e in events)
    with pytest.raises(InputError, match='clock'):
        next(
            iter_finetune(
                tiny_unet_2d, image, corrections, _config(clock='gpu')
            )
        )


def test_interpolation_blends_towards_the_parent(tiny_unet_2d: UNet) -> None:
    image, _, corrections = _task()
    full, _ = _run(
        iter_finetune(
            tiny_unet_2d, image, corrections, _config(steps=4, interpolate=1.0)
        )
    )
    half, _ = _run(
        iter_finetune(
            tiny_unet_2d, image, corrections, _config(steps=4, interpolate=0.5)
        )
    )
    none, _ = _run(
        iter_finetune(
            tiny_unet_2d, image, corrections, _config(steps=4, interpolate=0.0)
        )
    )
    old, new, mid = (_state(m) for m in (tiny_unet_2d, full.model, half.model))
    for key, value in old.items():
        if value.is_floating_point():
            expected = 0.5 * (value + new[key])
            assert torch.allclose(mid[key], expected, atol=1e-6)
    zero = _state(none.model)
    assert all(
        torch.equal(zero[k], v)
        for k, v in old.items()
        if v.is_floating_point()
    )
    with pytest.raises(InputError, match='interpolate'):
        next(
            iter_finetune(
                tiny_unet_2d, image, corrections, _config(interpolate=1.5)
            )
        )


def test_painted_scores_count_found_missed_and_false_objects() -> None:
    from segloop.core.corrections import painted_scores

    targets = np.full((40, 40), IGNORE, np.int8)
    targets[5:12, 5:12] = 1  # painted object, found
    targets[20:27, 5:12] = 1  # painted object, missed
    targets[25:40, 25:40] = 0  # painted background
    labels = np.zeros((40, 40), np.int32)
    labels[5:12, 5:13] = 1
    labels[28:34, 28:34] = 2  # on painted background: false
    labels[0:3, 30:33] = 3  # unpainted: not counted
    assert painted_scores(labels, targets) == (1, 1, 1)


def test_touching_painted_nuclei_count_as_two_objects() -> None:
    from segloop.core.corrections import painted_objects, painted_scores

    # three nuclei in a row, painted with the boundaries between them
    truth = np.zeros((30, 50), np.int32)
    for k in range(3):
        truth[5:20, 5 + 12 * k : 17 + 12 * k] = k + 1
    targets = instances_to_classes(truth).astype(np.int8)
    objects, n_objects = painted_objects(targets)
    assert n_objects == 3
    for k in range(1, 4):
        assert set(np.unique(objects[truth == k])) == {k}
    assert painted_scores(truth, targets) == (3, 0, 0)
    merged = (truth > 0).astype(np.int32)  # one prediction over all
    assert painted_scores(merged, targets) == (0, 0, 3)


def test_thresholds_tuned_on_painting_drop_a_faint_false_object() -> None:
    from segloop.core.corrections import tune_on_painted
    from segloop.core.instances import InstanceParams

    targets = np.full((48, 48), IGNORE, np.int8)
    prob = np.zeros((3, 48, 48), np.float32)
    prob[0] = 1.0
    targets[4:16, 4:16] = 1  # a true object, confident
    prob[:, 4:16, 4:16] = np.array([0.05, 0.95, 0.0])[:, None, None]
    targets[28:44, 28:44] = 0  # painted background with a faint blob
    prob[:, 30:40, 30:40] = np.array([0.35, 0.65, 0.0])[:, None, None]
    params = InstanceParams(fg_threshold=0.5, seed_threshold=0.5, min_size=4)
    chosen, rows = tune_on_painted([prob], [targets], params)
    assert chosen.fg_threshold >= 0.7
    assert chosen.seed_threshold == 0.5  # kept by default
    assert chosen.min_size == 4
    assert len(rows) == 4
    _, grid = tune_on_painted([prob], [targets], params, (0.5,), (0.5, 0.6))
    assert len(grid) == 2
    best = max(r['accuracy'] for r in rows)
    assert best == 1.0


def test_min_size_tuned_on_painting_drops_a_small_false_object() -> None:
    from segloop.core.corrections import tune_on_painted
    from segloop.core.instances import InstanceParams

    targets = np.full((48, 48), IGNORE, np.int8)
    prob = np.zeros((3, 48, 48), np.float32)
    prob[0] = 1.0
    targets[4:16, 4:16] = 1  # a true object of 144 px, confident
    prob[:, 4:16, 4:16] = np.array([0.05, 0.95, 0.0])[:, None, None]
    targets[28:44, 28:44] = 0  # painted background with a confident speck
    prob[:, 34:39, 34:39] = np.array([0.05, 0.95, 0.0])[:, None, None]
    params = InstanceParams(fg_threshold=0.5, seed_threshold=0.5, min_size=8)
    kept, _ = tune_on_painted([prob], [targets], params)
    assert kept.min_size == 8  # not a candidate unless asked
    chosen, rows = tune_on_painted(
        [prob], [targets], params, (0.5,), min_sizes=(8, 16, 32, 256)
    )
    # the 25 px speck goes at 32; 256 would drop the true object too
    assert chosen.min_size == 32
    scores = {row['min_size']: row['accuracy'] for row in rows}
    assert scores[8] == scores[16] == 0.5
    assert scores[32] == 1.0
    assert scores[256] == 0.0


def test_batchnorm_statistics_recomputed_on_the_training_mix(
    tiny_unet_2d: UNet,
) -> None:
    from segloop.core.forgetting import recompute_batchnorm

    def sample(rng: np.random.Generator, n: int):
        x = rng.normal(3.0, 2.0, size=(n, 1, 32, 32)).astype(np.float32)
        return x, np.zeros((n, 32, 32), np.int8)

    norms = [
        m
        for m in tiny_unet_2d.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    first = norms[0]
    seen: list[torch.Tensor] = []
    hook = first.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].mean(dim=(0, 2, 3)))
    )
    weights = {k: v.clone() for k, v in tiny_unet_2d.named_parameters()}
    encoder = _state(tiny_unet_2d.encoders)

    def run(exclude=None):
        seen.clear()
        recompute_batchnorm(
            tiny_unet_2d,
            sample,
            np.random.default_rng(0),
            batch_size=4,
            n_batches=5,
            device=torch.device('cpu'),
            bf16=False,
            exclude=exclude,
        )

    last = norms[-1].running_mean.clone()
    run(exclude=tiny_unet_2d.encoders)  # a frozen encoder keeps its own
    assert _same(_state(tiny_unet_2d.encoders), encoder)
    assert not torch.equal(norms[-1].running_mean, last)
    run()
    hook.remove()
    # equal-weight average of the 5 batches' means, no momentum blend
    assert len(seen) == 5
    assert torch.allclose(first.running_mean, torch.stack(seen).mean(0))
    assert first.momentum == 0.1
    assert not tiny_unet_2d.training
    assert all(
        torch.equal(v, weights[k]) for k, v in tiny_unet_2d.named_parameters()
    )
    again = _state(tiny_unet_2d)
    run()  # the same batches, dropout off: the same statistics
    assert _same(_state(tiny_unet_2d), again)
