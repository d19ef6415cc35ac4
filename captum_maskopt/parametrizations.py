"""How the optimized parameters become a mask over feature groups.

A parametrization owns the tensors that the optimizer changes (one row per example)
and maps them to mask values in [0, 1], one per feature group, shape ``(n, G)``. It
also supplies its own smoothness regularizer. Three are provided:

* :class:`FreeLogitMask`: one free logit per group; any grouping, no smoothness prior.
* :class:`GaussianKernelMask1D`: the paper's construction for sequences. Group ``i``
  has a weight ``w_i`` and a width ``sigma_i``; the mask at group ``j`` is
  ``sigmoid(sum_i w_i * exp(-(i - j)^2 / sigma_i^2))``. Wide kernels, rewarded by the
  regularizer ``mean(-log sigma)``, make contiguous spans.
* :class:`SmoothMask2D`: the same construction in 2-D over a coarse grid of cells,
  upsampled bilinearly to the full image, for pixel groups of images.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_maskopt.objective import kernel_width_loss

__all__ = [
    "MaskParametrization",
    "FreeLogitMask",
    "GaussianKernelMask1D",
    "SmoothMask2D",
]

Params = Dict[str, Tensor]

# Narrower kernels than this no longer reach the neighbouring position (weight < 1e-7);
# wider ones than the whole sequence cannot get any smoother.
_MIN_WIDTH = 0.25


class MaskParametrization(ABC):
    """Maps per-example parameters to mask values over ``n_groups`` feature groups."""

    n_groups: int

    @abstractmethod
    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        """Initial parameters for ``n`` examples, each tensor with ``n`` rows."""

    @abstractmethod
    def mask(self, params: Params, pinned: Tensor) -> Tensor:
        """Mask values ``(n, G)`` in [0, 1]. ``pinned`` ``(n, G)`` marks groups fixed
        to "removed"; the caller zeroes them, a parametrization may also keep them out
        of its neighbours' values."""

    def smoothness(self, params: Params, pinned: Tensor) -> Tensor:
        """The parametrization's own smoothness regularizer, one value per example."""
        first = next(iter(params.values()))
        return first.new_zeros(first.shape[0])


class FreeLogitMask(MaskParametrization):
    """One free logit per feature group: ``mask = sigmoid(logit)``.

    Args:
        n_groups: number of feature groups.
        init_logit: starting logit for every group. The default 2.0 starts from a mask
            that keeps most of the input (0.88), so the keep view starts confident and
            the compactness term removes what is not needed.
    """

    def __init__(self, n_groups: int, init_logit: float = 2.0) -> None:
        self.n_groups = n_groups
        self.init_logit = init_logit

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        return {
            "logit": torch.full((n, self.n_groups), self.init_logit, device=device, dtype=dtype)
        }

    def mask(self, params: Params, pinned: Tensor) -> Tensor:
        return torch.sigmoid(params["logit"])


def _kernel_logits(
    weight: Tensor, log_width: Tensor, squared_distance: Tensor, max_log_width: float
) -> Tensor:
    """``sum_i w_i * exp(-d(i, j)^2 / sigma_i^2)`` for every target position ``j``.

    ``weight`` and ``log_width`` are ``(n, P)``; ``squared_distance`` is ``(P, P)``.
    """
    width = _clamped_log_width(log_width, max_log_width).exp()
    kernel = torch.exp(-squared_distance.unsqueeze(0) / (width * width).unsqueeze(-1))
    return torch.einsum("ni,nij->nj", weight, kernel)


def _clamped_log_width(log_width: Tensor, max_log_width: float) -> Tensor:
    return log_width.clamp(math.log(_MIN_WIDTH), max_log_width)


