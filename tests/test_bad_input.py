"""Bad arguments: each raises the documented exception type with a message that names
the argument, and a failed call leaves the caller's tensors, model, grad mode and
layer hooks exactly as they were."""

from __future__ import annotations

import copy
import re
import warnings
from typing import Any, Callable, Iterable, List, Optional, Type

import pytest
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients, NoiseTunnel
from torch import nn

from captum_maskopt import LayerMaskOptimization, MaskOptimization

N_STEPS = 5


# --------------------------------------------------------------------------- models


class TwoInputs(nn.Module):
    """Scores for 3 classes from an ``(N, 4)`` and an ``(N, 2)`` input."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(2, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.a(a) + self.b(b)


class Scaled(nn.Module):
    """A linear classifier whose scores are multiplied by a per-example ``scale``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * scale


class EmbeddingBag(nn.Module):
    """Token ids ``(N, T)`` -> mean of embeddings -> 3 class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids).mean(1))


class ModelError(RuntimeError):
    pass


class Failing(nn.Module):
    """A linear classifier that raises ``error`` on its ``fail_on``-th call (1-based)."""

    def __init__(self, error: Exception, fail_on: int) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.error = error
        self.fail_on = fail_on
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error
        return self.linear(x)


@pytest.fixture
def linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3).eval()


@pytest.fixture
def mlp() -> nn.Sequential:
    """Layer tests mask the output of ``mlp[0]``, shape ``(N, 6)``."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).eval()


@pytest.fixture
def two_inputs() -> TwoInputs:
    torch.manual_seed(0)
    return TwoInputs().eval()


def _x(n: int = 2, features: int = 4) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(n, features)


# ---------------------------------------------------------------- caller state guard


def _tensors(values: Iterable[Any]) -> List[torch.Tensor]:
    found: List[torch.Tensor] = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (tuple, list)):
            found.extend(_tensors(v))
    return found


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if torch.equal(a, b):
        return True
    # torch.equal says nan != nan: compare nan positions and the rest separately.
    if a.is_floating_point():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(
            torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0)
        )
    return False


class CallerState:
    """Everything a failed call must leave as it was."""

    def __init__(self, model: Optional[nn.Module], *arguments: Any) -> None:
        self.model = model
        self.tensors = [(t, t.clone()) for t in _tensors(arguments)]
        self.requires_grad = [t.requires_grad for t, _ in self.tensors]
        self.grad_enabled = torch.is_grad_enabled()
        if model is not None:
            self.state = {k: v.clone() for k, v in model.state_dict().items()}
            self.training = [m.training for m in model.modules()]
            self.param_grads = [p.grad for p in model.parameters()]
            self.param_requires_grad = [p.requires_grad for p in model.parameters()]

    def assert_unchanged(self) -> None:
        for (tensor, saved), requires_grad in zip(self.tensors, self.requires_grad):
            assert _same_tensor(tensor, saved), "a caller tensor was modified"
            assert tensor.requires_grad == requires_grad
            assert tensor.grad is None
        assert torch.is_grad_enabled() == self.grad_enabled
        if self.model is None:
            return
        state = self.model.state_dict()
        assert state.keys() == self.state.keys()
        assert all(torch.equal(state[k], v) for k, v in self.state.items())
        assert [m.training for m in self.model.modules()] == self.training
        assert [p.grad for p in self.model.parameters()] == self.param_grads
        assert [p.requires_grad for p in self.model.parameters()] == self.param_requires_grad
        for module in self.model.modules():
            assert len(module._forward_hooks) == 0, f"leftover forward hook on {module}"
            assert len(module._forward_pre_hooks) == 0, f"leftover pre-hook on {module}"


def assert_rejected(
    call: Callable[[], Any],
    error: Type[BaseException],
    match: str,
    model: Optional[nn.Module],
    *arguments: Any,
    layer: Optional[nn.Module] = None,
) -> pytest.ExceptionInfo:
    """``call`` raises ``error`` matching ``match`` with grad mode on and off, and the
    caller's state is unchanged afterwards each time."""
    info = None
    for enabled in (True, False):
        with torch.set_grad_enabled(enabled):
            state = CallerState(model, *arguments)
            with pytest.raises(error, match=match) as info:
                call()
            state.assert_unchanged()
            assert torch.is_grad_enabled() == enabled
        if layer is not None:
            assert len(layer._forward_hooks) == 0 and len(layer._forward_pre_hooks) == 0
    assert info is not None
    return info


# Both classes, on a model whose input is (N, 4): MaskOptimization masks the input,
# LayerMaskOptimization masks the output of the first layer, (N, 6).
def _explainer(kind: str, model: nn.Module, layer: Optional[nn.Module] = None):
    if kind == "input":
        return MaskOptimization(model)
    return LayerMaskOptimization(model, layer if layer is not None else model[0])


