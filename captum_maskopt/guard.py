"""What every attribution call promises its caller: gradients on for its own loop, the
caller's grad mode, model and tensors left as they were, and an optional progress bar."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator, List, Optional

import torch
from torch import nn

__all__ = ["preserved_caller_state", "progress_bar"]


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
