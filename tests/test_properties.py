"""Property tests: whatever the input shapes, target form, feature mask and baselines,
the attributions have the inputs' structure, shapes and dtype, are finite values in
[0, 1], are shared within feature groups, and the record has one row per example."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from captum_maskopt import LayerMaskOptimization, MaskOptimization, OptimizationRecord

SEQUENCE_DIM = 3  # D of (N, T, D) inputs
CHANNELS = 2  # C of (N, C, H, W) inputs


class Encoder(nn.Module):
    """A feature vector of width 8 for a 2-D, 3-D or 4-D input of any size: per-element
    features averaged over the elements, per-position for sequences, a convolution
    for images."""

    def __init__(self) -> None:
        super().__init__()
        self.element = nn.Linear(2, 8)
        self.position = nn.Linear(SEQUENCE_DIM, 8)
        self.conv = nn.Conv2d(CHANNELS, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.element.weight.dtype)
        if x.dim() == 2:
            # Each element and its (normalized) position, so positions differ.
            place = torch.linspace(-1, 1, x.shape[1]).expand_as(x)
            features = torch.stack([x, place], dim=-1)
            return torch.tanh(self.element(features)).mean(1)
        if x.dim() == 3:
            return torch.tanh(self.position(x)).mean(1)
        return torch.relu(self.conv(x)).mean((2, 3))


class Classifier(nn.Module):
    """Class scores from one or more inputs: the sum of their encodings, then a head."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList([Encoder(), Encoder()])
        self.head = nn.Linear(8, outputs)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        encoded = sum(encoder(x) for encoder, x in zip(self.encoders, inputs))
        return self.head(torch.tanh(encoded))


