"""Work shared by the attribution classes: checking and formatting arguments, targets,
the guard that leaves the caller's model and grad mode as they were, and the choice of
mask parametrization."""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from captum_maskopt.objective import PROBABILITY_FUNCTIONS
from captum_maskopt.optimization import ObjectiveSettings, OptimizerSettings
from captum_maskopt.parametrizations import (
    FreeLogitMask,
    GaussianKernelMask1D,
    MaskParametrization,
    SmoothMask2D,
)
from captum_maskopt._features import FeatureGroups

PARAMETRIZATIONS = ("auto", "logits", "gaussian1d", "smooth2d")
TargetForm = Union[None, int, Tuple[int, ...], Tensor, List[Any]]


def format_tensor_tuple(
    value: Union[Tensor, Tuple[Tensor, ...]], argument: str
) -> Tuple[Tuple[Tensor, ...], bool]:
    """``value`` as a tuple of tensors, and whether it was a tuple."""
    is_tuple = isinstance(value, tuple)
    values = value if is_tuple else (value,)
    if not values:
        raise ValueError(f"{argument} is an empty tuple; expected at least one tensor")
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            name = f"{argument}[{i}]" if is_tuple else argument
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    return values, is_tuple


def check_inputs(inputs: Tuple[Tensor, ...], argument: str, floating: bool) -> int:
    """Check batch sizes (and dtypes, finiteness); returns the batch size."""
    name = (lambda i: argument) if len(inputs) == 1 else (lambda i: f"{argument}[{i}]")
    n = None
    for i, x in enumerate(inputs):
        if x.dim() == 0:
            raise ValueError(f"{name(i)} must have a batch dimension (dim 0), got a scalar")
        if n is None:
            n = x.shape[0]
        elif x.shape[0] != n:
            raise ValueError(
                f"{name(i)} has batch size {x.shape[0]} but {name(0)} has {n}: every input "
                "tensor needs the same batch size in dim 0"
            )
        if floating and not x.is_floating_point():
            raise TypeError(
                f"{name(i)} must be floating point to be masked, got {x.dtype}; for token "
                "ids use LayerMaskOptimization on the embedding layer"
            )
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name(i)} contains non-finite values (nan or inf)")
    assert n is not None
    if n == 0:
        raise ValueError(f"{argument} has an empty batch (size 0 in dim 0)")
    return n


def format_additional_forward_args(args: Any, n: int) -> Tuple[Any, ...]:
    """``additional_forward_args`` as a tuple; tensors with a batch dimension must have
    the inputs' batch size, since they are expanded with the batch."""
    if args is None:
        return ()
    args = args if isinstance(args, tuple) else (args,)
    for i, arg in enumerate(args):
        if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] != n:
            raise ValueError(
                f"additional_forward_args[{i}] has batch size {arg.shape[0]} in dim 0 but "
                f"inputs have {n}: tensor arguments are expanded with the batch"
            )
    return args


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


def _check_index(value: int, size: int, error: type, dim: int) -> None:
    if not -size <= value < size:
        raise error(
            f"target: index {value} is out of bounds for dimension {dim} with size {size} "
            "of forward_func's output"
        )


def format_target(target: TargetForm, n: int, output_shape: Sequence[int]) -> Optional[Tensor]:
    """The target as an ``(n, k)`` long tensor of non-negative indices into the output's
    dims ``1..k``, or None. Out-of-range targets raise what Captum's methods raise:
    IndexError for int/tuple targets, RuntimeError for tensor/list targets."""
    dims = list(output_shape[1:])
    if target is None:
        return None
    if isinstance(target, Tensor):
        if target.numel() == 1 and not target.is_floating_point():
            target = int(target.item())
        elif target.dim() == 1 and target.numel() == n and not target.is_floating_point():
            target = target.tolist()
        else:
            raise ValueError(
                f"target tensor must hold one integer or one per example ({n}), got shape "
                f"{tuple(target.shape)} and dtype {target.dtype}"
            )
    if isinstance(target, bool) or not isinstance(target, (int, tuple, list)):
        raise TypeError(
            "target must be None, an int, a tuple of ints, a tensor or a list of ints or "
            f"tuples, got {type(target).__name__}"
        )
    if isinstance(target, (int, tuple)):
        items = [target] * n
        error: type = IndexError
    else:
        if len(target) != n:
            raise ValueError(f"target is a list of length {len(target)}; expected one per example ({n})")
        items = list(target)
        # Captum gathers lists of ints (RuntimeError when out of range) but indexes with
        # each tuple of a list of tuples (IndexError).
        error = IndexError if items and isinstance(items[0], tuple) else RuntimeError
    rows = []
    for item in items:
        item = (item,) if isinstance(item, int) else item
        if not isinstance(item, tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in item
        ):
            raise TypeError(f"target entries must be ints or tuples of ints, got {item!r}")
        if len(item) > len(dims):
            raise ValueError(
                f"target {item} indexes {len(item)} output dimension(s) but forward_func "
                f"returns shape {tuple(output_shape)}, which has {len(dims)} after the batch; "
                "a forward_func returning one value per example has no class dimension to "
                "index: pass target=None"
            )
        for d, (value, size) in enumerate(zip(item, dims)):
            _check_index(value, size, error, d + 1)
        rows.append([v % size for v, size in zip(item, dims)])
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError("target tuples must all have the same length")
    return torch.tensor(rows, dtype=torch.long)


