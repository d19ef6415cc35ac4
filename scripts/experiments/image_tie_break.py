"""Experiment of issue 15: the ``tie_break_weight`` setting on the packaged photos.

MaskOptimization at its image defaults, with the returned mask scaled by a final
ranking of the pixels by the gradient of ``p(x_keep) - p(x_rem)`` at the final mask,
``mask * (1 - w + w * rank)``, for each weight ``w`` given; per-photo deletion / insertion AUCs, the localisation figures,
and paired differences to weight 0 with a bootstrap interval over the photos. Each
weight's per-photo figures are appended to the checkpoint file as soon as they are
measured, and a weight already there is not measured again::

    python scripts/experiments/image_tie_break.py CHECKPOINT.jsonl 0 0.1 0.3
"""
import json, os, sys
import torch
from captum_maskopt.vision.compare import compare_methods
from captum_maskopt.vision.data import PHOTO_NAMES, load_photos, object_mask
from captum_maskopt.vision.models import load_efficientnet_lite0, preprocess

checkpoint, weights = sys.argv[1], [float(w) for w in sys.argv[2:]]
torch.set_num_threads(2)
model = load_efficientnet_lite0()
photos = load_photos(PHOTO_NAMES)
names = [p.name for p in photos]
images = torch.stack([preprocess(p.image) for p in photos])
regions = {p.name: object_mask(p) for p in photos if p.outline is not None}
done = {}
if os.path.exists(checkpoint):
    for line in open(checkpoint):
        record = json.loads(line)
        done[record["weight"]] = record
for weight in weights:
    if weight in done:
        continue
    c = compare_methods(model, images, names, ["MaskOptimization"], 4, regions=regions, seed=0,
                        mask_options={"tie_break_weight": weight}, infidelity_samples=0, sensitivity_samples=0)
    record = {"weight": weight, "methods": c.methods["MaskOptimization"], "localisation": c.localisation,
              "photos": {n: c.photos[n]["MaskOptimization"] for n in names}}
    with open(checkpoint, "a") as out:
        out.write(json.dumps(record) + "\n")
    done[weight] = record
for weight in weights:
    record = done[weight]
    print(f"weight {weight:g}", json.dumps(record["methods"]), json.dumps(record["localisation"]))
    if weight == 0 or 0.0 not in done:
        continue
    for metric in ("deletion_auc", "insertion_auc", "seconds_per_image"):
        d = torch.tensor([record["photos"][n][metric] - done[0.0]["photos"][n][metric] for n in names])
        g = torch.Generator().manual_seed(0)
        boots = torch.stack([d[torch.randint(0, len(d), (len(d),), generator=g)].mean() for _ in range(2000)])
        print(f"  {metric} - weight 0: {float(d.mean()):+.4f} [{float(boots.quantile(0.025)):+.4f}, "
              f"{float(boots.quantile(0.975)):+.4f}] per photo {[round(float(x), 3) for x in d]}")
