"""Captum's conventions for an ``attribute()`` call: inputs as a tensor or a tuple of
tensors with the batch in dim 0, additional forward arguments expanded with the batch,
targets in every form Captum accepts, outputs that reduce to one score per example,
and the chunks of a batch. Shared by the attribution classes and the peers built on
them (RISE, MASE)."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from typing import Any, List, Optional, Sequence, Tuple, Type, TypeAlias, Union

import captum
import torch
from torch import Tensor

__all__ = [
    "ArgumentValueError", "ArgumentTypeError", "TargetError", "format_tensor_tuple", "check_inputs", "broadcast_shape",
    "check_output_type", "check_finite_output", "resolve_probability",
    "format_additional_forward_args", "BatchExpander", "expand_additional_forward_args",
    "format_target", "check_output", "select_target", "chunk_rows", "slice_batch",
    "chunk_target", "format_optional_like", "format_feature_mask", "format_pinned", "warn_caller",
]

TargetForm: TypeAlias = Union[None, int, Tuple[int, ...], Tensor, List[Any]]
"""Every form of ``target`` Captum accepts: None, an int, a tuple, a tensor, a list."""
TensorOrTuple: TypeAlias = Union[Tensor, Tuple[Tensor, ...]]
"""Inputs and attributions: a tensor or a tuple of tensors, batch in dim 0."""


#: Where a warning is not the caller's doing: this package, Captum (its log wrapper,
#: NoiseTunnel) and the context managers the call runs in.
_INNER_FILES = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.path.abspath(captum.__file__)) + os.sep,
    os.path.abspath(contextlib.__file__),
)


def warn_caller(message: str, category: Type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the caller's line: the first frame outside this package,
    Captum and ``contextlib``, however deep the call (``NoiseTunnel``, the text
    integration, a layer call)."""
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_INNER_FILES):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def format_tensor_tuple(
    value: Union[Tensor, Tuple[Tensor, ...]], argument: str
) -> Tuple[Tuple[Tensor, ...], bool]:
    """``value`` as a tuple of tensors, and whether it was a tuple."""
    is_tuple = isinstance(value, tuple)
    values: Tuple[Any, ...] = value if isinstance(value, tuple) else (value,)
    if not values:
        raise ArgumentValueError(f"{argument} is an empty tuple; expected at least one tensor")
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            name = f"{argument}[{i}]" if is_tuple else argument
            raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    return values, is_tuple


def check_inputs(inputs: Tuple[Tensor, ...], argument: str, floating: bool) -> int:
    """Check batch sizes (and dtypes, finiteness); returns the batch size."""
    def name(i: int) -> str:
        return argument if len(inputs) == 1 else f"{argument}[{i}]"

    n = None
    for i, x in enumerate(inputs):
        if x.dim() == 0:
            raise ArgumentValueError(f"{name(i)} must have a batch dimension (dim 0), got a scalar")
        if n is None:
            n = x.shape[0]
        elif x.shape[0] != n:
            raise ArgumentValueError(
                f"{name(i)} has batch size {x.shape[0]} but {name(0)} has {n}: every input "
                "tensor needs the same batch size in dim 0"
            )
        if floating and not x.is_floating_point():
            raise ArgumentTypeError(
                f"{name(i)} must be floating point to be masked, got {x.dtype}; for token "
                "ids use LayerMaskOptimization on the embedding layer"
            )
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ArgumentValueError(f"{name(i)} contains non-finite values (nan or inf)")
    assert n is not None
    if n == 0:
        raise ArgumentValueError(f"{argument} has an empty batch (size 0 in dim 0)")
    return n


def broadcast_shape(first: Sequence[int], second: Sequence[int]) -> Optional[torch.Size]:
    """The shape ``first`` and ``second`` broadcast to, or None when they do not."""
    try:
        shape: torch.Size = torch.broadcast_shapes(first, second)  # type: ignore[no-untyped-call]
    except RuntimeError:
        return None
    return shape