KINDS = ["input", "layer"]


# ---------------------------------------------------------------------- the inputs


@pytest.mark.parametrize("kind", KINDS)
def test_mismatched_batch_sizes_between_tuple_inputs(kind, two_inputs):
    a, b = torch.randn(2, 4), torch.randn(3, 2)
    explainer = _explainer(kind, two_inputs, two_inputs.a)
    assert_rejected(
        lambda: explainer.attribute((a, b), target=0, n_steps=N_STEPS),
        ValueError, r"inputs\[1\] has batch size 3", two_inputs, a, b, layer=two_inputs.a,
    )


def test_integer_inputs_are_rejected_by_mask_optimization(linear):
    x = torch.randint(0, 5, (2, 4))
    assert_rejected(
        lambda: MaskOptimization(linear).attribute(x, target=0, n_steps=N_STEPS),
        TypeError, r"inputs must be floating point.*int64", linear, x,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_inputs(kind, value, mlp):
    x = _x()
    x[1, 2] = value
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS),
        ValueError, r"inputs contains non-finite values", mlp, x, layer=mlp[0],
    )


def test_non_finite_second_tuple_input(two_inputs):
    a, b = torch.randn(2, 4), torch.randn(2, 2)
    b[0, 0] = float("nan")
    assert_rejected(
        lambda: MaskOptimization(two_inputs).attribute((a, b), target=0, n_steps=N_STEPS),
        ValueError, r"inputs\[1\] contains non-finite values", two_inputs, a, b,
    )


# ----------------------------------------------------------------------- baselines


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape", [(3, 4), (2, 5), (2, 4, 1), (5,), (1, 3)], ids=lambda s: "x".join(map(str, s))
)
def test_baselines_that_do_not_broadcast(kind, shape, mlp):
    x, baselines = _x(), torch.zeros(shape)
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, baselines=baselines, target=0, n_steps=N_STEPS),
        ValueError, r"baselines has shape .* does not broadcast", mlp, x, baselines, layer=mlp[0],
    )


def test_baseline_in_a_list_that_does_not_broadcast(mlp):
    x, bad = _x(), torch.zeros(2, 7)
    assert_rejected(
        lambda: MaskOptimization(mlp).attribute(
            x, baselines=[0.0, bad], target=0, n_steps=N_STEPS
        ),
        ValueError, r"baselines\[1\] has shape \(2, 7\)", mlp, x, bad,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("count", [1, 3])
def test_wrong_length_tuple_of_baselines(kind, count, two_inputs):
    a, b = torch.randn(2, 4), torch.randn(2, 2)
    baselines = tuple(0.0 for _ in range(count))
    explainer = _explainer(kind, two_inputs, two_inputs.a)
    assert_rejected(
        lambda: explainer.attribute((a, b), baselines=baselines, target=0, n_steps=N_STEPS),
        ValueError, rf"baselines must give one baseline per input tensor: got {count} for 2",
        two_inputs, a, b, layer=two_inputs.a,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "baselines",
    [
        float("nan"),
        float("inf"),
        torch.tensor([[0.0, float("nan"), 0.0, 0.0]]),
        torch.full((2, 4), float("-inf")),
    ],
    ids=["nan-scalar", "inf-scalar", "nan-tensor", "-inf-tensor"],
)
def test_non_finite_baselines(kind, baselines, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, baselines=baselines, target=0, n_steps=N_STEPS),
        ValueError, r"baselines contains non-finite values", mlp, x, baselines, layer=mlp[0],
    )


def test_non_finite_baseline_in_a_list(mlp):
    x, bad = _x(), torch.full((1, 4), float("inf"))
    assert_rejected(
        lambda: MaskOptimization(mlp).attribute(
            x, baselines=[0.0, bad], target=0, n_steps=N_STEPS
        ),
        ValueError, r"baselines\[1\] contains non-finite values", mlp, x, bad,
    )


def test_baseline_that_overflows_the_input_dtype_is_non_finite(mlp):
    # 1e300 is finite in float64 but becomes inf once cast to the float32 input: the
    # baseline the optimization would use is non-finite and must be rejected like one.
    x = _x()
    baselines = torch.full((1, 4), 1e300, dtype=torch.float64)
    assert_rejected(
        lambda: MaskOptimization(mlp).attribute(x, baselines=baselines, target=0, n_steps=N_STEPS),
        ValueError, r"baselines contains non-finite values", mlp, x, baselines,
    )


# -------------------------------------------------------------------- feature_mask


