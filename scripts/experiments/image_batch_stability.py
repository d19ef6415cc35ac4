"""Experiment of issue 15: does an image's mask depend on the batch it is explained in?

Explains four development images (those of ``image_variants.py``, apart from the
reported photos) once as one batch and once one at a time, at the image preset with
the final ranking off (``tie_break_weight=0``, so that the optimized mask itself is
compared) and each variant's keywords on top, and prints per image the correlation of
the two maps, their mean absolute difference relative to the map's mean and the share
of the top 5 % pixels the two have in common (what the deletion curve removes first).
A batched convolution rounds differently from a single one (the logits differ by about
1e-6); what this measures is how much of that the optimization amplifies. It also
checks that ``internal_batch_size=1`` gives the one-at-a-time attributions exactly::

    python scripts/experiments/image_batch_stability.py '{"learning_rate": 0.1}' '{}'
    python scripts/experiments/image_batch_stability.py '{"tie_break_weight": 2.0}'

(the second: the image defaults, final ranking included).
"""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_variants import development_images  # noqa: E402

from captum_maskopt.attr import MaskOptimization  # noqa: E402
from captum_maskopt.vision.models import load_efficientnet_lite0  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    names, images = development_images()
    names, images = names[4:8], images[4:8]
    model = load_efficientnet_lite0().eval()
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    explainer = MaskOptimization(model)
    for variant in sys.argv[1:] or ["{}"]:
        options = {"tie_break_weight": 0.0, "seed": 0, **json.loads(variant)}
        started = time.perf_counter()
        batch = explainer.attribute(images, target=targets, **options).sum(dim=1).flatten(1)
        batch_seconds = time.perf_counter() - started
        started = time.perf_counter()
        chunked = explainer.attribute(images, target=targets, internal_batch_size=1, **options)
        chunked_seconds = time.perf_counter() - started
        alone = torch.cat([
            explainer.attribute(images[i : i + 1], target=targets[i : i + 1], **options)
            for i in range(len(images))
        ]).sum(dim=1).flatten(1)
        exact = torch.equal(chunked.sum(dim=1).flatten(1), alone)
        print(
            f"{variant}: one batch {batch_seconds:.0f} s, internal_batch_size=1 {chunked_seconds:.0f} s,"
            f" which equals one at a time: {exact}"
        )
        top = max(1, round(0.05 * batch.shape[1]))
        for i, name in enumerate(names):
            correlation = float(torch.corrcoef(torch.stack([batch[i], alone[i]]))[0, 1])
            difference = float((batch[i] - alone[i]).abs().mean() / alone[i].abs().mean())
            common = set(batch[i].topk(top).indices.tolist()) & set(alone[i].topk(top).indices.tolist())
            print(
                f"  {name}: correlation {correlation:.3f}, mean |difference| / mean {difference:.3f},"
                f" top 5 % in common {len(common) / top:.2f}"
            )


if __name__ == "__main__":
    main()
