"""How the optimized parameters become a mask over feature groups.

A parametrization owns the tensors that the optimizer changes (one row per example)
and maps them to mask values in [0, 1], one per feature group, shape ``(n, G)``,
together with its smoothness terms. Three are provided:

* :class:`FreeLogitMask`: one free logit per group; any grouping, no smoothness prior.
* :class:`GaussianKernelMask1D`: the paper's construction for sequences. Group ``i``
  has a weight ``w_i`` and a width ``sigma_i``; the mask at group ``j`` is
  ``sigmoid(sum_i w_i * exp(-(i - j)^2 / sigma_i^2))``. Wide kernels, rewarded by the
  regularizer ``mean(-log sigma)``, make contiguous spans.
* :class:`SmoothMask2D`: the same construction in 2-D over a coarse grid of cells,
  upsampled bilinearly to the full image, for pixel groups of images.

:data:`PARAMETRIZATIONS` files them under the names ``attribute()`` accepts; a
parametrization is also accepted as an object, or as a factory ``(groups, settings)
-> MaskParametrization`` for masks whose size depends on the input.

Everything here runs at every optimization step, so each evaluation is kept to few
tensor operations: distances and the total-variation operator are built once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Dict, NamedTuple, Optional, Tuple, TypeAlias, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_maskopt.features import FeatureGroups
from captum_maskopt.objective import kernel_width_loss
from captum_maskopt.registry import Registry

if TYPE_CHECKING:
    from captum_maskopt.settings import MaskOptimizationSettings

__all__ = [
    "AUTOMATIC_CHOICES",
    "PARAMETRIZATIONS",
    "resolve_parametrization",
    "MaskEvaluation",
    "MaskParametrization",
    "standardized_scores",
    "FreeLogitMask",
    "GaussianKernelMask1D",
    "SmoothMask2D",
]

Params = Dict[str, Tensor]

# Narrower kernels than this no longer reach the neighbouring position (weight < 1e-7);
# wider ones than the whole sequence cannot get any smoother.
_MIN_WIDTH = 0.25


class MaskEvaluation(NamedTuple):
    """A parametrization's output for a batch of parameter rows.

    Attributes:
        values: ``(n, G)`` mask values in [0, 1], one per feature group.
        kernel_width: ``(n,)`` the kernel-width regularizer ``mean(-log sigma)``, or
            None for parametrizations without kernels.
        total_variation: ``(n,)`` total variation of the mask on its own grid, or None
            when the parametrization has no grid of its own or it was not asked for.
    """

    values: Tensor
    kernel_width: Optional[Tensor]
    total_variation: Optional[Tensor]


class MaskParametrization(ABC):
    """Maps per-example parameters to mask values over ``n_groups`` feature groups."""

    n_groups: int

    @abstractmethod
    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        """Initial parameters for ``n`` examples, each tensor with ``n`` rows."""

    @abstractmethod
    def evaluate(self, params: Params, pinned: Tensor, total_variation: bool) -> MaskEvaluation:
        """The mask and smoothness terms. ``pinned`` ``(n, G)`` marks groups fixed to
        "removed": the caller zeroes them, a parametrization may also keep them out of
        its neighbours' values. ``total_variation`` asks for that term."""

    def mask(self, params: Params, pinned: Tensor) -> Tensor:
        """Only the mask values ``(n, G)``."""
        return self.evaluate(params, pinned, False).values

    def start_from(self, params: Params, scores: Tensor, valid: Tensor) -> Params:
        """Starting parameters moved towards a ranking of the groups (the setting
        ``initial_mask="gradient"``): ``scores`` ``(n, G)``, higher for groups that
        should be kept, read only where ``valid`` ``(n, G)`` is True. A
        parametrization that cannot start from scores refuses."""
        raise ValueError(
            f"initial_mask='gradient': {type(self).__name__} cannot start from scores "
            "(it does not override MaskParametrization.start_from); use initial_mask='uniform'"
        )


