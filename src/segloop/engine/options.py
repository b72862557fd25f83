"""What a segmentation is asked to do, as one value (torch-free).

:class:`SegmentOptions` holds the settings that the command line, the
Python API (:func:`segloop.api.predict`, :func:`segloop.api.segment`)
and the Segment widget all take: axes, channel, tiles, blocks, device,
precision, instance settings, pixel size, Monte Carlo dropout, object
diameter and colour conversion. A run is set up from it in one place
(:func:`segloop.engine.prepare.prepare`); the blockwise engine turns it
into a :class:`segloop.engine.plan.RunPlan`.

Importing this module loads neither torch nor zarr, so a GUI form or a
parser can build options without paying for the engine. The one parser
of size text (``'256,256'``, ``'8x256x256'``), :func:`parse_sizes`, is
here for the same reason: the command line and the widget both read
tiles, blocks and diameters with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from segloop.core.errors import InputError

if TYPE_CHECKING:
    from segloop.core.instances import InstanceParams

# as segloop.core.predict.Precision (which imports torch)
PrecisionName = Literal['auto', 'fp32', 'bf16']
Diameter = float | tuple[float, ...] | str | None
Number = TypeVar('Number', int, float)


def parse_sizes(text: str, number: type[Number] = int) -> tuple[Number, ...]:
    """Parse ``'256'``, ``'256,256'`` or ``'8x256x256'`` into sizes.

    Parameters
    ----------
    text : str
        Values separated by commas or ``x`` (lower case).
    number : type
        ``int`` (tiles, blocks: whole pixels) or ``float`` (diameters).

    Returns
    -------
    tuple of int or float
        One value per axis, each positive.

    Raises
    ------
    ValueError
        A value that is not a ``number`` (``'... is not a shape like 256
        or 256,256'``) or not positive (``'...: sizes must be >= 1'``,
        or ``> 0`` for floats); front ends phrase their own message.
    """
    try:
        values = tuple(number(v) for v in text.replace('x', ',').split(','))
    except ValueError:
        raise ValueError(
            f'{text!r} is not a shape like 256 or 256,256'
        ) from None
    if not values or min(values) <= 0:
        bound = '>= 1' if number is int else '> 0'
        raise ValueError(f'{text!r}: sizes must be {bound}')
    return values


@dataclass(frozen=True)
class SegmentOptions:
    """Settings of a segmentation, shared by every front end.

    Attributes
    ----------
    axes : str, optional
        Axes of the input in file order, e.g. 'YX', 'ZYX', 'TZYX',
        'CYX'; None: from the file's metadata or a guess.
    channel : int, optional
        0-based channel to segment when the image has several.
    tile : tuple of int, optional
        Network input per tile (default 512² for 2D, 32×256² for 3D).
    overlap : float
        Fraction of a tile that is context shared with its neighbours
        (half of it on each side).
    block : tuple of int, optional
        Output block (Z?, Y, X) of a blockwise run; rounded to whole
        tiles. Default near 1024² (2D) or 32×512² (3D).
    batch_size : int, optional
        Tiles per forward pass; None: the front end's default (the
        engine: 4 for a 2D model, 1 for 3D).
    device : str, optional
        'cuda', 'mps', 'cpu' or None for automatic.
    precision : {'auto', 'fp32', 'bf16'}
        See :class:`segloop.core.predict.Predictor`.
    instance_params : InstanceParams, optional
        Default: the model's settings (scaled to the zoom with a
        ``diameter``).
    scale : dict, optional
        Pixel size per axis (e.g. ``{'Z': 2.0, 'Y': 0.3, 'X': 0.3}``),
        overriding the file's; used for anisotropic watershed distances.
    mc_samples : int, optional
        0 or None: one deterministic pass per tile. N > 0: Monte Carlo
        dropout with N stochastic passes per tile (batched); the stored
        probabilities are then their mean, the instance labels are made
        from that mean, and float32 arrays ``uncertainty/entropy``,
        ``uncertainty/mutual_information`` and ``uncertainty/variance``
        (axes of the labels, chunked by block) are written too.
    mc_seed : int
        Seed of the dropout masks. Each tile's masks follow from (seed,
        time point, plane, tile position), so block size, block order
        and resuming do not change the result.
    diameter : float, sequence of float, str or None
        Typical object diameter in the input, pixels. The input is
        zoomed by ``training_diameter / diameter`` (the model's
        ``object_size``) so that objects have the size the model was
        trained on. One value zooms Y and X only (Z keeps its scale);
        a 3D model also takes one value per axis (Z, Y, X), e.g.
        ``(8, 20, 20)`` or ``'8,20,20'``, for anisotropic data.
        ``'auto'`` estimates it first and rescales only objects outside
        the sizes the model handles as they are
        (:func:`segloop.engine.inputs.plan_zoom`); ``'none'``: no
        rescaling; None (default): the model's default
        (:func:`segloop.engine.inputs.default_diameter`: auto for a model
        trained on a range of object sizes, such as ``nuclei2d``, else
        none).
        See :mod:`segloop.engine.plan` for how it runs blockwise.
    invert : bool, optional
        Negate intensities (brightfield); None: automatic for RGB.
    rgb : {'auto', 'luminance', 'hematoxylin'}
        Conversion of RGB(A) images; see
        :func:`segloop.engine.inputs.select_channel`.
    """

    axes: str | None = None
    channel: int | None = None
    tile: tuple[int, ...] | None = None
    overlap: float = 0.125
    block: tuple[int, ...] | None = None
    batch_size: int | None = None
    device: str | None = None
    precision: PrecisionName = 'auto'
    instance_params: InstanceParams | None = None
    scale: dict[str, float] | None = None
    mc_samples: int | None = None
    mc_seed: int = 0
    diameter: Diameter = None
    invert: bool | None = None
    rgb: str = 'auto'

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SegmentOptions:
        """Options from keyword arguments; None values keep the default.

        Raises
        ------
        TypeError
            A keyword that is not an option.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(
                f'unknown segmentation option(s): {", ".join(unknown)}'
            )
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    def replace(self, **changes: Any) -> SegmentOptions:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def with_given(self, **changes: Any) -> SegmentOptions:
        """A copy with the ``changes`` that are not None (None: keep)."""
        return self.replace(
            **{k: v for k, v in changes.items() if v is not None}
        )

    @property
    def samples(self) -> int:
        """Monte Carlo passes per tile (0: off).

        Raises
        ------
        InputError
            A negative number.
        """
        samples = int(self.mc_samples or 0)
        if samples < 0:
            raise InputError(
                'mc_samples (--mc-samples) must be 0 (off) or a positive '
                f'number of passes, got {samples}'
            )
        return samples
