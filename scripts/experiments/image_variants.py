"""Experiment of issue 15: MaskOptimization settings on images, on a development set
apart from the reported photos.

The development set is the scikit-image data files that are not among the comparison's
photos (micrographs, the moon, a motion-blurred clock, a logo, text, a horse's
silhouette, a chessboard, the Hubble deep field, bricks, coins): the model's top class on
them is rarely right, but deletion and insertion measure faithfulness to whatever it
predicts, and none of them is a reported photo. ``--photos`` runs the reported photos
instead (for the final figures only).

Each variant is a JSON object of ``attribute()`` keywords for MaskOptimization (or the
name of an image peer such as ``IntegratedGradients``); its per-image deletion and
insertion AUCs and seconds are appended to the checkpoint as soon as measured, and a
variant already there is not measured again. The first variant is the reference of
the paired differences (bootstrap over images)::

    python scripts/experiments/image_variants.py RUN.jsonl '{"settings": "image"}' '{"tie_break_weight": 1.0}' IntegratedGradients
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import skimage
import skimage.io
import torch

from captum_maskopt.vision.compare import compare_methods
from captum_maskopt.vision.data import PHOTO_NAMES, load_photos
from captum_maskopt.vision.models import load_efficientnet_lite0, preprocess
from captum_maskopt.vision.peers import PEERS

DEVELOPMENT_FILES = (
    "microaneurysms.png", "clock_motion.png", "moon.png", "logo.png", "text.png", "horse.png",
    "chessboard_RGB.png", "hubble_deep_field.jpg", "brick.png", "coins.png",
)


def development_images() -> tuple:
    folder = Path(skimage.__file__).parent / "data"
    names, images = [], []
    for file in DEVELOPMENT_FILES:
        pixels = skimage.io.imread(folder / file)
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        pixels = pixels[..., :3]
        if pixels.dtype == bool:
            pixels = pixels.astype(np.uint8) * 255
        names.append(file.rsplit(".", 1)[0])
        images.append(preprocess(np.ascontiguousarray(pixels.astype(np.uint8))))
    return names, torch.stack(images)


def main() -> None:
    arguments = sys.argv[1:]
    use_photos = "--photos" in arguments
    arguments = [a for a in arguments if a != "--photos"]
    checkpoint, variants = arguments[0], arguments[1:]
    torch.set_num_threads(2)
    model = load_efficientnet_lite0()
    if use_photos:
        photos = load_photos(PHOTO_NAMES)
        names, images = [p.name for p in photos], torch.stack([preprocess(p.image) for p in photos])
    else:
        names, images = development_images()
    split = "photos" if use_photos else "development"
    done = {}
    if os.path.exists(checkpoint):
        for line in open(checkpoint):
            record = json.loads(line)
            done[(record["split"], record["variant"])] = record
    for variant in variants:
        if (split, variant) in done:
            continue
        method, options = (variant, {}) if variant in PEERS else ("MaskOptimization", json.loads(variant))
        c = compare_methods(model, images, names, [method], 4, seed=0, mask_options=options,
                            infidelity_samples=0, sensitivity_samples=0)
        record = {"split": split, "variant": variant, "methods": c.methods[method],
                  "images": {n: c.photos[n][method] for n in names}}
        with open(checkpoint, "a") as out:
            out.write(json.dumps(record) + "\n")
        done[(split, variant)] = record
        print("measured", variant, flush=True)
    reference = done[(split, variants[0])]
    for variant in variants:
        record = done[(split, variant)]
        means = record["methods"]
        print(f"{variant}: deletion {means['deletion_auc']:.4f} insertion {means['insertion_auc']:.4f} "
              f"s/image {means['seconds_per_image']:.1f}")
        if variant == variants[0]:
            continue
        for metric in ("deletion_auc", "insertion_auc"):
            d = torch.tensor([record["images"][n][metric] - reference["images"][n][metric] for n in names])
            g = torch.Generator().manual_seed(0)
            boots = torch.stack([d[torch.randint(0, len(d), (len(d),), generator=g)].mean() for _ in range(2000)])
            print(f"  {metric} minus {variants[0]}: {float(d.mean()):+.4f} [{float(boots.quantile(0.025)):+.4f}, "
                  f"{float(boots.quantile(0.975)):+.4f}]")


if __name__ == "__main__":
    main()
