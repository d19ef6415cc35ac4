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
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from captum_maskopt import objective as obj
from captum_maskopt.parametrizations import MaskEvaluation, MaskParametrization, Params

__all__ = ["ObjectiveSettings", "OptimizerSettings", "OptimizationRecord", "optimize_masks"]

# predict(mask_values (n, G), rows (n,) or None for the whole batch)
#   -> (keep_probability (K, n), remove_probability (K, n)), K = number of baselines
Predict = Callable[[Tensor, Optional[Tensor]], Tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class ObjectiveSettings:
    """Weights and forms of the objective's terms (see :mod:`captum_maskopt.objective`)."""

    sufficiency_weight: float = 1.0
    comprehensiveness_weight: float = 1.0
    comprehensiveness_form: str = "log"
    comprehensiveness_margin: float = 0.1
    compactness_weight: float = 1.0
    target_kept_fraction: Optional[float] = None
    smoothness_weight: float = 1.2
    total_variation_weight: float = 0.0


@dataclass(frozen=True)
class OptimizerSettings:
    """Adam, the stopping rule and the robustness noise."""

    n_steps: int = 200
    learning_rate: float = 0.1
    noise_std: float = 0.03
    flip_fraction: float = 0.05
    check_every: int = 10
    tolerance: float = 0.01
    # Return the mean mask over the steps taken instead of the final one.
    path_average: bool = False
    seed: int = 0


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
    """

    steps: Tensor
    converged: Tensor
    keep_probability: Tensor
    remove_probability: Tensor
    kept_fraction: Tensor
    loss: Tensor

    @staticmethod
    def concatenate(records: "list[OptimizationRecord]") -> "OptimizationRecord":
        """Join the records of consecutive chunks of a batch."""
        return OptimizationRecord(
            **{
                name: torch.cat([getattr(r, name) for r in records])
                for name in OptimizationRecord.__dataclass_fields__
            }
        )


def _uniform_hash(keys: Tensor, counter: Tensor) -> Tensor:
    """Deterministic uniforms in (0, 1) from 32-bit integer hashing of (key, counter).

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
    uniforms = _uniform_hash(key_tensor, counter).view(n_steps, n_groups, 3)
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

    def __init__(self, settings: "OptimizerSettings", n_groups: int, like: Tensor) -> None:
        self.settings = settings
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
                self.n_groups, step, size, self.settings.seed, self.like.device,
                self.like.dtype, self.settings.noise_std, self.settings.flip_fraction,
            )
        shift, lower, upper = (part[step - self.block_start] for part in self.block)
        return torch.clamp(mask + shift, lower, upper)


def _objective(
    keep: Tensor,
    remove: Tensor,
    evaluation: MaskEvaluation,
    shares: Tensor,
    grid: Optional[Tuple[int, int]],
    settings: ObjectiveSettings,
) -> Tensor:
    """The per-example loss; ``keep``/``remove`` are ``(K, n)``, averaged over baselines.

    Weights of zero skip their term and weights of one skip the multiplication: this
    runs at every step."""

    def weighted(weight: float, term: Tensor) -> Tensor:
        return term if weight == 1.0 else weight * term

    mask = evaluation.values
    loss = weighted(settings.sufficiency_weight, obj.sufficiency_loss(keep).mean(0))
    if settings.comprehensiveness_weight:
        loss = loss + weighted(
            settings.comprehensiveness_weight,
            obj.comprehensiveness_loss(
                remove, settings.comprehensiveness_form, settings.comprehensiveness_margin
            ).mean(0),
        )
    if settings.compactness_weight:
        kept = obj.kept_fraction(mask, shares)
        loss = loss + weighted(
            settings.compactness_weight,
            obj.compactness_loss(kept, settings.target_kept_fraction),
        )
    if settings.smoothness_weight and evaluation.kernel_width is not None:
        loss = loss + weighted(settings.smoothness_weight, evaluation.kernel_width)
    if settings.total_variation_weight:
        variation = evaluation.total_variation
        if variation is None and grid is not None:
            variation = obj.total_variation_loss(mask.view(-1, *grid))
        if variation is not None:
            loss = loss + weighted(settings.total_variation_weight, variation)
    return loss


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


