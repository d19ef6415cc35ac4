"""RISE: attributions from randomly masked inputs (Petsiuk et al. 2018), as a Captum
attribution method."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_maskopt import formatting as common
from captum_maskopt.guard import progress_bar
from captum_maskopt.settings import resolve_seed
from captum_maskopt.baselines import format_baselines
from captum_maskopt.objective import PROBABILITY_FUNCTIONS, class_probabilities

__all__ = ["RISE"]


class RISE(PerturbationAttribution):
    r"""
    Randomized Input Sampling for Explanation (Petsiuk et al., BMVC 2018).

    The model sees the image under many random smooth masks ``M_k``: a coarse
    ``grid_size x grid_size`` grid of cells, each kept with probability ``p``,
    upsampled bilinearly to a little more than the image and cropped at a random
    offset. A pixel's attribution is the expected target probability when it is kept,

        ``S(x) = sum_k p_y(M_k * x + (1 - M_k) * b) * M_k / (n_masks * p)``

    with ``b`` the baseline. The masks depend only on ``seed``, not on the batch, so
    an example's attribution does not depend on the other examples in its batch.

    Examples::

        >>> attributions = RISE(model).attribute(images, target=labels, n_masks=2000)
    """

    def __init__(self, forward_func: Any) -> None:
        r"""
        Args:
            forward_func (Callable or torch.nn.Module): the model or any function that
                        maps images ``(N, C, H, W)`` (and ``additional_forward_args``)
                        to class scores.
        """
        PerturbationAttribution.__init__(self, forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: Tensor,
        baselines: Any = None,
        target: common.TargetForm = None,
        additional_forward_args: Any = None,
        n_masks: int = 1000,
        grid_size: int = 7,
        keep_probability: float = 0.5,
        perturbations_per_eval: int = 16,
        probability: str = "softmax",
        seed: Optional[int] = 0,
        show_progress: bool = False,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): images ``(N, C, H, W)``, floating point.
            baselines (scalar or Tensor, optional): what a masked-out pixel becomes: a
                        number or a tensor broadcastable to ``inputs`` (batch
                        dimension 1 or N). Default: None (zeros)
            target (int, tuple, Tensor or list, optional): the output index to explain
                        per example, in any form Captum accepts. Default: None
            additional_forward_args (Any, optional): further arguments to
                        ``forward_func``; tensors with a batch dimension are repeated
                        with the masked copies. Default: None
            n_masks (int, optional): number of random masks; more gives smoother,
                        less noisy maps. Default: 1000
            grid_size (int, optional): cells per side of the coarse random grid.
                        Default: 7
            keep_probability (float, optional): probability that a cell is kept.
                        Default: 0.5
            perturbations_per_eval (int, optional): masks per forward pass (times
                        the batch size). Default: 16
            probability (str, optional): how outputs become probabilities:
                        ``"softmax"``, ``"sigmoid"`` or ``"identity"``.
                        Default: "softmax"
            seed (int, optional): seed of the masks; None draws one. Default: 0
            show_progress (bool, optional): show a progress bar over the forward
                        passes. Default: False

        Returns:
            *Tensor* of **attributions** with the shape of ``inputs``: each pixel's
            value, repeated over the channels.
        """
        if not isinstance(inputs, Tensor):
            raise TypeError("inputs must be one tensor of images (N, C, H, W); RISE takes no tuples")
        if inputs.dim() != 4:
            raise ValueError(f"inputs must be images (N, C, H, W), got shape {tuple(inputs.shape)}")
        n = common.check_inputs((inputs,), "inputs", floating=True)
        if isinstance(baselines, list):
            raise TypeError("baselines must be None, a number or a tensor; RISE takes one baseline")
        (baseline,) = format_baselines(baselines, (inputs,))[0]
        for name, value in (("n_masks", n_masks), ("grid_size", grid_size),
                            ("perturbations_per_eval", perturbations_per_eval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < keep_probability <= 1:
            raise ValueError(f"keep_probability must be in (0, 1], got {keep_probability!r}")
        if probability not in PROBABILITY_FUNCTIONS:
            raise ValueError(f"probability must be one of {PROBABILITY_FUNCTIONS}, got {probability!r}")
        args = common.format_additional_forward_args(additional_forward_args, n)
        grids, shifts = self._draw(n_masks, grid_size, keep_probability, resolve_seed(seed))
        height, width = inputs.shape[-2:]

        with torch.no_grad():
            original = self.forward_func(inputs, *args)
            target_index = common.format_target(target, n, original.shape)
            common.check_output(original, n, target_index, probability)
            chunks = range(0, n_masks, perturbations_per_eval)
            saliency = torch.zeros(n, height, width, dtype=torch.float64, device=inputs.device)
            with progress_bar(show_progress, len(chunks), "RISE") as progress:
                for number, start in enumerate(chunks):
                    masks = self._masks(grids[start : start + perturbations_per_eval],
                                        shifts[start : start + perturbations_per_eval],
                                        height, width).to(inputs)
                    k = masks.shape[0]
                    # Mask-major: row j * n + i is example i under mask j.
                    views = (baseline + masks[:, None] * (inputs - baseline)[None]).flatten(0, 1)
                    output = self.forward_func(views, *common.expand_additional_forward_args(args, None, k))
                    rows_target = None if target_index is None else target_index.repeat(k, 1).to(output.device)
                    scores = common.select_target(class_probabilities(output, probability), rows_target)
                    saliency += torch.einsum(
                        "kn,khw->nhw", scores.view(k, n).double(), masks[:, 0].double()
                    )
                    if progress is not None:
                        progress(number + 1)
        saliency /= n_masks * keep_probability
        return saliency.to(inputs.dtype).unsqueeze(1).expand_as(inputs).contiguous()

    @staticmethod
    def _draw(
        n_masks: int, grid_size: int, keep_probability: float, seed: int
    ) -> Tuple[Tensor, Tensor]:
        """The random cells and crop offsets of all masks, drawn at once so that the
        masks do not depend on how many go through the model together."""
        generator = torch.Generator()
        generator.manual_seed(seed)
        grids = (torch.rand(n_masks, 1, grid_size, grid_size, generator=generator) < keep_probability)
        shifts = torch.rand(n_masks, 2, generator=generator)
        return grids.to(torch.float32), shifts

    @staticmethod
    def _masks(grids: Tensor, shifts: Tensor, height: int, width: int) -> Tensor:
        """Upsample the cells to ``(grid + 1)`` cells' worth of pixels and crop each
        mask at its offset (within one cell): ``(k, 1, height, width)``."""
        grid_size = grids.shape[-1]
        cell_h, cell_w = math.ceil(height / grid_size), math.ceil(width / grid_size)
        large = F.interpolate(grids, size=((grid_size + 1) * cell_h, (grid_size + 1) * cell_w),
                              mode="bilinear", align_corners=False)
        masks = []
        for mask, (fy, fx) in zip(large, shifts.tolist()):
            dy, dx = int(fy * cell_h), int(fx * cell_w)
            masks.append(mask[:, dy : dy + height, dx : dx + width])
        return torch.stack(masks)
