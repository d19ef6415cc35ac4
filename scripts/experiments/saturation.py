"""Drop-in fidelity (stop 50): what a saturated prediction does to the attributions,
and whether the packaged classifiers' comparison inputs are saturated::

    python scripts/experiments/saturation.py [--packaged]

A linear classifier over 20 features scores class 1 by ``scale`` times features 0..4
weighted 5..1 (the rest weigh 0) on all-ones inputs. For each scale and temperature
(the scores divided by it) the script prints the target's probability, the default
``MaskOptimization`` call's six top-ranked features (the weights' order is 0, 1, 2,
3, 4) and whether the call warned of saturation. ``--packaged`` also prints the
highest probability of the packaged MiniLM sentiment classifier over the 200 test
snippets of the text comparison and of EfficientNet-Lite0 over the twelve photos of
the image comparison (needs the ``text`` and ``vision`` extras).
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torch import nn

from captum_maskopt import MaskOptimization

FEATURES = 20
WEIGHTS = (5.0, 4.0, 3.0, 2.0, 1.0)


def _linear(scale: float) -> nn.Module:
    model = nn.Linear(FEATURES, 2, bias=False).eval()
    with torch.no_grad():
        model.weight.zero_()
        model.weight[1, : len(WEIGHTS)] = scale * torch.tensor(WEIGHTS)
    return model


def _rankings() -> None:
    x = torch.ones(3, FEATURES)
    for scale, temperature in ((1, 1), (10, 1), (100, 1), (10, 20), (100, 200)):
        model = _linear(scale)

        def tempered(v: torch.Tensor, model: nn.Module = model, temperature: float = temperature) -> torch.Tensor:
            return model(v) / temperature

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            attributions = MaskOptimization(tempered).attribute(x, target=1)
        probability = torch.softmax(tempered(x), dim=1)[0, 1].item()
        top = attributions[0].argsort(descending=True)[:6].tolist()
        warned = any("within 1e-06" in str(w.message) for w in caught)
        print(f"scale {scale:4d} temperature {temperature:4d}: p {probability:.7f} top {top} warned {warned}")


def _packaged() -> None:
    from captum_maskopt.text import load_sentiment_classifier, load_snippets
    from captum_maskopt.vision import load_efficientnet_lite0, load_photos, preprocess

    model, tokenizer = load_sentiment_classifier()
    texts = [snippet.text for snippet in load_snippets("test")[:200]]
    highest = 0.0
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            encoding = tokenizer(texts[start : start + 32], padding=True, return_tensors="pt")
            logits = model(encoding["input_ids"], encoding["attention_mask"])
            highest = max(highest, torch.softmax(logits.float(), dim=-1).max().item())
    print(f"text: highest probability over {len(texts)} test snippets {highest:.4f}")
    classifier = load_efficientnet_lite0()
    photos = load_photos()
    with torch.no_grad():
        images = torch.stack([preprocess(photo.image) for photo in photos])
        top = torch.softmax(classifier(images), dim=-1).max(dim=-1).values
    print(f"images: highest probability over {len(photos)} photos {top.max().item():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packaged", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    _rankings()
    if args.packaged:
        _packaged()


if __name__ == "__main__":
    main()
