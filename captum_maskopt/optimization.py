"""The optimization loop shared by the attribution classes.

The loop knows nothing of models or inputs: it receives a ``predict`` callable that
turns mask values ``(n, G)`` for a subset of the batch into the target probabilities of
the keep and remove views, and it returns the optimized masks. Everything in it is per
example so that an example's result does not depend on its batch:

* the loss is a sum of per-example losses;
* Adam's moments and bias correction are kept per example (a stopped example is not
  moved by momentum while the others go on);
* each example stops on its own once its mask has settled, and then costs no compute;
* the robustness noise is a pure function of (seed, step, group), so an example sees
  the same noise whatever else is in its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, TypeAlias

import numpy as np
import torch
from torch import Tensor

from captum_maskopt.features import FeatureGroups
from captum_maskopt.hashing import uniform_hash
from captum_maskopt.metrics import AOPC_FRACTIONS, rationale_size
from captum_maskopt.objective import Objective, ObjectiveState, example_keys, group_shares, kept_fraction
from captum_maskopt.parametrizations import MaskParametrization, Params, standardized_scores
from captum_maskopt.settings import BAND_READINGS, CUT_EXCHANGES, EXCHANGE_KEEP_WEIGHT, MaskOptimizationSettings

__all__ = ["OptimizationRecord", "NonFiniteViewsError", "optimize_masks", "noise_block", "mask_noise"]

Predict: TypeAlias = Callable[[Tensor, Optional[Tensor]], Tuple[Tensor, Tensor]]
"""``predict(mask_values, rows) -> (keep, remove)``: target probabilities of the keep
and remove views, ``(K, n)`` each, for the mask values ``(n, G)`` of the examples
``rows`` (None: all of them; an example may appear more than once, to try several
masks on it in one pass)."""


@dataclass
class OptimizationRecord:
    """What the optimization did for each example (all tensors have one row per example).

    Attributes:
        steps: optimization steps taken.
        converged: whether the example stopped before ``n_steps`` because its mask
            changed by less than the tolerance between two checks.
        keep_probability: target probability of the keep view under the final mask
            (mean over baselines).
        remove_probability: target probability of the remove view under the final mask.
        kept_fraction: share of the (unpinned) input that the final mask keeps.
        loss: the objective (without noise) at the final mask.
        probability: how the outputs became probabilities (``"auto"`` resolved).
    """

    steps: Tensor
    converged: Tensor
    keep_probability: Tensor
    remove_probability: Tensor
    kept_fraction: Tensor
    loss: Tensor
    probability: str = "softmax"

    @staticmethod
    def concatenate(records: "list[OptimizationRecord]") -> "OptimizationRecord":
        """Join the records of consecutive chunks of a batch."""
        tensors = {
            name: torch.cat([getattr(r, name) for r in records])
            for name in OptimizationRecord.__dataclass_fields__
            if name != "probability"
        }
        return OptimizationRecord(**tensors, probability=records[0].probability)


def noise_block(
    n_groups: int, first_step: int, n_steps: int, seed: int, device: torch.device,
    dtype: torch.dtype, noise_std: float, flip_fraction: float,
) -> Tuple[Tensor, Tensor, Tensor]:
    """The robustness noise of ``n_steps`` consecutive steps, each ``(n_steps, G)``.

    Returns ``(shift, lower, upper)``: the noisy mask is ``clamp(m + shift, lower,
    upper)``, where ``shift`` is Gaussian with std ``noise_std`` and the bounds force a
    ``flip_fraction`` of the groups to 0 (``upper = 0``) and as many to 1
    (``lower = 1``).
    """
    # The seed is mixed in Python's unbounded integers, so any seed fits int64 tensor
    # ops; the steps are made on the device, so drawing noise never copies from the host.
    seed_key = (seed * 0x85EBCA77) & 0xFFFFFFFF
    steps = torch.arange(first_step, first_step + n_steps, device=device, dtype=torch.int64)
    key_tensor = ((steps * 0xC2B2AE3D + seed_key) & 0xFFFFFFFF).unsqueeze(1)
    counter = torch.arange(3 * n_groups, device=device, dtype=torch.int64).unsqueeze(0)
    uniforms = uniform_hash(key_tensor, counter).view(n_steps, n_groups, 3)
    u1, u2, u3 = uniforms.unbind(-1)
    gaussian = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    lower = (u3 > 1.0 - flip_fraction).to(dtype)
    upper = (u3 >= flip_fraction).to(dtype)
    return (gaussian * noise_std).to(dtype), lower, upper


def mask_noise(
    n_groups: int, step: int, seed: int, device: torch.device, dtype: torch.dtype,
    noise_std: float, flip_fraction: float,
) -> Tuple[Tensor, Tensor, Tensor]:
    """One step's noise as ``(gaussian, forced_to_zero, forced_to_one)``, each ``(G,)``."""
    shift, lower, upper = noise_block(
        n_groups, step, 1, seed, device, dtype, noise_std, flip_fraction
    )
    return shift[0], upper[0] == 0, lower[0] == 1