class GaussianKernelMask1D(MaskParametrization):
    """Smooth sequence mask from one Gaussian kernel per group (the paper's text mask).

    Groups are positions along a sequence in group-index order (words, tokens).

    Args:
        n_groups: sequence length in groups.
        init_weight: starting kernel weight ``w`` (paper: 1.2, a mask near "keep all").
        init_width: starting kernel width ``sigma`` in positions (paper: 2.0).
    """

    def __init__(self, n_groups: int, init_weight: float = 1.2, init_width: float = 2.0) -> None:
        if init_width <= 0:
            raise ValueError(f"init_width must be > 0, got {init_width}")
        self.n_groups = n_groups
        self.init_weight = init_weight
        self.init_width = init_width
        self._max_log_width = math.log(max(float(n_groups), 1.0))
        self._squared_distance: Optional[Tensor] = None

    def _distances(self, like: Tensor) -> Tensor:
        cached = self._squared_distance
        if cached is None or cached.device != like.device or cached.dtype != like.dtype:
            positions = torch.arange(self.n_groups, device=like.device, dtype=like.dtype)
            cached = (positions[:, None] - positions[None, :]) ** 2
            self._squared_distance = cached
        return cached

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        shape = (n, self.n_groups)
        return {
            "weight": torch.full(shape, self.init_weight, device=device, dtype=dtype),
            "log_width": torch.full(shape, math.log(self.init_width), device=device, dtype=dtype),
        }

    def mask(self, params: Params, pinned: Tensor) -> Tensor:
        weight = params["weight"].masked_fill(pinned, 0.0)
        logits = _kernel_logits(
            weight, params["log_width"], self._distances(weight), self._max_log_width
        )
        return torch.sigmoid(logits)

    def smoothness(self, params: Params, pinned: Tensor) -> Tensor:
        log_width = _clamped_log_width(params["log_width"], self._max_log_width)
        return kernel_width_loss(log_width, ~pinned)


class SmoothMask2D(MaskParametrization):
    """Smooth image mask: Gaussian kernels on a coarse grid, upsampled bilinearly.

    Groups are the ``height * width`` pixel locations in row-major order.

    Args:
        grid: ``(height, width)`` of the pixel grid.
        cell_size: pixels per coarse cell along each side; the coarse grid has
            ``ceil(height / cell_size) x ceil(width / cell_size)`` cells. Larger cells
            give blobbier masks and fewer parameters.
        init_weight: starting kernel weight (paper: 0.5).
        init_width: starting kernel width in cells (paper: 1.2).
    """

    def __init__(
        self,
        grid: Tuple[int, int],
        cell_size: int = 8,
        init_weight: float = 0.5,
        init_width: float = 1.2,
    ) -> None:
        if cell_size < 1:
            raise ValueError(f"cell_size must be a positive integer, got {cell_size}")
        if init_width <= 0:
            raise ValueError(f"init_width must be > 0, got {init_width}")
        self.grid = grid
        self.n_groups = grid[0] * grid[1]
        self.coarse = (math.ceil(grid[0] / cell_size), math.ceil(grid[1] / cell_size))
        self.init_weight = init_weight
        self.init_width = init_width
        self._max_log_width = math.log(float(max(self.coarse)))
        self._squared_distance: Optional[Tensor] = None

    def _distances(self, like: Tensor) -> Tensor:
        cached = self._squared_distance
        if cached is None or cached.device != like.device or cached.dtype != like.dtype:
            rows = torch.arange(self.coarse[0], device=like.device, dtype=like.dtype)
            cols = torch.arange(self.coarse[1], device=like.device, dtype=like.dtype)
            r, c = torch.meshgrid(rows, cols, indexing="ij")
            r, c = r.reshape(-1), c.reshape(-1)
            cached = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
            self._squared_distance = cached
        return cached

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        shape = (n, self.coarse[0] * self.coarse[1])
        return {
            "weight": torch.full(shape, self.init_weight, device=device, dtype=dtype),
            "log_width": torch.full(shape, math.log(self.init_width), device=device, dtype=dtype),
        }

    def coarse_mask(self, params: Params) -> Tensor:
        """The mask on the coarse grid, ``(n, h, w)``."""
        weight = params["weight"]
        logits = _kernel_logits(
            weight, params["log_width"], self._distances(weight), self._max_log_width
        )
        return torch.sigmoid(logits).view(-1, *self.coarse)

    def mask(self, params: Params, pinned: Tensor) -> Tensor:
        coarse = self.coarse_mask(params).unsqueeze(1)
        full = F.interpolate(coarse, size=self.grid, mode="bilinear", align_corners=False)
        return full.reshape(full.shape[0], self.n_groups)

    def smoothness(self, params: Params, pinned: Tensor) -> Tensor:
        log_width = _clamped_log_width(params["log_width"], self._max_log_width)
        return kernel_width_loss(log_width, torch.ones_like(log_width, dtype=torch.bool))
