"""Image settings for :class:`~captum_maskopt.MaskOptimization`.

For a single ``(N, C, H, W)`` input without a ``feature_mask`` the core already picks
the image parametrization: a smooth mask of Gaussian kernels on a grid of
``mask_cell_size`` pixel cells, upsampled to the image, with a total-variation term
(weight 10). What the core cannot know is what a removed pixel should become for a
given model's preprocessing; :func:`image_settings` supplies that, following the
paper: a strong blur of the image, or several colours at once (black, white and the
image's mean colour), averaged in the loss.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from torch import Tensor

from captum_maskopt.baselines import gaussian_blur

__all__ = ["BASELINE_KINDS", "BLUR_SIGMA", "image_settings"]

BASELINE_KINDS = ("blur", "colours", "zero")
#: Standard deviation of the blur baseline, in pixels.
BLUR_SIGMA = 10.0


def image_settings(
    images: Tensor,
    baseline: str = "blur",
    value_range: Tuple[float, float] = (-127.0 / 128.0, 1.0),
    blur_sigma: float = BLUR_SIGMA,
) -> Dict[str, Any]:
    """Keyword arguments for ``MaskOptimization.attribute`` on images.

    Args:
        images: ``(N, C, H, W)`` model inputs, the ones that will be explained.
        baseline: what a removed pixel becomes: ``"blur"`` (the image blurred with
            :func:`captum_maskopt.baselines.gaussian_blur`), ``"colours"`` (black,
            white and each image's mean colour at once, averaged in the objective;
            three times the model evaluations of one baseline) or ``"zero"`` (0 in
            input space: the mean colour for mean-centred preprocessing).
            Default: "blur"
        value_range: the input values of black and white pixels after the model's
            preprocessing, for ``"colours"``. Default: (-127/128, 1.0), those of
            :func:`~captum_maskopt.vision.preprocess`
        blur_sigma: blur strength in pixels for ``"blur"``. Default: {sigma}

    Returns:
        ``{"baselines": ...}``, to be passed as ``attribute(images, target=...,
        **image_settings(images))``; other settings can be added or overridden.

    Examples::

        >>> mo = MaskOptimization(model)
        >>> attributions = mo.attribute(images, target=labels, **image_settings(images))
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")
    if baseline not in BASELINE_KINDS:
        raise ValueError(f"baseline must be one of {BASELINE_KINDS}, got {baseline!r}")
    low, high = value_range
    if not low < high:
        raise ValueError(f"value_range must be (black, white) with black < white, got {value_range!r}")
    if baseline == "blur":
        return {"baselines": gaussian_blur(images.detach(), blur_sigma)}
    if baseline == "colours":
        mean = images.detach().mean(dim=(2, 3), keepdim=True)
        return {"baselines": [float(low), float(high), mean]}
    return {"baselines": 0.0}


if image_settings.__doc__:
    image_settings.__doc__ = image_settings.__doc__.replace("{sigma}", str(BLUR_SIGMA))
