"""Counter-based random numbers: the same value for the same key and counter, whatever
the batch, its order or the device. The robustness noise and the drawn kept-fraction
budgets come from here, which is what makes an attribution independent of the batch
it was computed in."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["uniform_hash"]


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