def check_output(output: Any, n: int, target: Optional[Tensor], probability: str) -> None:
    """Check that each example's output reduces to one target probability."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"forward_func must return a tensor of scores, got {type(output).__name__}; for "
            "a Hugging Face model wrap it, e.g. lambda ids, mask: model(ids, attention_mask="
            "mask).logits"
        )
    if output.dim() == 0 or output.shape[0] != n:
        raise ValueError(
            f"forward_func returned shape {tuple(output.shape)}; expected the batch size {n} "
            "in dim 0"
        )
    k = 0 if target is None else target.shape[1]
    remaining = output.shape[1 + k :]
    if math.prod(remaining) != 1:
        if target is None:
            raise ValueError(
                f"target is None but forward_func returns {tuple(output.shape[1:])} values per "
                "example; pass target (e.g. the predicted class, model(x).argmax(1))"
            )
        raise ValueError(
            f"target selects {k} output dimension(s) but forward_func returns shape "
            f"{tuple(output.shape)}: a target must select one value per example"
        )
    if probability == "softmax" and (output.dim() == 1 or output.shape[-1] == 1):
        raise ValueError(
            "probability='softmax' over a single output is always 1: use "
            "probability='sigmoid' for a single-logit classifier or 'identity' for a model "
            "that returns probabilities"
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


SETTING_NAMES = (
    "n_steps", "learning_rate", "sufficiency_weight", "comprehensiveness_weight",
    "comprehensiveness", "comprehensiveness_margin", "compactness_weight",
    "target_kept_fraction", "smoothness_weight", "total_variation_weight", "noise_std",
    "flip_fraction", "check_every", "tolerance", "path_average", "seed", "probability",
    "parametrization", "autocast",
)


def settings_of(arguments: Dict[str, Any]) -> Dict[str, Any]:
    """The method's settings among an ``attribute`` call's arguments (its ``locals()``)."""
    return {name: arguments[name] for name in SETTING_NAMES}


def settings_from_arguments(
    *,
    n_steps: int,
    learning_rate: float,
    sufficiency_weight: float,
    comprehensiveness_weight: float,
    comprehensiveness: str,
    comprehensiveness_margin: float,
    compactness_weight: float,
    target_kept_fraction: Optional[float],
    smoothness_weight: float,
    total_variation_weight: Optional[float],
    noise_std: float,
    flip_fraction: float,
    check_every: int,
    tolerance: float,
    path_average: bool,
    seed: Optional[int],
    probability: str,
    parametrization: str,
    autocast: bool,
    uses_grid: bool,
) -> Tuple[ObjectiveSettings, OptimizerSettings]:
    """Check the method's settings and bundle them."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    for name, value in (
        ("learning_rate", learning_rate),
        ("sufficiency_weight", sufficiency_weight),
        ("comprehensiveness_weight", comprehensiveness_weight),
        ("compactness_weight", compactness_weight),
        ("smoothness_weight", smoothness_weight),
        ("total_variation_weight", total_variation_weight or 0.0),
        ("noise_std", noise_std),
        ("tolerance", tolerance),
    ):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not 0 <= flip_fraction < 0.5:
        raise ValueError(f"flip_fraction must be in [0, 0.5), got {flip_fraction!r}")
    if comprehensiveness not in ("log", "hinge"):
        raise ValueError(f"comprehensiveness must be 'log' or 'hinge', got {comprehensiveness!r}")
    if not 0 <= comprehensiveness_margin < 1:
        raise ValueError(f"comprehensiveness_margin must be in [0, 1), got {comprehensiveness_margin!r}")
    if target_kept_fraction is not None and not 0 < target_kept_fraction < 1:
        raise ValueError(f"target_kept_fraction must be None or in (0, 1), got {target_kept_fraction!r}")
    if probability not in PROBABILITY_FUNCTIONS:
        raise ValueError(f"probability must be one of {PROBABILITY_FUNCTIONS}, got {probability!r}")
    if not isinstance(autocast, bool):
        raise TypeError(f"autocast must be True or False, got {autocast!r}")
    if not isinstance(path_average, bool):
        raise TypeError(f"path_average must be True or False, got {path_average!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be None or an int, got {seed!r}")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    if total_variation_weight is None:
        total_variation_weight = 10.0 if uses_grid else 0.0
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    objective = ObjectiveSettings(
        sufficiency_weight=float(sufficiency_weight),
        comprehensiveness_weight=float(comprehensiveness_weight),
        comprehensiveness_form=comprehensiveness,
        comprehensiveness_margin=float(comprehensiveness_margin),
        compactness_weight=float(compactness_weight),
        target_kept_fraction=target_kept_fraction,
        smoothness_weight=float(smoothness_weight),
        total_variation_weight=float(total_variation_weight),
    )
    optimizer = OptimizerSettings(
        n_steps=n_steps,
        learning_rate=float(learning_rate),
        noise_std=float(noise_std),
        flip_fraction=float(flip_fraction),
        check_every=check_every,
        tolerance=float(tolerance),
        path_average=path_average,
        seed=int(seed),
    )
    return objective, optimizer


