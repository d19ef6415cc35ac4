"""Experiment of issue 15 (images): the quokka's share of MaskOptimization's attribution
inside the object outline, against the image preset's ``n_steps``, explained in the
comparison's batch (china, flower, grace_hopper, quokka: the second batch of four of
``compare image``) and alone, with the seconds per image::

    python scripts/experiments/quokka_share_steps.py [--steps 100,150,200]

The share is :func:`captum_maskopt.metrics.share_inside` on the pixel map, as
``compare image`` computes it.
"""

from __future__ import annotations

import argparse
import time

import torch

from captum_maskopt import metrics
from captum_maskopt.vision import load_efficientnet_lite0, load_photos, object_mask, preprocess
from captum_maskopt.vision.peers import pixel_attributions

BATCH = ("china", "flower", "grace_hopper", "quokka")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,150,200")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_efficientnet_lite0()
    photos = load_photos(BATCH)
    images = torch.stack([preprocess(photo.image) for photo in photos])
    region = object_mask(photos[-1]).to(torch.bool).reshape(1, -1)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    for steps in [int(s) for s in args.steps.split(",")]:
        for label, rows in (("in its batch", slice(0, 4)), ("alone", slice(3, 4))):
            began = time.perf_counter()
            maps = pixel_attributions("MaskOptimization", model, images[rows], targets[rows],
                                      mask_options={"n_steps": steps})
            seconds = (time.perf_counter() - began) / maps.shape[0]
            share = float(metrics.share_inside(maps[-1:].reshape(1, -1).double(), region)[0])
            print(f"n_steps={steps:4d} {label:13s} quokka share inside {share:.3f}"
                  f"  ({seconds:.1f} s per image)", flush=True)


if __name__ == "__main__":
    main()