# Steps of noise drawn at once: enough to amortise the hashing, little memory.
_NOISE_BLOCK_STEPS = 16


class _NoiseSchedule:
    """Hands out each step's noise, computed a block of steps at a time so that a step
    costs one addition and one clamp."""

    def __init__(self, settings: MaskOptimizationSettings, n_groups: int, like: Tensor) -> None:
        assert settings.seed is not None, "the caller resolves the seed once per call"
        self.settings = settings
        self.seed = settings.seed
        self.n_groups = n_groups
        self.like = like
        self.enabled = settings.noise_std > 0 or settings.flip_fraction > 0
        self.block_start = 0
        self.block: Optional[Tuple[Tensor, Tensor, Tensor]] = None

    def apply(self, mask: Tensor, step: int) -> Tensor:
        if not self.enabled:
            return mask
        if self.block is None or not self.block_start <= step < self.block_start + len(self.block[0]):
            size = min(_NOISE_BLOCK_STEPS, self.settings.n_steps - step)
            self.block_start = step
            self.block = noise_block(
                self.n_groups, step, size, self.seed, self.like.device,
                self.like.dtype, self.settings.noise_std, self.settings.flip_fraction,
            )
        shift, lower, upper = (part[step - self.block_start] for part in self.block)
        return torch.clamp(mask + shift, lower, upper)