def _feature_mask_case(kind: str, mask: torch.Tensor, error, match: str, mlp) -> None:
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, feature_mask=mask, n_steps=N_STEPS),
        error, match, mlp, x, mask, layer=mlp[0],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_n_steps_given_fifth_as_to_integrated_gradients_is_explained(kind, mlp):
    # IntegratedGradients.attribute(inputs, baselines, target, additional_forward_args,
    # n_steps): here the fifth argument is feature_mask, as in FeatureAblation.
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, None, 0, None, 50),
        TypeError, r"feature_mask must be a torch\.Tensor, got int 50.*pass n_steps=50 by keyword",
        mlp, x, layer=mlp[0],
    )


# Feature masks of the right shape for each kind: the input is (2, 4), the layer's
# output (2, 6).
WIDTH = {"input": 4, "layer": 6}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ["extra-dim", "wrong-width", "wrong-batch", "no-batch"])
def test_feature_mask_with_wrong_shape(kind, shape, mlp):
    width = WIDTH[kind]
    mask = {
        "extra-dim": torch.zeros(2, width, 1, dtype=torch.long),
        "wrong-width": torch.arange(width + 1).unsqueeze(0),
        "wrong-batch": torch.arange(width).repeat(3, 1),
        "no-batch": torch.arange(width),
    }[shape]
    _feature_mask_case(kind, mask, ValueError, r"feature_mask has shape .* does not broadcast", mlp)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_feature_mask_with_non_integer_dtype(kind, dtype, mlp):
    mask = (torch.arange(WIDTH[kind]) % 2).unsqueeze(0).to(dtype)
    _feature_mask_case(kind, mask, TypeError, r"feature_mask must hold integer group ids", mlp)


@pytest.mark.parametrize("kind", KINDS)
def test_feature_mask_with_negative_ids(kind, mlp):
    mask = torch.arange(WIDTH[kind]).unsqueeze(0) - 1  # -1, 0, 1, ...
    _feature_mask_case(kind, mask, ValueError, r"feature_mask contains negative group ids", mlp)


@pytest.mark.parametrize("kind", KINDS)
def test_feature_mask_with_wrong_number_of_tensors(kind, mlp):
    width = WIDTH[kind]
    masks = (torch.arange(width).unsqueeze(0), torch.arange(width).unsqueeze(0))
    _feature_mask_case(kind, masks, ValueError, r"feature_mask must give one tensor per input", mlp)


# ---------------------------------------------------------- additional_forward_args


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_additional_forward_args_with_wrong_batch_size(kind, batch):
    torch.manual_seed(0)
    model = Scaled().eval()
    x, scale = _x(), torch.ones(batch, 1)
    explainer = _explainer(kind, model, model.linear)
    assert_rejected(
        lambda: explainer.attribute(
            x, target=0, additional_forward_args=(scale,), n_steps=N_STEPS
        ),
        ValueError, rf"additional_forward_args\[0\] has batch size {batch}", model, x, scale,
        layer=model.linear,
    )


# -------------------------------------------------------------------------- target


def _captum_error(model: nn.Module, x: torch.Tensor, target: Any) -> Type[BaseException]:
    with pytest.raises(Exception) as info:
        IntegratedGradients(model).attribute(x, target=target, n_steps=2)
    return type(info.value)


def _layer_captum_error(model: nn.Sequential, x: torch.Tensor, target: Any) -> Type[BaseException]:
    with pytest.raises(Exception) as info:
        LayerIntegratedGradients(model, model[0]).attribute(x, target=target, n_steps=2)
    return type(info.value)


TARGETS_OUT_OF_RANGE = [
    pytest.param(3, IndexError, id="int"),
    pytest.param(-4, IndexError, id="negative-int"),
    pytest.param((5,), IndexError, id="tuple"),
    pytest.param(torch.tensor(7), IndexError, id="scalar-tensor"),
    pytest.param(torch.tensor([0, 3]), RuntimeError, id="tensor"),
    pytest.param(torch.tensor([-4, 0]), RuntimeError, id="tensor-negative"),
    pytest.param([0, 3], RuntimeError, id="list"),
    pytest.param([2, -9], RuntimeError, id="list-negative"),
]


@pytest.mark.parametrize("target, expected", TARGETS_OUT_OF_RANGE)
def test_target_out_of_range_mask_optimization(target, expected, mlp):
    x = _x()
    assert _captum_error(mlp, x, target) is expected
    assert_rejected(
        lambda: MaskOptimization(mlp).attribute(x, target=target, n_steps=N_STEPS),
        expected, r"target: index -?\d+ is out of bounds", mlp, x, target,
    )


