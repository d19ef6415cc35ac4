"""A hook that records a layer's tensors or swaps in given ones: how the layer
attribution, the text integration and the text peers feed new values into a model's
own forward pass."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, cast

import torch
from torch import Tensor, nn

__all__ = ["LayerSwitch"]


class LayerSwitch:
    """A hook on ``layer`` that records its tensors or replaces them with given ones.

    With ``attribute_to_layer_input`` the tensors are the layer's positional tensor
    inputs (forward pre-hook), otherwise its output (forward hook): a tensor or the
    tensors of a tuple.
    """

    def __init__(
        self, layer: nn.Module, to_input: bool, device_ids: Optional[List[int]]
    ) -> None:
        self.to_input = to_input
        self.device_ids = device_ids
        self.recorded: Optional[Tuple[Tensor, ...]] = None
        self.replacement: Optional[Tuple[Tensor, ...]] = None
        self.was_tuple = False
        # Positions of the recorded values that hold tensors inside a tuple, list or
        # dict, which the switch cannot replace (an LSTM's ``(h, c)``).
        self.nested: List[int] = []
        # Calls of the layer in the current recording; a layer used twice in one
        # forward pass would get the same replacement twice.
        self.calls = 0
        if to_input:
            self.handle = layer.register_forward_pre_hook(self._pre_hook)
        else:
            self.handle = layer.register_forward_hook(self._hook)

    @staticmethod
    def check_layer(
        layer: Any, forward_func: Callable[..., Any], device_ids: Optional[List[int]]
    ) -> Optional[List[int]]:
        """Check that hooks can be put on ``layer``; returns the devices of a
        ``DataParallel`` ``forward_func`` when ``device_ids`` is None."""
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
        if isinstance(layer, torch.jit.ScriptModule):
            raise TypeError(
                "layer is a TorchScript module, on which hooks cannot be registered; keep "
                "the layer an eager module and script what follows it, e.g. forward_func="
                "lambda ids: scripted_rest(embeddings(ids))"
            )
        if device_ids is None and isinstance(forward_func, nn.DataParallel):
            return list(forward_func.device_ids)
        return device_ids

    def remove(self) -> None:
        self.handle.remove()

    def _for_replica(self, tensor: Tensor, like: Tensor) -> Tensor:
        """Under DataParallel each replica sees one chunk of the batch: give it its own."""
        if tensor.shape[0] == like.shape[0] and tensor.device == like.device:
            return tensor
        devices = self.device_ids or []
        chunks = tensor.chunk(len(devices)) if devices else (tensor,)
        position = devices.index(like.device.index) if like.device.index in devices else 0
        return chunks[position].to(like.device)

    def _swap(self, values: Tuple[Any, ...]) -> Tuple[Any, ...]:
        positions = [i for i, v in enumerate(values) if isinstance(v, Tensor)]
        self.calls += 1
        if self.replacement is None:
            self.recorded = tuple(values[i].detach() for i in positions)
            self.nested = [i for i, v in enumerate(values) if _holds_tensors(v)]
            return values
        swapped = list(values)
        for position, new in zip(positions, self.replacement):
            swapped[position] = self._for_replica(new, values[position])
        return tuple(swapped)

    def _pre_hook(self, module: nn.Module, args: Tuple[Any, ...]) -> Optional[Tuple[Any, ...]]:
        self.was_tuple = sum(isinstance(a, Tensor) for a in args) > 1
        swapped = self._swap(args)
        return None if self.replacement is None else swapped

    def _hook(self, module: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
        self.was_tuple = isinstance(output, tuple)
        values = output if isinstance(output, tuple) else (output,)
        swapped = self._swap(values)
        if self.replacement is None:
            return None
        return swapped if isinstance(output, tuple) else swapped[0]

    def substituting(self, forward_func: Callable[..., Any], count: int) -> Callable[..., Tensor]:
        """A forward function whose first ``count`` arguments are the layer's new
        tensors and the rest ``forward_func``'s arguments: it runs ``forward_func``
        with the layer's tensors replaced by the given ones."""

        def forward(*values: Any) -> Tensor:
            self.replacement = tuple(values[:count])
            try:
                output: Tensor = forward_func(*values[count:])
                return output
            finally:
                self.replacement = None

        return forward

    def record(self, run: Callable[[], Any]) -> Tuple[Any, Tuple[Tensor, ...]]:
        """Run the model once, returning its output and the layer's tensors."""
        self.replacement, self.recorded, self.calls, self.nested = None, None, 0, []
        with torch.no_grad():
            output = run()
        if self.calls > 1:
            raise ValueError(
                f"layer is called {self.calls} times in one forward pass of forward_func; "
                "its tensors cannot be replaced unambiguously: pass a module that is called "
                "once (e.g. wrap the shared module's single use in a module of its own)"
            )
        # The hook set it during run(), which the type checker cannot see.
        recorded = cast(Optional[Tuple[Tensor, ...]], self.recorded)
        if recorded is None:
            raise RuntimeError(
                "layer was not called during forward_func's forward pass; pass a module "
                "that forward_func uses"
            )
        if self.nested:
            # Masking only the layer's plain tensors would explain the prediction by
            # tensors it may not even use (an LSTM classifier reads h, not the outputs).
            where = "input" if self.to_input else "output"
            raise TypeError(
                f"layer's {where} holds tensors inside a tuple, list or dict at position(s) "
                f"{self.nested} (e.g. an LSTM's (output, (h, c))), which cannot be masked: "
                f"pass a layer whose {where} is a tensor or a tuple of tensors, e.g. the "
                "embedding layer before it"
            )
        return output, recorded


def _holds_tensors(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(isinstance(v, Tensor) or _holds_tensors(v) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, Tensor) or _holds_tensors(v) for v in value.values())
    return False