def standardized_scores(scores: Tensor, valid: Tensor, limit: float = 3.0) -> Tensor:
    """Per row, ``(scores - mean) / std`` over the valid entries, clipped to
    ``[-limit, limit]`` so that a few extreme gradients do not saturate the start; 0
    where not valid or where a row's valid scores are all equal."""
    weights = valid.to(scores.dtype)
    count = weights.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (scores * weights).sum(dim=1, keepdim=True) / count
    spread = (((scores - mean) ** 2) * weights).sum(dim=1, keepdim=True) / count
    std = spread.sqrt()
    z = torch.where(std > 0, (scores - mean) / std.clamp_min(torch.finfo(scores.dtype).tiny), torch.zeros_like(scores))
    return (z.clamp(-limit, limit) * weights).nan_to_num(0.0)


class FreeLogitMask(MaskParametrization):
    """One free logit per feature group: ``mask = sigmoid(logit)``.

    Args:
        n_groups: number of feature groups.
        init_logit: starting logit for every group. The default 2.0 starts from a mask
            that keeps most of the input (0.88), so the keep view starts confident and
            the compactness term removes what is not needed.
        start_scale: with ``initial_mask="gradient"``, the starting logits are
            ``init_logit + start_scale * z``, ``z`` the standardized scores.
    """

    def __init__(self, n_groups: int, init_logit: float = 2.0, start_scale: float = 1.0) -> None:
        self.n_groups = n_groups
        self.init_logit = init_logit
        self.start_scale = start_scale

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        return {
            "logit": torch.full((n, self.n_groups), self.init_logit, device=device, dtype=dtype)
        }

    def start_from(self, params: Params, scores: Tensor, valid: Tensor) -> Params:
        return {"logit": params["logit"] + self.start_scale * standardized_scores(scores, valid)}

    def evaluate(self, params: Params, pinned: Tensor, total_variation: bool) -> MaskEvaluation:
        return MaskEvaluation(torch.sigmoid(params["logit"]), None, None)


class _GaussianKernels:
    """Kernel sums ``sum_i w_i * exp(-|p_i - p_j|^2 / sigma_i^2)`` over fixed positions."""

    def __init__(
        self, positions: Tensor, init_weight: float, init_width: float,
        max_width: Optional[float] = None,
    ) -> None:
        if init_width <= 0:
            raise ValueError(f"init_width must be > 0, got {init_width}")
        self.positions = positions  # (P, dims), float64 on the CPU until first use
        self.init_weight = init_weight
        self.init_width = init_width
        extent = float((positions.max(0).values - positions.min(0).values).max()) + 1.0
        widest = max(extent, 1.0) if max_width is None else min(max(extent, 1.0), max_width)
        self.log_width_range = (math.log(_MIN_WIDTH), math.log(widest))
        self._negative_squared_distance: Optional[Tensor] = None

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        shape = (n, self.positions.shape[0])
        return {
            "weight": torch.full(shape, self.init_weight, device=device, dtype=dtype),
            "log_width": torch.full(shape, math.log(self.init_width), device=device, dtype=dtype),
        }

    def _distances(self, like: Tensor) -> Tensor:
        cached = self._negative_squared_distance
        if cached is None or cached.device != like.device or cached.dtype != like.dtype:
            difference = self.positions[:, None, :] - self.positions[None, :, :]
            cached = -(difference**2).sum(-1).to(device=like.device, dtype=like.dtype)
            self._negative_squared_distance = cached
        return cached

    def logits_and_width_loss(
        self, weight: Tensor, log_width: Tensor, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor]:
        """Kernel sums at every position ``(n, P)`` and ``mean(-log sigma)`` ``(n,)``."""
        log_width = log_width.clamp(*self.log_width_range)
        kernel = torch.exp(self._distances(weight) / torch.exp(2.0 * log_width).unsqueeze(-1))
        logits = torch.bmm(weight.unsqueeze(1), kernel).squeeze(1)
        return logits, kernel_width_loss(log_width, valid)


