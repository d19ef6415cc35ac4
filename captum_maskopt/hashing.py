"""Counter-based random numbers: the same value for the same key and counter, whatever
the batch, its order or the device. The robustness noise and the drawn kept-fraction
budgets come from here, which is what makes an attribution independent of the batch
it was computed in.

For code that draws from torch's own generator (Captum's sampling methods),
:func:`seeded_draws` runs a block under a seed derived from a seed and a name, so that
its draws do not depend on what ran before it."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator, Optional

import torch
from torch import Tensor

__all__ = ["uniform_hash", "seeded_draws"]


@contextlib.contextmanager
def seeded_draws(seed: int, name: str, device: Optional[torch.device] = None) -> Iterator[None]:
    """Run a block with torch's generator seeded from ``seed`` and ``name`` (the CPU's,
    and that of ``device`` when it is a CUDA device), and give the caller's generator
    state back afterwards: the block's random draws (Lime's and KernelShap's samples,
    Shapley's permutations, SmoothGrad's noise) are the same whatever ran before it."""
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()[:8], 16))
        yield


def uniform_hash(keys: Tensor, counter: Tensor) -> Tensor:
    """Deterministic uniforms in (0, 1), float64, from 32-bit integer hashing of
    ``(key, counter)`` (int64 tensors that broadcast against each other).

    A counter-based generator rather than a stateful one: the value for group ``i`` at
    step ``t`` is the same whatever the batch, the batch order or the device.
    """
    mask32 = 0xFFFFFFFF
    x = (counter * 0x9E3779B1 + keys) & mask32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & mask32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & mask32
    x = x ^ (x >> 16)
    return (x.to(torch.float64) + 0.5) / 4294967296.0
