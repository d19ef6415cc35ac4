"""How far the packaged image reference case moves from its recording under
float rounding alone (float64, float32) and under small real changes (one step
fewer, a learning rate 1 % higher): the figures behind the packaged cases'
tolerance in ``tests/test_reference_attributions.py``.

Run: ``python scripts/reference_sensitivity.py``
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_cases  # noqa: E402

from captum_maskopt import MaskOptimization  # noqa: E402
from captum_maskopt.vision import load_efficientnet_lite0, load_photo, preprocess  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference_attributions.pt"


def _mask(model: nn.Module, image: Tensor, **overrides: Any) -> Tensor:
    call: dict[str, Any] = dict(n_steps=8, settings=reference_cases.BEFORE)
    call.update(overrides)
    attributions = MaskOptimization(model).attribute(image, target=967, **call)
    return attributions[:, :1].float()


def main() -> None:
    recorded = torch.load(REFERENCE)["packaged_image_classifier"]["attributions[0]"]
    torch.set_num_threads(2)
    model = load_efficientnet_lite0()
    image = preprocess(load_photo("coffee").image).unsqueeze(0)
    learning_rate = reference_cases.BEFORE.learning_rate * 1.01
    runs = {
        "float64": lambda: _mask(model.double(), image.double()),
        "float32": lambda: _mask(model.float(), image),
        "one step fewer": lambda: _mask(model.float(), image, n_steps=7),
        "learning rate +1 %": lambda: _mask(model.float(), image, learning_rate=learning_rate),
    }
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for name, run in runs.items():
        print(f"{name:>20}: max |mask - recorded| = {(run() - recorded).abs().max().item():.3g}")


if __name__ == "__main__":
    main()