class _Adam:
    """Adam with per-example step counts, updating rows of parameter tensors in place.

    While every example is active all share one step count, and the update is a few
    fused ``_foreach`` operations with scalar bias corrections; once examples have
    stopped, the active rows are updated with per-row corrections.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: Params, learning_rate: float) -> None:
        self.lr = learning_rate
        self.names = list(params)
        self.first = [torch.zeros_like(params[k]) for k in self.names]
        self.second = [torch.zeros_like(params[k]) for k in self.names]

    def step_all(self, params: Params, grads: List[Tensor], t: int) -> None:
        b1, b2 = self.betas
        torch._foreach_mul_(self.first, b1)
        torch._foreach_add_(self.first, grads, alpha=1 - b1)
        torch._foreach_mul_(self.second, b2)
        torch._foreach_addcmul_(self.second, grads, grads, value=1 - b2)
        denominator = torch._foreach_sqrt(self.second)
        torch._foreach_div_(denominator, math.sqrt(1 - b2**t))
        torch._foreach_add_(denominator, self.eps)
        values = [params[k] for k in self.names]
        torch._foreach_addcdiv_(values, self.first, denominator, value=-self.lr / (1 - b1**t))

    def step_rows(self, params: Params, grads: List[Tensor], rows: Tensor, t: Tensor) -> None:
        """``t``: the 1-based step count of each updated row, shape ``(n,)``."""
        b1, b2 = self.betas
        for i, (name, grad) in enumerate(zip(self.names, grads)):
            shape = (-1,) + (1,) * (grad.dim() - 1)
            correction1 = (1 - b1 ** t.to(grad.dtype)).view(shape)
            correction2 = (1 - b2 ** t.to(grad.dtype)).view(shape)
            m1 = self.first[i][rows].mul_(b1).add_(grad, alpha=1 - b1)
            m2 = self.second[i][rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
            self.first[i][rows] = m1
            self.second[i][rows] = m2
            update = self.lr * (m1 / correction1) / ((m2 / correction2).sqrt() + self.eps)
            params[name][rows] = params[name][rows] - update


class NonFiniteViewsError(ValueError):
    """The model's output on the keep or remove views of some examples is nan or inf,
    so their loss is too: ``rows`` are their positions in the batch."""

    def __init__(self, rows: List[int]) -> None:
        self.rows = rows
        super().__init__(
            f"forward_func returns nan or inf on the masked views of example(s) {rows[:10]}: "
            "mixing an input with its baseline gives values the model cannot take (for "
            "instance log or division of a zero baseline); choose baselines on which "
            "forward_func is finite, e.g. the inputs' mean, a blur, or a small positive value"
        )

    def shifted(self, offset: int) -> "NonFiniteViewsError":
        """The same error with rows counted from ``offset`` (a chunk's first row)."""
        return NonFiniteViewsError([row + offset for row in self.rows])


def _finite_or_raise(loss: Tensor, rows: Tensor) -> None:
    bad = ~torch.isfinite(loss)
    if bool(bad.any()):
        raise NonFiniteViewsError(rows[bad].tolist())


class _ActiveRows:
    """The examples still being optimized: all of them (``rows`` None, whole-tensor
    operations: every step until the first example stops) or the subset ``rows``."""

    def __init__(self, n_examples: int, device: torch.device) -> None:
        self.n_examples = n_examples
        self.device = device
        self.rows: Optional[Tensor] = None

    def take(self, tensor: Tensor) -> Tensor:
        """The active rows of a per-example tensor."""
        return tensor if self.rows is None else tensor[self.rows]

    def add_to(self, total: Tensor, values: "Tensor | int") -> None:
        """``total[active] += values``, in place."""
        if self.rows is None:
            total += values
        else:
            total[self.rows] += values

    def put(self, target: Tensor, values: Tensor) -> None:
        """``target[active] = values``, in place."""
        if self.rows is None:
            target.copy_(values)
        else:
            target[self.rows] = values

    def indices(self) -> Tensor:
        """The active rows' positions in the chunk."""
        return torch.arange(self.n_examples, device=self.device) if self.rows is None else self.rows


def _mask_gradient(predict: Predict, point: Tensor, minus_removed: bool) -> Tensor:
    """The gradient, with respect to the mask values ``point``, of the target
    probability of the kept view, minus that of the removed view if ``minus_removed``."""
    point = point.detach().clone().requires_grad_()
    with torch.enable_grad():
        keep, remove = predict(point, None)
        quantity = keep - remove if minus_removed else keep
        (gradient,) = torch.autograd.grad(quantity.sum(), point)
    return gradient.detach()


def _midpoint_gradient(predict: Predict, pinned: Tensor, dtype: torch.dtype) -> Tensor:
    """``d p_keep / d m`` at the mask that keeps every group half: for a blend of
    input and baseline, each group's gradient times (input - baseline) halfway along
    the path, summed over the group. Halfway rather than at the full input, where the
    prediction is saturated (on the text validation split a start from the full
    input's gradient was far worse than the uniform start)."""
    half = 0.5 * (~pinned).to(dtype)
    return _mask_gradient(predict, half, minus_removed=False).masked_fill(pinned, 0.0)


# Groups switched per pass of the switch tie breaks: their views are stacked along the
# batch, so a pass holds this many times one step's views (without gradients).
_SWITCHES_PER_PASS = 8
_EFFECT_RESOLUTION = 1e-6

ViewValues: TypeAlias = Callable[[Tensor, Tensor], Tensor]
"""``values(masks, example) -> p_keep - p_remove`` (mean over baselines), ``(m,)``, for
the mask values ``masks`` ``(m, G)`` of the examples ``example`` ``(m,)``, without
gradients."""


def _predicted_values(predict: Predict) -> ViewValues:
    """:data:`ViewValues` by one forward pass of the keep and remove views."""

    def values(masks: Tensor, example: Tensor) -> Tensor:
        keep, remove = predict(masks, example)
        return (keep - remove).mean(dim=0)

    return values


def _removal_effects(predict: Predict, mask: Tensor, pinned: Tensor, at_mask: Tensor) -> Tensor:
    """Every free group's :func:`_switch_effects` at the final soft ``mask``: the hard
    removals the metrics make, one group at a time, from where the optimization
    ended (one forward pass per group)."""
    return _switch_effects(_predicted_values(predict), mask, at_mask, ~pinned)


def _switch_effects(
    values: ViewValues, mask: Tensor, at_mask: Tensor, chosen: Tensor
) -> Tensor:
    """Per example and chosen group (``chosen``, ``(n, G)``; 0 elsewhere), how much
    ``p_keep - p_remove`` (``at_mask`` at ``mask``, ``(n,)``) falls when the group
    alone is switched to the other side of ``mask``: fully removed where the mask
    keeps it (value at least 0.5), fully kept where it removes it (then the rise,
    negated, so both read as the group's worth). ``values`` reads the switched masks,
    ``_SWITCHES_PER_PASS`` chosen groups of every example at a time."""
    n = mask.shape[0]
    effects = torch.zeros_like(mask)
    counts = chosen.sum(dim=1)
    width = int(counts.max().item()) if n else 0
    if width == 0:
        # torch.split of an empty range still yields one (empty) chunk.
        return effects
    # Per example its chosen groups first, in group order.
    order = chosen.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :width]
    live = torch.arange(width, device=mask.device) < counts.unsqueeze(1)
    rows = torch.arange(n, device=mask.device)
    kept = mask >= 0.5
    with torch.no_grad():
        for slots in torch.split(torch.arange(width, device=mask.device), _SWITCHES_PER_PASS):
            groups = order[:, slots].t().reshape(-1)
            in_use = live[:, slots].t().reshape(-1)
            example = rows.repeat(len(slots))[in_use]
            switched = groups[in_use]
            was_kept = kept[example, switched]
            other_side = mask[example].clone()
            other_side[torch.arange(len(example), device=mask.device), switched] = (~was_kept).to(mask.dtype)
            fall = at_mask[example] - values(other_side, example)
            effects[example, switched] = torch.where(was_kept, fall, -fall)
    return effects