def resolve_parametrization(
    name: str, groups: FeatureGroups, mask_cell_size: int
) -> MaskParametrization:
    """The parametrization for ``name``; ``"auto"`` picks the smooth 2-D mask for the
    pixel groups of one image input, the Gaussian-kernel mask for one sequence input,
    and free logits otherwise."""
    if name == "auto":
        name = "smooth2d" if groups.grid else "gaussian1d" if groups.sequence else "logits"
    if name == "smooth2d":
        if groups.grid is None:
            raise ValueError(
                "parametrization='smooth2d' needs the default pixel groups of a single "
                "(N, C, H, W) input (no feature_mask)"
            )
        return SmoothMask2D(groups.grid, cell_size=mask_cell_size)
    if name == "gaussian1d":
        return GaussianKernelMask1D(groups.n_groups)
    return FreeLogitMask(groups.n_groups)


def _modules_of(forward_func: Callable[..., Any]) -> List[nn.Module]:
    owner = getattr(forward_func, "__self__", forward_func)
    # A DataParallel/DDP wrapper is a fresh module in training mode; what matters is
    # the mode of the model it wraps.
    while isinstance(owner, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        owner = owner.module
    return [owner] if isinstance(owner, nn.Module) else []


@contextlib.contextmanager
def preserved_caller_state(forward_func: Callable[..., Any]) -> Iterator[None]:
    """Turn gradients on for the optimization and give the caller back its grad mode.

    The loop differentiates with ``torch.autograd.grad`` with respect to the mask
    parameters only, so the model's parameters, their ``.grad`` and ``requires_grad``
    and its train/eval mode are never touched; a model in training mode is warned
    about, since dropout makes every step see a different model.
    """
    for module in _modules_of(forward_func):
        if module.training:
            warnings.warn(
                "forward_func is in training mode: dropout and batch-norm updates make the "
                "optimized mask noisy and change the model's running statistics; call "
                "model.eval() first",
                UserWarning,
                stacklevel=5,
            )
    with torch.enable_grad():
        yield


def chunk_rows(n: int, internal_batch_size: Optional[int]) -> List[slice]:
    """Consecutive slices of the batch of at most ``internal_batch_size`` examples."""
    if internal_batch_size is None:
        return [slice(0, n)]
    if isinstance(internal_batch_size, bool) or not isinstance(internal_batch_size, int) or internal_batch_size < 1:
        raise ValueError(f"internal_batch_size must be None or an integer >= 1, got {internal_batch_size!r}")
    return [slice(i, min(i + internal_batch_size, n)) for i in range(0, n, internal_batch_size)]


def slice_batch(values: Tuple[Any, ...], n: int, rows: slice) -> Tuple[Any, ...]:
    """Take ``rows`` of every tensor in ``values`` whose dim 0 is the batch."""
    return tuple(
        v[rows] if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n else v
        for v in values
    )


DEFAULT_N_STEPS = 200

SETTINGS_DOC = """\
            learning_rate (float, optional): Adam's step size for the mask
                        parameters. Default: 0.1
            parametrization (str, optional): how parameters become the mask:
                        ``"logits"`` (one free logit per group), ``"gaussian1d"``
                        (the paper's smooth sequence mask of Gaussian kernels),
                        ``"smooth2d"`` (kernels on a coarse grid upsampled to the
                        image) or ``"auto"``: smooth2d for the default pixel groups
                        of an ``(N, C, H, W)`` input, gaussian1d for an ``(N, T, D)``
                        sequence, logits otherwise. Default: "auto"
            probability (str, optional): how outputs become probabilities:
                        ``"softmax"`` over the last dimension (single-label
                        classifiers), ``"sigmoid"`` (single-logit and multi-label
                        classifiers) or ``"identity"`` (the model returns
                        probabilities). Default: "softmax"
            sufficiency_weight (float, optional): weight of ``-log p_y(x_keep)``.
                        Default: 1.0
            comprehensiveness_weight (float, optional): weight of the penalty on
                        ``p_y(x_rem)``. Default: 1.0
            comprehensiveness (str, optional): ``"log"`` for ``-log(1 - p)``, or
                        ``"hinge"`` for ``2 * relu(p - comprehensiveness_margin)``.
                        Default: "log"
            comprehensiveness_margin (float, optional): the hinge's margin.
                        Default: 0.1
            compactness_weight (float, optional): weight of the compactness term
                        (the paper: 1.0 for text, 0.6 ResNet, 0.25 ViT).
                        Default: 1.0
            target_kept_fraction (float, optional): if given, compactness becomes
                        ``relu(kept - target) ** 2 / target``: no pressure once the
                        mask keeps at most this share. Default: None (``kept ** 2``)
            smoothness_weight (float, optional): weight of the kernel-width term
                        ``mean(-log sigma)`` of the Gaussian-kernel masks (the
                        paper: 1.2). Default: 1.2
            total_variation_weight (float, optional): weight of the 2-D total
                        variation of pixel masks; None means 10 for the default
                        pixel groups of images and 0 otherwise. Default: None
            noise_std (float, optional): std of the Gaussian noise added to the
                        mask at each step, so the mask cannot exploit exact soft
                        values. Default: 0.03
            flip_fraction (float, optional): share of groups forced to 0 and, as
                        many, to 1 at each step. Default: 0.05
            check_every (int, optional): steps between convergence checks (each
                        check is one device-to-host sync). Default: 10
            tolerance (float, optional): an example stops when no mask value moved
                        by this much since the last check. Default: 0.01
            path_average (bool, optional): return each group's mask value
                        averaged over the example's optimization steps (the final
                        mask included) instead of the final mask. Groups that the
                        compactness pressure removes late score higher than those
                        it removes early, which orders the features inside the kept
                        and inside the removed part; rankings (AOPC, deletion
                        curves) get better while the values stay in [0, 1] and an
                        example still does not depend on its batch. The record
                        still describes the final mask. Default: False
            seed (int, optional): seed of the robustness noise; the same seed gives
                        the same attribution whatever the batch. None draws one.
                        Default: 0
            autocast (bool, optional): run the model under ``torch.autocast`` on
                        the inputs' device (float16 on CUDA) to save time and
                        memory. Default: False"""


def with_settings_doc(function: Callable[..., Any]) -> Callable[..., Any]:
    """Put the shared description of the method's settings into a docstring."""
    if function.__doc__:
        function.__doc__ = function.__doc__.replace("{settings}", SETTINGS_DOC).replace(
            "{n_steps}", str(DEFAULT_N_STEPS)
        )
    return function


def format_optional_like(
    value: Optional[Union[Tensor, Tuple[Tensor, ...]]], like: Tuple[Tensor, ...], argument: str
) -> Optional[Tuple[Tensor, ...]]:
    """An optional tensor-or-tuple argument that needs one tensor per input."""
    if value is None:
        return None
    values, _ = format_tensor_tuple(value, argument)
    if len(values) != len(like):
        raise ValueError(
            f"{argument} must give one tensor per input tensor: got {len(values)} for "
            f"{len(like)}"
        )
    return values


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
            raise TypeError(f"{name} must be a bool tensor, got dtype {pins.dtype}")
        try:
            shape = torch.broadcast_shapes(pins.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape or pins.dim() != x.dim():
            raise ValueError(
                f"{name} has shape {tuple(pins.shape)}, which does not broadcast to "
                f"{tuple(x.shape)} with the same number of dimensions"
            )
    return values


@contextlib.contextmanager
def progress_bar(show: bool, total: int, description: str) -> Iterator[Optional[Callable[[int], None]]]:
    """A tqdm bar over optimization steps, or None when not shown."""
    if not show:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description)
    try:
        yield lambda _step: bar.update(1)
    finally:
        bar.close()


def chunk_target(target: Optional[Tensor], chunk: slice, output: Tensor) -> Optional[Tensor]:
    """The formatted target's rows for one chunk, on the output's device."""
    return None if target is None else target[chunk].to(output.device)
