"""Baselines: what a removed feature becomes.

``attribute`` takes baselines in every form Captum accepts (``None``, a number, a
tensor broadcastable to the input, or a tuple of those for tuple inputs). A *list* of
such baselines means several baselines at once: each gives its own keep and remove
views and the objective averages over them, so the mask cannot exploit one particular
fill value (the paper uses black, white and the mean colour together for images).

This module formats them and offers :func:`gaussian_blur` for the blur baseline.
"""

from __future__ import annotations

import math
from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_maskopt.formatting import ArgumentTypeError, ArgumentValueError, broadcast_shape

__all__ = ["gaussian_blur", "format_baselines"]

BaselineForm = Union[None, int, float, Tensor, Tuple[Union[int, float, Tensor], ...]]


def gaussian_blur(images: Tensor, sigma: float = 10.0) -> Tensor:
    """Blur ``(N, C, H, W)`` images with a Gaussian of standard deviation ``sigma``
    pixels (reflect padding), for use as a baseline: a blurred image removes detail
    without introducing colours the model never saw.

    Args:
        images: floating tensor ``(N, C, H, W)``.
        sigma: blur strength in pixels; must be > 0. The kernel is truncated at three
            standard deviations and at the image size.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError("images must be a (N, C, H, W) tensor")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    channels, height, width = images.shape[1:]
    blurred = images
    for dim, size in ((2, height), (3, width)):
        radius = min(int(math.ceil(3 * sigma)), size - 1)
        offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
        kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum()).repeat(channels, 1, 1)
        if dim == 2:
            kernel, padding = kernel.unsqueeze(-1), (0, 0, radius, radius)
        else:
            kernel, padding = kernel.unsqueeze(-2), (radius, radius, 0, 0)
        blurred = F.conv2d(F.pad(blurred, padding, mode="reflect"), kernel, groups=channels)
    return blurred


def _format_one(
    baselines: BaselineForm, inputs: Tuple[Tensor, ...], argument: str
) -> Tuple[Tensor, ...]:
    if baselines is None:
        baselines = tuple(0.0 for _ in inputs)
    elif not isinstance(baselines, tuple):
        baselines = (baselines,)
    if len(baselines) != len(inputs):
        raise ArgumentValueError(
            f"{argument} must give one baseline per input tensor: got {len(baselines)} "
            f"for {len(inputs)} input tensor(s)"
        )
    formatted = []
    for i, (baseline, x) in enumerate(zip(baselines, inputs)):
        name = argument if len(inputs) == 1 else f"{argument}[{i}]"
        if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
            # A number for integer inputs keeps its own dtype until it is checked below.
            dtype = x.dtype if x.is_floating_point() else None
            baseline = torch.tensor(baseline, dtype=dtype, device=x.device)
        if not isinstance(baseline, Tensor):
            raise ArgumentTypeError(
                f"{name} must be None, a number or a tensor, got {type(baseline).__name__}"
            )
        baseline = baseline.to(device=x.device)
        if baseline.dim() == x.dim():
            fits = baseline.shape[0] in (1, x.shape[0]) and all(
                b in (1, s) for b, s in zip(baseline.shape[1:], x.shape[1:])
            )
        else:
            # A baseline without the batch dimension, broadcast like in Captum.
            fits = broadcast_shape(baseline.shape, x.shape[1:]) is not None and baseline.dim() <= x.dim() - 1
            if fits:
                baseline = baseline.reshape((1,) * (x.dim() - baseline.dim()) + tuple(baseline.shape))
        if not fits:
            raise ArgumentValueError(
                f"{name} has shape {tuple(baseline.shape)}, which does not broadcast to the "
                f"input's shape {tuple(x.shape)} (the batch dimension must be 1 or "
                f"{x.shape[0]})"
            )
        if not x.is_floating_point() and baseline.is_floating_point():
            # The cast to the ids' dtype would truncate it into another token.
            whole = torch.isfinite(baseline) & (baseline == baseline.round())
            if not bool(whole.all()):
                raise ArgumentValueError(
                    f"{name} must hold whole numbers for the integer input ({x.dtype}, e.g. "
                    f"token ids), got {baseline[~whole][0].item():g}"
                )
        # Checked after the cast: a float64 value can overflow the input's float32.
        baseline = baseline.to(dtype=x.dtype)
        if baseline.is_floating_point() and not bool(torch.isfinite(baseline).all()):
            raise ArgumentValueError(
                f"{name} contains non-finite values (nan or inf) in the input's dtype {x.dtype}"
            )
        formatted.append(baseline)
    return tuple(formatted)


def format_baselines(
    baselines: Union[BaselineForm, List[BaselineForm]], inputs: Tuple[Tensor, ...]
) -> List[Tuple[Tensor, ...]]:
    """Bring ``baselines`` to a list of tuples, one tuple per baseline, one tensor per
    input, each broadcastable to its input with a batch dimension of 1 or N."""
    if isinstance(baselines, list):
        if not baselines:
            raise ArgumentValueError("baselines is an empty list; pass None for zero baselines")
        return [
            _format_one(b, inputs, f"baselines[{k}]") for k, b in enumerate(baselines)
        ]
    return [_format_one(baselines, inputs, "baselines")]
