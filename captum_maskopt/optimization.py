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

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from captum_maskopt import objective as obj
from captum_maskopt.parametrizations import MaskParametrization, Params

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


def _uniform_hash(seed: int, step: int, counter: Tensor) -> Tensor:
    """Deterministic uniforms in (0, 1) from 32-bit integer hashing of (seed, step, i).

    A counter-based generator rather than a stateful one: the value for group ``i`` at
    step ``t`` is the same whatever the batch, the batch order or the device.
    """
    mask32 = 0xFFFFFFFF
    # Mixed in Python's unbounded integers first, so any seed fits the int64 tensor ops.
    key = (seed * 0x85EBCA77 + step * 0xC2B2AE3D) & mask32
    x = (counter * 0x9E3779B1 + key) & mask32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & mask32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & mask32
    x = x ^ (x >> 16)
    return (x.to(torch.float64) + 0.5) / 4294967296.0


def mask_noise(
    n_groups: int, step: int, seed: int, device: torch.device, dtype: torch.dtype,
    noise_std: float, flip_fraction: float,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Gaussian noise and the groups forced to 0 and to 1 at one step, shape ``(G,)``."""
    counter = torch.arange(n_groups, device=device, dtype=torch.int64) * 3
    u1 = _uniform_hash(seed, step, counter)
    u2 = _uniform_hash(seed, step, counter + 1)
    u3 = _uniform_hash(seed, step, counter + 2)
    gaussian = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    return (gaussian * noise_std).to(dtype), u3 < flip_fraction, u3 > 1.0 - flip_fraction


def _apply_noise(mask: Tensor, step: int, settings: OptimizerSettings) -> Tensor:
    if settings.noise_std == 0 and settings.flip_fraction == 0:
        return mask
    noise, to_zero, to_one = mask_noise(
        mask.shape[1], step, settings.seed, mask.device, mask.dtype,
        settings.noise_std, settings.flip_fraction,
    )
    noisy = (mask + noise).clamp(0.0, 1.0)
    noisy = noisy.masked_fill(to_zero, 0.0)
    return noisy.masked_fill(to_one, 1.0)


def _objective(
    keep: Tensor,
    remove: Tensor,
    mask: Tensor,
    smoothness: Tensor,
    group_sizes: Tensor,
    grid: Optional[Tuple[int, int]],
    settings: ObjectiveSettings,
) -> Tensor:
    """The per-example loss; ``keep``/``remove`` are ``(K, n)``, averaged over baselines."""
    loss = settings.sufficiency_weight * obj.sufficiency_loss(keep).mean(0)
    loss = loss + settings.comprehensiveness_weight * obj.comprehensiveness_loss(
        remove, settings.comprehensiveness_form, settings.comprehensiveness_margin
    ).mean(0)
    if settings.compactness_weight:
        kept = obj.kept_fraction(mask, group_sizes)
        loss = loss + settings.compactness_weight * obj.compactness_loss(
            kept, settings.target_kept_fraction
        )
    if settings.smoothness_weight:
        loss = loss + settings.smoothness_weight * smoothness
    if settings.total_variation_weight and grid is not None:
        loss = loss + settings.total_variation_weight * obj.total_variation_loss(
            mask.view(-1, *grid)
        )
    return loss


class _Adam:
    """Adam with per-example step counts, updating rows of parameter tensors in place."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: Params, learning_rate: float) -> None:
        self.lr = learning_rate
        self.first = {k: torch.zeros_like(v) for k, v in params.items()}
        self.second = {k: torch.zeros_like(v) for k, v in params.items()}

    def step(self, params: Params, grads: Params, rows: Optional[Tensor], t: Tensor) -> None:
        """``t``: the 1-based step count of each updated row, shape ``(n,)``."""
        b1, b2 = self.betas
        for name, grad in grads.items():
            shape = (-1,) + (1,) * (grad.dim() - 1)
            correction1 = (1 - b1 ** t.to(grad.dtype)).view(shape)
            correction2 = (1 - b2 ** t.to(grad.dtype)).view(shape)
            if rows is None:
                m1, m2, p = self.first[name], self.second[name], params[name]
                m1.mul_(b1).add_(grad, alpha=1 - b1)
                m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                p.sub_(self.lr * (m1 / correction1) / ((m2 / correction2).sqrt() + self.eps))
            else:
                m1 = self.first[name][rows].mul_(b1).add_(grad, alpha=1 - b1)
                m2 = self.second[name][rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
                self.first[name][rows] = m1
                self.second[name][rows] = m2
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
        The final masks ``(N, G)`` (no noise, pinned groups 0) and the record.
    """
    n_examples = group_sizes.shape[0]
    device, dtype = group_sizes.device, group_sizes.dtype
    params = parametrization.init_params(n_examples, device, dtype)
    adam = _Adam(params, optimizer.learning_rate)
    steps_taken = torch.zeros(n_examples, dtype=torch.long, device=device)
    converged = torch.zeros(n_examples, dtype=torch.bool, device=device)
    rows: Optional[Tensor] = None  # None: every example is still active
    last_checked = parametrization.mask(params, pinned).masked_fill(pinned, 0.0)

    for step in range(optimizer.n_steps):
        if rows is None:
            active = {k: v.detach().requires_grad_() for k, v in params.items()}
            sizes, fixed = group_sizes, pinned
        else:
            active = {k: v[rows].requires_grad_() for k, v in params.items()}
            sizes, fixed = group_sizes[rows], pinned[rows]
        mask = parametrization.mask(active, fixed).masked_fill(fixed, 0.0)
        noisy = _apply_noise(mask, step, optimizer).masked_fill(fixed, 0.0)
        keep, remove = predict(noisy, rows)
        smoothness = parametrization.smoothness(active, fixed)
        loss = _objective(keep, remove, mask, smoothness, sizes, grid, objective)
        grads = torch.autograd.grad(loss.sum(), list(active.values()))
        with torch.no_grad():
            if rows is None:
                steps_taken += 1
                adam.step(params, dict(zip(active, grads)), None, steps_taken)
            else:
                steps_taken[rows] += 1
                adam.step(params, dict(zip(active, grads)), rows, steps_taken[rows])
        if progress is not None:
            progress(step + 1)

        is_check = (step + 1) % optimizer.check_every == 0 and step + 1 < optimizer.n_steps
        if is_check:
            with torch.no_grad():
                current = mask.detach()
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

    with torch.no_grad():
        final = parametrization.mask(params, pinned).masked_fill(pinned, 0.0)
        keep, remove = predict(final, None)
        smoothness = parametrization.smoothness(params, pinned)
        loss = _objective(keep, remove, final, smoothness, group_sizes, grid, objective)
        record = OptimizationRecord(
            steps=steps_taken,
            converged=converged,
            keep_probability=keep.mean(0),
            remove_probability=remove.mean(0),
            kept_fraction=obj.kept_fraction(final, group_sizes),
            loss=loss,
        )
    return final, record
