"""Image-specific evaluation: per-pixel maps, the pointing game, the model's class
probabilities with pixels removed (for the deletion / insertion curves of
:mod:`captum_maskopt.metrics`), and Captum's infidelity and max-sensitivity set up for
per-pixel maps.

Attribution maps here are per pixel, ``(N, H, W)``; :func:`pixel_map` reduces a
method's ``(N, C, H, W)`` attributions over the channels.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "POINTING_TOLERANCE",
    "pixel_map",
    "pointing_game",
    "probabilities_with_pixels",
    "patch_removal",
    "image_infidelity",
    "image_sensitivity",
]

#: Pixels of slack around the object in the pointing game (Zhang et al. 2016).
POINTING_TOLERANCE = 15


def pixel_map(attributions: Tensor) -> Tensor:
    """One score per pixel: ``(N, C, H, W)`` attributions summed over the channels
    (signed, so that evidence against the class stays negative), ``(N, H, W)``.

    Args:
        attributions: ``(N, C, H, W)`` (``C`` may be 1, e.g. Grad-CAM) or already
            ``(N, H, W)``, returned as it is.
    """
    if not isinstance(attributions, Tensor) or attributions.dim() not in (3, 4):
        shape = tuple(attributions.shape) if isinstance(attributions, Tensor) else type(attributions).__name__
        raise ValueError(f"attributions must be (N, C, H, W) or (N, H, W), got {shape}")
    attributions = attributions.detach()
    return attributions.sum(dim=1) if attributions.dim() == 4 else attributions


def _dilate(region: Tensor, radius: float) -> Tensor:
    """Grow a bool ``(N, H, W)`` region by every pixel within ``radius`` (Euclidean)."""
    reach = int(math.floor(radius))
    if reach < 1:
        return region
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    disk = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).to(torch.float32)
    grown = F.conv2d(region.unsqueeze(1).to(torch.float32), disk[None, None].to(region.device), padding=reach)
    return grown.squeeze(1) > 0.5


def pointing_game(
    attributions: Tensor, region: Tensor, tolerance: float = POINTING_TOLERANCE
) -> Tensor:
    """Per image, whether the attribution's maximum points at the object: a hit when
    every pixel that attains the maximum lies within ``tolerance`` pixels of
    ``region`` (Zhang et al. 2016, "Top-down neural attention by excitation backprop").
    Requiring *every* maximal pixel keeps a flat or saturated map from scoring by
    chance of its tie order.

    Args:
        attributions: ``(N, H, W)`` per-pixel scores, higher meaning more important.
        region: bool ``(N, H, W)`` or ``(H, W)``, the object's pixels.
        tolerance: slack in pixels around the region. Default: 15

    Returns:
        bool tensor ``(N,)``.
    """
    if attributions.dim() != 3:
        raise ValueError(
            f"attributions must be per-pixel maps (N, H, W), got shape {tuple(attributions.shape)}"
        )
    if region.dtype != torch.bool or region.shape[-2:] != attributions.shape[-2:] or region.dim() not in (2, 3):
        raise ValueError(
            "region must be a bool tensor (N, H, W) or (H, W) matching the attributions' "
            f"{tuple(attributions.shape[-2:])}, got dtype {region.dtype} and shape {tuple(region.shape)}"
        )
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    region = region.expand_as(attributions).to(attributions.device)
    near = _dilate(region, tolerance)
    scores = attributions.detach()
    peak = scores.flatten(1).amax(dim=1).view(-1, 1, 1)
    at_peak = scores == peak
    return ~(at_peak & ~near).flatten(1).any(dim=1)


def probabilities_with_pixels(
    forward_func: Callable[[Tensor], Tensor],
    image: Tensor,
    substrate: Tensor,
    batch_size: int = 16,
) -> Callable[[Tensor], Tensor]:
    """``keep (N, H * W) -> class probabilities (N, classes)`` for one image: pixels
    where ``keep`` is False take the ``substrate``'s values (all channels), e.g. zeros
    for deletion and a blurred copy of the image for insertion (Petsiuk et al. 2018).
    Use it with :func:`captum_maskopt.metrics.deletion_curve` and
    :func:`~captum_maskopt.metrics.insertion_curve`.

    Args:
        forward_func: the model, mapping ``(B, C, H, W)`` to logits.
        image: ``(1, C, H, W)`` the model input.
        substrate: broadcastable to ``image``, what removed pixels become.
        batch_size: images per forward pass.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be one model input (1, C, H, W), got shape {tuple(image.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    height, width = image.shape[-2:]
    substrate = substrate.to(image).expand_as(image)

    def probabilities_with(keep: Tensor) -> Tensor:
        if keep.dim() != 2 or keep.shape[1] != height * width:
            raise ValueError(f"keep must be (N, {height * width}), got shape {tuple(keep.shape)}")
        keep = keep.to(image.device).view(-1, 1, height, width)
        rows = []
        with torch.no_grad():
            for start in range(0, keep.shape[0], batch_size):
                views = torch.where(keep[start : start + batch_size], image, substrate)
                rows.append(torch.softmax(forward_func(views), dim=-1).double().cpu())
        return torch.cat(rows)

    return probabilities_with


PerturbFunc = Callable[[Tensor], Tuple[Tensor, Tensor]]


def patch_removal(
    patch_size: int = 16,
    removal_probability: float = 0.25,
    baseline: Union[float, Tensor] = 0.0,
    seed: int = 0,
) -> PerturbFunc:
    """A perturbation for :func:`captum.metrics.infidelity` that removes random square
    patches, the "square removal" of Yeh et al. 2019: each ``patch_size`` patch of each
    copy is set to ``baseline`` with probability ``removal_probability``.

    It returns ``(perturbation, perturbed_inputs)`` where ``perturbation`` is 1 on the
    removed pixels (every channel) and 0 elsewhere, so that with attributions spread
    evenly over the channels (see :func:`image_infidelity`) infidelity compares the
    summed attribution of the removed pixels with the drop of the model's output.

    Args:
        patch_size: side of a patch in pixels. Default: 16
        removal_probability: chance that a patch is removed. Default: 0.25
        baseline: what removed pixels become: a number or a tensor broadcastable to
            one image ``(1, C, H, W)``. Default: 0.0
        seed: seed of the patch draws; the function draws afresh at every call, in
            the same sequence for the same seed. Default: 0
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
    if not 0 < removal_probability < 1:
        raise ValueError(f"removal_probability must be in (0, 1), got {removal_probability!r}")
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: Tensor) -> Tuple[Tensor, Tensor]:
        n, _, height, width = inputs.shape
        cells = (math.ceil(height / patch_size), math.ceil(width / patch_size))
        removed = torch.rand((n, 1) + cells, generator=generator) < removal_probability
        removed = removed.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
        removed = removed[..., :height, :width].to(inputs.device)
        fill = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device)
        perturbed = torch.where(removed, fill, inputs)
        return removed.expand_as(inputs).to(inputs.dtype), perturbed

    return perturb


def _check_maps(maps: Tensor, images: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if maps.shape != (images.shape[0],) + tuple(images.shape[-2:]):
        raise ValueError(
            f"maps must be per-pixel maps (N, H, W) = {(images.shape[0],) + tuple(images.shape[-2:])} "
            f"for the images, got shape {tuple(maps.shape)}"
        )


def image_infidelity(
    forward_func: Callable[[Tensor], Tensor],
    images: Tensor,
    maps: Tensor,
    target: Tensor,
    n_perturb_samples: int = 32,
    patch_size: int = 16,
    baseline: Union[float, Tensor] = 0.0,
    seed: int = 0,
    perturbations_per_eval: int = 16,
) -> Tensor:
    """Captum's :func:`~captum.metrics.infidelity` of per-pixel maps under
    :func:`patch_removal`, on the target's softmax probability and normalised (the
    best rescaling of each map is applied first, so maps of any scale compare):
    how well the summed attribution of removed patches predicts the probability drop.
    Lower is better.

    Args:
        forward_func: the model, ``(B, C, H, W)`` to logits.
        images: ``(N, C, H, W)`` model inputs.
        maps: ``(N, H, W)`` per-pixel attributions (see :func:`pixel_map`).
        target: ``(N,)`` the explained classes.
        n_perturb_samples: random removals per image. Default: 32
        patch_size: side of a removed patch in pixels. Default: 16
        baseline: what removed pixels become. Default: 0.0
        seed: seed of the removals. Default: 0
        perturbations_per_eval: perturbed copies of each image per forward pass.
            Default: 16

    Returns:
        ``(N,)`` infidelity per image.
    """
    from captum.metrics import infidelity

    _check_maps(maps, images)
    if isinstance(perturbations_per_eval, bool) or not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
        raise ValueError(f"perturbations_per_eval must be a positive integer, got {perturbations_per_eval!r}")
    channels = images.shape[1]
    # Spread each pixel's score evenly over the channels: the perturbation marks every
    # channel of a removed pixel, so the dot product is the pixel map's sum over it.
    spread = (maps.to(images.dtype) / channels).unsqueeze(1).expand_as(images)

    def probabilities(x: Tensor) -> Tensor:
        return torch.softmax(forward_func(x), dim=-1)

    result: Tensor = infidelity(
        probabilities, patch_removal(patch_size, baseline=baseline, seed=seed), images, spread,
        target=target, n_perturb_samples=n_perturb_samples,
        # Captum wants whole images' worth of copies per pass, at most all of them.
        max_examples_per_batch=images.shape[0] * min(perturbations_per_eval, n_perturb_samples),
        normalize=True,
    )
    return result


def image_sensitivity(
    explain: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    maps: Tensor,
    target: Tensor,
    n_perturb_samples: int = 3,
    perturb_radius: float = 0.02,
    seed: int = 0,
) -> Tensor:
    """Captum's :func:`~captum.metrics.sensitivity_max` of a method's per-pixel maps:
    the largest relative change ``||map(x + d) - map(x)|| / ||map(x)||`` over
    ``n_perturb_samples`` uniform perturbations ``|d| <= perturb_radius``. Lower is
    better.

    Args:
        explain: ``explain(images, target) -> maps (B, H, W)``, the method.
        images: ``(N, C, H, W)`` model inputs.
        maps: ``(N, H, W)`` the method's maps of ``images``; reused instead of
            explaining the unperturbed images again.
        target: ``(N,)`` the explained classes.
        n_perturb_samples: perturbations per image (each one attribution).
            Default: 3
        perturb_radius: the largest change of an input value. Default: 0.02
        seed: seed of the perturbations (Captum draws them from torch's global
            generator, which is seeded here and restored afterwards). Default: 0

    Returns:
        ``(N,)`` max-sensitivity per image.
    """
    from captum.metrics import sensitivity_max

    _check_maps(maps, images)
    if isinstance(n_perturb_samples, bool) or not isinstance(n_perturb_samples, int) or n_perturb_samples < 1:
        raise ValueError(f"n_perturb_samples must be a positive integer, got {n_perturb_samples!r}")

    def explanation(inputs: Any, target: Tensor) -> Any:
        # Captum first explains the unperturbed inputs, passed (and expected back) as a
        # tuple: those maps are known already.
        if isinstance(inputs, tuple):
            return (maps,) if inputs[0] is images else (explain(inputs[0], target),)
        return explain(inputs, target)

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        result: Tensor = sensitivity_max(
            explanation, images, perturb_radius=perturb_radius,
            n_perturb_samples=n_perturb_samples, target=target,
        )
        return result
    finally:
        torch.random.set_rng_state(state)
