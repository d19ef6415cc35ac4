"""The terms of the mask optimization objective: small pure functions, and the
registry that turns settings into the list of weighted terms the loop sums.

Every function works per example: its inputs carry the batch in dimension 0 and it
returns one value per example, shape ``(n,)``. Keeping the terms per example is what
makes an example's attribution independent of the other examples in its batch: the
optimization loop sums these values (never averages them) before differentiating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_maskopt.formatting import warn_caller
from captum_maskopt.hashing import uniform_hash
from captum_maskopt.registry import Registry

if TYPE_CHECKING:
    from captum_maskopt.parametrizations import MaskEvaluation
    from captum_maskopt.settings import MaskOptimizationSettings

__all__ = [
    "PROBABILITY_FUNCTIONS",
    "COMPREHENSIVENESS_FORMS",
    "OBJECTIVE_TERMS",
    "drawn_budgets",
    "example_keys",
    "ObjectiveState",
    "WeightedTerm",
    "Objective",
    "class_probabilities",
    "saturated",
    "warn_of_saturation",
    "sufficiency_loss",
    "comprehensiveness_loss",
    "compactness_loss",
    "group_shares",
    "kept_fraction",
    "kernel_width_loss",
    "total_variation_loss",
]

PROBABILITY_FUNCTIONS = ("softmax", "sigmoid", "identity")
COMPREHENSIVENESS_FORMS = ("log", "hinge")

# Probabilities are clamped away from 0 and 1 before taking logs so that a saturated
# model gives a large but finite loss instead of inf/nan gradients.
_EPS = 1e-6


def saturated(probability: Tensor) -> Tensor:
    """Where a target probability lies within ``_EPS`` of 0 or 1 (bools of its shape).
    There the logs are clamped, and the masked views' probabilities hardly move from
    the input's: the objective has next to no slope, and a feature whose removal moves
    the prediction less than the model's margin changes no probability the final
    ranking can read. Values outside [0, 1] (scores read with ``"identity"``) are no
    probabilities, and not marked."""
    return ((probability >= 0.0) & (probability < _EPS)) | ((probability > 1.0 - _EPS) & (probability <= 1.0))


def warn_of_saturation(examples: Sequence[int]) -> None:
    """Warn, at the caller's line, that the target's probability is :func:`saturated`
    for ``examples`` (batch indices)."""
    shown = ", ".join(map(str, examples[:8])) + (", ..." if len(examples) > 8 else "")
    warn_caller(
        f"the target's probability on the input is within {_EPS:g} of 0 or 1 for "
        f"example(s) {shown}: the masked views' probabilities hardly move there, so the "
        "mask's objective has next to no slope and the features that move the prediction "
        "less than the model's margin tie, ordered by noise; explain the scores divided "
        "by a temperature that brings the probability away from 0 and 1 "
        "(forward_func=lambda *args: model(*args) / T) or, for a model that returns "
        "probabilities, its logits"
    )


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
    raise ValueError(f"comprehensiveness form must be one of {COMPREHENSIVENESS_FORMS}, got {form!r}")


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
    kept: Tensor, target_fraction: Union[None, float, Tensor] = None
) -> Tensor:
    """Penalty for keeping much of the input.

    Args:
        kept: the kept fraction per example (see :func:`kept_fraction`).
        target_fraction: ``None`` gives the paper's ``kept ** 2``; a number in (0, 1)
            (or one per example, a tensor shaped like ``kept``) gives
            ``relu(kept - target_fraction) ** 2 / target_fraction``: no pressure once
            the mask keeps at most that share, and a pressure that does not fade as the
            kept share nears the target.
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
    total: Tensor = sum(  # type: ignore[assignment]
        term.reshape(n, -1).sum(dim=1)
        for term in (horizontal, vertical, diagonal, anti_diagonal)
    )
    # Each neighbour pair is counted once above; dividing by the cell count makes the
    # term independent of the mask resolution.
    cells = mask_grid.shape[1] * mask_grid.shape[2]
    result: Tensor = total / cells
    return result


# --------------------------------------------------------------------------- terms


class ObjectiveState(NamedTuple):
    """What a term sees at one step, for ``n`` examples and ``K`` baselines.

    Attributes:
        keep: ``(K, n)`` target probability of the keep views.
        remove: ``(K, n)`` target probability of the remove views.
        evaluation: the parametrization's mask and smoothness terms.
        shares: ``(n, G)`` each group's share of its example's input.
        grid: ``(H, W)`` when the groups are the pixel locations of one image.
        step: the optimization step (0-based), None for the final mask.
        keys: ``(n,)`` each example's :func:`example_keys`, computed once per call
            (the drawn budgets read them); None where not needed.
    """

    keep: Tensor
    remove: Tensor
    evaluation: "MaskEvaluation"
    shares: Tensor
    grid: Optional[Tuple[int, int]]
    step: Optional[int] = None
    keys: Optional[Tensor] = None


@dataclass(frozen=True)
class WeightedTerm:
    """One term of the objective: ``weight * loss(state)``, ``loss`` per example
    ``(n,)``, or None when the term does not apply to the mask in use (a
    parametrization without kernels has no kernel-width term)."""

    name: str
    weight: float
    loss: Callable[[ObjectiveState], Optional[Tensor]]


#: A term's builder reads the settings (and whether the mask is the smooth 2-D one,
#: which decides the default total-variation weight) and returns the weighted term,
#: or None to leave it out. A new term is one builder registered here; the loop sums
#: the terms in registration order.
TermBuilder = Callable[["MaskOptimizationSettings", bool], Optional[WeightedTerm]]
OBJECTIVE_TERMS: Registry[TermBuilder] = Registry("objective term")