class GaussianKernelMask1D(MaskParametrization):
    """Smooth sequence mask from one Gaussian kernel per group (the paper's text mask).

    Groups are positions along a sequence in group-index order (words, tokens); pinned
    groups add nothing to their neighbours.

    Args:
        n_groups: sequence length in groups.
        init_weight: starting kernel weight ``w`` (paper: 1.2, a mask near "keep all").
        init_width: starting kernel width ``sigma`` in positions (paper: 2.0).
    """

    def __init__(self, n_groups: int, init_weight: float = 1.2, init_width: float = 2.0) -> None:
        self.n_groups = n_groups
        positions = torch.arange(n_groups, dtype=torch.float64).unsqueeze(-1)
        self.kernels = _GaussianKernels(positions, init_weight, init_width)

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        return self.kernels.init_params(n, device, dtype)


    def evaluate(self, params: Params, pinned: Tensor, total_variation: bool) -> MaskEvaluation:
        weight = params["weight"].masked_fill(pinned, 0.0)
        logits, width_loss = self.kernels.logits_and_width_loss(weight, params["log_width"], ~pinned)
        return MaskEvaluation(torch.sigmoid(logits), width_loss, None)


def _grid_laplacian(height: int, width: int) -> Tensor:
    """Graph Laplacian of the 8-neighbour grid: ``c^T L c`` is the sum of squared
    differences over all neighbouring pairs."""
    cells = height * width
    adjacency = torch.zeros(cells, cells, dtype=torch.float64)
    index = torch.arange(cells).view(height, width)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        rows = slice(0, height - dr)
        cols = slice(max(0, -dc), width - max(0, dc))
        shifted_cols = slice(max(0, dc), width - max(0, -dc))
        a = index[rows, cols].reshape(-1)
        b = index[dr:, shifted_cols].reshape(-1)
        adjacency[a, b] = 1.0
        adjacency[b, a] = 1.0
    return torch.diag(adjacency.sum(1)) - adjacency


class SmoothMask2D(MaskParametrization):
    """Smooth image mask: Gaussian kernels on a coarse grid, upsampled bilinearly.

    Groups are the ``height * width`` pixel locations in row-major order. Its total
    variation is taken on the coarse grid, where the mask's shape is decided, at a cost
    that does not grow with the image: the squared differences of each cell to its 8
    neighbours, summed and divided by the number of pixels.

    Args:
        grid: ``(height, width)`` of the pixel grid.
        cell_size: pixels per coarse cell along each side; the coarse grid has
            ``ceil(height / cell_size) x ceil(width / cell_size)`` cells. Larger cells
            give blobbier masks and fewer parameters.
        init_weight: starting kernel weight (paper: 0.5).
        init_width: starting kernel width in cells (paper: 1.2).
        max_width: the widest a kernel may grow, in cells: the paper's "small
            window". Unbounded, the width reward ``mean(-log sigma)`` (up to
            ``log`` of the grid's side) outweighs compactness (at most 1) on a
            28 x 28 grid, kernels grow over the whole image and the mask saturates
            to 1 everywhere.
    """

    def __init__(
        self,
        grid: Tuple[int, int],
        cell_size: int = 8,
        init_weight: float = 0.5,
        init_width: float = 1.2,
        max_width: float = 3.0,
    ) -> None:
        if isinstance(cell_size, bool) or not isinstance(cell_size, int) or cell_size < 1:
            raise ValueError(f"mask_cell_size must be a positive integer, got {cell_size!r}")
        self.grid = grid
        self.n_groups = grid[0] * grid[1]
        self.coarse = (math.ceil(grid[0] / cell_size), math.ceil(grid[1] / cell_size))
        rows, cols = torch.meshgrid(
            torch.arange(self.coarse[0], dtype=torch.float64),
            torch.arange(self.coarse[1], dtype=torch.float64),
            indexing="ij",
        )
        positions = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)
        self.kernels = _GaussianKernels(positions, init_weight, init_width, max_width)
        # Per pixel, not per cell: an edge between two cells is spread over about
        # cell_size pixel steps, so the pixel mask's variation is about the cells'
        # divided by cell_size ** 2. Normalising by the pixel count keeps
        # total_variation_weight meaning the same at every cell size.
        self._laplacian = _grid_laplacian(*self.coarse) / float(self.n_groups)

    def init_params(self, n: int, device: torch.device, dtype: torch.dtype) -> Params:
        return self.kernels.init_params(n, device, dtype)

    def coarse_mask(self, params: Params) -> Tensor:
        """The mask on the coarse grid, ``(n, h, w)``."""
        logits, _ = self.kernels.logits_and_width_loss(params["weight"], params["log_width"], None)
        return torch.sigmoid(logits).view(-1, *self.coarse)

    def evaluate(self, params: Params, pinned: Tensor, total_variation: bool) -> MaskEvaluation:
        logits, width_loss = self.kernels.logits_and_width_loss(
            params["weight"], params["log_width"], None
        )
        coarse = torch.sigmoid(logits)
        variation = None
        if total_variation:
            if self._laplacian.device != coarse.device or self._laplacian.dtype != coarse.dtype:
                self._laplacian = self._laplacian.to(device=coarse.device, dtype=coarse.dtype)
            variation = ((coarse @ self._laplacian) * coarse).sum(dim=1)
        full = F.interpolate(
            coarse.view(-1, 1, *self.coarse), size=self.grid, mode="bilinear", align_corners=False
        )
        return MaskEvaluation(full.reshape(full.shape[0], self.n_groups), width_loss, variation)


