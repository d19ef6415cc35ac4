"""Feature masks that group an image's pixels into regions: SLIC superpixels or a
grid of square patches. Any of Captum's perturbation methods (``FeatureAblation``,
``KernelShap``, ``Lime``, ...) and :class:`~captum_maskopt.MaskOptimization` take
them as ``feature_mask``; each region then gets one value.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["superpixel_mask", "patch_mask"]


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")


def superpixel_mask(images: Tensor, n_segments: int = 50, compactness: float = 10.0) -> Tensor:
    """SLIC superpixels (Achanta et al. 2012, scikit-image's ``slic``) of each image,
    as a feature mask ``(N, 1, H, W)`` of ids ``0 .. G_i - 1`` per image.

    Each image is rescaled to [0, 1] (its own minimum and maximum) before
    segmentation, so any input normalisation works; 3-channel images are segmented in
    Lab colour space, others channel by channel.

    Args:
        images: ``(N, C, H, W)``.
        n_segments: approximate number of superpixels per image. Default: 50
        compactness: SLIC's balance of colour against space; higher gives more
            square regions. Default: 10.0
    """
    _check_images(images)
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
        raise ValueError(f"n_segments must be a positive integer, got {n_segments!r}")
    from skimage.segmentation import slic

    masks = []
    for image in images.detach().to("cpu", torch.float64):
        low, high = image.min(), image.max()
        scaled = ((image - low) / (high - low) if high > low else image - low).permute(1, 2, 0).numpy()
        segments = slic(
            scaled, n_segments=n_segments, compactness=compactness, start_label=0,
            channel_axis=-1, convert2lab=scaled.shape[-1] == 3,
        )
        # Renumber so that the ids have no gaps, as Captum's methods expect.
        _, ids = np.unique(segments, return_inverse=True)
        masks.append(torch.from_numpy(ids.reshape(segments.shape).astype(np.int64)))
    return torch.stack(masks).unsqueeze(1).to(images.device)


def patch_mask(images: Tensor, patch_size: int = 16) -> Tensor:
    """A grid of ``patch_size`` x ``patch_size`` squares (smaller at the right and
    bottom edges when the size does not divide), numbered in row-major order, as a
    feature mask ``(1, 1, H, W)`` shared by the batch.

    Args:
        images: ``(N, C, H, W)``; only its shape and device are used.
        patch_size: side of a patch in pixels. Default: 16
    """
    _check_images(images)
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
    height, width = images.shape[-2:]
    rows = torch.arange(height, device=images.device) // patch_size
    cols = torch.arange(width, device=images.device) // patch_size
    ids = rows[:, None] * math.ceil(width / patch_size) + cols[None, :]
    return ids.view(1, 1, height, width)
