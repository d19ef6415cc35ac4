"""What every attribution call promises its caller: gradients on for its own loop, the
caller's grad mode, model and tensors left as they were, and an optional progress bar."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["preserved_caller_state", "progress_bar"]


def _modules_of(forward_func: Callable[..., Any]) -> List[nn.Module]:
    owner = getattr(forward_func, "__self__", forward_func)
    # A DataParallel/DDP wrapper is a fresh module in training mode; what matters is
    # the mode of the model it wraps.
    while isinstance(owner, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        owner = owner.module
    return [owner] if isinstance(owner, nn.Module) else []


# torch.nn's modules whose forward depends on the training mode; the rest of torch.nn
# (containers, layers, activations) computes the same in both modes.
_TRAINING_DEPENDENT = (
    nn.modules.dropout._DropoutNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.RReLU,
)


def _acts_on_training_mode(module: nn.Module) -> bool:
    """Whether ``module`` is in training mode and may compute otherwise because of it:
    one of torch.nn's modules that do, or any module defined outside torch.nn (which may
    read ``self.training``). A fresh ``nn.Sequential(model.eval(), nn.Softmax(dim=1))``
    is in training mode too, and computes what the model does in eval mode."""
    if not module.training:
        return False
    if isinstance(module, _TRAINING_DEPENDENT):
        return True
    if isinstance(module, (nn.RNNBase, nn.MultiheadAttention)):
        return module.dropout > 0
    return not type(module).__module__.startswith("torch.nn.")


def _named(modules: List[nn.Module]) -> str:
    first = type(modules[0]).__name__
    return first if len(modules) == 1 else f"{first} and {len(modules) - 1} more modules"


@contextlib.contextmanager
def preserved_caller_state(forward_func: Callable[..., Any]) -> Iterator[None]:
    """Turn gradients on for the optimization and give the caller back its grad mode
    and the model's buffers.

    The loop differentiates with ``torch.autograd.grad`` with respect to the mask
    parameters only, so the model's parameters, their ``.grad`` and ``requires_grad``
    and its train/eval mode are never touched. A model in training mode is warned
    about, since dropout makes every step see a different model; the buffers its
    forward passes update (batch norm's running statistics and batch count) are put
    back as they were when the call ends, also when it raises.
    """
    modules = _modules_of(forward_func)
    in_training = [m for module in modules for m in module.modules() if _acts_on_training_mode(m)]
    if in_training:
        warnings.warn(
            f"forward_func is in training mode ({_named(in_training)}): "
            "dropout and batch-norm statistics of the views make the optimized mask noisy "
            "(the model's running statistics are restored after the call); call "
            "model.eval() first",
            UserWarning,
            stacklevel=5,
        )
    saved = _saved_buffers(modules)
    try:
        with torch.enable_grad():
            yield
    finally:
        _restore_buffers(saved)


def _saved_buffers(modules: List[nn.Module]) -> List[Tuple[nn.Module, str, Tensor]]:
    # Only a module in training mode updates its buffers in forward (batch norm's
    # running statistics): an eval-mode model's are not copied, which spares the
    # copies on every call of the usual case.
    return [
        (owner, name, buffer.detach().clone())
        for module in modules
        for owner in module.modules()
        if owner.training
        for name, buffer in owner.named_buffers(recurse=False)
    ]


def _restore_buffers(saved: List[Tuple[nn.Module, str, Tensor]]) -> None:
    with torch.no_grad():
        for owner, name, value in saved:
            current = getattr(owner, name)
            if isinstance(current, Tensor) and current.shape == value.shape:
                current.copy_(value)
            else:
                # A forward that replaced the buffer rather than updating it in place.
                setattr(owner, name, value)


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
