"""Stitch per-block instance labels into one labelling of a volume.

Each block labels its own pixels ``1..n``; :func:`offset_ids` makes those
ids unique in the volume (``block index * id_stride + local id``), so they
never collide and do not depend on the order blocks ran in. Objects cut
by a block face then carry two ids; :func:`face_merges` finds them from
the two pixel planes that meet at the face, and :class:`IdMerger` joins
them and hands out the final ids ``1..N``, in block order, so the result
is the same for any run order (view-first, resumed, distributed).

The 'flows' head has no boundary class to keep two touching objects
apart by a line of background: where two objects of neighbouring blocks
touch along the face, the network's own flows at the face
(:func:`boundary_evidence`: flows parting) keep them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from segloop.core.blocks import Block
from segloop.core.instances import size_floor

ID_DTYPE = np.uint32
ID_LIMIT = int(np.iinfo(ID_DTYPE).max)

# Two ids meeting at a face are one object when their contact covers at
# least this fraction of the smaller one's cross-section at the face.
MIN_CONTACT = 0.5
# ... and, for the 'flows' head, when the mean boundary evidence (0-1)
# over their contact is below this (0.5 left 2 of 94 touching pairs
# joined in tests/core/test_flows_head.py; within one object the flows
# do not part, so the evidence there is about 0)
MAX_EVIDENCE = 0.3


def id_stride(n_blocks: int) -> int:
    """Ids reserved per block so that ``n_blocks`` blocks fit in uint32."""
    return ID_LIMIT // max(1, n_blocks)


def offset_ids(
    labels: np.ndarray, block_index: int, stride: int
) -> np.ndarray:
    """Shift local ids ``1..n`` of a block into its reserved range.

    Parameters
    ----------
    labels : ndarray of int
        Local instance labels, 0 = background.
    block_index : int
        The block's row-major index.
    stride : int
        From :func:`id_stride`.

    Returns
    -------
    ndarray of uint32
        0 stays 0; id ``i`` becomes ``block_index * stride + i``.

    Raises
    ------
    ValueError
        The block has ``stride`` objects or more.
    """
    n = int(labels.max(initial=0))
    if n >= stride:
        raise ValueError(
            f'a block holds {n} objects, more than the {stride - 1} its '
            'ids allow; use smaller blocks'
        )
    out = labels.astype(ID_DTYPE)
    out[out > 0] += ID_DTYPE(block_index * stride)
    return out


def boundary_evidence(
    low: np.ndarray, high: np.ndarray, axis: int
) -> np.ndarray:
    """How much a 'flows' network says objects part along a block face.

    Parameters
    ----------
    low, high : ndarray of float32, shape (C, *face)
        The network's outputs (background first, then one flow component
        per spatial axis, as stored) on the last plane of the lower block
        and the first plane of the upper one.
    axis : int
        The face's axis among the spatial axes.

    Returns
    -------
    ndarray of float32, shape face
        0 (one object continues here) to 1 (two objects touch here).
        Flows point to each object's centre, so across the line between
        two objects they part (the lower side's component along ``axis``
        negative, the upper side's positive), and within one object they
        do not: half their difference, clipped. (The 3-class head needs
        none: its boundary class keeps touching objects apart.)
    """
    parting = (high[1 + axis] - low[1 + axis]) / 2
    return np.clip(parting, 0.0, 1.0)


def face_merges(
    low: np.ndarray,
    high: np.ndarray,
    min_contact: float = MIN_CONTACT,
    evidence: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """Pairs of ids that continue across a block face.

    Parameters
    ----------
    low, high : ndarray of uint32, same shape
        The last pixel plane of the lower block and the first plane of
        the upper block along the face's axis.
    min_contact : float
        Fraction of the smaller cross-section that must touch.
    evidence : ndarray of float, same shape, optional
        :func:`boundary_evidence` at the face: a pair whose contact
        averages :data:`MAX_EVIDENCE` or more is two objects touching.

    Returns
    -------
    list of (int, int)
        ``(low id, high id)`` pairs to merge.
    """
    both = (low > 0) & (high > 0)
    if not both.any():
        return []
    a, b = low[both], high[both]
    pairs, which, contact = np.unique(
        np.stack([a, b]), axis=1, return_inverse=True, return_counts=True
    )
    ids_a, area_a = np.unique(low[low > 0], return_counts=True)
    ids_b, area_b = np.unique(high[high > 0], return_counts=True)
    size_a = area_a[np.searchsorted(ids_a, pairs[0])]
    size_b = area_b[np.searchsorted(ids_b, pairs[1])]
    keep = contact >= min_contact * np.minimum(size_a, size_b)
    if evidence is not None:
        total = np.bincount(
            which.ravel(), weights=evidence[both], minlength=len(contact)
        )
        keep &= total / contact < MAX_EVIDENCE
    return [(int(x), int(y)) for x, y in pairs[:, keep].T]


class IdMerger:
    """Union-find over block ids, then final ids ``1..N`` in block order.

    Usage: :meth:`add` the ids of every block in block order, :meth:`merge`
    the pairs from :func:`face_merges`, then :meth:`lookup` per block.

    Parameters
    ----------
    min_size : int
        Objects with fewer pixels after merging get id 0 (so a piece cut
        off by a block face is judged by its whole object's size).
    min_size_fraction : float
        And those under this fraction of the median merged object
        (:func:`~segloop.core.instances.size_floor`).
    """

    def __init__(
        self, min_size: int = 0, min_size_fraction: float = 0.0
    ) -> None:
        self.min_size = min_size
        self.min_size_fraction = min_size_fraction
        self._parent: dict[int, int] = {}
        self._size: dict[int, int] = {}
        self._order: list[int] = []
        self._final: dict[int, int] | None = None

    def add(
        self, ids: Iterable[int], sizes: Iterable[int] | None = None
    ) -> None:
        """Register ids (in first-seen order) and their pixel counts."""
        sizes = [0] * len(list(ids)) if sizes is None else sizes
        for i, size in zip(ids, sizes, strict=True):
            i = int(i)
            if not i:
                continue
            if i not in self._parent:
                self._parent[i] = i
                self._order.append(i)
            self._size[i] = self._size.get(i, 0) + int(size)

    def _find(self, i: int) -> int:
        parent = self._parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def merge(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Join each pair of ids into one object."""
        for a, b in pairs:
            ra, rb = self._find(a), self._find(b)
            if ra != rb:
                # which id is the root does not matter: final ids follow
                # the first-seen order of each object's members
                self._parent[rb] = ra
        self._final = None

    @property
    def count(self) -> int:
        """Number of objects after merging."""
        return max(self._final_ids().values(), default=0)

    def _final_ids(self) -> dict[int, int]:
        if self._final is None:
            total: dict[int, int] = {}
            for i in self._order:
                root = self._find(i)
                total[root] = total.get(root, 0) + self._size[i]
            floor = size_floor(
                np.fromiter(total.values(), np.int64, len(total)),
                self.min_size,
                self.min_size_fraction,
            )
            final: dict[int, int] = {}
            roots: dict[int, int] = {}
            for i in self._order:
                root = self._find(i)
                if total[root] < floor:
                    final[i] = 0
                    continue
                if root not in roots:
                    roots[root] = len(roots) + 1
                final[i] = roots[root]
            self._final = final
        return self._final

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Final ids for an array of block ids (0 stays 0)."""
        final = self._final_ids()
        ids = np.asarray(ids)
        nonzero = ids != 0
        values = ids[nonzero]
        if not values.size:
            return np.zeros(ids.shape, dtype=ID_DTYPE)
        lo, hi = int(values.min()), int(values.max())
        if hi - lo <= 4 * values.size + 1024:
            # a block's ids are one short range: a table beats sorting
            table = np.array(
                [final.get(i, 0) for i in range(lo, hi + 1)], dtype=ID_DTYPE
            )
            out = np.zeros(ids.shape, dtype=ID_DTYPE)
            out[nonzero] = table[values - values.dtype.type(lo)]
            return out
        unique, inverse = np.unique(ids, return_inverse=True)
        mapped = np.array(
            [final.get(int(u), 0) for u in unique], dtype=ID_DTYPE
        )
        return mapped[inverse].reshape(ids.shape)


def stitch_blocks(
    blocks: Sequence[Block],
    read_raw: Callable[[tuple[slice, ...]], np.ndarray],
    write: Callable[[tuple[slice, ...], np.ndarray], None],
    min_size: int = 0,
    min_size_fraction: float = 0.0,
    read_probabilities: Callable[[tuple[slice, ...]], np.ndarray]
    | None = None,
    head: str = 'classes',
) -> int:
    """Join per-block ids of one time point across faces; write 1..N.

    Parameters
    ----------
    blocks : sequence of Block
        All blocks of the volume, in row-major order
        (:func:`segloop.core.blocks.plan_blocks`).
    read_raw : callable
        ``read_raw(region)`` returns the per-block ids (uint32, from
        :func:`offset_ids`) of a region (one slice per spatial axis).
    write : callable
        ``write(region, labels)`` stores final ids (uint32) of a block.
    min_size : int
        Objects with fewer pixels after joining become background.
    min_size_fraction : float
        As do those under this fraction of the median joined object.
    read_probabilities : callable, optional
        ``read_probabilities(region)`` returns the network's outputs
        (C, *region) there; with ``head`` 'flows', their
        :func:`boundary_evidence` at each face keeps touching objects of
        neighbouring blocks apart.
    head : str
        The model's head.

    Returns
    -------
    int
        Number of objects.
    """
    positions = {b.position for b in blocks}
    merger = IdMerger(min_size, min_size_fraction)
    for block in blocks:
        merger.add(*np.unique(read_raw(block.region), return_counts=True))
    for block in blocks:
        for axis in range(len(block.region)):
            position = list(block.position)
            position[axis] += 1
            if tuple(position) not in positions:
                continue
            low_region = list(block.region)
            face = block.region[axis].stop
            low_region[axis] = slice(face - 1, face)
            high_region = list(block.region)
            high_region[axis] = slice(face, face + 1)
            evidence = None
            if read_probabilities is not None and head == 'flows':
                low_out, high_out = (
                    read_probabilities(tuple(r)).take(0, axis=axis + 1)
                    for r in (low_region, high_region)
                )
                evidence = boundary_evidence(low_out, high_out, axis)
            merger.merge(
                face_merges(
                    read_raw(tuple(low_region)).take(0, axis=axis),
                    read_raw(tuple(high_region)).take(0, axis=axis),
                    evidence=evidence,
                )
            )
    for block in blocks:
        write(block.region, merger.lookup(read_raw(block.region)))
    return merger.count