def format_additional_forward_args(args: Any, n: int) -> Tuple[Any, ...]:
    """``additional_forward_args`` as a tuple; tensors with a batch dimension must have
    the inputs' batch size, since they are expanded with the batch."""
    if args is None:
        return ()
    formatted: Tuple[Any, ...] = args if isinstance(args, tuple) else (args,)
    for i, arg in enumerate(formatted):
        if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] != n:
            raise ArgumentValueError(
                f"additional_forward_args[{i}] has batch size {arg.shape[0]} in dim 0 but "
                f"inputs have {n}: tensor arguments are expanded with the batch"
            )
    return formatted


class BatchExpander:
    """Expands batched arguments for the stacked views, caching the whole-batch case
    (the common one: every step until examples start to stop)."""

    def __init__(self, args: Tuple[Any, ...]) -> None:
        self.args = args
        self._whole: Optional[Tuple[int, Tuple[Any, ...]]] = None

    def __call__(self, rows: Optional[Tensor], times: int) -> Tuple[Any, ...]:
        if rows is not None:
            return expand_additional_forward_args(self.args, rows, times)
        if self._whole is None or self._whole[0] != times:
            self._whole = (times, expand_additional_forward_args(self.args, None, times))
        return self._whole[1]


def expand_additional_forward_args(
    args: Tuple[Any, ...], rows: Optional[Tensor], times: int
) -> Tuple[Any, ...]:
    """Select ``rows`` of batched tensor arguments and repeat them ``times`` along dim 0."""
    expanded = []
    for arg in args:
        if isinstance(arg, Tensor) and arg.dim() > 0:
            if rows is not None:
                arg = arg[rows]
            arg = arg.repeat((times,) + (1,) * (arg.dim() - 1))
        expanded.append(arg)
    return tuple(expanded)


class ArgumentValueError(ValueError, AssertionError, RuntimeError):
    """A bad value of an argument (a shape that does not broadcast, a count that does
    not match, a number out of range). Captum's methods refuse such arguments with
    ``AssertionError`` (their checks are asserts) or ``RuntimeError`` (a failed
    broadcast); this error is an instance of each and of ``ValueError``, so code
    written around any Captum method catches it, and its message names the argument
    and what was expected."""


class ArgumentTypeError(TypeError, AssertionError, RuntimeError):
    """An argument of the wrong type or dtype; an instance of ``TypeError`` and of what
    Captum's methods raise for it (``AssertionError``, or ``RuntimeError`` where torch
    fails on the dtype), as :class:`ArgumentValueError` is."""


class TargetError(IndexError, RuntimeError, AssertionError, ValueError, TypeError):
    """An impossible ``target``. Captum's methods raise ``IndexError``,
    ``RuntimeError``, ``AssertionError`` or ``TypeError`` depending on the target's
    form; this error is an instance of each, so code written around any Captum method
    catches it, and its message says what is wrong."""


def _check_index(value: int, size: int, dim: int) -> None:
    if not -size <= value < size:
        raise TargetError(
            f"target: index {value} is out of bounds for dimension {dim} with size {size} "
            "of forward_func's output"
        )


def format_target(target: TargetForm, n: int, output_shape: Sequence[int]) -> Optional[Tensor]:
    """The target as an ``(n, k)`` long tensor of non-negative indices into the output's
    dims ``1..k``, or None. An impossible target raises :class:`TargetError`."""
    dims = list(output_shape[1:])
    if target is None:
        return None
    if isinstance(target, Tensor):
        if target.numel() == 1 and not target.is_floating_point():
            target = int(target.item())
        elif target.dim() == 1 and target.numel() == n and not target.is_floating_point():
            target = target.tolist()
        else:
            raise TargetError(
                f"target tensor must hold one integer or one per example ({n}), got shape "
                f"{tuple(target.shape)} and dtype {target.dtype}"
            )
    if isinstance(target, bool) or not isinstance(target, (int, tuple, list)):
        raise TargetError(
            "target must be None, an int, a tuple of ints, a tensor or a list of ints or "
            f"tuples, got {type(target).__name__}"
        )
    if isinstance(target, (int, tuple)):
        items = [target] * n
    else:
        if len(target) != n:
            raise TargetError(f"target is a list of length {len(target)}; expected one per example ({n})")
        items = list(target)
    rows = []
    for item in items:
        item = (item,) if isinstance(item, int) else item
        if not isinstance(item, tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in item
        ):
            raise TargetError(f"target entries must be ints or tuples of ints, got {item!r}")
        if len(item) > len(dims):
            raise TargetError(
                f"target {item} indexes {len(item)} output dimension(s) but forward_func "
                f"returns shape {tuple(output_shape)}, which has {len(dims)} after the batch; "
                "a forward_func returning one value per example has no class dimension to "
                "index: pass target=None"
            )
        for d, (value, size) in enumerate(zip(item, dims)):
            _check_index(value, size, d + 1)
        rows.append([v % size for v, size in zip(item, dims)])
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise TargetError("target tuples must all have the same length")
    return torch.tensor(rows, dtype=torch.long)


