"""Setting up a segmentation: options -> an opened input and a model.

:func:`prepare` is the one place where a segmentation is set up from
:class:`~segloop.engine.options.SegmentOptions`, for the in-memory API
(:func:`segloop.api.iter_predict`) and the blockwise engine
(:class:`segloop.engine.job.SegmentJob`) alike: open the input, load the
model, choose the channel and colour conversion, check the image and
the tile, make the predictor, merge the pixel size and plan the zoom of
an object ``diameter`` (which, with ``'auto'``, runs the network on a
central crop). :func:`plan_run` then makes the blockwise engine's
:class:`~segloop.engine.plan.RunPlan` from it. Both read the input but
write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segloop.core.blocks import TileGeometry, plan_blocks
from segloop.core.checkpoint import weights_hash
from segloop.core.config import TileConfig
from segloop.core.instances import InstanceParams
from segloop.core.objsize import scaled_instance_params
from segloop.core.predict import DEFAULT_TILE, Predictor
from segloop.core.rescale import zoomed_shape
from segloop.core.stitch import id_stride
from segloop.engine.inputs import (
    check_image,
    check_tile,
    choose_model,
    plan_zoom,
    prepare_input,
)
from segloop.engine.options import SegmentOptions
from segloop.engine.plan import RunPlan, plan_block_shape
from segloop.io.readers import ImageSource, open_image
from segloop.models import BUNDLED_DIR
from segloop.models.loaded import Model, load_model


@dataclass
class Prepared:
    """An input and a model made ready for the network.

    Holds open resources (the input, the network): never pickled; a
    distributed worker reopens them from a
    :class:`~segloop.engine.plan.RunPlan`.

    Attributes
    ----------
    source : ImageSource
        The opened input (axes in TCZYX order).
    owns_source : bool
        ``source`` was opened here (closed by :meth:`close`).
    input_path : Path or None
        The input file, absolute; None for an in-memory input.
    model : Model
    data : array-like
        One-channel lazy input, axes ``axes``.
    conversion : dict
        ``channel``, ``rgb`` and ``invert``: what made ``data``.
    axes : str
        The input's axes without C, e.g. 'YX', 'TZYX'.
    params : InstanceParams
        The instance settings at the model's scale (given or the
        model's); see :meth:`params_for`.
    predictor : Predictor
    tile : tuple of int
        Network input per tile (checked).
    batch_size : int
        Tiles per forward pass.
    scale : dict
        Pixel size per axis: the file's, overridden by the options'.
    sampling : list of float
        Pixel size per spatial axis of the volume (Z?, Y, X).
    mc_samples : int
        Monte Carlo passes per tile (0: off).
    zoom : tuple of float or None
        Zoom per network axis for the object diameter (None: none).
    diameter_info : dict
        What the diameter planning did (see
        :func:`segloop.engine.inputs.plan_zoom`).
    """

    source: ImageSource
    owns_source: bool
    input_path: Path | None
    model: Model
    data: Any
    conversion: dict[str, Any]
    axes: str
    params: InstanceParams
    params_given: bool
    predictor: Predictor
    tile: tuple[int, ...]
    batch_size: int
    scale: dict[str, float]
    sampling: list[float]
    mc_samples: int
    zoom: tuple[float, ...] | None
    diameter_info: dict[str, Any]

    @property
    def dims(self) -> int:
        """The model's spatial dimensions (2 or 3)."""
        return int(self.model.network.config.spatial_dims)

    @property
    def times(self) -> int:
        """Time points of the input (1 without T)."""
        return int(self.data.shape[0]) if 'T' in self.axes else 1

    @property
    def volume_axes(self) -> str:
        """The spatial axes, 'YX' or 'ZYX'."""
        return self.axes.replace('T', '')

    def params_for(self, zoom: tuple[float, ...] | None) -> InstanceParams:
        """Instance settings on the input's grid for a run at ``zoom``.

        The model's settings are scaled to the zoom; given ones are
        used as they are.
        """
        if zoom is None or self.params_given:
            return self.params
        return scaled_instance_params(self.params, zoom)

    def close(self) -> None:
        """Close the input if it was opened here (not a given source)."""
        if self.owns_source:
            self.source.close()


