"""The output store of a blockwise run: written block by block, resumable.

Same layout as :func:`segloop.io.ome_zarr.write_segmentation` (NGFF 0.4,
zarr v2: probabilities at the root, instance labels in
``labels/labels``), with level 0 chunked by output block, plus run state
that exists only until the run completes::

    out.zarr/segloop_state/
      ledger      uint8 (T, blocks), one chunk (= one file) per block:
                  1 once the block's pixels are written
      raw_labels  uint32, like labels: per-block ids before stitching
      digests     uint8 (T, blocks, 32), one chunk per block: the
                  SHA-256 of the masks each block's ids were made from
                  (see :func:`segloop.core.relabel.mask_digest`)

With Monte Carlo dropout on, per-pixel uncertainty images sit beside the
probabilities, each an NGFF multiscale image with the labels' axes,
float32, chunked like the labels (see :mod:`segloop.io.uncertainty`)::

    out.zarr/uncertainty/     attrs {'measures': [...]}
      entropy/ 0/ 1/ ...      predictive entropy (nats)
      mutual_information/     mutual information (nats)
      variance/               variance of the foreground probability

``attrs['segloop']['complete']`` is False until the stitched labels and
the pyramid are written and the state is removed. Resuming checks
``attrs['segloop']['signature']`` against the new run's.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from segloop.core.blocks import plan_blocks
from segloop.core.errors import InputError, writing
from segloop.io import ome_zarr
from segloop.io._ngff import (
    _downsample_mean,
    _downsample_nearest,
    dataset_entry,
    multiscales_attrs,
    n_levels,
    omero_attrs,
)
from segloop.io.ome_zarr import (
    _normalise_scale,
    _probability_axes,
    plain_metadata,
    read_segloop_metadata,
)

STATE = 'segloop_state'
PLANES_PER_CHUNK = 4
DIGEST_BYTES = 32
UNCERTAINTY = 'uncertainty'
_V2_KEYS = {'name': 'v2', 'separator': '/'}


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Make an OSError of a write an OutputError naming the store."""

    @functools.wraps(method)
    def guarded(self: BlockStore, *args: Any, **kwargs: Any) -> Any:
        with writing(self.path, resumable=True):
            return method(self, *args, **kwargs)

    return guarded