def check_output_type(output: Any) -> Tensor:
    """``output`` if it is a tensor; a clear ``TypeError`` otherwise (a Hugging Face
    model's output object, a tuple)."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"forward_func must return a tensor of scores, got {type(output).__name__}; for "
            "a Hugging Face model wrap it, e.g. lambda ids, mask: model(ids, attention_mask="
            "mask).logits; for a model returning a tuple, pick the scores, e.g. lambda x: "
            "model(x)[0]"
        )
    return output


def check_finite_output(output: Tensor, first_row: int = 0) -> None:
    """Refuse to explain examples whose own prediction is nan or inf."""
    bad = ~torch.isfinite(output.reshape(output.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        rows = (bad.nonzero().reshape(-1) + first_row).tolist()
        raise ValueError(
            f"forward_func returns nan or inf for example(s) {rows[:10]} of the inputs: "
            "there is no prediction to explain there"
        )


# How far from 1 the sum over a row of outputs may be for "auto" to read the row as the
# model's own softmax (or four of the dtype's epsilons, if more: a bfloat16 softmax
# rounds each value by up to 0.4 %): float32 rounding of a softmax over thousands of
# classes stays far below it, and logits summing to 1 within it are not met in practice.
_DISTRIBUTION_TOLERANCE = 1e-3


def resolve_probability(probability: str, output: Tensor) -> str:
    """The ``probability`` setting in force: ``"auto"`` is ``"sigmoid"`` when the model
    gives one value per example (``(N,)`` or ``(N, 1)``, a single-logit classifier),
    ``"identity"`` when each row of the last dimension is already a distribution (no
    value below 0, summing to 1: a model that ends in a softmax, whose outputs a second
    softmax would squeeze towards uniform) and ``"softmax"`` over the last dimension
    otherwise. One value per example that lies in [0, 1] for every example may be a
    sigmoid's output, which a second sigmoid squeezes into [0.5, 0.73]: a warning says
    so (a logit cannot be told from it)."""
    if probability != "auto":
        return probability
    values = output.detach()
    one_value = output.dim() == 1 or math.prod(output.shape[1:]) == 1
    if one_value:
        if values.is_floating_point() and bool(((values >= 0) & (values <= 1)).all()):
            warn_caller(
                "forward_func returns one value per example, all of them in [0, 1]: "
                "probability='auto' reads them as logits and takes their sigmoid; if "
                "they are probabilities already (a model that ends in a sigmoid), pass "
                "probability='identity'"
            )
        return "sigmoid"
    if values.is_floating_point():
        tolerance = max(_DISTRIBUTION_TOLERANCE, 4 * torch.finfo(values.dtype).eps)
        sums = values.to(torch.float32).sum(dim=-1)
        if bool((values >= 0).all() and ((sums - 1).abs() <= tolerance).all()):
            return "identity"
    return "softmax"


def check_output(output: Any, n: int, target: Optional[Tensor], probability: str) -> None:
    """Check that each example's output reduces to one target probability."""
    output = check_output_type(output)
    if output.dim() == 0 or output.shape[0] != n:
        raise ValueError(
            f"forward_func returned shape {tuple(output.shape)}; expected the batch size {n} "
            "in dim 0"
        )
    k = 0 if target is None else target.shape[1]
    remaining = output.shape[1 + k :]
    if math.prod(remaining) != 1:
        if target is None:
            raise TargetError(
                f"target is None but forward_func returns {tuple(output.shape[1:])} values per "
                "example; pass target (e.g. the predicted class, model(x).argmax(1))"
            )
        raise TargetError(
            f"target selects {k} output dimension(s) but forward_func returns shape "
            f"{tuple(output.shape)}: a target must select one value per example"
        )
    if probability == "softmax" and (output.dim() == 1 or output.shape[-1] == 1):
        raise ValueError(
            "probability='softmax' over a single output is always 1: use "
            "probability='sigmoid' (what the default 'auto' picks) for a single-logit "
            "classifier or 'identity' for a model that returns probabilities"
        )