@pytest.mark.parametrize("target, expected", TARGETS_OUT_OF_RANGE)
def test_target_out_of_range_layer_mask_optimization(target, expected, mlp):
    x = _x()
    assert _layer_captum_error(mlp, x, target) is expected
    assert_rejected(
        lambda: LayerMaskOptimization(mlp, mlp[0]).attribute(x, target=target, n_steps=N_STEPS),
        expected, r"target: index -?\d+ is out of bounds", mlp, x, target, layer=mlp[0],
    )


@pytest.mark.parametrize(
    "target", [[(0, 0), (0, 5)], [(0, 0), (2, 0)]], ids=["last-dim", "first-dim"]
)
def test_target_list_of_tuples_out_of_range_matches_captum(target):
    # A (N, 2, 3) output indexed by one tuple per example: Captum indexes the output
    # with each tuple and raises IndexError.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3))).eval()
    x = _x()
    expected = _captum_error(model, x, target)
    assert expected is IndexError
    assert_rejected(
        lambda: MaskOptimization(model).attribute(x, target=target, n_steps=N_STEPS),
        expected, r"target: index \d+ is out of bounds", model, x,
    )


def test_int_target_with_output_without_class_dimension(linear):
    x = _x()
    model_fn = lambda inp: linear(inp)[:, 0]  # noqa: E731  shape (N,)
    assert_rejected(
        lambda: MaskOptimization(model_fn).attribute(x, target=0, n_steps=N_STEPS),
        ValueError, r"target .* no class dimension", linear, x,
    )


def test_target_none_with_multi_class_output(linear):
    x = _x()
    assert_rejected(
        lambda: MaskOptimization(linear).attribute(x, target=None, n_steps=N_STEPS),
        ValueError, r"target is None but forward_func returns \(3,\) values", linear, x,
    )


def test_target_none_with_multi_class_output_layer(mlp):
    x = _x()
    assert_rejected(
        lambda: LayerMaskOptimization(mlp, mlp[0]).attribute(x, n_steps=N_STEPS),
        ValueError, r"target is None but forward_func returns \(3,\) values", mlp, x,
        layer=mlp[0],
    )


@pytest.mark.parametrize(
    "output, target",
    [("(N, 1)", None), ("(N, 1)", 0), ("(N,)", None)],
    ids=["N-1-target-None", "N-1-target-0", "N-target-None"],
)
def test_softmax_over_a_single_output(output, target):
    torch.manual_seed(0)
    model = nn.Linear(4, 1).eval()
    x = _x()
    forward = model if output == "(N, 1)" else (lambda inp: model(inp)[:, 0])
    assert_rejected(
        lambda: MaskOptimization(forward).attribute(
            x, target=target, probability="softmax", n_steps=N_STEPS
        ),
        ValueError, r"probability='softmax' over a single output", model, x,
    )


# ----------------------------------------------------------------- method settings


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_steps", [0, -1, 1.5, "5", True])
def test_invalid_n_steps(kind, n_steps, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=n_steps),
        ValueError, r"n_steps must be an integer >= 1", mlp, x, layer=mlp[0],
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("learning_rate", [-0.1, 0, 0.0, float("nan"), float("inf")])
def test_invalid_learning_rate(kind, learning_rate, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, learning_rate=learning_rate),
        ValueError, r"learning_rate must be", mlp, x, layer=mlp[0],
    )


NON_NEGATIVE_SETTINGS = [
    "compactness_weight",
    "sufficiency_weight",
    "comprehensiveness_weight",
    "smoothness_weight",
    "total_variation_weight",
    "noise_std",
    "tolerance",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NON_NEGATIVE_SETTINGS)
@pytest.mark.parametrize("value", [-0.5, float("nan")], ids=["negative", "nan"])
def test_negative_or_nan_weights(kind, name, value, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, **{name: value}),
        ValueError, rf"{name} must be (None or )?a finite number >= 0", mlp, x, layer=mlp[0],
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("flip_fraction", [-0.01, 0.5, 1.0, float("nan")])
def test_flip_fraction_out_of_range(kind, flip_fraction, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, flip_fraction=flip_fraction),
        ValueError, r"flip_fraction must be a number in \[0, 0\.5\)", mlp, x, layer=mlp[0],
    )


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("check_every", 0, r"check_every must be an integer >= 1"),
        ("comprehensiveness", "linear", r"comprehensiveness must be one of \('log', 'hinge'\)"),
        ("comprehensiveness_margin", 1.0, r"comprehensiveness_margin must be a number in \[0, 1\)"),
        ("target_kept_fraction", 0.0, r"target_kept_fraction must be None, a number in \(0, 1\), or a non-empty tuple"),
        ("target_kept_fraction", 1.5, r"target_kept_fraction must be None, a number in \(0, 1\), or a non-empty tuple"),
        ("probability", "logsoftmax", r"probability must be one of"),
        ("internal_batch_size", 0, r"internal_batch_size must be None or an integer >= 1"),
    ],
)
def test_other_invalid_settings(name, value, match, mlp):
    x = _x()
    assert_rejected(
        lambda: MaskOptimization(mlp).attribute(x, target=0, n_steps=N_STEPS, **{name: value}),
        ValueError, match, mlp, x,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_parametrization(kind, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, parametrization="gaussian3d"),
        ValueError, r"parametrization must be one of .*'gaussian3d'", mlp, x, layer=mlp[0],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_smooth2d_for_a_2d_input(kind, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, parametrization="smooth2d"),
        ValueError, r"parametrization='smooth2d' needs the default pixel groups", mlp, x,
        layer=mlp[0],
    )


