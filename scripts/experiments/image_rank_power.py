"""Experiment of issue 15: how the image preset's final ranking should combine the
smooth mask with the path dependence, on the development images of
``image_variants.py`` (apart from the reported photos).

Each image is explained alone twice with the image preset (seed 0): once as it is,
catching the dependence that ``tie_break="path"`` ranks by, and once with
``tie_break_weight=0`` for the mask itself. Both are cached in ``CACHE`` (a torch file),
so a stopped run goes on where it stopped, and rankings built from them are scored by
the comparison's deletion AUC (pixels set to 0) and insertion AUC (pixels inserted into
the blurred image), with paired bootstrap intervals over the images against the first
ranking named, and the share of each ranking's positive mass inside the mask's kept
region (mask >= 0.5), a stand-in for the share on the object::

    python scripts/experiments/image_rank_power.py CACHE.pt "mask*rank" "mask*rank^2" "dependence"

With no ranking named, every one in ``RANKINGS`` is scored.
"""
import os
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

from captum_maskopt import optimization
from captum_maskopt.attr import MaskOptimization

sys.path.insert(0, str(Path(__file__).parent))
from image_pairs import interval  # noqa: E402
from image_rankings import curve_auc, development_setup, rank01  # noqa: E402



def percentile(score: Tensor) -> Tensor:
    order = score.flatten().argsort()
    result = torch.empty(score.numel())
    result[order] = torch.arange(score.numel(), dtype=torch.float) / (score.numel() - 1)
    return result.reshape(score.shape)


def top_first(mask: Tensor, dependence: Tensor, share: float) -> Tensor:
    """The ``share`` of pixels with the largest dependence first, then mask * rank^2."""
    top = dependence >= dependence.flatten().topk(int(share * dependence.numel())).values[-1]
    return torch.where(top, 10.0 + percentile(dependence), mask * rank01(dependence) ** 2)


Ranking = Callable[[Tensor, Tensor], Tensor]
RANKINGS: Dict[str, Ranking] = {
    "mask*rank": lambda m, d: m * rank01(d),
    "mask*rank^2": lambda m, d: m * rank01(d) ** 2,
    "mask*rank^3": lambda m, d: m * rank01(d) ** 3,
    "mask*rank^4": lambda m, d: m * rank01(d) ** 4,
    "mask*rank^6": lambda m, d: m * rank01(d) ** 6,
    "mask*rank(clip 6)": lambda m, d: m * rank01(d, 6.0),
    "mask*rank(no clip)": lambda m, d: m * rank01(d, 1e9),
    "mask*percentile": lambda m, d: m * percentile(d),
    "sqrt(mask)*rank^2": lambda m, d: m**0.5 * rank01(d) ** 2,
    "dependence": lambda m, d: d,
    "top 5% by dependence first": lambda m, d: top_first(m, d, 0.05),
    "top 10% by dependence first": lambda m, d: top_first(m, d, 0.10),
    "top 20% by dependence first": lambda m, d: top_first(m, d, 0.20),
}


def main() -> None:
    cache, chosen = sys.argv[1], sys.argv[2:] or list(RANKINGS)
    unknown = [name for name in chosen if name not in RANKINGS]
    if unknown:
        raise SystemExit(f"unknown ranking(s) {unknown}; choose from {list(RANKINGS)}")
    model, names, images, targets, blurred = development_setup()
    maps: Dict[str, Tuple[Tensor, Tensor]] = torch.load(cache) if os.path.exists(cache) else {}

    caught: Dict[str, Tensor] = {}
    ranks = optimization._tie_break_ranks

    def catching(dependence: Tensor, pinned: Tensor) -> Tensor:
        caught["dependence"] = dependence.detach().clone()
        return ranks(dependence, pinned)

    optimization._tie_break_ranks = catching
    for i, name in enumerate(names):
        if name in maps:
            continue
        x, target = images[i : i + 1], targets[i : i + 1]
        explained = MaskOptimization(model).attribute(x, target=target, seed=0)[0, 0]
        dependence = caught["dependence"].reshape(explained.shape)
        mask = MaskOptimization(model).attribute(x, target=target, seed=0, tie_break_weight=0.0)[0, 0]
        maps[name] = (mask, dependence)
        torch.save(maps, cache)
        print("explained", name, flush=True)
    optimization._tie_break_ranks = ranks

    scores: Dict[str, Tensor] = {}
    for label in chosen:
        rows = []
        inside = []
        for i, name in enumerate(names):
            mask, dependence = maps[name]
            score = RANKINGS[label](mask, dependence)
            x, target = images[i : i + 1], targets[i : i + 1]
            rows.append((curve_auc(model, x, torch.zeros_like(x), score, target, False),
                         curve_auc(model, x, blurred[i : i + 1], score, target, True)))
            positive = score.clamp_min(0)
            inside.append(float((positive * (mask >= 0.5)).sum() / positive.sum()))
        scores[label] = torch.tensor(rows)
        print(f"{label}: deletion {scores[label][:, 0].mean():.4f} insertion {scores[label][:, 1].mean():.4f} "
              f"mass inside the kept region {sum(inside) / len(inside):.3f}", flush=True)
        if label != chosen[0]:
            for column, metric in enumerate(("deletion", "insertion")):
                print(f"  {metric} minus {chosen[0]}: {interval(scores[label][:, column] - scores[chosen[0]][:, column])}")


if __name__ == "__main__":
    main()