# --------------------------------------------------------------------------- by name

ParametrizationFactory: TypeAlias = Callable[[FeatureGroups, "MaskOptimizationSettings"], MaskParametrization]
"""Builds a parametrization for the feature groups of one chunk of a batch."""
ParametrizationChoice: TypeAlias = Union[str, MaskParametrization, ParametrizationFactory]
"""What the ``parametrization`` setting accepts: a name, an object or a factory."""
PARAMETRIZATIONS: Registry[ParametrizationFactory] = Registry("parametrization")
"""The parametrizations by name (``"auto"`` and ``"paper"`` choose among them)."""

AUTOMATIC_CHOICES = ("auto", "paper")
"""The names that choose a parametrization from the input's groups (see
:func:`resolve_parametrization`)."""


@PARAMETRIZATIONS.register("logits")
def _free_logits(groups: FeatureGroups, settings: "MaskOptimizationSettings") -> MaskParametrization:
    return FreeLogitMask(groups.n_groups)


@PARAMETRIZATIONS.register("gaussian1d")
def _gaussian_kernels(groups: FeatureGroups, settings: "MaskOptimizationSettings") -> MaskParametrization:
    return GaussianKernelMask1D(groups.n_groups)


@PARAMETRIZATIONS.register("smooth2d")
def _smooth_grid(groups: FeatureGroups, settings: "MaskOptimizationSettings") -> MaskParametrization:
    if groups.grid is None:
        raise ValueError(
            "parametrization='smooth2d' needs the default pixel groups of a single "
            "(N, C, H, W) tensor (no feature_mask)"
        )
    return SmoothMask2D(groups.grid, cell_size=settings.cell_size_for(groups.grid))


def resolve_parametrization(
    choice: ParametrizationChoice, groups: FeatureGroups, settings: "MaskOptimizationSettings"
) -> MaskParametrization:
    """The parametrization for ``choice``: a registered name, ``"auto"`` (the smooth
    2-D mask for the pixel groups of one image tensor, free logits otherwise), ``"paper"``
    (as auto, but the Gaussian-kernel mask for the positions of one sequence), an
    object, or a factory."""
    if isinstance(choice, str):
        if choice in AUTOMATIC_CHOICES:
            smooth_sequence = choice == "paper" and groups.sequence
            choice = "smooth2d" if groups.grid else "gaussian1d" if smooth_sequence else "logits"
        parametrization = PARAMETRIZATIONS[choice](groups, settings)
    elif isinstance(choice, MaskParametrization):
        parametrization = choice
    else:
        parametrization = choice(groups, settings)
        if not isinstance(parametrization, MaskParametrization):
            raise TypeError(
                "parametrization factory must return a MaskParametrization, got "
                f"{type(parametrization).__name__}"
            )
    if parametrization.n_groups != groups.n_groups:
        raise ValueError(
            f"parametrization has {parametrization.n_groups} groups but the input has "
            f"{groups.n_groups} feature groups"
        )
    return parametrization