def test_smooth2d_for_an_image_with_a_feature_mask():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.randn(2, 2, 4, 4)
    mask = torch.arange(16).view(1, 1, 4, 4)
    assert_rejected(
        lambda: MaskOptimization(model).attribute(
            x, target=0, n_steps=N_STEPS, parametrization="smooth2d", feature_mask=mask
        ),
        ValueError, r"parametrization='smooth2d' needs the default pixel groups", model, x, mask,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.long, torch.uint8])
def test_pinned_features_that_are_not_bool(kind, dtype, mlp):
    x = _x()
    pins = torch.zeros(1, WIDTH[kind], dtype=dtype)
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, pinned_features=pins),
        TypeError, r"pinned_features must be a bool tensor", mlp, x, pins, layer=mlp[0],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_pinned_features_with_wrong_shape(kind, mlp):
    x = _x()
    pins = torch.zeros(1, WIDTH[kind] + 1, dtype=torch.bool)
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, pinned_features=pins),
        ValueError, r"pinned_features has shape .* does not broadcast", mlp, x, pins,
        layer=mlp[0],
    )


# ----------------------------------------------------------- errors inside the model


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "fail_on", [1, 2, 4], ids=["first-forward", "second-forward", "during-optimization"]
)
def test_error_inside_the_model_propagates_unchanged(kind, fail_on):
    torch.manual_seed(0)
    error = ModelError("the model broke: shape mismatch in block 3")
    model = Failing(error, fail_on).eval()
    x = _x()
    explainer = _explainer(kind, model, model.linear)
    for enabled in (True, False):
        model.calls = 0
        with torch.set_grad_enabled(enabled):
            state = CallerState(model, x)
            with pytest.raises(ModelError) as info:
                explainer.attribute(x, target=0, n_steps=N_STEPS)
            assert info.value is error
            assert type(info.value) is ModelError
            assert str(info.value) == "the model broke: shape mismatch in block 3"
            assert model.calls == fail_on
            state.assert_unchanged()
        assert len(model.linear._forward_hooks) == 0
        assert len(model.linear._forward_pre_hooks) == 0


def test_error_inside_the_model_then_a_good_call_works():
    # The hook of the failed call is gone, so it cannot interfere with the next one.
    torch.manual_seed(0)
    model = Failing(ModelError("boom"), fail_on=3).eval()
    x = _x()
    explainer = LayerMaskOptimization(model, model.linear)
    with pytest.raises(ModelError, match="boom"):
        explainer.attribute(x, target=0, n_steps=N_STEPS)
    model.fail_on = -1
    attributions = explainer.attribute(x, target=0, n_steps=N_STEPS)
    assert attributions.shape == (2, 3)
    assert len(model.linear._forward_hooks) == 0
    plain = model.linear(x)
    assert torch.equal(model(x), plain)  # no hook replaces the layer's output any more


# --------------------------------------------------------------------- layer misuse


def test_layer_input_of_an_embedding_is_rejected():
    torch.manual_seed(0)
    model = EmbeddingBag().eval()
    ids = torch.randint(0, 10, (2, 5))
    info = assert_rejected(
        lambda: LayerMaskOptimization(model, model.embedding).attribute(
            ids, target=0, n_steps=N_STEPS, attribute_to_layer_input=True
        ),
        TypeError, r"torch\.int64", model, ids, layer=model.embedding,
    )
    # The message names the argument that led here.
    assert re.search(r"attribute_to_layer_input", str(info.value)), str(info.value)


