"""Paired per-photo differences between image comparison files: MaskOptimization
against every other method of one file, and against MaskOptimization of an earlier file
(a run before a change; paired over the photos both have), each as the mean difference
with a 95 % bootstrap interval over the photos (2000 resamples, seed 0). The per-photo
values are the files' ``photos`` entries, as ``captum-maskopt compare image --json``
writes them::

    python scripts/experiments/image_pairs.py docs/results/image.json [EARLIER.json]
"""
import json
import sys
from typing import Sequence, Union

import torch
from torch import Tensor


def interval(differences: Union[Sequence[float], Tensor]) -> str:
    """The mean of paired differences and its 95 % bootstrap interval."""
    values = torch.as_tensor(differences, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    n = len(values)
    boots = torch.stack([values[torch.randint(0, n, (n,), generator=generator)].mean() for _ in range(2000)])
    return f"{float(values.mean()):+.4f} [{float(boots.quantile(0.025)):+.4f}, {float(boots.quantile(0.975)):+.4f}]"


def main() -> None:
    current = json.load(open(sys.argv[1], encoding="utf-8"))
    earlier = json.load(open(sys.argv[2], encoding="utf-8")) if len(sys.argv) > 2 else None
    photos = list(current["photos"])
    for metric in ("deletion_auc", "insertion_auc"):
        ours = [current["photos"][p]["MaskOptimization"][metric] for p in photos]
        if earlier is not None:
            # Paired over the photos both files have (an earlier run may have had fewer).
            shared = [p for p in photos if p in earlier["photos"]]
            now = [current["photos"][p]["MaskOptimization"][metric] for p in shared]
            before = [earlier["photos"][p]["MaskOptimization"][metric] for p in shared]
            print(
                f"{metric}: MaskOptimization minus the earlier file's, on its {len(shared)} photos"
                f" {interval([a - b for a, b in zip(now, before)])}"
            )
        for method in current["methods"]:
            if method != "MaskOptimization":
                theirs = [current["photos"][p][method][metric] for p in photos]
                print(f"{metric}: MaskOptimization minus {method} {interval([a - b for a, b in zip(ours, theirs)])}")


if __name__ == "__main__":
    main()