class BlockStore:
    """A segloop output store being written blockwise.

    Use :meth:`create` for a new run or :meth:`resume` for an interrupted
    one.

    Attributes
    ----------
    path : Path
    label_axes : str
        Axes of the labels, e.g. ``'ZYX'`` or ``'TYX'``.
    prob_axes : str
        Axes of the probabilities, ``label_axes`` with ``C``.
    metadata : dict
        ``attrs['segloop']`` of the root.
    uncertainty : dict of str to zarr.Array
        Level 0 of each uncertainty image (axes ``label_axes``), by
        measure name; empty when the run has none.
    """

    def __init__(self, path: Path, root: zarr.Group) -> None:
        self.path = path
        self.root = root
        self.metadata = dict(root.attrs['segloop'])
        self.label_axes: str = self.metadata['label_axes']
        self.prob_axes = _probability_axes(self.label_axes)
        self.probabilities = root['0']
        self.labels = root['labels/labels/0']
        self.ledger = root[f'{STATE}/ledger']
        self.raw_labels = root[f'{STATE}/raw_labels']
        state = root[STATE]
        self.digests = state['digests'] if 'digests' in state else None
        self.uncertainty: dict[str, zarr.Array] = {}
        if UNCERTAINTY in root:
            for name in root[UNCERTAINTY].attrs.get('measures', []):
                self.uncertainty[name] = root[f'{UNCERTAINTY}/{name}/0']

    # -- opening

    @classmethod
    def create(
        cls,
        path: Path,
        label_axes: str,
        label_shape: Sequence[int],
        class_names: Sequence[str],
        block_shape: Sequence[int],
        n_blocks: int,
        scale: dict[str, float] | None = None,
        metadata: dict[str, Any] | None = None,
        uncertainty: Sequence[str] = (),
    ) -> BlockStore:
        """Create an empty store, marked incomplete.

        Parameters
        ----------
        path : Path
            Checked by :func:`segloop.io.ome_zarr.check_output_path`; an
            existing store there is replaced.
        label_axes : str
            e.g. ``'YX'``, ``'ZYX'``, ``'TZYX'``.
        label_shape : sequence of int
            Shape of the labels.
        class_names : sequence of str
            One per probability channel.
        block_shape : sequence of int
            Spatial block (the level-0 chunk of the spatial axes).
        n_blocks : int
            Blocks per time point (ledger size).
        scale : dict, optional
            Pixel size per axis (micrometres, seconds).
        metadata : dict, optional
            Run metadata; must hold a ``'signature'`` for resuming.
        uncertainty : sequence of str
            Names of per-pixel uncertainty images to create (e.g.
            :data:`segloop.core.uncertainty.MEASURES`); none by default.
        """
        prob_axes = _probability_axes(label_axes)
        scale = _normalise_scale(scale, label_axes)
        meta = plain_metadata(metadata)
        kept = _set_aside(path)
        try:
            with writing(path):
                return cls._create(
                    path,
                    label_axes,
                    prob_axes,
                    label_shape,
                    class_names,
                    block_shape,
                    n_blocks,
                    scale,
                    meta,
                    uncertainty,
                )
        except BaseException:
            # nothing of value yet: leave no half-made store behind, and
            # put back the finished output it was to replace
            shutil.rmtree(path, ignore_errors=True)
            if kept is not None:
                kept.rename(path)
            raise

    @classmethod
    def _create(
        cls,
        path: Path,
        label_axes: str,
        prob_axes: str,
        label_shape: Sequence[int],
        class_names: Sequence[str],
        block_shape: Sequence[int],
        n_blocks: int,
        scale: dict[str, float],
        meta: dict[str, Any],
        uncertainty: Sequence[str],
    ) -> BlockStore:
        """:meth:`create` once its arguments are checked."""
        root = zarr.open_group(str(path), mode='w-', zarr_format=2)
        root.attrs['segloop'] = {
            **meta,
            'label_axes': label_axes,
            'complete': False,
        }
        spatial = _chunk_shape(block_shape)
        n_lead = len(label_axes) - len(spatial)
        label_chunks = (1,) * n_lead + spatial
        c = prob_axes.index('C')
        prob_shape = (
            *label_shape[:c],
            len(class_names),
            *label_shape[c:],
        )
        prob_chunks = (*label_chunks[:c], 1, *label_chunks[c:])
        _level_array(root, '0', prob_shape, np.float32, prob_chunks)
        root.attrs['multiscales'] = multiscales_attrs(
            prob_axes,
            scale,
            [dataset_entry(0, prob_axes, scale, False)],
            path.name.removesuffix('.zarr'),
        )
        root.attrs['omero'] = omero_attrs([str(n) for n in class_names])
        group = root.create_group('labels')
        group.attrs['labels'] = ['labels']
        label_group = group.create_group('labels')
        _level_array(label_group, '0', label_shape, np.uint32, label_chunks)
        label_group.attrs['multiscales'] = multiscales_attrs(
            label_axes,
            scale,
            [dataset_entry(0, label_axes, scale, True)],
            'labels',
        )
        label_group.attrs['image-label'] = {
            'version': '0.4',
            'source': {'image': '../../'},
        }
        if uncertainty:
            group = root.create_group(UNCERTAINTY)
            group.attrs['measures'] = [str(n) for n in uncertainty]
            for name in uncertainty:
                image = group.create_group(str(name))
                _level_array(image, '0', label_shape, np.float32, label_chunks)
                image.attrs['multiscales'] = multiscales_attrs(
                    label_axes,
                    scale,
                    [dataset_entry(0, label_axes, scale, False)],
                    str(name),
                )
        state = root.create_group(STATE)
        times = label_shape[0] if label_axes.startswith('T') else 1
        _level_array(state, 'ledger', (times, n_blocks), np.uint8, (1, 1))
        _level_array(state, 'raw_labels', label_shape, np.uint32, label_chunks)
        _level_array(
            state,
            'digests',
            (times, n_blocks, DIGEST_BYTES),
            np.uint8,
            (1, 1, DIGEST_BYTES),
        )
        return cls(path, root)

    @classmethod
    def resume(cls, path: Path, signature: dict[str, Any]) -> BlockStore:
        """Open an interrupted run's store, checking it matches this run.

        Raises
        ------
        InputError
            No such store, a complete store, or a different run.
        """
        try:
            root = zarr.open_group(str(path), mode='r+')
            meta = dict(root.attrs['segloop'])
        except (OSError, KeyError, ValueError, zarr.errors.BaseZarrError):
            raise InputError(
                f'{path} is not an interrupted segloop run; run without '
                '--resume to start one'
            ) from None
        if meta.get('complete'):
            raise InputError(f'{path} is already complete; nothing to resume')
        if STATE not in root:
            raise InputError(
                f'{path} has no run state to resume from; run again with '
                '--overwrite'
            )
        stored = meta.get('signature')
        wanted = plain_metadata(signature)
        if stored != wanted:
            changed = sorted(
                k
                for k in set(stored or {}) | set(wanted)
                if (stored or {}).get(k) != wanted.get(k)
            )
            raise InputError(
                f'{path} was started with different settings '
                f'({", ".join(changed)} changed); resume with the same '
                'input, model and settings, or use --overwrite'
            )
        return cls(path, root)

    @classmethod
    def attach(cls, path: Path) -> BlockStore:
        """Open a run's store from another process, to write its blocks.

        For a distributed worker: the client created (or resumed, with
        the signature check) the store; the worker only writes blocks
        and ledger entries into it.
        """
        try:
            return cls(path, zarr.open_group(str(path), mode='r+'))
        except (OSError, KeyError, ValueError, zarr.errors.BaseZarrError):
            raise InputError(
                f'{path} cannot be opened here: the output must be on a '
                'filesystem that every worker sees at the same path'
            ) from None

    # -- ledger

    def done_jobs(self) -> set[tuple[int, int]]:
        """``(t, block index)`` of every block already written."""
        ledger = np.asarray(self.ledger[...])
        return {
            (int(t), int(b)) for t, b in zip(*np.nonzero(ledger), strict=True)
        }

    @_guarded
    def mark_done(self, t: int, index: int) -> None:
        """Record that block ``index`` of time point ``t`` is written."""
        self.ledger[t, index] = 1

    # -- blocks

    def _lead(self, t: int) -> tuple[int, ...]:
        return (t,) if self.label_axes.startswith('T') else ()

    @_guarded
    def write_block(
        self,
        t: int,
        region: tuple[slice, ...],
        probabilities: np.ndarray,
        raw_labels: np.ndarray | None,
        uncertainty: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write one block's probabilities ``(K, *spatial)`` and ids.

        ``uncertainty`` maps each measure of :attr:`uncertainty` to its
        ``(*spatial)`` float32 values over the block. ``raw_labels`` None:
        no ids yet (they are made before stitching).
        """
        lead = self._lead(t)
        self.probabilities[(*lead, slice(None), *region)] = probabilities
        for name, values in (uncertainty or {}).items():
            self.uncertainty[name][(*lead, *region)] = values
        if raw_labels is not None:
            self.raw_labels[(*lead, *region)] = raw_labels
            self.labels[(*lead, *region)] = raw_labels

    @_guarded
    def write_digest(self, t: int, index: int, digest: bytes) -> None:
        """Record what block ``index`` of time point ``t`` was made from."""
        if self.digests is not None:
            self.digests[t, index] = np.frombuffer(digest, dtype=np.uint8)

    def read_digest(self, t: int, index: int) -> bytes | None:
        """The recorded digest of a block; None if there is none."""
        if self.digests is None:
            return None
        value = np.asarray(self.digests[t, index], dtype=np.uint8)
        return value.tobytes() if value.any() else None

    @_guarded
    def write_raw(
        self, t: int, region: tuple[slice, ...], raw_labels: np.ndarray
    ) -> None:
        """Replace the per-block ids of a region (before stitching)."""
        self.raw_labels[(*self._lead(t), *region)] = raw_labels

    def read_raw(self, t: int, region: tuple[slice, ...]) -> np.ndarray:
        """Per-block ids (before stitching) of a region."""
        return np.asarray(self.raw_labels[(*self._lead(t), *region)])

    def read_probabilities(
        self, t: int, region: tuple[slice, ...]
    ) -> np.ndarray:
        """The stored network outputs (K, *region) of a region."""
        lead = self._lead(t)
        return np.asarray(self.probabilities[(*lead, slice(None), *region)])

    @_guarded
    def write_labels(
        self, t: int, region: tuple[slice, ...], labels: np.ndarray
    ) -> None:
        """Write stitched labels of a region."""
        self.labels[(*self._lead(t), *region)] = labels

    # -- finishing

    @_guarded
    def finish(self, extra_metadata: dict[str, Any] | None = None) -> None:
        """Write the pyramids, drop the run state, mark complete."""
        meta = self.metadata
        scale = _scale_from_attrs(self.root.attrs['multiscales'][0])
        name = self.path.name.removesuffix('.zarr')
        datasets = _write_pyramid(
            self.root, self.prob_axes, scale, labels=False
        )
        self.root.attrs['multiscales'] = multiscales_attrs(
            self.prob_axes, scale, datasets, name
        )
        label_group = self.root['labels/labels']
        datasets = _write_pyramid(
            label_group, self.label_axes, scale, labels=True
        )
        label_group.attrs['multiscales'] = multiscales_attrs(
            self.label_axes, scale, datasets, 'labels'
        )
        for name in self.uncertainty:
            group = self.root[f'{UNCERTAINTY}/{name}']
            datasets = _write_pyramid(
                group, self.label_axes, scale, labels=False
            )
            group.attrs['multiscales'] = multiscales_attrs(
                self.label_axes, scale, datasets, name
            )
        meta.update(plain_metadata(extra_metadata))
        meta['complete'] = True
        # marked complete only now that every array is written; the run
        # state goes last, so a failure before here leaves it resumable
        self.root.attrs['segloop'] = meta
        del self.root[STATE]
        # the finished output this run replaced (--overwrite) can go now
        shutil.rmtree(replaced_path(self.path), ignore_errors=True)


def replaced_path(path: Path) -> Path:
    """Where a finished output waits while a new run replaces it."""
    return path.parent / f'.{path.name}.segloop-replaced'


def _set_aside(path: Path) -> Path | None:
    """Make room for a new store at ``path``; return where an old one went.

    A finished output is not deleted before the run replacing it has
    finished (``--overwrite``): it is renamed to :func:`replaced_path`
    and removed by :meth:`BlockStore.finish` (or renamed back if the new
    store cannot be created). Only an unfinished segloop run (which the
    user chose to start again) is deleted at once.
    """
    if not path.exists():
        return None
    try:
        unfinished = read_segloop_metadata(path).get('complete') is False
    except InputError:  # another kind of Zarr store: kept aside too
        unfinished = False
    if unfinished:
        shutil.rmtree(path)
        return None
    kept = replaced_path(path)
    shutil.rmtree(kept, ignore_errors=True)
    path.rename(kept)
    return kept


def run_progress(path: str | Path) -> tuple[int, int] | None:
    """``(blocks done, blocks in all)`` of an unfinished run; else None."""
    try:
        ledger = zarr.open_array(str(Path(path) / STATE / 'ledger'), mode='r')
    except (OSError, ValueError, zarr.errors.BaseZarrError):
        return None
    return int(np.count_nonzero(ledger[...])), int(ledger.size)


def _level_array(
    group: zarr.Group,
    name: str,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int],
    overwrite: bool = False,
) -> zarr.Array:
    chunks = tuple(
        max(1, min(int(c), int(n))) for c, n in zip(chunks, shape, strict=True)
    )
    return group.create_array(
        name,
        shape=tuple(int(n) for n in shape),
        dtype=dtype,
        chunks=chunks,
        chunk_key_encoding=_V2_KEYS,
        fill_value=0,
        overwrite=overwrite,
    )


def _chunk_shape(block_shape: Sequence[int]) -> tuple[int, ...]:
    """Level-0 chunks (Z?, Y, X) for output blocks of ``block_shape``.

    A whole block in Y and X; in Z at most :data:`PLANES_PER_CHUNK`
    planes, a divisor of the block's depth so that no chunk is shared by
    two blocks (concurrent writers never touch the same chunk). Showing
    one plane then decompresses a few planes, not a whole block (about
    50 ms for a 28-plane chunk of 448² labels, on the GUI thread).
    """
    spatial = tuple(int(b) for b in block_shape)
    if len(spatial) < 3:
        return spatial
    depth = spatial[0]
    planes = max(
        d for d in range(1, min(depth, PLANES_PER_CHUNK) + 1) if depth % d == 0
    )
    return (planes, *spatial[1:])


def _scale_from_attrs(multiscale: dict) -> dict[str, float]:
    axes = [a['name'].upper() for a in multiscale['axes']]
    transforms = multiscale['datasets'][0]['coordinateTransformations']
    values = transforms[0]['scale']
    return {
        a: float(v)
        for a, v, meta in zip(axes, values, multiscale['axes'], strict=True)
        if 'unit' in meta
    }


def _write_pyramid(
    group: zarr.Group, axes: str, scale: dict[str, float], labels: bool
) -> list[dict]:
    """Add levels 1.. to a group whose level 0 is written, chunk by chunk.

    Memory stays at a few chunks whatever the image size.
    """
    level0 = group['0']
    count = n_levels(
        level0.shape, axes, ome_zarr.PYRAMID_MIN_SIZE, ome_zarr.MAX_LEVELS
    )
    datasets = [dataset_entry(0, axes, scale, labels)]
    iy, ix = axes.index('Y'), axes.index('X')
    previous = level0
    for level in range(1, count):
        shape = list(previous.shape)
        shape[iy] //= 2
        shape[ix] //= 2
        # overwrite: a finish that failed part-way (e.g. a full disk)
        # may have left this level; a resumed run writes it again
        array = _level_array(
            group,
            str(level),
            shape,
            previous.dtype,
            level0.chunks,
            overwrite=True,
        )
        for block in plan_blocks(shape, array.chunks):
            source = list(block.region)
            for i in (iy, ix):
                sl = block.region[i]
                source[i] = slice(2 * sl.start, 2 * sl.stop)
            data = np.asarray(previous[tuple(source)])
            array[block.region] = (
                _downsample_nearest(data, axes)
                if labels
                else _downsample_mean(data, axes)
            )
        datasets.append(dataset_entry(level, axes, scale, labels))
        previous = array
    return datasets
