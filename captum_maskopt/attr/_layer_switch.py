"""A hook that records a layer's tensors or swaps in given ones: how the layer
attribution, the text integration and the text peers feed new values into a model's
own forward pass."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

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
        self, layer: nn.Module, to_input: bool, device_ids: Optional[List[int]], name: str = "layer"
    ) -> None:
        # How errors name the layer: ``layer``, or ``layer[k]`` in a list of layers.
        self.name = name
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
        layer: Any, forward_func: Callable[..., Any], device_ids: Optional[List[int]], name: str = "layer"
    ) -> Optional[List[int]]:
        """Check that hooks can be put on ``layer`` (called ``name`` in errors); returns
        the devices of a ``DataParallel`` ``forward_func`` when ``device_ids`` is None."""
        if not isinstance(layer, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(layer).__name__}")
        if isinstance(layer, torch.jit.ScriptModule):
            raise TypeError(
                f"{name} is a TorchScript module, on which hooks cannot be registered; keep "
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
        self.replacement = None
        self.start_recording()
        with torch.no_grad():
            output = run()
        return output, self.recorded_tensors()

    def start_recording(self) -> None:
        """Forget what was recorded; the next forward pass records the layer's tensors
        (or counts the layer's calls, while a replacement is set)."""
        self.recorded, self.calls, self.nested = None, 0, []

    def recorded_tensors(self) -> Tuple[Tensor, ...]:
        """The tensors recorded since :meth:`start_recording`, checked: the layer was
        called once, and holds no tensors nested deeper than a tuple."""
        if self.calls > 1:
            raise ValueError(
                f"{self.name} is called {self.calls} times in one forward pass of forward_func; "
                "its tensors cannot be replaced unambiguously: pass a module that is called "
                "once (e.g. wrap the shared module's single use in a module of its own)"
            )
        recorded = self.recorded
        if recorded is None:
            raise RuntimeError(
                f"{self.name} was not called during forward_func's forward pass; pass a module "
                "that forward_func uses"
            )
        if self.nested:
            # Masking only the layer's plain tensors would explain the prediction by
            # tensors it may not even use (an LSTM classifier reads h, not the outputs).
            where = "input" if self.to_input else "output"
            raise TypeError(
                f"{self.name}'s {where} holds tensors inside a tuple, list or dict at position(s) "
                f"{self.nested} (e.g. an LSTM's (output, (h, c))), which cannot be masked: "
                f"pass a layer whose {where} is a tensor or a tuple of tensors, e.g. the "
                "embedding layer before it"
            )
        return recorded


class LayerSwitches:
    """:class:`LayerSwitch` hooks on several layers used as one, as Captum's layer
    methods take a list of layers: their tensors side by side, in the layers' order.

    The layers must not feed one another: a view replaces every layer's tensors, so a
    layer computed from another's tensors would overwrite what the other's values do
    (:meth:`check_independent` refuses them).
    """

    def __init__(
        self, layers: Sequence[nn.Module], names: Sequence[str], to_input: bool,
        device_ids: Optional[List[int]],
    ) -> None:
        self.switches: List[LayerSwitch] = []
        try:
            for layer, name in zip(layers, names):
                self.switches.append(LayerSwitch(layer, to_input, device_ids, name))
        except BaseException:
            self.remove()
            raise
        # Tensors per layer and the CUDA devices they are on (whose random states the
        # independence check forks), known once a recording has run.
        self.counts: List[int] = []
        self.cuda_devices: List[int] = []

    def remove(self) -> None:
        for switch in self.switches:
            switch.remove()

    def record(self, run: Callable[[], Any]) -> Tuple[Any, Tuple[Tensor, ...]]:
        """Run the model once, returning its output and every layer's tensors."""
        for switch in self.switches:
            switch.replacement = None
            switch.start_recording()
        with torch.no_grad():
            output = run()
        parts = [switch.recorded_tensors() for switch in self.switches]
        self.counts = [len(part) for part in parts]
        tensors = tuple(t for part in parts for t in part)
        self.cuda_devices = sorted({t.device.index for t in tensors if t.is_cuda and t.device.index is not None})
        return output, tensors

    def split(self, tensors: Sequence[Any]) -> List[Tuple[Any, ...]]:
        """``tensors`` laid out as :meth:`record` returns them, per layer."""
        parts, start = [], 0
        for count in self.counts:
            parts.append(tuple(tensors[start : start + count]))
            start += count
        return parts

    def substituting(self, forward_func: Callable[..., Any]) -> Callable[..., Tensor]:
        """A forward function whose first arguments are the layers' new tensors (as
        :meth:`record` lays them out) and the rest ``forward_func``'s arguments."""
        count = sum(self.counts)

        def forward(*values: Any) -> Tensor:
            for switch, part in zip(self.switches, self.split(values[:count])):
                switch.replacement = part
            try:
                output: Tensor = forward_func(*values[count:])
                return output
            finally:
                for switch in self.switches:
                    switch.replacement = None

        return forward

    def check_independent(self, run: Callable[[], Any]) -> None:
        """Raise a ``ValueError`` where one layer's tensors are computed from another's:
        each layer's tensors are shifted in turn and the others must record what they
        record without the shift (one forward pass more than the layers, none for a
        single layer). Every pass starts from the same random state, so that dropout in
        a model in training mode draws alike and is not taken for a dependence."""
        if len(self.switches) < 2:
            return
        self._record_pass(run, None)
        reference = [switch.recorded_tensors() for switch in self.switches]
        for changed, switch in enumerate(self.switches):
            # Any change would do; a shift keeps finite values finite.
            self._record_pass(run, (switch, tuple(t + 1 for t in reference[changed])))
            for position, other in enumerate(self.switches):
                if position != changed and not _same(other.recorded, reference[position]):
                    raise ValueError(
                        f"{other.name} is computed from {switch.name}'s tensors (it changes "
                        f"when they change): a view replaces both, so {other.name}'s "
                        f"replacement would undo {switch.name}'s mask; pass layers that do "
                        "not feed one another (as LayerIntegratedGradients requires)"
                    )

    def _record_pass(
        self, run: Callable[[], Any], replaced: Optional[Tuple[LayerSwitch, Tuple[Tensor, ...]]]
    ) -> None:
        """One pass of ``run`` that records every layer's tensors, with one switch's
        tensors ``replaced``, from the random state of the call (which it leaves as it
        was)."""
        for switch in self.switches:
            switch.replacement = None
            switch.start_recording()
        with torch.random.fork_rng(devices=self.cuda_devices), torch.no_grad():
            if replaced is not None:
                replaced[0].replacement = replaced[1]
            try:
                run()
            finally:
                if replaced is not None:
                    replaced[0].replacement = None


def _same(now: Optional[Tuple[Tensor, ...]], before: Tuple[Tensor, ...]) -> bool:
    """Whether a layer recorded the same tensors again (to float rounding, which a
    device's kernels may vary from pass to pass)."""
    if now is None or len(now) != len(before):
        return False
    return all(
        a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)
        for a, b in zip(now, before)
    )


def _holds_tensors(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(isinstance(v, Tensor) or _holds_tensors(v) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, Tensor) or _holds_tensors(v) for v in value.values())
    return False
