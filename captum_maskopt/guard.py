"""What every attribution call promises its caller: gradients on for its own loop, the
caller's grad mode, model and tensors left as they were, and an optional progress bar."""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import torch
from torch import Tensor, nn

from captum_maskopt.formatting import warn_caller

__all__ = ["preserved_caller_state", "progress_bar"]


#: How many references away from ``forward_func`` its modules are looked for: a
#: function that calls a global ``model``, a bound method of an object that holds one.
_SEARCH_DEPTH = 3
#: Sequences and objects with more entries than this are not searched (a vocabulary).
_MAX_HELD = 64


def _modules_of(forward_func: Callable[..., Any]) -> List[nn.Module]:
    """Every module that ``forward_func`` may run, each once: its own modules when it is
    a module, else those of the modules it holds within ``_SEARCH_DEPTH`` references (a
    bound method's object or that object's attributes, a partial's function and
    arguments, a function's closure, defaults and the globals its code names), so that
    ``lambda x: model(x)`` and ``TextExplainer.forward`` get the guard the model gets."""
    found: Dict[int, nn.Module] = {}
    seen: Set[int] = set()

    def visit(value: Any, depth: int) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, nn.Module):
            for module in value.modules():
                found.setdefault(id(module), module)
        elif depth > 0:
            for reference in _references(value):
                visit(reference, depth - 1)

    visit(forward_func, _SEARCH_DEPTH)
    return list(found.values())


def _references(value: Any) -> List[Any]:
    """What ``value`` holds that may be, or lead to, a module ``forward_func`` runs."""
    if inspect.ismethod(value):
        return [value.__self__, value.__func__]
    if isinstance(value, functools.partial):
        return [value.func, *value.args, *value.keywords.values()]
    if inspect.isfunction(value):
        held: List[Any] = [cell.cell_contents for cell in value.__closure__ or () if _filled(cell)]
        held += list(value.__defaults__ or ()) + list((value.__kwdefaults__ or {}).values())
        return held + [value.__globals__[name] for name in _global_names(value.__code__) if name in value.__globals__]
    if isinstance(value, (list, tuple)) and len(value) <= _MAX_HELD:
        return list(value)
    if inspect.ismodule(value) or isinstance(value, type) or not hasattr(value, "__dict__"):
        return []
    # An object that holds the model: a callable wrapper, a TextExplainer.
    attributes = vars(value)
    return list(attributes.values()) if len(attributes) <= _MAX_HELD else []


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _global_names(code: types.CodeType) -> Set[str]:
    """The global names ``code`` and the functions defined in it read."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


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
    """Turn gradients on for the optimization (inference mode off, should the caller be
    in it) and give the caller back its grad mode and the model's buffers.

    The loop differentiates with ``torch.autograd.grad`` with respect to the mask
    parameters only, so the model's parameters, their ``.grad`` and ``requires_grad``
    and its train/eval mode are never touched. A model in training mode is warned
    about, since dropout makes every step see a different model; the buffers its
    forward passes update (batch norm's running statistics and batch count) are put
    back as they were when the call ends, also when it raises.
    """
    modules = _modules_of(forward_func)
    in_training = [m for m in modules if _acts_on_training_mode(m)]
    if in_training:
        warn_caller(
            f"forward_func is in training mode ({_named(in_training)}): "
            "dropout and batch-norm statistics of the views make the optimized mask noisy "
            "(the model's running statistics are restored after the call); call "
            "model.eval() first"
        )
    saved = _saved_buffers(modules)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        _restore_buffers(saved)


def _saved_buffers(modules: List[nn.Module]) -> List[Tuple[nn.Module, str, Tensor]]:
    # Only a module in training mode updates its buffers in forward (batch norm's
    # running statistics): an eval-mode model's are not copied, which spares the
    # copies on every call of the usual case.
    return [
        (owner, name, buffer.detach().clone())
        for owner in modules
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


def outside_inference_mode(value: Any) -> Any:
    """``value`` (a tensor, or a tuple or list nesting them; anything else as it is)
    with every tensor made inside ``torch.inference_mode()`` replaced by a copy made
    outside it. Autograd may not save such tensors for the backward pass (an index
    that gathers, a factor of the masked input), and the caller may have made inputs,
    baselines or masks in an evaluation loop under inference mode."""
    if isinstance(value, Tensor):
        return value.clone() if value.is_inference() else value
    if isinstance(value, (tuple, list)):
        items = [outside_inference_mode(item) for item in value]
        if all(new is old for new, old in zip(items, value)):
            # The caller's own object, whatever its class, when nothing needed a copy.
            return value
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


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