@pytest.mark.parametrize("baselines", [0.5, torch.full((1, 5), 2.5), [0.0, float("inf")]], ids=["number", "tensor", "list"])
def test_a_fractional_baseline_for_token_ids_is_rejected(baselines):
    # Cast to the ids' dtype it would silently become another token (0.5 -> 0).
    torch.manual_seed(0)
    model = EmbeddingBag().eval()
    ids = torch.randint(1, 10, (2, 5))
    assert_rejected(
        lambda: LayerMaskOptimization(model, model.embedding).attribute(
            ids, baselines=baselines, target=0, n_steps=N_STEPS
        ),
        ValueError, r"baselines(\[1\])? must hold whole numbers for the integer input \(torch\.int64",
        model, ids, layer=model.embedding,
    )
    # Whole numbers of any dtype are token ids.
    as_float = LayerMaskOptimization(model, model.embedding).attribute(
        ids, baselines=torch.full((1, 5), 2.0), target=0, n_steps=N_STEPS
    )
    as_int = LayerMaskOptimization(model, model.embedding).attribute(ids, baselines=2, target=0, n_steps=N_STEPS)
    assert torch.equal(as_float, as_int)


def test_layer_not_used_by_the_model():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).eval()
    unused = nn.Linear(4, 4)
    x = _x()
    assert_rejected(
        lambda: LayerMaskOptimization(model, unused).attribute(x, target=0, n_steps=N_STEPS),
        RuntimeError, r"layer was not called", model, x, layer=unused,
    )
    assert len(unused._forward_hooks) == 0


def test_layer_that_is_not_a_module(mlp):
    with pytest.raises(TypeError, match=r"layer must be a torch\.nn\.Module"):
        LayerMaskOptimization(mlp, lambda t: t)


def test_multiply_by_inputs_is_taken_as_captum_spells_it(mlp):
    # IntegratedGradients(model, multiply_by_inputs=False) swaps in unchanged; True has
    # no meaning for mask values, and says so.
    x = _x()
    plain = MaskOptimization(mlp).attribute(x, target=0, n_steps=N_STEPS)
    local = MaskOptimization(mlp, multiply_by_inputs=False).attribute(x, target=0, n_steps=N_STEPS)
    assert torch.equal(plain, local)
    LayerMaskOptimization(mlp, mlp[0], None, False).attribute(x, target=0, n_steps=N_STEPS)
    for make in (lambda: MaskOptimization(mlp, multiply_by_inputs=True),
                 lambda: LayerMaskOptimization(mlp, mlp[0], multiply_by_inputs=True)):
        with pytest.raises(TypeError, match=r"multiply_by_inputs=True: .*not gradients"):
            make()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [1, "yes", None])
def test_path_average_must_be_a_bool(kind, value, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, path_average=value),
        TypeError, r"path_average must be True or False", mlp, x, layer=mlp[0],
    )


# ------------------------------------------------------- drop-in fidelity (issue 17)


