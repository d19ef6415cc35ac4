"""Feature groups: which input elements share one mask value.

Groups are numbered ``0 .. G-1`` across all input tensors (the same id in two inputs
is one group, as in Captum's perturbation methods; a feature mask's ids, which need
not be consecutive, are renumbered so). Each input tensor gets an index
tensor of group ids, shaped ``(B, *S)`` with ``B`` 1 or N and ``S`` broadcastable to
the input's non-batch shape, so a mask ``(n, G)`` expands to ``(n, *S)`` by indexing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_maskopt.formatting import ArgumentTypeError, ArgumentValueError

__all__ = ["FeatureGroups", "default_group_index", "checked_feature_mask", "build_feature_groups"]


@dataclass
class FeatureGroups:
    """Group index per input, the group count, per-example sizes and pins.

    Attributes:
        index: per input, a long tensor ``(B, *S)`` of group ids.
        n_groups: number of groups ``G``.
        sizes: ``(N, G)`` input elements per group and example; zero where pinned.
        pinned: ``(N, G)`` bool, groups fixed to "removed".
        grid: ``(H, W)`` when the groups are the pixel locations of one image input.
        sequence: whether group order is a sequence order (tokens along ``T``).
        identity: per input, whether its index is just ``0 .. G-1`` in order, so that
            expanding the mask is a reshape rather than a gather.
    """

    index: Tuple[Tensor, ...]
    n_groups: int
    sizes: Tensor
    pinned: Tensor
    grid: Optional[Tuple[int, int]]
    sequence: bool
    identity: Tuple[bool, ...]

    def expand(self, values: Tensor, input_number: int, rows: Optional[Tensor]) -> Tensor:
        """Group values ``(n, G)`` to per-element values ``(n, *S)`` for one input."""
        index = self.index[input_number]
        if self.identity[input_number]:
            return values.view((values.shape[0],) + tuple(index.shape[1:]))
        if index.shape[0] == 1:
            return values[:, index[0]]
        if rows is not None:
            index = index[rows]
        flat = index.reshape(index.shape[0], -1)
        return torch.gather(values, 1, flat).view(index.shape)


def default_group_index(shape: Sequence[int]) -> Tuple[Tensor, Optional[Tuple[int, int]], bool]:
    """The default grouping for an input of ``shape`` (batch first).

    ``(N, F)``: one group per feature; ``(N, T, D)``: one per position, shared over D
    (tokens); ``(N, C, H, W)``: one per pixel location, shared over channels; other
    ranks, and a sequence of one position or an image of one pixel: one per element.
    Returns the index, the pixel grid if any, and whether the groups follow a
    sequence.
    """
    rest = list(shape[1:])
    if math.prod(rest) == 0:
        # A tensor without elements has no groups (and gets an empty attribution).
        return torch.zeros([1] + rest, dtype=torch.long), None, False
    # Sharing over the last dimensions would make one group of the whole tensor, whose
    # attribution is the same number everywhere: a single-channel signal (N, 1, L), a
    # pooled feature map (N, C, 1, 1) at a layer. Its elements are its features.
    if len(rest) == 2 and rest[0] > 1:
        return torch.arange(rest[0]).view(1, rest[0], 1), None, True
    if len(rest) == 3 and rest[1] * rest[2] > 1:
        height, width = rest[1], rest[2]
        return torch.arange(height * width).view(1, 1, height, width), (height, width), False
    return torch.arange(max(math.prod(rest), 1)).view([1] + rest), None, False


def _check_feature_mask(mask: object, x: Tensor, name: str) -> Tensor:
    if not isinstance(mask, Tensor):
        raise ArgumentTypeError(f"{name} must be a tensor of integer group ids, got {type(mask).__name__}")
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise ArgumentTypeError(f"{name} must hold integer group ids, got dtype {mask.dtype}")
    if mask.dim() != x.dim() or mask.shape[0] not in (1, x.shape[0]) or any(
        m not in (1, s) for m, s in zip(mask.shape[1:], x.shape[1:])
    ):
        raise ArgumentValueError(
            f"{name} has shape {tuple(mask.shape)}, which does not broadcast to the input's "
            f"shape {tuple(x.shape)}: it needs the same number of dimensions, a batch "
            f"dimension of 1 or {x.shape[0]} and each other dimension 1 or the input's size"
        )
    if mask.numel() and int(mask.min()) < 0:
        raise ArgumentValueError(f"{name} contains negative group ids; ids must be integers >= 0")
    return mask.to(device=x.device, dtype=torch.long)


def checked_feature_mask(
    feature_mask: Tuple[Tensor, ...], like: Tuple[Tensor, ...], argument: str = "feature_mask"
) -> Tuple[Tensor, ...]:
    """``feature_mask`` checked (shapes, integer dtype, no negative ids) and numbered
    ``0 .. G-1`` over the whole batch and all tensors, in the order of its ids.

    The ids need not be consecutive, as in Captum's ``FeatureAblation`` and
    ``ShapleyValueSampling`` (superpixel labels from 1, say): ids that no element
    carries are not groups, so the groups are those of the consecutive renumbering.
    """
    indices = [
        _check_feature_mask(mask, x, argument if len(like) == 1 else f"{argument}[{i}]")
        for i, (mask, x) in enumerate(zip(feature_mask, like))
    ]
    present = torch.unique(torch.cat([index.reshape(-1) for index in indices]))
    if not present.numel() or int(present[-1]) + 1 == present.numel():
        return tuple(indices)
    return tuple(torch.searchsorted(present, index) for index in indices)


def build_feature_groups(
    inputs: Tuple[Tensor, ...],
    feature_mask: Optional[Tuple[Tensor, ...]],
    baselines: List[Tuple[Tensor, ...]],
    pinned_features: Optional[Tuple[Tensor, ...]],
) -> FeatureGroups:
    """Group the input elements and find the groups fixed to "removed".

    A group is pinned when every one of its elements is either marked in
    ``pinned_features`` or equal to its value in every baseline (removing it changes
    nothing, so the optimization could say nothing about it). ``feature_mask`` must
    come from :func:`checked_feature_mask` for the whole batch; ids missing from a
    chunk are groups of size 0.
    """
    n = inputs[0].shape[0]
    device = inputs[0].device
    # The mask is optimized in at least float32: Adam's small steps and epsilon vanish
    # in float16; the views are cast back to each tensor's own dtype.
    dtype = (
        torch.promote_types(inputs[0].dtype, torch.float32)
        if inputs[0].is_floating_point() else torch.get_default_dtype()
    )
    indices: List[Tensor] = []
    grid: Optional[Tuple[int, int]] = None
    sequence = False
    if feature_mask is None:
        offset = 0
        for x in inputs:
            index, x_grid, x_sequence = default_group_index(x.shape)
            indices.append(index.to(device) + offset)
            offset += int(index.max()) + 1 if index.numel() else 0
            x_grid, x_sequence = (x_grid, x_sequence) if index.numel() else (None, False)
            if len(inputs) == 1:
                grid, sequence = x_grid, x_sequence
        n_groups = offset
    else:
        indices = [mask.to(device=device, dtype=torch.long) for mask in feature_mask]
        n_groups = max(int(index.max()) + 1 if index.numel() else 0 for index in indices)

    sizes = torch.zeros(n, n_groups, device=device, dtype=dtype)
    informative = torch.zeros(n, n_groups, device=device, dtype=dtype)
    for i, (x, index) in enumerate(zip(inputs, indices)):
        full_index = index.expand(x.shape).reshape(n, -1)
        counts_in = torch.ones(n, full_index.shape[1], device=device, dtype=dtype)
        sizes.scatter_add_(1, full_index, counts_in)
        differs = torch.zeros(x.shape, dtype=torch.bool, device=device)
        for baseline in baselines:
            differs |= x != baseline[i]
        if pinned_features is not None:
            differs &= ~pinned_features[i].to(device=device, dtype=torch.bool).expand(x.shape)
        informative.scatter_add_(1, full_index, differs.reshape(n, -1).to(informative.dtype))
    pinned = informative == 0
    identity = tuple(
        index.shape[0] == 1
        and index.numel() == n_groups
        and bool((index.reshape(-1) == torch.arange(n_groups, device=device)).all())
        for index in indices
    )
    return FeatureGroups(
        index=tuple(indices),
        n_groups=n_groups,
        sizes=sizes.masked_fill(pinned, 0.0),
        pinned=pinned,
        grid=grid,
        sequence=sequence,
        identity=identity,
    )