_RANK_RESOLUTION = 1e-4


class _RationaleReadings:
    """What the band readings have evaluated so far: ``p_keep - p_remove`` at each hard
    rationale (the set of groups kept) of each example. The readings reach the same
    rationale again and again: a level cut where its neighbour was (1 % and 5 % of a
    short text), a later reading that left the ranking near a cut as it was, a switch
    that lands on the next level's rationale (the last kept group removed) or on a
    switch read at another level or reading. Each costs one forward pass, the first
    time (on 24 text validation snippets that spared a tenth of the views that
    recognising whole cuts alone left)."""

    def __init__(self, predict: Predict, n_examples: int, dtype: torch.dtype) -> None:
        self._predict = predict
        self.dtype = dtype
        # Per example and rationale: p_keep - p_remove, p_keep and p_remove.
        self._known: List[Dict[bytes, Tuple[float, float, float]]] = [{} for _ in range(n_examples)]

    def values(self, masks: Tensor, example: Tensor) -> Tensor:
        """:data:`ViewValues` of the hard ``masks`` (0 or 1), evaluating only the
        rationales not seen before."""
        return self._read(masks, example)[:, 0]

    def views(self, masks: Tensor, example: Tensor) -> Tuple[Tensor, Tensor]:
        """``p_keep`` and ``p_remove`` (means over baselines) of the hard ``masks``,
        evaluating only the rationales not seen before."""
        known = self._read(masks, example)
        return known[:, 1], known[:, 2]

    def _read(self, masks: Tensor, example: Tensor) -> Tensor:
        kept = (masks >= 0.5).cpu().numpy()
        keys = [bytes(row) for row in np.packbits(kept, axis=1)]
        examples = example.tolist()
        # Each unseen (example, rationale) once, at its first position in ``masks``.
        fresh: Dict[Tuple[int, bytes], int] = {}
        for position, (row, key) in enumerate(zip(examples, keys)):
            if key not in self._known[row]:
                fresh.setdefault((row, key), position)
        if fresh:
            positions = torch.tensor(list(fresh.values()), device=masks.device)
            with torch.no_grad():
                keep, remove = self._predict(masks[positions], example[positions])
            columns = [(keep - remove).mean(dim=0), keep.mean(dim=0), remove.mean(dim=0)]
            for (row, key), triple in zip(fresh, torch.stack(columns, dim=1).tolist()):
                self._known[row][key] = (triple[0], triple[1], triple[2])
        return torch.tensor(
            [self._known[row][key] for row, key in zip(examples, keys)], dtype=masks.dtype, device=masks.device
        ).reshape(-1, 3)

    def read(self, context: Tensor, near: Tensor) -> Tensor:
        """The switch effects of the ``near`` groups at the hard rationales ``context``
        (``(n, G)`` bools each)."""
        hard = context.to(self.dtype)
        reading = near.any(dim=1).nonzero().squeeze(1)
        at_mask = torch.zeros(context.shape[0], dtype=self.dtype, device=context.device)
        at_mask[reading] = self.values(hard[reading], reading)
        return _switch_effects(self.values, hard, at_mask, near)