def select_target(probabilities: Tensor, target: Optional[Tensor]) -> Tensor:
    """One probability per row: ``probabilities[i, *target[i]]``."""
    m = probabilities.shape[0]
    if target is None:
        return probabilities.reshape(m)
    if target.shape[1] == 1 and probabilities.dim() == 2:
        return probabilities.gather(1, target).reshape(m)
    index = (torch.arange(m, device=probabilities.device),) + tuple(target.t())
    return probabilities[index].reshape(m)


def chunk_rows(n: int, internal_batch_size: Optional[int]) -> List[slice]:
    """Consecutive slices of the batch of at most ``internal_batch_size`` examples."""
    if internal_batch_size is None:
        return [slice(0, n)]
    if isinstance(internal_batch_size, bool) or not isinstance(internal_batch_size, int) or internal_batch_size < 1:
        raise ArgumentValueError(f"internal_batch_size must be None or an integer >= 1, got {internal_batch_size!r}")
    return [slice(i, min(i + internal_batch_size, n)) for i in range(0, n, internal_batch_size)]


def slice_batch(values: Tuple[Any, ...], n: int, rows: slice) -> Tuple[Any, ...]:
    """Take ``rows`` of every tensor in ``values`` whose dim 0 is the batch."""
    return tuple(
        v[rows] if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n else v
        for v in values
    )


def chunk_target(target: Optional[Tensor], chunk: slice, output: Tensor) -> Optional[Tensor]:
    """The formatted target's rows for one chunk, on the output's device."""
    return None if target is None else target[chunk].to(output.device)


def format_optional_like(
    value: Optional[Union[Tensor, Tuple[Tensor, ...]]], like: Tuple[Tensor, ...], argument: str
) -> Optional[Tuple[Tensor, ...]]:
    """An optional tensor-or-tuple argument that needs one tensor per input."""
    if value is None:
        return None
    values, _ = format_tensor_tuple(value, argument)
    if len(values) != len(like):
        raise ArgumentValueError(
            f"{argument} must give one tensor per input tensor: got {len(values)} for "
            f"{len(like)}"
        )
    return values


def format_feature_mask(value: Any, like: Tuple[Tensor, ...]) -> Optional[Tuple[Tensor, ...]]:
    """``feature_mask`` as a tuple with one tensor per tensor of ``like``."""
    if isinstance(value, int) and not isinstance(value, bool):
        # IntegratedGradients.attribute takes n_steps fifth; here, as in FeatureAblation,
        # the fifth argument is the feature mask.
        raise ArgumentTypeError(
            f"feature_mask must be a torch.Tensor, got int {value}: the fifth positional "
            "argument is feature_mask (as in FeatureAblation), not n_steps as in "
            f"IntegratedGradients; pass n_steps={value} by keyword"
        )
    return format_optional_like(value, like, "feature_mask")


def format_pinned(
    pinned_features: Optional[Union[Tensor, Tuple[Tensor, ...]]], like: Tuple[Tensor, ...]
) -> Optional[Tuple[Tensor, ...]]:
    """``pinned_features`` as a tuple of bool tensors broadcastable to ``like``."""
    values = format_optional_like(pinned_features, like, "pinned_features")
    if values is None:
        return None
    for i, (pins, x) in enumerate(zip(values, like)):
        name = "pinned_features" if len(like) == 1 else f"pinned_features[{i}]"
        if pins.dtype != torch.bool:
            raise ArgumentTypeError(f"{name} must be a bool tensor, got dtype {pins.dtype}")
        shape = broadcast_shape(pins.shape, x.shape)
        if shape != x.shape or pins.dim() != x.dim():
            raise ArgumentValueError(
                f"{name} has shape {tuple(pins.shape)}, which does not broadcast to "
                f"{tuple(x.shape)} with the same number of dimensions"
            )
    return values