@OBJECTIVE_TERMS.register("sufficiency")
def _sufficiency(settings: "MaskOptimizationSettings", smooth_grid: bool) -> WeightedTerm:
    return WeightedTerm(
        "sufficiency", settings.sufficiency_weight, lambda s: sufficiency_loss(s.keep).mean(0)
    )


@OBJECTIVE_TERMS.register("comprehensiveness")
def _comprehensiveness(settings: "MaskOptimizationSettings", smooth_grid: bool) -> WeightedTerm:
    form, margin = settings.comprehensiveness, settings.comprehensiveness_margin
    return WeightedTerm(
        "comprehensiveness", settings.comprehensiveness_weight,
        lambda s: comprehensiveness_loss(s.remove, form, margin).mean(0),
    )


def example_keys(shares: Tensor) -> Tensor:
    """An int64 key per example, ``(n,)``, from its groups' shares of the input: the
    same example gets the same key in any batch and on any device (the shares are
    rounded first), and examples whose groups differ get different keys."""
    quantised = torch.round(shares.double() * 65521.0).to(torch.int64)
    positions = torch.arange(1, shares.shape[1] + 1, device=shares.device, dtype=torch.int64)
    # Position weights below 2**16 keep the sum far from int64 overflow.
    weights = positions * 40503 % 65521 + 1
    return (quantised * weights).sum(dim=1) & 0x7FFFFFFF


def drawn_budgets(levels: Tensor, keys: Tensor, step: int, seed: int) -> Tensor:
    """The kept-fraction budget of each example at ``step`` when it is drawn from
    ``levels`` (a 1-D tensor): uniformly, from the seed, the step and the example's
    own key (:func:`example_keys`), so that each example follows a sequence of its own
    (the average of the ranking over many sequences, not the luck of one) and the same
    sequence in any batch."""
    mixed = keys ^ ((seed * 0x85EBCA77 + step * 0xC2B2AE3D) & 0x7FFFFFFF)
    uniforms = uniform_hash(mixed, torch.zeros_like(mixed))
    choice = (uniforms * len(levels)).long().clamp_max(len(levels) - 1)
    return levels[choice]


@OBJECTIVE_TERMS.register("compactness")
def _compactness(settings: "MaskOptimizationSettings", smooth_grid: bool) -> WeightedTerm:
    target = settings.target_kept_fraction
    if not isinstance(target, tuple):
        return WeightedTerm(
            "compactness", settings.compactness_weight,
            lambda s: compactness_loss(kept_fraction(s.evaluation.values, s.shares), target),
        )
    assert settings.seed is not None, "the caller resolves the seed once per call"
    levels, seed = target, settings.seed
    # The final mask, which no step's draw concerns, is scored against the mean budget.
    mean_budget = sum(levels) / len(levels)

    # Made once on the mask's device, not copied from the host at every step.
    on_device: Dict[Tuple[torch.device, torch.dtype], Tensor] = {}

    def drawn(state: ObjectiveState) -> Tensor:
        kept = kept_fraction(state.evaluation.values, state.shares)
        if state.step is None:
            return compactness_loss(kept, mean_budget)
        where = (kept.device, kept.dtype)
        if where not in on_device:
            on_device[where] = torch.tensor(levels, dtype=kept.dtype, device=kept.device)
        keys = example_keys(state.shares) if state.keys is None else state.keys
        return compactness_loss(kept, drawn_budgets(on_device[where], keys, state.step, seed))

    return WeightedTerm("compactness", settings.compactness_weight, drawn)


@OBJECTIVE_TERMS.register("smoothness")
def _smoothness(settings: "MaskOptimizationSettings", smooth_grid: bool) -> WeightedTerm:
    return WeightedTerm("smoothness", settings.smoothness_weight, lambda s: s.evaluation.kernel_width)


def _grid_variation(state: ObjectiveState) -> Optional[Tensor]:
    if state.evaluation.total_variation is not None:
        return state.evaluation.total_variation
    if state.grid is None:
        return None
    return total_variation_loss(state.evaluation.values.view(-1, *state.grid))


@OBJECTIVE_TERMS.register("total_variation")
def _total_variation(settings: "MaskOptimizationSettings", smooth_grid: bool) -> WeightedTerm:
    return WeightedTerm("total_variation", settings.total_variation_for(smooth_grid), _grid_variation)


class Objective:
    """The weighted sum of the terms that ``settings`` switch on (weight > 0), per
    example. The sufficiency term always counts, so the loss is never empty.

    Args:
        settings: the weights and forms of the terms.
        smooth_grid: whether the mask is the smooth 2-D mask (default TV weight).
    """

    def __init__(self, settings: "MaskOptimizationSettings", smooth_grid: bool) -> None:
        built = [OBJECTIVE_TERMS[name](settings, smooth_grid) for name in OBJECTIVE_TERMS]
        self.terms: List[WeightedTerm] = [
            term for term in built
            if term is not None and (term.weight > 0 or term.name == "sufficiency")
        ]

    @property
    def needs_total_variation(self) -> bool:
        """Whether a term reads the parametrization's total variation."""
        return any(term.name == "total_variation" for term in self.terms)

    def __call__(self, state: ObjectiveState) -> Tensor:
        """The per-example loss ``(n,)``. Weights of one skip the multiplication: this
        runs at every step."""
        total: Optional[Tensor] = None
        for term in self.terms:
            value = term.loss(state)
            if value is None:
                continue
            weighted = value if term.weight == 1.0 else term.weight * value
            total = weighted if total is None else total + weighted
        assert total is not None, "the sufficiency term always applies"
        return total