def _ranks_and_cuts(
    scores: Tensor, pinned: Tensor, fractions: Tuple[float, ...]
) -> Tuple[Tensor, List[Tensor]]:
    """Each free group's rank by ``scores`` (0 first) and, per example, the sizes of the
    rationales that keep its top ``fractions`` of its free groups (counted as the
    metrics count them), from none to all."""
    n_valid = (~pinned).sum(dim=1)
    # Scores closer than _RANK_RESOLUTION rank as ties, broken by group order, so that
    # the float rounding of batched arithmetic cannot reorder equal mask values (and
    # with them the rationales) between a batch and its examples one at a time.
    key = torch.round(scores.detach() / _RANK_RESOLUTION).masked_fill(pinned, float("-inf"))
    order = key.argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    # None and all bracket the levels, so that the first and the last rationale have a
    # neighbour on each side.
    cuts = [torch.zeros_like(n_valid)]
    cuts += [rationale_size(n_valid, fraction) for fraction in sorted(set(fractions))]
    cuts.append(n_valid)
    return rank, cuts


def _banded_level_effects(
    scores: Tensor, pinned: Tensor, fractions: Tuple[float, ...], readings: _RationaleReadings
) -> Tensor:
    """Per group, the mean of its :func:`_switch_effects` at the hard rationales that
    keep each example's top ``fractions`` of its free groups by ``scores`` (counted as
    the metrics count them), read only at the two whose cut lies next to the group's
    rank: the smallest rationale that keeps it and the largest that removes it. That
    is where the removal metrics decide its place; at most two passes per group, fewer
    where ``readings`` already holds a rationale's value."""
    valid = ~pinned
    rank, cuts = _ranks_and_cuts(scores, pinned, fractions)
    total = torch.zeros_like(scores)
    times = torch.zeros_like(scores)
    for level in range(1, len(cuts) - 1):
        context = (rank < cuts[level].unsqueeze(1)) & valid
        near = (rank >= cuts[level - 1].unsqueeze(1)) & (rank < cuts[level + 1].unsqueeze(1)) & valid
        if not bool(near.any()):
            # A level that repeats its neighbour's size (1 % and 5 % of a snippet are
            # both one word) reads no group.
            continue
        total += readings.read(context, near).masked_fill(~near, 0.0)
        times += near.to(scores.dtype)
    mean = total / times.clamp_min(1)
    # Changes of a probability below _EFFECT_RESOLUTION are float rounding (groups read
    # at different rationales, whose noise differs), which the standardizing of
    # _tie_break_ranks would blow up into a ranking: groups that change the prediction
    # alike then rank alike, in a batch and one example at a time.
    return (torch.round(mean / _EFFECT_RESOLUTION) * _EFFECT_RESOLUTION).masked_fill(pinned, 0.0)