class Squeezed(nn.Module):
    """A single-logit classifier returning shape (N,)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs)[:, 0]


torch.manual_seed(0)
THREE_CLASSES = Classifier(3).eval()
ONE_LOGIT = Classifier(1).eval()
ONE_LOGIT_SQUEEZED = Squeezed(ONE_LOGIT).eval()

torch.manual_seed(0)
LAYER_MODEL = nn.Sequential(
    nn.Linear(5, 6), nn.Unflatten(1, (3, 2)), nn.Tanh(), nn.Flatten(), nn.Linear(6, 3)
).eval()


# ------------------------------------------------------------------------ strategies


@st.composite
def input_shapes(draw: Any, n: int) -> Tuple[int, ...]:
    rank = draw(st.sampled_from([2, 3, 4]))
    if rank == 2:
        return (n, draw(st.integers(1, 6)))
    if rank == 3:
        return (n, draw(st.integers(1, 5)), SEQUENCE_DIM)
    return (n, CHANNELS, draw(st.integers(1, 5)), draw(st.integers(1, 5)))


@st.composite
def cases(draw: Any) -> dict:
    n = draw(st.integers(1, 4))
    n_inputs = draw(st.sampled_from([1, 2]))
    shapes = [draw(input_shapes(n)) for _ in range(n_inputs)]
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    inputs = tuple(torch.randn(shape, generator=generator, dtype=dtype) for shape in shapes)

    # Target: int, list of ints, 1-D tensor, or None with a single-logit model.
    target_form = draw(st.sampled_from(["int", "list", "tensor", "none"]))
    probability = "softmax"
    model: nn.Module = THREE_CLASSES
    if target_form == "int":
        target: Any = draw(st.integers(-3, 2))
    elif target_form == "list":
        target = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    elif target_form == "tensor":
        target = torch.tensor(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    else:
        target = None
        probability = "sigmoid"
        model = draw(st.sampled_from([ONE_LOGIT, ONE_LOGIT_SQUEEZED]))
    if target_form != "none" and draw(st.booleans()):
        probability = "sigmoid"  # multi-label reading of the same scores

    # Optional feature mask: random ids made contiguous 0..G-1 across the inputs.
    feature_mask: Optional[Tuple[torch.Tensor, ...]] = None
    if draw(st.booleans()):
        batch = draw(st.sampled_from([1, n]))
        raw = []
        for shape in shapes:
            mask_shape = [batch] + [
                size if draw(st.booleans()) else 1 for size in shape[1:]
            ]
            high = draw(st.integers(1, 6))
            raw.append(torch.randint(0, high, mask_shape, generator=generator))
        _, contiguous = torch.unique(
            torch.cat([r.reshape(-1) for r in raw]), return_inverse=True
        )
        masks, offset = [], 0
        for r in raw:
            masks.append(contiguous[offset : offset + r.numel()].view(r.shape))
            offset += r.numel()
        feature_mask = tuple(masks)

    # Optional pinned features: bool, batch 1 or N, each other dimension 1 or full.
    pinned: Optional[Tuple[torch.Tensor, ...]] = None
    if draw(st.booleans()):
        batch = draw(st.sampled_from([1, n]))
        pinned = tuple(
            torch.rand(
                [batch] + [size if draw(st.booleans()) else 1 for size in shape[1:]],
                generator=generator,
            )
            < 0.4
            for shape in shapes
        )

    # Baselines: None, a number, or a tensor with batch dimension 1 (per input).
    baseline_form = draw(st.sampled_from(["none", "scalar", "tensor"]))
    baselines: Any = None
    if baseline_form != "none":
        per_input = []
        for shape in shapes:
            if baseline_form == "scalar" or draw(st.booleans()):
                per_input.append(draw(st.floats(-1.0, 1.0, allow_nan=False)))
            else:
                per_input.append(
                    torch.randn((1,) + shape[1:], generator=generator, dtype=dtype)
                )
        baselines = tuple(per_input)

    return dict(
        inputs=inputs,
        model=model,
        target=target,
        probability=probability,
        feature_mask=feature_mask,
        pinned_features=pinned,
        baselines=baselines,
        n_steps=draw(st.integers(3, 8)),
        check_every=draw(st.integers(1, 10)),
        tolerance=draw(st.sampled_from([0.01, 0.2, 1.0])),
        internal_batch_size=draw(st.one_of(st.none(), st.integers(1, n))),
        as_tuple=n_inputs == 2 or draw(st.booleans()),
        seed=draw(st.integers(0, 1000)),
    )


# ------------------------------------------------------------------------ checks


def _as_tuple(value: Any) -> Tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _default_groups(shapes: List[Tuple[int, ...]]) -> Tuple[torch.Tensor, ...]:
    """The documented default groups: per element of (N, F), per position of (N, T, D),
    per pixel location of (N, C, H, W), per element of a one-position sequence or a
    one-pixel image; numbered across the inputs."""
    masks, offset = [], 0
    for shape in shapes:
        if len(shape) == 3 and shape[1] > 1:
            ids = torch.arange(shape[1]).view(1, shape[1], 1)
        elif len(shape) == 4 and shape[2] * shape[3] > 1:
            ids = torch.arange(shape[2] * shape[3]).view(1, 1, shape[2], shape[3])
        else:
            ids = torch.arange(math.prod(shape[1:])).view((1,) + shape[1:])
        masks.append(ids + offset)
        offset += int(ids.max()) + 1
    return tuple(masks)


def assert_shared_within_groups(
    attributions: Tuple[torch.Tensor, ...], masks: Tuple[torch.Tensor, ...]
) -> None:
    """Every element with the same group id (in any input) has the same value, per
    example."""
    n = attributions[0].shape[0]
    for row in range(n):
        ids = torch.cat(
            [
                m[row if m.shape[0] > 1 else 0].expand(a.shape[1:]).reshape(-1)
                for m, a in zip(masks, attributions)
            ]
        )
        values = torch.cat([a[row].reshape(-1) for a in attributions])
        for group in torch.unique(ids):
            members = values[ids == group]
            assert torch.equal(members, members[:1].expand_as(members)), (
                f"example {row}, group {int(group)}: values {members.tolist()} differ"
            )


def assert_pinned_groups_are_zero(
    attributions: Tuple[torch.Tensor, ...],
    masks: Tuple[torch.Tensor, ...],
    pinned: Tuple[torch.Tensor, ...],
) -> None:
    """A group whose elements are all pinned gets attribution 0."""
    for row in range(attributions[0].shape[0]):
        ids = torch.cat(
            [
                m[row if m.shape[0] > 1 else 0].expand(a.shape[1:]).reshape(-1)
                for m, a in zip(masks, attributions)
            ]
        )
        pins = torch.cat(
            [
                p[row if p.shape[0] > 1 else 0].expand(a.shape[1:]).reshape(-1)
                for p, a in zip(pinned, attributions)
            ]
        )
        values = torch.cat([a[row].reshape(-1) for a in attributions])
        for group in torch.unique(ids):
            members = ids == group
            if pins[members].all():
                assert (values[members] == 0).all(), f"pinned group {int(group)} is not 0"


def assert_valid_record(record: OptimizationRecord, n: int, n_steps: int) -> None:
    assert isinstance(record, OptimizationRecord)
    assert record.probability in ("softmax", "sigmoid", "identity")
    for name in OptimizationRecord.__dataclass_fields__:
        if name == "probability":
            continue
        value = getattr(record, name)
        assert isinstance(value, torch.Tensor), name
        assert value.shape[0] == n, f"record.{name} has {value.shape[0]} rows, not {n}"
        assert value.dim() == 1, name
    assert record.steps.dtype == torch.long
    assert ((record.steps >= 1) & (record.steps <= n_steps)).all(), record.steps
    assert record.converged.dtype == torch.bool
    # An example that did not converge ran every step.
    assert (record.steps[~record.converged] == n_steps).all()
    assert (record.steps[record.converged] < n_steps).all()
    for name in ("keep_probability", "remove_probability", "kept_fraction"):
        value = getattr(record, name)
        assert torch.isfinite(value).all() and (value >= 0).all() and (value <= 1).all(), name
    assert torch.isfinite(record.loss).all()


def assert_valid_attributions(
    attributions: Any, inputs: Tuple[torch.Tensor, ...], as_tuple: bool
) -> Tuple[torch.Tensor, ...]:
    if as_tuple:
        assert isinstance(attributions, tuple) and len(attributions) == len(inputs)
    else:
        assert isinstance(attributions, torch.Tensor)
    attributions = _as_tuple(attributions)
    for a, x in zip(attributions, inputs):
        assert isinstance(a, torch.Tensor)
        assert a.shape == x.shape
        assert a.dtype == x.dtype
        assert a.device == x.device
        assert torch.isfinite(a).all()
        assert ((a >= 0) & (a <= 1)).all()
    return attributions


# ------------------------------------------------------------------------ properties


@settings(max_examples=15, deadline=None)
@given(case=cases(), return_record=st.booleans())
def test_mask_optimization_output_structure_and_values(case, return_record):
    inputs = case["inputs"]
    copies = [x.clone() for x in inputs]
    result = MaskOptimization(case["model"]).attribute(
        inputs if case["as_tuple"] else inputs[0],
        baselines=(
            case["baselines"]
            if case["baselines"] is None or case["as_tuple"]
            else case["baselines"][0]
        ),
        target=case["target"],
        feature_mask=(
            case["feature_mask"]
            if case["feature_mask"] is None or case["as_tuple"]
            else case["feature_mask"][0]
        ),
        pinned_features=(
            case["pinned_features"]
            if case["pinned_features"] is None or case["as_tuple"]
            else case["pinned_features"][0]
        ),
        n_steps=case["n_steps"],
        probability=case["probability"],
        check_every=case["check_every"],
        tolerance=case["tolerance"],
        internal_batch_size=case["internal_batch_size"],
        return_record=return_record,
        seed=case["seed"],
    )
    if return_record:
        assert isinstance(result, tuple) and len(result) == 2
        attributions, record = result
        assert_valid_record(record, inputs[0].shape[0], case["n_steps"])
    else:
        attributions = result
    attributions = assert_valid_attributions(attributions, inputs, case["as_tuple"])

    masks = case["feature_mask"]
    if masks is None:
        masks = _default_groups([tuple(x.shape) for x in inputs])
    assert_shared_within_groups(attributions, masks)
    if case["pinned_features"] is not None:
        assert_pinned_groups_are_zero(attributions, masks, case["pinned_features"])
    # The inputs are not modified.
    assert all(torch.equal(x, c) for x, c in zip(inputs, copies))


@settings(max_examples=15, deadline=None)
@given(case=cases())
def test_record_rows_and_steps(case):
    inputs = case["inputs"]
    n = inputs[0].shape[0]
    attributions, record = MaskOptimization(case["model"]).attribute(
        inputs,
        baselines=case["baselines"],
        target=case["target"],
        feature_mask=case["feature_mask"],
        pinned_features=case["pinned_features"],
        n_steps=case["n_steps"],
        probability=case["probability"],
        check_every=case["check_every"],
        tolerance=case["tolerance"],
        internal_batch_size=case["internal_batch_size"],
        return_record=True,
        seed=case["seed"],
    )
    assert_valid_record(record, n, case["n_steps"])
    assert_valid_attributions(attributions, inputs, True)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 4),
    target_form=st.sampled_from(["int", "list", "tensor"]),
    mask_batch=st.sampled_from([None, "1", "N"]),
    pins_batch=st.sampled_from([None, "1", "N"]),
    baseline_form=st.sampled_from(["none", "scalar", "tensor"]),
    n_steps=st.integers(3, 8),
    internal_batch_size=st.one_of(st.none(), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
)
# Per-example feature masks and pins with the batch optimized in chunks.
@example(
    n=3, target_form="list", mask_batch="N", pins_batch=None, baseline_form="none",
    n_steps=3, internal_batch_size=1, seed=0,
)
@example(
    n=3, target_form="int", mask_batch=None, pins_batch="N", baseline_form="scalar",
    n_steps=3, internal_batch_size=2, seed=0,
)
def test_layer_mask_optimization_output_structure_and_values(
    n, target_form, mask_batch, pins_batch, baseline_form, n_steps, internal_batch_size, seed
):
    # The masked tensor is the (N, 3, 2) output of LAYER_MODEL[1].
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=generator)
    copy = x.clone()
    labels = torch.randint(0, 3, (n,), generator=generator)
    target: Any = {"int": int(labels[0]), "list": labels.tolist(), "tensor": labels}[target_form]
    feature_mask = None
    if mask_batch is not None:
        raw = torch.randint(0, 4, (n if mask_batch == "N" else 1, 3, 1), generator=generator)
        feature_mask = torch.unique(raw, return_inverse=True)[1].view(raw.shape)
    pinned = None
    if pins_batch is not None:
        pinned = torch.rand(n if pins_batch == "N" else 1, 3, 1, generator=generator) < 0.4
    baselines: Any = {
        "none": None,
        "scalar": float(torch.rand((), generator=generator)) * 2 - 1,
        "tensor": torch.randn(1, 5, generator=generator),
    }[baseline_form]
    internal_batch_size = None if internal_batch_size is None else min(internal_batch_size, n)
    attributions, record = LayerMaskOptimization(LAYER_MODEL, LAYER_MODEL[1]).attribute(
        x, baselines=baselines, target=target, feature_mask=feature_mask,
        pinned_features=pinned, n_steps=n_steps, return_record=True, check_every=2,
        internal_batch_size=internal_batch_size,
    )
    assert isinstance(attributions, torch.Tensor)
    assert attributions.shape == (n, 3, 2)
    assert attributions.dtype == torch.float32
    assert torch.isfinite(attributions).all()
    assert ((attributions >= 0) & (attributions <= 1)).all()
    masks = (feature_mask,) if feature_mask is not None else (torch.arange(3).view(1, 3, 1),)
    assert_shared_within_groups((attributions,), masks)
    if pinned is not None:
        assert_pinned_groups_are_zero((attributions,), masks, (pinned,))
    assert_valid_record(record, n, n_steps)
    assert torch.equal(x, copy)
    layer = LAYER_MODEL[1]
    assert len(layer._forward_hooks) == 0 and len(layer._forward_pre_hooks) == 0


@st.composite
def method_settings(draw: Any) -> Any:
    """Valid settings in every combination: the objective's forms and weights, the
    mask, the noise and the stopping rule."""
    from captum_maskopt.settings import MaskOptimizationSettings

    return MaskOptimizationSettings(
        n_steps=draw(st.integers(1, 12)),
        learning_rate=draw(st.sampled_from([0.01, 0.1, 1.0])),
        parametrization=draw(st.sampled_from(["auto", "logits"])),
        sufficiency_weight=draw(st.sampled_from([0.0, 1.0, 3.0])),
        comprehensiveness_weight=draw(st.sampled_from([0.0, 1.0])),
        comprehensiveness=draw(st.sampled_from(["log", "hinge"])),
        comprehensiveness_margin=draw(st.sampled_from([0.0, 0.1, 0.9])),
        compactness_weight=draw(st.sampled_from([0.0, 1.0, 10.0])),
        target_kept_fraction=draw(st.sampled_from([None, 0.05, 0.5, (0.05, 0.5)])),
        smoothness_weight=draw(st.sampled_from([0.0, 1.2])),
        total_variation_weight=draw(st.sampled_from([None, 0.0, 5.0])),
        mask_cell_size=draw(st.sampled_from([None, 1, 3])),
        noise_std=draw(st.sampled_from([0.0, 0.03, 0.5])),
        flip_fraction=draw(st.sampled_from([0.0, 0.05, 0.45])),
        check_every=draw(st.integers(1, 5)),
        tolerance=draw(st.sampled_from([0.0, 0.01, 1.0])),
        path_average=draw(st.booleans()),
        seed=draw(st.sampled_from([None, 0, 2**40])),
    )


@settings(max_examples=80, deadline=None)
@given(case=cases(), chosen=method_settings())
def test_any_valid_settings_give_finite_masks_in_the_unit_interval(case, chosen):
    """Whatever the shapes, targets, baselines, groups and settings: no unexpected
    exception, no value outside [0, 1], no nan (a fixed budget of examples, a few
    seconds in CI)."""
    inputs = case["inputs"]
    one = not case["as_tuple"]
    attributions, record = MaskOptimization(case["model"]).attribute(
        inputs[0] if one else inputs,
        baselines=case["baselines"][0] if one and case["baselines"] is not None else case["baselines"],
        target=case["target"],
        feature_mask=case["feature_mask"][0] if one and case["feature_mask"] is not None else case["feature_mask"],
        settings=chosen,
        probability=case["probability"],
        return_record=True,
    )
    assert_valid_attributions(attributions, inputs, case["as_tuple"])
    assert torch.isfinite(record.loss).all()