def prepare(
    image: Any,
    model: str | Path | Model | None,
    options: SegmentOptions,
    *,
    default_batch: dict[int, int],
) -> Prepared:
    """Open ``image`` and ``model`` and check them against ``options``.

    Parameters
    ----------
    image : path, array or ImageSource
        2D, 3D or 3D+time, read lazily.
    model : str, Path, Model or None
        A bundled model's name, a model folder or a loaded model; None:
        :func:`~segloop.engine.inputs.choose_model` (the one default
        rule of the API, the CLI and the widget).
    options : SegmentOptions
    default_batch : dict
        Tiles per forward pass by model dimensions, when
        ``options.batch_size`` is None.

    Raises
    ------
    InputError
        Negative ``mc_samples``, a channel, axes, tile or diameter that
        does not fit the image or the model.
    """
    mc_samples = options.samples
    source = (
        image
        if isinstance(image, ImageSource)
        else open_image(image, options.axes)
    )
    try:
        input_path = (
            Path(image).absolute() if isinstance(image, (str, Path)) else None
        )
        model = choose_model(model, source.axes)
        loaded = load_model(model)
        data, conversion = prepare_input(
            source, options.channel, invert=options.invert, rgb=options.rgb
        )
        axes = check_image(source, loaded)
        params = options.instance_params or loaded.instance_params()
        predictor = Predictor(
            loaded.network, options.device, options.precision
        )
        dims = loaded.network.config.spatial_dims
        batch_size = options.batch_size or default_batch[dims]
        tile = check_tile(options.tile or DEFAULT_TILE[dims], dims)
        given = {k.upper(): float(v) for k, v in (options.scale or {}).items()}
        scale = {**source.scale, **given}
        sampling = [scale.get(a, 1.0) for a in axes.replace('T', '')]
        zoom, diameter_info = plan_zoom(
            loaded,
            options.diameter,
            data,
            axes,
            predictor,
            params,
            sampling,
            TileConfig(tile, options.overlap, batch_size, 'center'),
        )
    except BaseException:
        if not isinstance(image, ImageSource):
            source.close()
        raise
    return Prepared(
        source=source,
        owns_source=not isinstance(image, ImageSource),
        input_path=input_path,
        model=loaded,
        data=data,
        conversion=conversion,
        axes=axes,
        params=params,
        params_given=options.instance_params is not None,
        predictor=predictor,
        tile=tile,
        batch_size=batch_size,
        scale=scale,
        sampling=sampling,
        mc_samples=mc_samples,
        zoom=zoom,
        diameter_info=diameter_info,
    )


def model_reference(path: Path | None) -> str | None:
    """A bundled model's name (found in any install), else its folder."""
    if path is None:
        return None
    if path.parent.resolve() == BUNDLED_DIR.resolve():
        return path.name
    return str(path.absolute())


def plan_run(
    prepared: Prepared,
    options: SegmentOptions,
    output: Path,
    *,
    live_labels: bool = True,
) -> RunPlan:
    """The :class:`~segloop.engine.plan.RunPlan` of a blockwise run.

    Fits the tile grid to the (zoomed) volume, chooses the blocks and
    aligns the zoom to them (:func:`segloop.engine.plan.plan_block_shape`),
    and scales the instance settings to the zoom. Records the aligned
    zoom in ``prepared.diameter_info``. Writes nothing.
    """
    data, dims = prepared.data, prepared.dims
    volume_axes = prepared.volume_axes
    shape = tuple(int(n) for n in data.shape[-len(volume_axes) :])
    net_shape = shape[-dims:]
    divisor = prepared.predictor.divisor
    zoom = prepared.zoom
    zoom_shape = zoomed_shape(net_shape, zoom) if zoom else net_shape
    geometry = TileGeometry.from_overlap(
        prepared.tile, options.overlap, divisor
    ).fitted(zoom_shape, divisor)
    planewise = dims == 2 and len(shape) == 3
    # with zoom, this also aligns the zoom to whole tiles per block
    block_shape, zoom = plan_block_shape(
        options.block,
        shape,
        volume_axes,
        geometry,
        zoom=zoom,
        zoom_shape=zoom_shape,
        planewise=planewise,
    )
    if zoom is not None:
        zoom_shape = zoomed_shape(net_shape, zoom)
        prepared.diameter_info['zoom'] = [round(z, 6) for z in zoom]
    blocks = tuple(plan_blocks(shape, block_shape))
    model, predictor = prepared.model, prepared.predictor
    names = list(model.info.class_names)
    return RunPlan(
        input_path=prepared.input_path,
        axes_given=options.axes,
        conversion=dict(prepared.conversion),
        axes=prepared.axes,
        shape=shape,
        times=prepared.times,
        sampling=tuple(prepared.sampling),
        model_reference=model_reference(model.path),
        model_sha256=weights_hash(model.path) if model.path else '',
        device=str(predictor.device),
        mixed_precision=bool(predictor.mixed_precision),
        background=names.index('background') if 'background' in names else 0,
        geometry=geometry,
        batch_size=prepared.batch_size,
        planewise=planewise,
        zoom=zoom,
        zoom_shape=tuple(zoom_shape),
        block_shape=tuple(block_shape),
        blocks=blocks,
        id_stride=id_stride(len(blocks)),
        params=prepared.params_for(zoom),
        live_labels=bool(live_labels),
        mc_samples=prepared.mc_samples,
        mc_seed=int(options.mc_seed),
        output=Path(output).expanduser().absolute(),
    )
