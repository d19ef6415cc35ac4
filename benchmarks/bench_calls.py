"""Seconds of three typical attribution calls on the packaged models, to compare two
checkouts of the project on this machine (for instance before and after a refactor):

    python benchmarks/bench_calls.py                      # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_calls.py

Alternate the two a few times and compare medians: the machine is shared and noisy.
Prints one JSON line: ``TextExplainer.explain`` on 4 test snippets (60 steps), the
EfficientNet-Lite0 on one photo (20 steps), a small MLP on 16 examples (200 steps, no
early stop); each timed after one warm-up call. Needs the ``text`` and ``vision``
extras.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Callable, Dict

import torch


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    from captum_maskopt import MaskOptimization
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
    from captum_maskopt.vision import load_efficientnet_lite0, load_photo, preprocess

    explainer = TextExplainer(*load_sentiment_classifier())
    texts = [d.text for d in load_snippets("test")[:4]]
    image_model = load_efficientnet_lite0()
    image = preprocess(load_photo("coffee").image).unsqueeze(0)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 5)).eval()
    x = torch.randn(16, 32)
    seconds: Dict[str, float] = {}

    def timed(name: str, call: Callable[[], object]) -> None:
        call()
        start = time.perf_counter()
        call()
        seconds[name] = time.perf_counter() - start

    timed("text_explain_4_snippets_60_steps", lambda: explainer.explain(texts, n_steps=60))
    timed("image_1_photo_20_steps",
          lambda: MaskOptimization(image_model).attribute(image, target=967, n_steps=20))
    timed("mlp_16_examples_200_steps",
          lambda: MaskOptimization(mlp).attribute(x, target=0, tolerance=0.0))
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