@pytest.mark.parametrize("kind", KINDS)
def test_a_single_output_model_needs_no_probability_argument(kind):
    """IntegratedGradients explains ``nn.Linear(6, 1)`` without a target; so does the
    default ``probability="auto"``, with the sigmoid, which the record says."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).eval()
    x = _x()
    attributions, record = _explainer(kind, model).attribute(x, n_steps=N_STEPS, return_record=True)
    assert record.probability == "sigmoid" and torch.isfinite(attributions).all()
    explicit = _explainer(kind, model).attribute(x, n_steps=N_STEPS, probability="sigmoid")
    assert torch.equal(attributions, explicit)
    _, record = _explainer(kind, model).attribute(x, n_steps=N_STEPS, return_record=True, probability="identity")
    assert record.probability == "identity"


@pytest.mark.parametrize("kind", KINDS)
def test_a_multi_class_model_gets_the_softmax(kind, mlp):
    _, record = _explainer(kind, mlp).attribute(_x(), target=0, n_steps=N_STEPS, return_record=True)
    assert record.probability == "softmax"


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_that_ends_in_a_softmax_is_not_given_a_second_one(kind, mlp):
    """Captum's tutorials end models in ``nn.Softmax``: ``"auto"`` reads such outputs
    as they are, so the call explains the same probabilities as on the logits."""
    ending_in_softmax = nn.Sequential(*mlp, nn.Softmax(dim=1)).eval()
    x = _x()
    on_logits = _explainer(kind, mlp).attribute(x, target=0, n_steps=N_STEPS)
    on_probabilities, record = _explainer(kind, ending_in_softmax).attribute(
        x, target=0, n_steps=N_STEPS, return_record=True
    )
    assert record.probability == "identity"
    torch.testing.assert_close(on_probabilities, on_logits, atol=1e-4, rtol=0)
    twice = _explainer(kind, ending_in_softmax).attribute(x, target=0, n_steps=N_STEPS, probability="softmax")
    assert not torch.allclose(twice, on_logits, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_one_value_per_example_inside_0_1_is_warned_about(kind):
    """A model that ends in a sigmoid cannot be told from a logit model whose logits
    lie in [0, 1]: the sigmoid is taken, and a warning names ``probability='identity'``."""
    torch.manual_seed(0)
    logits = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).eval()
    x = _x()
    with pytest.warns(UserWarning, match=r"all of them in \[0, 1\].*probability='identity'") as caught:
        _, record = _explainer(kind, nn.Sequential(*logits, nn.Sigmoid()).eval()).attribute(
            x, n_steps=N_STEPS, return_record=True
        )
    assert record.probability == "sigmoid"
    # The warning points at the caller's line, not into the package or Captum.
    assert [w.filename for w in caught if "probability='identity'" in str(w.message)] == [__file__]
    assert bool((logits(x) < 0).any() | (logits(x) > 1).any())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _explainer(kind, logits).attribute(x, n_steps=N_STEPS)
        _explainer(kind, nn.Sequential(*logits, nn.Sigmoid()).eval()).attribute(
            x, n_steps=N_STEPS, probability="identity"
        )


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "NoiseTunnel"])
@pytest.mark.parametrize("kind", KINDS)
def test_warnings_point_at_the_callers_line_however_deep_the_call(kind, wrapped):
    torch.manual_seed(0)
    in_training = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.1), nn.Linear(6, 3)).train()
    explainer = _explainer(kind, in_training)
    if wrapped:
        explainer = NoiseTunnel(explainer)
    extra = {"nt_samples": 2} if wrapped else {}
    with pytest.warns(UserWarning, match=r"training mode \(Dropout\)") as caught:
        explainer.attribute(_x(), target=0, n_steps=N_STEPS, **extra)
    assert {w.filename for w in caught if "training mode" in str(w.message)} == {__file__}


def _confident_linear(scale: float) -> nn.Module:
    """Two classes; class 1's score is ``scale`` times features 0..4 weighted 5..1, so
    its probability on all-ones inputs saturates for large ``scale``."""
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2, bias=False)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(8))
        model[0].bias.zero_()
        model[1].weight.zero_()
        model[1].weight[1, :5] = scale * torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_a_saturated_target_probability_is_warned_about(kind):
    """At probability 1 (or 0) to within 1e-6 the views' probabilities hardly move: the
    attributions tie, which the warning says, naming the examples and the temperature."""
    x = torch.ones(3, 8)
    x[1] = 0.0  # no evidence: probability 1/2
    model = _confident_linear(10.0)
    with pytest.warns(UserWarning, match=r"within 1e-06 of 0 or 1 for example\(s\) 0, 2:.*/ T\)") as caught:
        _explainer(kind, model).attribute(x, target=1, n_steps=N_STEPS, internal_batch_size=2)
    assert [w.filename for w in caught if "within 1e-06" in str(w.message)] == [__file__]
    # The unlikely class saturates at 0.
    with pytest.warns(UserWarning, match=r"for example\(s\) 0, 2:"):
        _explainer(kind, model).attribute(x, target=0, n_steps=N_STEPS)
    # Tempered (the scores divided by 20), no warning, and the default call orders the
    # evidence as the weights do.
    tempered = _confident_linear(10.0 / 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranked = _explainer(kind, tempered).attribute(x, target=1)
    assert ranked[0].argsort(descending=True)[:5].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_keywords_say_why_they_mean_nothing(kind, mlp):
    x = _x()
    explainer = _explainer(kind, mlp)
    plain = explainer.attribute(x, target=0, n_steps=N_STEPS)
    assert torch.equal(explainer.attribute(x, target=0, n_steps=N_STEPS, return_convergence_delta=False), plain)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, return_convergence_delta=True),
        TypeError, r"return_convergence_delta=True: mask optimization has no convergence delta",
        mlp, x, layer=mlp[0],
    )
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, method="gausslegendre"),
        TypeError, r"method='gausslegendre': mask optimization integrates along no path",
        mlp, x, layer=mlp[0],
    )
    # LayerIntegratedGradients' grad_kwargs: None asks for nothing; keywords for
    # torch.autograd.grad have nowhere to go.
    assert torch.equal(explainer.attribute(x, target=0, n_steps=N_STEPS, grad_kwargs=None), plain)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS, grad_kwargs={"retain_graph": True}),
        TypeError, r"grad_kwargs=\{'retain_graph': True\}: mask optimization takes its gradients",
        mlp, x, layer=mlp[0],
    )


def test_half_precision_is_optimized_in_float32_and_returned_in_the_inputs_dtype(mlp):
    x = _x()
    full = MaskOptimization(mlp).attribute(x, target=0, n_steps=30)
    half = MaskOptimization(copy.deepcopy(mlp).half()).attribute(x.half(), target=0, n_steps=30)
    assert half.dtype == torch.float16
    assert (half.float() - full).abs().max() < 5e-3


@pytest.mark.parametrize("kind", KINDS)
def test_a_prediction_that_is_nan_is_refused_naming_the_example(kind, mlp):
    class NanForSecond(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(4, 6)
            self.head = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.head(self.first(x))
            return torch.where(x[:, :1] > 100, torch.full_like(out, float("nan")), out)

    model = NanForSecond().eval()
    x = _x(3)
    x[1, 0] = 1000.0
    explainer = MaskOptimization(model) if kind == "input" else LayerMaskOptimization(model, model.first)
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS),
        ValueError, r"forward_func returns nan or inf for example\(s\) \[1\]", model, x,
        layer=model.first,
    )


@pytest.mark.parametrize("internal_batch_size, named", [(None, r"\[0, 1, 2\]"), (1, r"\[0\]"), (2, r"\[0, 1\]")])
def test_views_on_which_the_model_is_not_finite_are_refused_naming_the_examples(internal_batch_size, named):
    """``lin(log(z))`` with the zero baseline: the views mix in zeros, log(0) = -inf.
    The first chunk that fails names its examples by their place in the batch."""
    torch.manual_seed(0)
    linear = nn.Linear(4, 3).eval()
    x = torch.rand(3, 4) + 0.5

    def forward(z: torch.Tensor) -> torch.Tensor:
        return linear(torch.log(z))

    with pytest.raises(ValueError, match=rf"nan or inf on the masked views of example\(s\) {named}.*baselines"):
        MaskOptimization(forward).attribute(x, target=0, n_steps=N_STEPS, internal_batch_size=internal_batch_size)
    # With a baseline on which the model is finite the same call works.
    attributions = MaskOptimization(forward).attribute(x, baselines=0.5, target=0, n_steps=N_STEPS)
    assert torch.isfinite(attributions).all()


@pytest.mark.parametrize("kind", KINDS)
def test_a_forward_func_returning_a_tuple_gets_the_clear_type_error(kind, mlp):
    def forward(x: torch.Tensor) -> Any:
        return mlp(x), "extra"

    x = _x()
    explainer = MaskOptimization(forward) if kind == "input" else LayerMaskOptimization(forward, mlp[0])
    assert_rejected(
        lambda: explainer.attribute(x, target=0, n_steps=N_STEPS),
        TypeError, r"forward_func must return a tensor of scores, got tuple.*model\(x\)\[0\]",
        mlp, x, layer=mlp[0],
    )


def test_a_zero_width_tensor_in_tuple_inputs_gets_an_empty_attribution(two_inputs):
    class WithEmpty(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = two_inputs

        def forward(self, empty: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.inner(a, b) + empty.sum(1, keepdim=True)

    model = WithEmpty().eval()
    inputs = (torch.randn(4, 0), torch.randn(4, 4), torch.randn(4, 2))
    attributions = MaskOptimization(model).attribute(inputs, target=1, n_steps=N_STEPS)
    assert [tuple(a.shape) for a in attributions] == [(4, 0), (4, 4), (4, 2)]
    without = MaskOptimization(two_inputs).attribute(inputs[1:], target=1, n_steps=N_STEPS)
    for got, expected in zip(attributions[1:], without):
        assert torch.allclose(got, expected, atol=1e-6)


def test_a_layer_called_twice_in_one_forward_pass_is_refused():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(4, 4)
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.shared(torch.tanh(self.shared(x))))

    model = Twice().eval()
    x = _x()
    assert_rejected(
        lambda: LayerMaskOptimization(model, model.shared).attribute(x, target=0, n_steps=N_STEPS),
        ValueError, r"layer is called 2 times in one forward pass", model, x, layer=model.shared,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_mask_cell_size_is_checked_for_every_input(kind, value, mlp):
    """One validation path: the setting is refused whatever the input's shape (it
    used to be ignored on inputs without a pixel grid)."""
    x = _x()
    assert_rejected(
        lambda: _explainer(kind, mlp).attribute(x, target=0, n_steps=N_STEPS, mask_cell_size=value),
        ValueError, r"mask_cell_size must be None or an integer >= 1", mlp, x, layer=mlp[0],
    )


@pytest.mark.parametrize("value", [0, -0.1])
def test_learning_rate_zero_and_negative_get_one_message(value, mlp):
    x = _x()
    with pytest.raises(ValueError, match=r"^learning_rate must be a finite number > 0, got"):
        MaskOptimization(mlp).attribute(x, target=0, learning_rate=value)
