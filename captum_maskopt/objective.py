"""The terms of the mask optimization objective, as small pure functions.

Every function works per example: its inputs carry the batch in dimension 0 and it
returns one value per example, shape ``(n,)``. Keeping the terms per example is what
makes an example's attribution independent of the other examples in its batch: the
optimization loop sums these values (never averages them) before differentiating.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "PROBABILITY_FUNCTIONS",
    "class_probabilities",
    "sufficiency_loss",
    "comprehensiveness_loss",
    "compactness_loss",
    "group_shares",
    "kept_fraction",
    "kernel_width_loss",
    "total_variation_loss",
]

PROBABILITY_FUNCTIONS = ("softmax", "sigmoid", "identity")

# Probabilities are clamped away from 0 and 1 before taking logs so that a saturated
# model gives a large but finite loss instead of inf/nan gradients.
_EPS = 1e-6


def class_probabilities(output: Tensor, probability: str) -> Tensor:
    """Turn a model's raw output into class probabilities.

    Args:
        output: the model output, batch in dimension 0.
        probability: ``"softmax"`` (over the last dimension, for single-label
            classifiers returning logits), ``"sigmoid"`` (element-wise, for single-logit
            and multi-label classifiers) or ``"identity"`` (the model already returns
            probabilities).
    """
    if probability == "softmax":
        return torch.softmax(output, dim=-1)
    if probability == "sigmoid":
        return torch.sigmoid(output)
    if probability == "identity":
        return output
    raise ValueError(
        f"probability must be one of {PROBABILITY_FUNCTIONS}, got {probability!r}"
    )


def sufficiency_loss(keep_probability: Tensor) -> Tensor:
    """``-log p_y(x_keep)``: small when the kept part alone still yields the target."""
    return -torch.log(keep_probability.clamp(_EPS, 1.0))


def comprehensiveness_loss(
    remove_probability: Tensor, form: str = "log", margin: float = 0.1
) -> Tensor:
    """Penalty for the target surviving in the remove view ``x_rem``.

    Args:
        remove_probability: ``p_y(x_rem)`` per example.
        form: ``"log"`` gives ``-log(1 - p)`` (the paper's term, unbounded as p -> 1);
            ``"hinge"`` gives ``2 * relu(p - margin)`` (the authors' later variant,
            indifferent once the target probability is below ``margin``).
        margin: the probability below which the hinge form stops penalising.
    """
    if form == "log":
        return -torch.log((1.0 - remove_probability).clamp(_EPS, 1.0))
    if form == "hinge":
        return 2.0 * torch.relu(remove_probability - margin)
    raise ValueError(f"comprehensiveness form must be 'log' or 'hinge', got {form!r}")


def group_shares(group_sizes: Tensor) -> Tensor:
    """Each group's share of its example's (unpinned) input, ``(n, G)``, rows summing
    to 1 (or 0 when everything is pinned).

    Args:
        group_sizes: ``(n, G)`` number of input elements in each group; zero for groups
            that are pinned or absent in an example. Weighting by size makes the kept
            fraction mean "share of the input", whatever the grouping.
    """
    return group_sizes / group_sizes.sum(dim=1, keepdim=True).clamp_min(1.0)


def kept_fraction(mask: Tensor, shares: Tensor) -> Tensor:
    """Share of the (unpinned) input that the mask keeps, per example.

    Args:
        mask: ``(n, G)`` mask values in [0, 1], one per feature group.
        shares: ``(n, G)`` the groups' shares of the input (see :func:`group_shares`).
    """
    return (mask * shares).sum(dim=1)


def compactness_loss(
    kept: Tensor, target_fraction: Optional[float] = None
) -> Tensor:
    """Penalty for keeping much of the input.

    Args:
        kept: the kept fraction per example (see :func:`kept_fraction`).
        target_fraction: ``None`` gives the paper's ``kept ** 2``; a number in (0, 1)
            gives ``relu(kept - target_fraction) ** 2 / target_fraction``: no pressure
            once the mask keeps at most that share, and a pressure that does not fade
            as the kept share nears the target.
    """
    if target_fraction is None:
        return kept**2
    return torch.relu(kept - target_fraction) ** 2 / target_fraction


def kernel_width_loss(log_width: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """``mean(-log sigma)`` over the valid groups: rewards wide kernels, hence
    contiguous masks.

    Args:
        log_width: ``(n, G)`` log kernel widths.
        valid: ``(n, G)`` bool, the groups whose widths count; None for all.
    """
    if valid is None:
        return -log_width.mean(dim=1)
    valid_f = valid.to(log_width.dtype)
    return -(log_width * valid_f).sum(dim=1) / valid_f.sum(dim=1).clamp_min(1.0)


def total_variation_loss(mask_grid: Tensor) -> Tensor:
    """Mean squared difference between each cell of a 2-D mask and its 8 neighbours.

    Args:
        mask_grid: ``(n, H, W)`` mask values.
    """
    n = mask_grid.shape[0]
    horizontal = (mask_grid[:, :, 1:] - mask_grid[:, :, :-1]) ** 2
    vertical = (mask_grid[:, 1:, :] - mask_grid[:, :-1, :]) ** 2
    diagonal = (mask_grid[:, 1:, 1:] - mask_grid[:, :-1, :-1]) ** 2
    anti_diagonal = (mask_grid[:, 1:, :-1] - mask_grid[:, :-1, 1:]) ** 2
    total = sum(
        term.reshape(n, -1).sum(dim=1)
        for term in (horizontal, vertical, diagonal, anti_diagonal)
    )
    # Each neighbour pair is counted once above; dividing by the cell count makes the
    # term independent of the mask resolution.
    cells = mask_grid.shape[1] * mask_grid.shape[2]
    return total / cells
