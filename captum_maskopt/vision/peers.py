"""MaskOptimization and its peers on an image classifier, each giving one score per
pixel.

Every method explains the same model inputs and the same class, and what a removed
pixel becomes is the same for all that remove: 0 in the model's input space (mid grey
for the EfficientNet preprocessing, the mean colour of mean-centred inputs). The
settings are the usual ones of each method:

* ``MaskOptimization``: its defaults, which for an ``(N, C, H, W)`` input are the smooth
  mask on 8-pixel cells with total variation, and the zero baseline;
* ``IntegratedGradients``: 50 steps from the zero baseline;
* ``SmoothGrad``: Captum's ``NoiseTunnel`` over ``Saliency``, 20 samples, noise std
  15 % of the input range;
* ``Occlusion``: 32 x 32 windows, stride 16;
* ``FeatureAblation`` and ``KernelShap`` (300 samples): SLIC superpixels (about 50);
* ``LayerGradCam``: on the given layer, upsampled bilinearly to the input;
* ``RISE``: 1,000 random 7 x 7 masks.

Maps are channel sums (:func:`~captum_maskopt.vision.metrics.pixel_map`), so the
signs of IntegratedGradients stay.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, TypeAlias

import torch
from torch import Tensor, nn

from captum_maskopt.attr import MaskOptimization
from captum_maskopt.hashing import seeded_draws
from captum_maskopt.registry import Registry
from captum_maskopt.vision.features import superpixel_mask
from captum_maskopt.vision.metrics import pixel_map
from captum_maskopt.vision.rise import RISE

__all__ = ["PEERS", "pixel_attributions"]

ImagePeer: TypeAlias = Callable[[nn.Module, Optional[nn.Module], Tensor, Tensor, int, Mapping[str, Any]], Tensor]
"""``peer(model, layer, images, targets, seed, mask_options)``: attributions shaped like
``images`` (or one channel); ``mask_options`` only concern MaskOptimization."""
PEERS: Registry[ImagePeer] = Registry("image method")
"""The methods of the image comparison, by name; a new peer is one registered
function."""


@PEERS.register("MaskOptimization")
def _mask_optimization(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    result: Tensor = MaskOptimization(model).attribute(images, target=targets, **{"seed": seed, **options})
    return result


@PEERS.register("IntegratedGradients")
def _integrated_gradients(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    from captum.attr import IntegratedGradients

    result: Tensor = IntegratedGradients(model).attribute(
        images, target=targets, n_steps=50, internal_batch_size=25
    )
    return result


@PEERS.register("SmoothGrad")
def _smoothgrad(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    from captum.attr import NoiseTunnel, Saliency

    spread = float(images.max() - images.min())
    result: Tensor = NoiseTunnel(Saliency(model)).attribute(
        images, target=targets, nt_type="smoothgrad", nt_samples=20,
        nt_samples_batch_size=10, stdevs=0.15 * spread,
    )
    return result


@PEERS.register("Occlusion")
def _occlusion(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    from captum.attr import Occlusion

    result: Tensor = Occlusion(model).attribute(
        images, target=targets, sliding_window_shapes=(images.shape[1], 32, 32),
        strides=(images.shape[1], 16, 16), perturbations_per_eval=16,
    )
    return result


@PEERS.register("FeatureAblation")
def _feature_ablation(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    from captum.attr import FeatureAblation

    result: Tensor = FeatureAblation(model).attribute(
        images, target=targets, feature_mask=superpixel_mask(images), perturbations_per_eval=16
    )
    return result


@PEERS.register("KernelShap")
def _kernel_shap(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    from captum.attr import KernelShap

    # Captum's KernelShap fits one surrogate per call: one image at a time.
    method = KernelShap(model)
    rows = []
    for i in range(images.shape[0]):
        image = images[i : i + 1]
        mask = superpixel_mask(image)
        if int(mask.max()) < 1:
            raise ValueError(f"KernelShap needs at least two superpixels; image {i} has one")
        rows.append(method.attribute(
            image, target=targets[i : i + 1], feature_mask=mask,
            n_samples=300, perturbations_per_eval=16,
        ))
    return torch.cat(rows)


@PEERS.register("LayerGradCam")
def _grad_cam(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    if layer is None:
        raise ValueError("LayerGradCam needs layer: the model's last convolutional block")
    coarse = LayerGradCam(model, layer).attribute(images, target=targets, relu_attributions=True)
    result: Tensor = LayerAttribution.interpolate(coarse, tuple(images.shape[-2:]), "bilinear")
    return result


@PEERS.register("RISE")
def _rise(
    model: nn.Module, layer: Optional[nn.Module], images: Tensor, targets: Tensor, seed: int,
    options: Mapping[str, Any],
) -> Tensor:
    result: Tensor = RISE(model).attribute(images, target=targets, n_masks=1000, seed=seed)
    return result


def pixel_attributions(
    name: str,
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    layer: Optional[nn.Module] = None,
    seed: int = 0,
    mask_options: Optional[Mapping[str, Any]] = None,
) -> Tensor:
    """Explain ``images`` with method ``name`` and return one score per pixel.

    Args:
        name: a name of :data:`PEERS`.
        model: the classifier, ``(N, C, H, W)`` to logits, in evaluation mode.
        images: ``(N, C, H, W)`` model inputs.
        targets: ``(N,)`` the classes to explain.
        layer: the layer Grad-CAM reads (the last convolutional block); only
            ``LayerGradCam`` needs it. Default: None
        seed: seed of the methods that draw at random (MaskOptimization's noise,
            RISE's masks; SmoothGrad's noise and KernelShap's samples come from
            torch's generator, seeded from it and the method's name for the call and
            given back to the caller afterwards, so that they do not depend on what
            ran before). Default: 0
        mask_options: keyword arguments for MaskOptimization's ``attribute``, e.g.
            ``{"n_steps": 50}``. Default: None (its defaults)

    Returns:
        ``(N, H, W)`` per-pixel scores, higher meaning more important.
    """
    explain = PEERS[name]
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    targets = torch.as_tensor(targets).reshape(-1)
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets must hold one class per image ({images.shape[0]}), got {targets.shape[0]}")
    with seeded_draws(seed, name, images.device):
        attributions = explain(model, layer, images, targets, seed, dict(mask_options or {}))
    return pixel_map(attributions)
