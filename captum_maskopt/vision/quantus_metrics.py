"""MaskOptimization and its peers as Quantus explanation functions, and Quantus
metrics on an image comparison.

Quantus metrics call ``explain_func(model=..., inputs=..., targets=...,
**explain_func_kwargs)`` with numpy batches and expect numpy attributions back;
:func:`explain_func` is such a function for every method of
:data:`~captum_maskopt.vision.peers.PEERS` (``explain_func_kwargs={"method":
"MaskOptimization"}``, say). It returns the channel-summed pixel maps ``(N, 1, H, W)``
that the comparison scores, so Quantus sees what the other metrics see.

:func:`quantus_scores` runs :data:`QUANTUS_METRICS` (FaithfulnessCorrelation,
PixelFlipping, MaxSensitivity) for each method and gives the columns
``quantus_<metric>`` of ``compare image --quantus``. Needs ``quantus`` (``pip install
quantus``); Quantus 0.6.0 works with numpy 2 except where it calls the removed
``np.trapz`` (PixelFlipping's per-sample AUC), so the PixelFlipping curves are taken and
their area computed here.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_maskopt.vision.metrics import pixel_map
from captum_maskopt.vision.peers import PEERS

__all__ = ["QUANTUS_METRICS", "explain_func", "quantus_scores"]


def explain_func(
    model: nn.Module,
    inputs: Any,
    targets: Any,
    method: str = "MaskOptimization",
    layer: Optional[nn.Module] = None,
    seed: int = 0,
    mask_options: Optional[Mapping[str, Any]] = None,
    **ignored: Any,
) -> np.ndarray:
    """Attributions of ``inputs`` for ``targets`` by ``method``, in Quantus's
    convention.

    Args:
        model: the classifier (Quantus passes the unwrapped ``nn.Module``).
        inputs: ``(N, C, H, W)`` numpy array or tensor.
        targets: ``(N,)`` class indices, numpy or tensor (or one int).
        method: a name of :data:`~captum_maskopt.vision.peers.PEERS`.
        layer: the layer LayerGradCam reads.
        seed: the methods' seed.
        mask_options: MaskOptimization settings over its defaults.
        **ignored: further keywords Quantus may pass (``device``, ...).

    Returns:
        float32 ``(N, 1, H, W)`` pixel maps.
    """
    device = next(iter(model.parameters()), torch.empty(0)).device
    images = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    if images.dim() != 4:
        raise ValueError(f"inputs must be (N, C, H, W), got shape {tuple(images.shape)}")
    classes = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).reshape(-1)
    if classes.numel() == 1:
        classes = classes.expand(images.shape[0])
    attributions = PEERS[method](model, layer, images, classes, seed, dict(mask_options or {}))
    maps = pixel_map(attributions.detach()).unsqueeze(1)
    result: np.ndarray = maps.float().cpu().numpy()
    return result


def _pixel_flipping_auc(curves: Any) -> float:
    """Mean over images of the area under the PixelFlipping curve, x in [0, 1]."""
    areas = []
    for curve in curves:
        values = np.asarray(curve, dtype=np.float64)
        areas.append(float(np.trapezoid(values, dx=1.0 / max(1, len(values) - 1))))
    return float(np.mean(areas))


def _metrics(samples: int, pixels: int) -> Dict[str, Tuple[Callable[[], Any], Callable[[Any], float]]]:
    import quantus

    # About 32 steps whatever the image size, so PixelFlipping costs 32 forwards per image.
    step = max(1, pixels // 32)
    return {
        "FaithfulnessCorrelation": (
            lambda: quantus.FaithfulnessCorrelation(
                nr_runs=32, subset_size=max(1, pixels // 64), disable_warnings=True, display_progressbar=False,
                return_aggregate=False,
            ),
            lambda scores: float(np.nanmean(scores)),
        ),
        "PixelFlipping": (
            lambda: quantus.PixelFlipping(
                features_in_step=step, disable_warnings=True, display_progressbar=False,
                return_auc_per_sample=False,
            ),
            _pixel_flipping_auc,
        ),
        "MaxSensitivity": (
            lambda: quantus.MaxSensitivity(
                nr_samples=samples, lower_bound=0.2, disable_warnings=True, display_progressbar=False,
                return_aggregate=False,
            ),
            lambda scores: float(np.nanmean(scores)),
        ),
    }


QUANTUS_METRICS = ("FaithfulnessCorrelation", "PixelFlipping", "MaxSensitivity")
"""The Quantus metrics of :func:`quantus_scores`: higher is better for the first, lower
for the other two (the probability left along the flipping curve, the largest change
of the attribution under small input noise)."""


def quantus_scores(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    methods: Sequence[str],
    layer: Optional[nn.Module] = None,
    seed: int = 0,
    mask_options: Optional[Mapping[str, Any]] = None,
    sensitivity_samples: int = 3,
    progress: Optional[Callable[[str], None]] = None,
) -> Tuple[Dict[str, Dict[str, float]], Dict[str, Dict[str, str]]]:
    """``{method: {"quantus_<metric>": value}}`` for :data:`QUANTUS_METRICS`, and
    ``{method: {"quantus_<metric>": reason}}`` for those Quantus refused (its input
    checks reject, say, attributions that are all negative): a refused metric has no
    value rather than a made-up one.

    Args:
        model: the classifier, in evaluation mode.
        images: ``(N, C, H, W)`` model inputs.
        targets: ``(N,)`` the classes explained.
        methods: names of :data:`~captum_maskopt.vision.peers.PEERS`.
        layer: the layer LayerGradCam reads.
        seed: the methods' and Quantus's seed.
        mask_options: MaskOptimization settings over its defaults.
        sensitivity_samples: MaxSensitivity's perturbed copies per image, each one more
            attribution by every method.
        progress: called with ``"<method> <metric>"`` after each.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    x_batch = images.detach().cpu().numpy()
    y_batch = targets.detach().cpu().numpy()
    built = _metrics(sensitivity_samples, images.shape[-1] * images.shape[-2])
    results: Dict[str, Dict[str, float]] = {}
    refused: Dict[str, Dict[str, str]] = {}
    for method in methods:
        kwargs: Dict[str, Any] = {"method": method, "layer": layer, "seed": seed, "mask_options": dict(mask_options or {})}
        a_batch = explain_func(model, x_batch, y_batch, **kwargs)
        results[method] = {}
        for name in QUANTUS_METRICS:
            make, summarise = built[name]
            np.random.seed(seed)
            try:
                scores = make()(
                    model=model, x_batch=x_batch, y_batch=y_batch, a_batch=a_batch,
                    explain_func=explain_func, explain_func_kwargs=kwargs, device=str(images.device),
                    channel_first=True,
                )
            except AssertionError as error:
                refused.setdefault(method, {})[f"quantus_{name}"] = f"Quantus refused: {error}"
            else:
                value = summarise(scores)
                if np.isfinite(value):
                    results[method][f"quantus_{name}"] = value
                else:
                    refused.setdefault(method, {})[f"quantus_{name}"] = "Quantus gave no finite score"
            if progress is not None:
                progress(f"{method} {name}")
    return results, refused