def _band_readings(
    readings: _RationaleReadings, mask: Tensor, pinned: Tensor, fractions: Tuple[float, ...], weight: float
) -> Tensor:
    """The ``"bands"`` dependence: the mean of ``BAND_READINGS`` readings of
    :func:`_banded_level_effects`, the first at the cuts of ``mask``, each further one
    at the cuts of ``mask`` times the rank of the readings so far to the ``weight``.
    A rationale is evaluated once however often the readings cut it."""
    dependence = _banded_level_effects(mask, pinned, fractions, readings)
    for reading in range(1, BAND_READINGS):
        # Averaged rather than replaced: a group the last reading moved is read where
        # the metrics now cut it, and its earlier readings keep it from swinging back
        # and forth (replacing the reading did worse on the text validation split).
        ranked = mask * _tie_break_ranks(dependence, pinned) ** weight
        newer = _banded_level_effects(ranked, pinned, fractions, readings)
        dependence = (dependence * reading + newer) / (reading + 1)
    return dependence


def _exchanged_at_cuts(
    scores: Tensor, pinned: Tensor, fractions: Tuple[float, ...], readings: _RationaleReadings
) -> Tensor:
    """``scores`` after one pass of swaps over the cuts of the hard rationales (as in
    :func:`_banded_level_effects`, each distinct cut once, smallest first): at a cut,
    of the swaps ``CUT_EXCHANGES`` of a kept group next to it with a removed one next
    to it, the one that raises ``w * p_keep - p_remove`` of that rationale most (``w``
    ``EXCHANGE_KEEP_WEIGHT``, by more than ``_EFFECT_RESOLUTION``) is made: the
    two groups exchange their scores. Both lie between the cut's neighbouring cuts,
    so the swap changes that one rationale and no other. The readings measure each
    group switched alone; a swap reads the pair together, the set the metrics cut."""
    scores = scores.clone()
    rows = torch.arange(scores.shape[0], device=scores.device)
    last = scores.shape[1] - 1
    all_cuts = torch.stack(_ranks_and_cuts(scores, pinned, fractions)[1])
    n_valid = all_cuts[-1]
    for level in range(1, all_cuts.shape[0] - 1):
        cut = all_cuts[level]
        # The neighbouring cuts among the distinct ones (1 % and 5 % of a short text
        # are the same cut, swapped once, at its first level).
        below = torch.where(all_cuts < cut, all_cuts, -1).amax(dim=0)
        above = torch.where(all_cuts > cut, all_cuts, n_valid).amin(dim=0)
        first = ~(all_cuts[1:level] == cut).any(dim=0)
        rank, _ = _ranks_and_cuts(scores, pinned, fractions)
        order = rank.argsort(dim=1)
        context = rank < cut.unsqueeze(1)
        candidates = []
        for back, ahead in CUT_EXCHANGES:
            inside, outside = cut - back, cut + ahead
            # below >= 0 wherever cut > 0 (the cut at none is a distinct cut), so an inside at
            # or past it is a group of the rationale.
            possible = first & (cut > 0) & (inside >= below) & (outside < above)
            if bool(possible.any()):
                kept = order[rows, inside.clamp(0, last)]
                removed = order[rows, outside.clamp(0, last)]
                swapped = context.clone()
                swapped[rows, kept] = False
                swapped[rows, removed] = True
                candidates.append((possible, swapped, kept, removed))
        if not candidates:
            continue
        reading = torch.stack([c[0] for c in candidates]).any(dim=0).nonzero().squeeze(1)
        best_value = torch.full_like(scores[:, 0], float("-inf"))
        best_value[reading] = _exchange_value(readings, context[reading], reading) + _EFFECT_RESOLUTION
        best = torch.full_like(rows, -1)
        for index, (possible, swapped, _, _) in enumerate(candidates):
            where = possible.nonzero().squeeze(1)
            value = torch.full_like(best_value, float("-inf"))
            value[where] = _exchange_value(readings, swapped[where], where)
            better = value > best_value
            best_value = torch.where(better, value, best_value)
            best = torch.where(better, torch.full_like(best, index), best)
        for index, (_, _, kept, removed) in enumerate(candidates):
            chosen = (best == index).nonzero().squeeze(1)
            a, b = kept[chosen], removed[chosen]
            scores[chosen, a], scores[chosen, b] = scores[chosen, b], scores[chosen, a]
    return scores


def _exchange_value(readings: _RationaleReadings, rationales: Tensor, example: Tensor) -> Tensor:
    """``w * p_keep - p_remove`` of the hard ``rationales`` (bools) of ``example``."""
    keep, remove = readings.views(rationales.to(readings.dtype), example)
    return EXCHANGE_KEEP_WEIGHT * keep - remove


