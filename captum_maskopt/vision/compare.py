"""Side-by-side comparison of attribution methods on an image classifier.

:func:`compare_methods` explains the same photos with every method of
:data:`~captum_maskopt.vision.peers.PEERS` and scores each per-pixel map:

* deletion AUC: pixels are removed (set to 0 in the model's input space, mid grey) in
  the order of the map, lower is better; insertion AUC: pixels are put back in that
  order into a blurred copy of the photo (Petsiuk et al. 2018), higher is better;
  both over :data:`CURVE_POINTS` points with :mod:`captum_maskopt.metrics`;
* Captum's infidelity under random patch removal and max-sensitivity (lower is better),
  see :mod:`captum_maskopt.vision.metrics`;
* seconds per image of the attribution call;
* on photos with an object outline (the quokka): the pointing game and the share of
  positive attribution inside the outline.

:func:`goals` reads the issue's goals off the results.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from captum_maskopt import metrics
from captum_maskopt.baselines import gaussian_blur
from captum_maskopt.vision.metrics import (
    image_infidelity,
    image_sensitivity,
    pointing_game,
    probabilities_with_pixels,
)
from captum_maskopt.vision.peers import PEERS, pixel_attributions

__all__ = [
    "METRICS", "LOCALISATION_METRICS", "CURVE_POINTS", "INSERTION_BLUR_SIGMA",
    "ImageComparison", "compare_methods", "goals", "summary_table",
]

METRICS = ("deletion_auc", "insertion_auc", "infidelity", "sensitivity_max", "seconds_per_image")
LOCALISATION_METRICS = ("pointing_game", "share_inside")
#: Points of the deletion and insertion curves (every 5 % of the pixels).
CURVE_POINTS = 21
#: Blur of the image that insertion starts from, in pixels (standard deviation).
INSERTION_BLUR_SIGMA = 10.0
# What deletion and infidelity's patch removal set pixels to, in model input space.
_REMOVED = 0.0


@dataclass
class ImageComparison:
    """The results of :func:`compare_methods`.

    Attributes:
        methods: ``{method: {metric: mean over the photos}}`` for :data:`METRICS`
            (a metric that was not computed is left out).
        photos: ``{photo: {method: {metric: value}}}``.
        localisation: ``{photo: {method: {"pointing_game": 0/1, "share_inside": s}}}``
            for the photos with an object region.
        targets: ``{photo: explained class}`` (the model's prediction).
        probabilities: ``{photo: its probability}``.
        maps: ``{photo: {method: (H, W) per-pixel map}}``.
    """

    methods: Dict[str, Dict[str, float]]
    photos: Dict[str, Dict[str, Dict[str, float]]]
    localisation: Dict[str, Dict[str, Dict[str, float]]]
    targets: Dict[str, int]
    probabilities: Dict[str, float]
    maps: Dict[str, Dict[str, Tensor]] = field(repr=False)


def _curve_auc(
    model: nn.Module, image: Tensor, substrate: Tensor, scores: Tensor, target: Tensor, insert: bool,
    batch_size: int,
) -> float:
    probabilities_with = probabilities_with_pixels(model, image, substrate, batch_size)
    curve = metrics.insertion_curve if insert else metrics.deletion_curve
    fractions, values = curve(probabilities_with, scores, target, n_points=CURVE_POINTS)
    return float(metrics.area_under_curve(fractions, values)[0])


def compare_methods(
    model: nn.Module,
    images: Tensor,
    names: Sequence[str],
    methods: Sequence[str] = PEERS.names,
    batch_size: int = 4,
    layer: Optional[nn.Module] = None,
    regions: Optional[Mapping[str, Tensor]] = None,
    seed: int = 0,
    mask_options: Optional[Mapping[str, Any]] = None,
    infidelity_samples: int = 32,
    sensitivity_samples: int = 1,
    progress: Optional[Callable[[str], None]] = None,
) -> ImageComparison:
    """Explain ``images`` with each method and score it.

    Args:
        model: the classifier, ``(N, C, H, W)`` to logits, in evaluation mode.
        images: ``(N, C, H, W)`` model inputs.
        names: a name per image (e.g. the photo's).
        methods: names of :data:`~captum_maskopt.vision.peers.PEERS`.
            Default: all of them
        batch_size: images per attribution call. Default: 4
        layer: the layer Grad-CAM reads; needed when ``methods`` has
            ``"LayerGradCam"``. Default: None
        regions: ``{name: bool (H, W) object region}`` for the images with a known
            object, for the pointing game and the share inside. Default: None
        seed: seed of the methods' and metrics' random draws. Default: 0
        mask_options: extra keyword arguments for MaskOptimization (e.g.
            ``{"n_steps": 20}``). Default: None (its image defaults)
        infidelity_samples: random patch removals per image for infidelity; 0 skips
            it. Default: 32
        sensitivity_samples: perturbed copies per image for max-sensitivity (each one
            more attribution by every method, which doubles the cost of the whole
            comparison); 0 skips it. Default: 1
        progress: called with the method's name after each batch. Default: None

    Returns:
        an :class:`ImageComparison`.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    if len(names) != images.shape[0] or len(set(names)) != len(names):
        raise ValueError(f"names must give a distinct name per image ({images.shape[0]}), got {list(names)}")
    unknown = sorted(set(methods) - set(PEERS))
    if unknown or not methods:
        raise ValueError(f"methods: unknown {unknown}; choose from {', '.join(PEERS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    for argument, value in (("infidelity_samples", infidelity_samples), ("sensitivity_samples", sensitivity_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{argument} must be an integer >= 0, got {value!r}")
    regions = dict(regions or {})
    missing = sorted(set(regions) - set(names))
    if missing:
        raise ValueError(f"regions names images that are not given: {missing}")

    with torch.no_grad():
        probabilities = torch.softmax(model(images), dim=-1)
    targets = probabilities.argmax(dim=1)
    blurred = gaussian_blur(images, INSERTION_BLUR_SIGMA)
    photos: Dict[str, Dict[str, Dict[str, float]]] = {name: {} for name in names}
    localisation: Dict[str, Dict[str, Dict[str, float]]] = {name: {} for name in regions}
    maps: Dict[str, Dict[str, Tensor]] = {name: {} for name in names}
    n = images.shape[0]
    for method in methods:
        def explain(batch: Tensor, target: Tensor, method: str = method) -> Tensor:
            return pixel_attributions(method, model, batch, target, layer, seed, mask_options)

        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            batch, batch_targets = images[rows], targets[rows]
            began = time.perf_counter()
            batch_maps = explain(batch, batch_targets)
            seconds = (time.perf_counter() - began) / batch.shape[0]
            infidelities = (
                image_infidelity(model, batch, batch_maps, batch_targets, infidelity_samples,
                                 baseline=_REMOVED, seed=seed)
                if infidelity_samples else None
            )
            sensitivities = (
                image_sensitivity(explain, batch, batch_maps, batch_targets, sensitivity_samples, seed=seed)
                if sensitivity_samples else None
            )
            for offset, name in enumerate(names[rows]):
                i = start + offset
                scores = batch_maps[offset].reshape(1, -1).to(torch.float64)
                target = targets[i : i + 1].cpu()
                row = {
                    "deletion_auc": _curve_auc(model, images[i : i + 1], torch.full_like(images[i : i + 1], _REMOVED),
                                               scores, target, False, batch_size * 4),
                    "insertion_auc": _curve_auc(model, images[i : i + 1], blurred[i : i + 1], scores, target,
                                                True, batch_size * 4),
                }
                if infidelities is not None:
                    row["infidelity"] = float(infidelities[offset])
                if sensitivities is not None:
                    row["sensitivity_max"] = float(sensitivities[offset])
                row["seconds_per_image"] = seconds
                photos[name][method] = row
                maps[name][method] = batch_maps[offset].cpu()
                if name in regions:
                    region = regions[name].to(torch.bool)
                    localisation[name][method] = {
                        "pointing_game": float(pointing_game(batch_maps[offset : offset + 1].cpu(), region)[0]),
                        "share_inside": float(metrics.share_inside(scores.cpu(), region.reshape(1, -1))[0]),
                    }
            if progress is not None:
                progress(method)
    means = {
        method: {
            metric: sum(photos[name][method][metric] for name in names) / n
            for metric in METRICS if metric in photos[names[0]][method]
        }
        for method in methods
    }
    return ImageComparison(
        methods=means,
        photos=photos,
        localisation=localisation,
        targets={name: int(targets[i]) for i, name in enumerate(names)},
        probabilities={name: float(probabilities[i, targets[i]]) for i, name in enumerate(names)},
        maps=maps,
    )


def _best(values: Mapping[str, float], lowest: bool) -> List[str]:
    """The methods with the best value (all of them on a tie), nan values excluded."""
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    if not finite:
        return []
    best = min(finite.values()) if lowest else max(finite.values())
    return [k for k, v in finite.items() if v == best]


def goals(comparison: ImageComparison, method: str = "MaskOptimization",
          reference: str = "IntegratedGradients") -> Dict[str, Any]:
    """The issue's goals, read off a comparison (goals whose methods or photos were not
    part of it are left out).

    Args:
        comparison: the results of :func:`compare_methods`.
        method: the method the goals are about. Default: "MaskOptimization"
        reference: the method whose seconds per image it is timed against.
            Default: "IntegratedGradients"

    Returns:
        ``{goal: value}``: whether ``method`` has the lowest mean deletion AUC and the
        highest mean insertion AUC (and which methods do); per photo with a region,
        whether its maximum points inside the object, its share inside, and whether
        that share is larger than every other method's; its seconds per image against
        ``reference``'s and their ratio.
    """
    results: Dict[str, Any] = {}
    table = comparison.methods
    if method not in table:
        return results
    for metric, lowest in (("deletion_auc", True), ("insertion_auc", False)):
        best = _best({m: row[metric] for m, row in table.items()}, lowest)
        results[f"{metric}_best"] = best
        results[f"{metric}_{'lowest' if lowest else 'highest'}"] = best == [method]
    for photo, per_method in comparison.localisation.items():
        if method not in per_method:
            continue
        shares = {m: row["share_inside"] for m, row in per_method.items()}
        others = [v for m, v in shares.items() if m != method and not math.isnan(v)]
        results[f"{photo}_pointing_game"] = bool(per_method[method]["pointing_game"])
        results[f"{photo}_share_inside"] = shares[method]
        results[f"{photo}_best_other_share_inside"] = max(others) if others else None
        results[f"{photo}_share_inside_largest"] = all(shares[method] > v for v in others)
    results["seconds_per_image"] = table[method]["seconds_per_image"]
    if reference in table:
        reference_seconds = table[reference]["seconds_per_image"]
        results[f"{reference}_seconds_per_image"] = reference_seconds
        results[f"seconds_ratio_to_{reference}"] = table[method]["seconds_per_image"] / reference_seconds
    return results


def summary_table(results: Mapping[str, Mapping[str, float]], columns: Sequence[str] = METRICS) -> str:
    """Results as a plain-text table, one row per method and one column per metric of
    ``columns`` that the results have.

    Args:
        results: ``{method: {metric: value}}``, e.g. ``ImageComparison.methods``.
        columns: the metrics to show, in order. Default: :data:`METRICS`
    """
    present = [c for c in columns if any(c in row for row in results.values())]
    width = max(len(m) for m in results) + 2
    widths = [max(20, len(c) + 2) for c in present]
    lines = ["".join(["method".ljust(width)] + [c.rjust(w) for c, w in zip(present, widths)])]
    for name, row in results.items():
        cells = [f"{row[c]:{w}.4f}" if c in row else " " * w for c, w in zip(present, widths)]
        lines.append("".join([name.ljust(width)] + cells))
    return "\n".join(lines)