def optimize_masks(
    predict: Predict,
    parametrization: MaskParametrization,
    group_sizes: Tensor,
    pinned: Tensor,
    grid: Optional[Tuple[int, int]],
    objective: ObjectiveSettings,
    optimizer: OptimizerSettings,
    progress: Optional[Callable[[int], None]] = None,
) -> Tuple[Tensor, OptimizationRecord]:
    """Optimize one mask per example.

    Args:
        predict: maps mask values of a subset of rows to keep/remove target
            probabilities (see ``Predict``).
        parametrization: the mask parametrization, sized for ``G`` groups.
        group_sizes: ``(N, G)`` input elements per group, zero where pinned or absent.
        pinned: ``(N, G)`` bool, groups fixed to "removed" (mask 0).
        grid: ``(H, W)`` when the groups are pixel locations, for total variation.
        objective: the objective's weights.
        optimizer: steps, learning rate, stopping and noise.
        progress: called with the number of steps done after each step.

    Returns:
        The final masks ``(N, G)`` (no noise, pinned groups 0), or with
        ``optimizer.path_average`` their mean over each example's steps, and the record.
    """
    n_examples = group_sizes.shape[0]
    device, dtype = group_sizes.device, group_sizes.dtype
    shares = obj.group_shares(group_sizes)
    params = parametrization.init_params(n_examples, device, dtype)
    adam = _Adam(params, optimizer.learning_rate)
    noise = _NoiseSchedule(optimizer, parametrization.n_groups, group_sizes)
    with_variation = objective.total_variation_weight > 0
    steps_taken = torch.zeros(n_examples, dtype=torch.long, device=device)
    converged = torch.zeros(n_examples, dtype=torch.bool, device=device)
    rows: Optional[Tensor] = None  # None: every example is still active
    last_checked = parametrization.mask(params, pinned).masked_fill(pinned, 0.0)
    # Summed per example over its own steps, so a stopped example's average does not
    # depend on how long the others in its batch keep going.
    path_sum = torch.zeros_like(last_checked) if optimizer.path_average else None

    for step in range(optimizer.n_steps):
        if rows is None:
            active = {k: v.detach().requires_grad_() for k, v in params.items()}
            row_shares, fixed = shares, pinned
        else:
            active = {k: v[rows].requires_grad_() for k, v in params.items()}
            row_shares, fixed = shares[rows], pinned[rows]
        evaluation = parametrization.evaluate(active, fixed, with_variation)
        # Pinned groups are zeroed in the views only: the objective's terms give them
        # no weight (their size is 0), so the clean mask needs no extra operation.
        noisy = noise.apply(evaluation.values, step).masked_fill(fixed, 0.0)
        if path_sum is not None:
            # Pinned groups are zeroed once, after the loop.
            if rows is None:
                path_sum += evaluation.values.detach()
            else:
                path_sum[rows] += evaluation.values.detach()
        keep, remove = predict(noisy, rows)
        loss = _objective(keep, remove, evaluation, row_shares, grid, objective)
        grads = list(torch.autograd.grad(loss.sum(), list(active.values())))
        with torch.no_grad():
            if rows is None:
                adam.step_all(params, grads, step + 1)
            else:
                steps_taken[rows] += 1
                adam.step_rows(params, grads, rows, steps_taken[rows])
        if progress is not None:
            progress(step + 1)

        is_check = (step + 1) % optimizer.check_every == 0 and step + 1 < optimizer.n_steps
        if is_check:
            with torch.no_grad():
                if rows is None:
                    steps_taken.fill_(step + 1)
                current = evaluation.values.detach().masked_fill(fixed, 0.0)
                previous = last_checked if rows is None else last_checked[rows]
                settled = (current - previous).abs().amax(dim=1) < optimizer.tolerance
                if rows is None:
                    last_checked = current
                    all_rows = torch.arange(n_examples, device=device)
                else:
                    last_checked[rows] = current
                    all_rows = rows
                # One device-to-host sync per check, not per step.
                if bool(settled.any()):
                    converged[all_rows[settled]] = True
                    remaining = all_rows[~settled]
                    if remaining.numel() == 0:
                        break
                    rows = remaining
    else:
        if rows is None:
            steps_taken.fill_(optimizer.n_steps)

    with torch.no_grad():
        evaluation = parametrization.evaluate(params, pinned, with_variation)
        final = evaluation.values.masked_fill(pinned, 0.0)
        keep, remove = predict(final, None)
        loss = _objective(keep, remove, evaluation, shares, grid, objective)
        record = OptimizationRecord(
            steps=steps_taken,
            converged=converged,
            keep_probability=keep.mean(0),
            remove_probability=remove.mean(0),
            kept_fraction=obj.kept_fraction(final, shares),
            loss=loss,
        )
        if path_sum is not None:
            final = (path_sum.masked_fill(pinned, 0.0) + final) / (steps_taken.unsqueeze(1).to(dtype) + 1)
    return final, record