def _path_dependence(final_gradient: Tensor, slope_sum: Tensor, steps: Tensor, pinned: Tensor) -> Tensor:
    """The ``"path"`` tie break's dependence: the final mask's gradient of ``p_keep -
    p_remove`` plus the mean of the loss's negative slopes over the example's steps
    (``slope_sum`` over ``steps``), each standardized per example without clipping, so
    that both count alike whatever their scales."""
    valid = ~pinned
    path = slope_sum / steps.unsqueeze(1).clamp_min(1).to(slope_sum.dtype)
    unclipped = float("inf")
    return standardized_scores(final_gradient, valid, unclipped) + standardized_scores(path, valid, unclipped)


def _tie_break_ranks(dependence: Tensor, pinned: Tensor) -> Tensor:
    """Per group, in [0, 1]: how much ``p_keep - p_remove`` depends on the group (its
    :func:`_banded_level_effects` or :func:`_removal_effects`, or the gradient: the sum of the input
    gradients at the kept and at the removed view, each times (input - baseline), or
    :func:`_path_dependence`), standardized and mapped linearly from [-3, 3]."""
    limit = 3.0
    z = standardized_scores(dependence, ~pinned, limit)
    return ((z + limit) / (2 * limit)).masked_fill(pinned, 0.0)


def optimize_masks(
    predict: Predict,
    parametrization: MaskParametrization,
    groups: FeatureGroups,
    objective: Objective,
    settings: MaskOptimizationSettings,
    progress: Optional[Callable[[int], None]] = None,
) -> Tuple[Tensor, OptimizationRecord]:
    """Optimize one mask per example.

    Args:
        predict: maps mask values of a subset of rows to keep/remove target
            probabilities (see ``Predict``).
        parametrization: the mask parametrization, sized for the ``G`` groups.
        groups: the feature groups: ``(N, G)`` sizes (zero where pinned or absent),
            pins, and the pixel grid for total variation.
        objective: the weighted terms of the loss.
        settings: steps, learning rate, stopping, noise and ``path_average``; its
            ``seed`` resolved (not None), so that every chunk of a call shares it.
        progress: called with the number of steps done after each step.

    Returns:
        The final masks ``(N, G)`` (no noise, pinned groups 0), or with
        ``settings.path_average`` their mean over each example's steps, and the record.
    """
    sizes, pinned, grid = groups.sizes, groups.pinned, groups.grid
    n_examples = sizes.shape[0]
    device, dtype = sizes.device, sizes.dtype
    shares = group_shares(sizes)
    keys = example_keys(shares)
    params = parametrization.init_params(n_examples, device, dtype)
    if settings.initial_mask == "gradient":
        params = parametrization.start_from(params, _midpoint_gradient(predict, pinned, dtype), sizes > 0)
    adam = _Adam(params, settings.learning_rate)
    noise = _NoiseSchedule(settings, parametrization.n_groups, sizes)
    with_variation = objective.needs_total_variation
    steps_taken = torch.zeros(n_examples, dtype=torch.long, device=device)
    converged = torch.zeros(n_examples, dtype=torch.bool, device=device)
    active = _ActiveRows(n_examples, device)
    last_checked = parametrization.mask(params, pinned).masked_fill(pinned, 0.0)
    # Summed per example over its own steps, so a stopped example's average does not
    # depend on how long the others in its batch keep going.
    path_sum = torch.zeros_like(last_checked) if settings.path_average else None
    # Summed per example over its own steps, for the "path" tie break.
    with_path = settings.tie_break_weight > 0 and settings.tie_break_for(parametrization.n_groups) == "path"
    path_slope = torch.zeros_like(last_checked) if with_path else None

    for step in range(settings.n_steps):
        tracked = {k: active.take(v).detach().requires_grad_() for k, v in params.items()}
        fixed = active.take(pinned)
        evaluation = parametrization.evaluate(tracked, fixed, with_variation)
        # Pinned groups are zeroed in the views only: the objective's terms give them
        # no weight (their size is 0), so the clean mask needs no extra operation.
        noisy = noise.apply(evaluation.values, step).masked_fill(fixed, 0.0)
        if path_sum is not None:
            # Pinned groups are zeroed once, after the loop.
            active.add_to(path_sum, evaluation.values.detach())
        keep, remove = predict(noisy, active.rows)
        loss = objective(ObjectiveState(keep, remove, evaluation, active.take(shares), grid, step, active.take(keys)))
        if step == 0:
            # Checked once here and then at every convergence check, where the loop
            # synchronises with the device anyway.
            _finite_or_raise(loss.detach(), active.indices())
        if path_slope is None:
            grads = list(torch.autograd.grad(loss.sum(), list(tracked.values())))
        else:
            # The loss's slope at the views' mask comes with the same backward pass.
            *grads, slope = torch.autograd.grad(loss.sum(), list(tracked.values()) + [noisy])
            active.add_to(path_slope, -slope.detach())
        active.add_to(steps_taken, 1)
        with torch.no_grad():
            if active.rows is None:
                adam.step_all(params, grads, step + 1)
            else:
                adam.step_rows(params, grads, active.rows, steps_taken[active.rows])
        if progress is not None:
            progress(step + 1)

        if (step + 1) % settings.check_every == 0 and step + 1 < settings.n_steps:
            with torch.no_grad():
                current = evaluation.values.detach().masked_fill(fixed, 0.0)
                settled = (current - active.take(last_checked)).abs().amax(dim=1) < settings.tolerance
                active.put(last_checked, current)
                # One device-to-host sync per check, not per step.
                any_settled, all_finite = torch.stack(
                    [settled.any(), torch.isfinite(loss.detach()).all()]
                ).tolist()
                if not all_finite:
                    _finite_or_raise(loss.detach(), active.indices())
                if any_settled:
                    rows = active.indices()
                    converged[rows[settled]] = True
                    remaining = rows[~settled]
                    if remaining.numel() == 0:
                        break
                    active.rows = remaining

    with torch.no_grad():
        evaluation = parametrization.evaluate(params, pinned, with_variation)
        final = last_mask = evaluation.values.masked_fill(pinned, 0.0)
        keep, remove = predict(final, None)
        loss = objective(ObjectiveState(keep, remove, evaluation, shares, grid))
        _finite_or_raise(loss, torch.arange(n_examples, device=device))
        record = OptimizationRecord(
            steps=steps_taken,
            converged=converged,
            keep_probability=keep.mean(0),
            remove_probability=remove.mean(0),
            kept_fraction=kept_fraction(final, shares),
            loss=loss,
        )
        if path_sum is not None:
            final = (path_sum.masked_fill(pinned, 0.0) + final) / (steps_taken.unsqueeze(1).to(dtype) + 1)
    if settings.tie_break_weight > 0:
        weight = settings.tie_break_weight
        # A factor rather than a blend: what the mask removes stays removed, so the
        # attribution's mass stays where the mask puts it (a blend moved a tenth of the
        # quokka's share inside the object out of it on the packaged photos). A power
        # of the rank rather than a mix with 1, so that a weight above 1 can let the
        # ranking outweigh the mask (the image preset's 2).
        tie_break = settings.tie_break_for(parametrization.n_groups)
        if tie_break == "removal":
            # The record's views were taken at this same mask: the switches start from
            # them rather than from one more pass.
            dependence = _removal_effects(predict, last_mask, pinned, (keep - remove).mean(dim=0))
        elif tie_break == "bands":
            budgets = settings.target_kept_fraction
            fractions = AOPC_FRACTIONS if budgets is None else budgets if isinstance(budgets, tuple) else (budgets,)
            readings = _RationaleReadings(predict, n_examples, dtype)
            dependence = _band_readings(readings, final, pinned, fractions, weight)
        else:
            dependence = _mask_gradient(predict, last_mask, minus_removed=True)
            if path_slope is not None:
                dependence = _path_dependence(dependence, path_slope, steps_taken, pinned)
        ranks = _tie_break_ranks(dependence, pinned)
        final = final * ranks**weight
        if tie_break == "bands":
            final = _exchanged_at_cuts(final, pinned, fractions, readings)
    return final, record
