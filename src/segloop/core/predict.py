"""Tiled inference with a U-Net: class probabilities for an image.

``Predictor`` keeps the network on its device once (channels-last layout,
eval mode) and runs batches of tiles under ``torch.inference_mode``, with
mixed precision on CUDA and on CPUs with native bf16. ``iter_predict`` yields a
:class:`~segloop.core.tiling.TileProgress` per batch and returns the
probabilities; ``predict`` drains it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Literal

import numpy as np
import torch

from segloop.core.config import TileConfig
from segloop.core.device import autocast, cpu_has_native_bf16, pick_device
from segloop.core.events import drain
from segloop.core.tiling import TileProgress, iter_tiled
from segloop.core.unet import UNet

Precision = Literal['auto', 'fp32', 'bf16']

DEFAULT_TILE = {2: (512, 512), 3: (32, 256, 256)}


class Predictor:
    """A network ready for inference on one device.

    Parameters
    ----------
    model : UNet
        The network; moved to ``device`` once, in eval mode.
    device : str or torch.device, optional
        Default: CUDA, then MPS, then CPU.
    precision : {'auto', 'fp32', 'bf16'}
        'auto' is mixed precision on CUDA, bf16 autocast on CPUs with
        native bf16 (AVX512-BF16/AMX: ~2x faster, argmax agreement with
        fp32 99.99 %, same validation accuracy) and fp32 elsewhere.
    """

    def __init__(
        self,
        model: UNet,
        device: str | torch.device | None = None,
        precision: Precision = 'auto',
    ) -> None:
        self.device = (
            device if isinstance(device, torch.device) else pick_device(device)
        )
        self.model = model.to(self.device, memory_format=model.memory_format)
        self.model.eval()
        if precision == 'auto':
            self.mixed_precision = self.device.type == 'cuda' or (
                self.device.type == 'cpu' and cpu_has_native_bf16()
            )
        else:
            self.mixed_precision = precision == 'bf16'

    @property
    def divisor(self) -> tuple[int, ...]:
        """What each tile size must be a multiple of."""
        return self.model.config.divisor()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities for a batch of tiles.

        Parameters
        ----------
        batch : ndarray, shape (B, C, *tile), float32

        Returns
        -------
        ndarray, shape (B, K, *tile), float32
        """
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            x = x.contiguous(memory_format=self.model.memory_format)
            with autocast(self.device, self.mixed_precision):
                logits = self.model(x)
            probs = torch.softmax(logits.float(), dim=1)
            return probs.cpu().numpy()

    def iter_predict(
        self,
        image: np.ndarray,
        tiles: TileConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[TileProgress, None, np.ndarray]:
        """Yield progress per batch of tiles; return probabilities.

        Parameters
        ----------
        image : ndarray, shape (C, *spatial), float32
            Normalised image; ``spatial`` has the model's dimensionality.
        tiles : TileConfig, optional
            Tile shape, overlap, batch size, blending.

        Returns
        -------
        ndarray, shape (K, *spatial), float32
            Class probabilities (sum to 1 over K).
        """
        tiles = tiles or TileConfig()
        dims = self.model.config.spatial_dims
        if image.ndim != dims + 1:
            raise ValueError(
                f'expected a (C, {dims} spatial axes) image, got shape '
                f'{image.shape}'
            )
        return (
            yield from iter_tiled(
                image,
                self.forward,
                tile_shape=tiles.tile_shape or DEFAULT_TILE[dims],
                overlap=tiles.overlap,
                batch_size=tiles.batch_size,
                divisor=self.divisor,
                blending=tiles.blending,
                should_stop=should_stop,
            )
        )

    def predict(
        self, image: np.ndarray, tiles: TileConfig | None = None
    ) -> np.ndarray:
        """Drain :meth:`iter_predict` and return the probabilities."""
        return drain(self.iter_predict(image, tiles))
