"""Behaviour of MaskOptimization: what it finds, batch independence, and the caller's
state left as it was."""

import functools
import warnings
from typing import NamedTuple

import pytest
import torch
from torch import nn

from captum_maskopt import LayerMaskOptimization, MaskOptimization, OptimizationRecord
from captum_maskopt.baselines import gaussian_blur

from conftest import PlantedLinear


@pytest.mark.parametrize("target", [0, 1])
def test_planted_features_rank_first_for_both_classes(planted, target):
    torch.manual_seed(1)
    x = torch.rand(6, 12) + 0.5
    attributions = MaskOptimization(planted).attribute(x, target=target)
    top2 = attributions.topk(2, dim=1).indices.sort(dim=1).values
    expected = torch.tensor(sorted(PlantedLinear.EVIDENCE[target])).expand(6, 2)
    assert torch.equal(top2, expected)
    # The final mask itself (no final ranking, no path average: the average still holds
    # the early steps, near the start's 0.88) keeps the planted features, and, given 50
    # steps (the default 10 leave the ordering to the final ranking), removes the rest.
    mask = MaskOptimization(planted).attribute(
        x, target=target, tie_break_weight=0.0, path_average=False, n_steps=50)
    evidence = list(PlantedLinear.EVIDENCE[target])
    others = [i for i in range(12) if i not in evidence]
    assert mask[:, evidence].min() > 0.5 > mask[:, others].max()


def test_planted_image_region_is_found():
    class CornerModel(nn.Module):
        """Class 1 iff the top-left 8x8 corner is bright."""

        def forward(self, x):
            s = 6.0 * (x[:, :, :8, :8].mean(dim=(1, 2, 3)) - 0.25)
            return torch.stack([-s, s], dim=1)

    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32) * 0.2
    images[:, :, :8, :8] = 0.9
    attributions = MaskOptimization(CornerModel().eval()).attribute(images, target=1)
    corner = attributions[:, 0, :8, :8].mean(dim=(1, 2))
    rest = attributions[:, 0, 16:, 16:].mean(dim=(1, 2))
    assert (corner > 0.5).all() and (rest < 0.2).all()
    # One value per pixel location, shared over the channels.
    assert torch.equal(attributions[:, 0], attributions[:, 2])


def test_a_single_channel_signal_and_a_pooled_map_are_ranked_per_element():
    # Shared over the last dimension, the default groups of (N, 1, L) and (N, C, 1, 1)
    # would be one group, the same value everywhere: their elements are the features.
    torch.manual_seed(0)
    signal_model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    with torch.no_grad():
        signal_model[1].weight.zero_()
        signal_model[1].weight[1, 7] = 4.0
    signals = torch.rand(3, 1, 12) + 0.5
    attributions = MaskOptimization(signal_model).attribute(signals, target=1)
    assert (attributions.argmax(dim=2).squeeze(1) == 7).all()

    head = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))
    model = head.eval()
    pooled = LayerMaskOptimization(model, model[1]).attribute(torch.rand(2, 3, 8, 8), target=0, n_steps=5)
    assert pooled.shape == (2, 6, 1, 1)
    assert (pooled.flatten(1).std(dim=1) > 0).all()


def _one_at_a_time(explainer, x, **kwargs):
    return torch.cat([explainer.attribute(x[i : i + 1], **kwargs) for i in range(len(x))])


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_batch_gives_the_same_attributions_as_one_at_a_time(request, model_name):
    model = request.getfixturevalue(model_name)
    torch.manual_seed(2)
    x = torch.rand(4, 8) if model_name == "mlp" else torch.rand(4, 3, 16, 16)
    targets = [0, 1, 2, 1]
    explainer = MaskOptimization(model)
    batch = explainer.attribute(x, target=targets, n_steps=60)
    single = torch.cat(
        [explainer.attribute(x[i : i + 1], target=targets[i], n_steps=60) for i in range(4)]
    )
    assert torch.allclose(batch, single, atol=1e-4)
    # internal_batch_size splits the batch without changing anything either.
    split = explainer.attribute(x, target=targets, n_steps=60, internal_batch_size=3)
    assert torch.allclose(batch, split, atol=1e-4)


def test_path_average_is_the_mean_mask_over_the_steps(mlp):
    x = torch.rand(3, 8)
    explainer = MaskOptimization(mlp)
    # One step: the mean of the starting mask (free logits start at 2.0) and the final one.
    options = dict(n_steps=1, parametrization="logits", tie_break_weight=0.0)
    final = explainer.attribute(x, target=0, path_average=False, **options)
    averaged = explainer.attribute(x, target=0, path_average=True, **options)
    start = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(averaged, (start + final) / 2, atol=1e-6)


def _rank(dependence):
    """The tie break's rank: standardized per row, clipped to +-3, mapped to [0, 1]."""
    z = (dependence - dependence.mean(1, keepdim=True)) / dependence.std(1, unbiased=False, keepdim=True)
    return (z.clamp(-3, 3) + 3) / 6


@pytest.mark.parametrize("tie_break", ["removal", "gradient"])
def test_tie_break_ranks_groups_by_their_effect_at_the_final_mask(tie_break):
    # A linear score read as a probability: the gradient of p(x_keep) - p(x_rem) with
    # respect to a group's mask value m is 2 * w * (x - b) wherever the mask stands;
    # switching the group to the other side changes it by that times m (removing a
    # kept group) or 1 - m (keeping a removed one).
    weights = torch.tensor([[3.0, -1.0, 0.5, 2.0, -2.0, 1.0]])
    model = nn.Linear(6, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(weights)
    x = torch.rand(2, 6) + 0.5
    options = dict(probability="identity", n_steps=3, path_average=False)
    mask = MaskOptimization(model).attribute(x, target=0, tie_break_weight=0.0, **options)
    ranked = MaskOptimization(model).attribute(x, target=0, tie_break=tie_break, **options)
    slope = weights * x
    if tie_break == "removal":
        slope = slope * torch.where(mask >= 0.5, mask, 1 - mask)
    assert torch.allclose(ranked, mask * _rank(slope), atol=1e-5)


def _switch_case(model, n_groups=12, targets=(0, 1, 1)):
    """Three examples of ``n_groups`` groups through a softmax model (the planted one
    by default), the options of a noiseless run, and ``p(x_keep) - p(x_rem)`` of a mask
    for recomputing switches."""
    torch.manual_seed(3)
    x = torch.rand(3, n_groups) + 0.5
    chosen = torch.tensor(targets)
    options = dict(n_steps=60, path_average=False, noise_std=0.0, flip_fraction=0.0)

    def kept_and_removed(m):
        probabilities = lambda view: torch.softmax(model(view), dim=1)[torch.arange(3), chosen]
        return probabilities(m * x), probabilities((1 - m) * x)

    def kept_minus_removed(m):
        keep, remove = kept_and_removed(m)
        return keep - remove

    kept_minus_removed.views = kept_and_removed
    return MaskOptimization(model), x, chosen, options, kept_minus_removed


def test_removal_tie_break_switches_each_group_to_the_other_side(planted):
    # Through a softmax the effect is not linear in the mask: it is the change of
    # p(x_keep) - p(x_rem) when one group is switched to the other side of the final
    # mask (kept groups removed, removed ones kept), recomputed here by hand.
    explainer, x, targets, options, kept_minus_removed = _switch_case(planted)
    mask = explainer.attribute(x, target=targets, tie_break_weight=0.0, **options)
    ranked = explainer.attribute(x, target=targets, tie_break="removal", **options)
    assert (mask >= 0.5).any() and (mask < 0.5).any(), "both sides are switched"

    with torch.no_grad():
        at_mask = kept_minus_removed(mask)
        effects = torch.stack([
            torch.where(
                mask[:, g] >= 0.5,
                at_mask - kept_minus_removed(mask.index_fill(1, torch.tensor([g]), 0.0)),
                kept_minus_removed(mask.index_fill(1, torch.tensor([g]), 1.0)) - at_mask,
            )
            for g in range(12)
        ], dim=1)
    assert torch.allclose(ranked, mask * _rank(effects), atol=1e-5)
    gradient = explainer.attribute(x, target=targets, tie_break="gradient", **options)
    assert not torch.allclose(ranked, gradient, atol=1e-3)


def _band_readings(scores, kept_minus_removed, sizes=(1, 2, 6), views=None):
    """The bands' effects recomputed by hand for 3 examples: of 12 groups the 1, 5,
    10, 20 and 50 % rationales by ``scores`` keep 1, 1, 1, 2 and 6 groups (``sizes``;
    of 8, 1, 1, 1, 2 and 4); a group is switched at the smallest of them that keeps it
    and the largest that removes it (where there is one), and its effect is the mean
    of the two. ``views``, a set, collects each hard rationale read and each one a
    switch makes, as (example, kept groups)."""
    effects = torch.zeros_like(scores)
    n_groups = scores.shape[1]
    with torch.no_grad():
        for row in range(3):
            order = scores[row].argsort(descending=True)
            rank = torch.empty(n_groups, dtype=torch.long)
            rank[order] = torch.arange(n_groups)
            for g in range(n_groups):
                cuts = [c for c in sizes if c > rank[g]][:1] + [c for c in sizes if c <= rank[g]][-1:]
                readings = []
                for kept in cuts:
                    context = torch.zeros_like(scores)
                    context[row, order[:kept]] = 1.0
                    switched = context.clone()
                    switched[row, g] = 1 - switched[row, g]
                    change = (kept_minus_removed(switched) - kept_minus_removed(context))[row]
                    if views is not None:
                        kept_groups = frozenset(order[:kept].tolist())
                        views.update({(row, kept_groups), (row, kept_groups ^ {g})})
                    readings.append(-change if context[row, g] == 1 else change)
                effects[row, g] = torch.stack(readings).mean()
    return effects


def _exchanged(scores, kept_minus_removed, sizes=(1, 2, 6), views=None):
    """The swaps after the readings, recomputed by hand for 3 examples: at each
    distinct cut of ``sizes``, smallest first, the kept group at rank ``c - 1``
    against the removed ones at ``c`` and ``c + 1``, and the one at ``c - 2`` against
    ``c``, each pair inside the cut's neighbouring cuts; the swap that raises ``1.5 *
    p_keep - p_remove`` of the rationale most (by more than 1e-6) exchanges the two
    scores. ``views`` collects the rationales read, as in :func:`_band_readings`."""
    scores = scores.clone()
    n_groups = scores.shape[1]
    bounds = (0,) + tuple(sizes) + (n_groups,)
    with torch.no_grad():
        for row in range(3):
            for below, cut, above in zip(bounds, bounds[1:], bounds[2:]):
                order = scores[row].argsort(descending=True, stable=True)

                def value(kept_groups):
                    rationale = torch.zeros_like(scores)
                    rationale[row, list(kept_groups)] = 1.0
                    if views is not None:
                        views.add((row, frozenset(kept_groups)))
                    keep, remove = kept_minus_removed.views(rationale)
                    return float(1.5 * keep[row] - remove[row])

                context = set(order[:cut].tolist())
                best, best_value = None, value(context) + 1e-6
                for inside, outside in ((cut - 1, cut), (cut - 1, cut + 1), (cut - 2, cut)):
                    if inside >= below and outside < above:
                        a, b = int(order[inside]), int(order[outside])
                        swapped = value((context - {a}) | {b})
                        if swapped > best_value:
                            best, best_value = (a, b), swapped
                if best is not None:
                    a, b = best
                    scores[row, a], scores[row, b] = scores[row, b].clone(), scores[row, a].clone()
    return scores


def test_bands_tie_break_reads_each_group_at_the_two_cuts_next_to_its_rank(planted):
    explainer, x, targets, options, kept_minus_removed = _switch_case(planted)
    mask = explainer.attribute(x, target=targets, tie_break_weight=0.0, **options)
    ranked = explainer.attribute(x, target=targets, tie_break="bands", **options)
    # The planted model's groups count alone: every reading gives the first's effects.
    readings = mask * _rank(_band_readings(mask, kept_minus_removed))
    assert torch.allclose(ranked, _exchanged(readings, kept_minus_removed), atol=1e-5)


def test_bands_tie_break_reads_three_times_each_at_the_ranking_so_far(mlp):
    # Each reading after the first cuts the rationales from the mask times the rank of
    # the readings so far; the dependence is the mean of the three. Recomputed by hand,
    # at a weight other than 1, through a model where every input counts (so a group's
    # effect depends on where the ranking cuts).
    explainer, x, targets, options, kept_minus_removed = _switch_case(mlp, 8, (0, 1, 2))
    sizes = (1, 2, 4)
    mask = explainer.attribute(x, target=targets, tie_break_weight=0.0, **options)
    first = _band_readings(mask, kept_minus_removed, sizes)
    second = _band_readings(mask * _rank(first) ** 2, kept_minus_removed, sizes)
    third = _band_readings(mask * _rank((first + second) / 2) ** 2, kept_minus_removed, sizes)
    ranked = explainer.attribute(x, target=targets, tie_break="bands", tie_break_weight=2.0, **options)
    readings = mask * _rank((first + second + third) / 3) ** 2
    assert torch.allclose(ranked, _exchanged(readings, kept_minus_removed, sizes), atol=1e-5)
    assert not torch.allclose(first, second, atol=1e-4), "the second reading cuts elsewhere"
    assert not torch.allclose(ranked, mask * _rank(first) ** 2, atol=1e-4)


def test_bands_end_with_one_pass_of_swaps_at_the_cuts():
    # After the readings, at each cut a kept group next to it and a removed one next to
    # it exchange their scores where that raises 1.5 * p_keep - p_remove of the
    # rationale: the pair read together, which the single switches do not read.
    # Recomputed by hand through a model where every input counts.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    explainer, x, targets, options, kept_minus_removed = _switch_case(model, 12, (0, 1, 2))
    options = dict(options, n_steps=10)
    mask = explainer.attribute(x, target=targets, tie_break_weight=0.0, **options)
    ranked = explainer.attribute(x, target=targets, tie_break="bands", **options)
    first = _band_readings(mask, kept_minus_removed)
    second = _band_readings(mask * _rank(first), kept_minus_removed)
    third = _band_readings(mask * _rank((first + second) / 2), kept_minus_removed)
    readings = mask * _rank((first + second + third) / 3)
    assert torch.allclose(ranked, _exchanged(readings, kept_minus_removed), atol=1e-5)
    swapped = (ranked.argsort(dim=1) != readings.argsort(dim=1)).any(dim=1)
    assert swapped.any() and not swapped.all(), "a swap is made where it pays, not everywhere"
    # A swap exchanges two scores: the values are those of the readings.
    assert torch.allclose(ranked.sort(dim=1).values, readings.sort(dim=1).values, atol=1e-5)


class _RowCounter(nn.Module):
    """The wrapped model, counting the rows it is run on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0
        self.eval()

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


def test_bands_evaluate_each_rationale_once_however_often_it_is_reached(mlp):
    # Equal cuts (1, 5 and 10 % of 8 groups all keep one), readings that leave the
    # ranking near a cut unchanged, and switches that land on a neighbouring level's
    # rationale or on another switch reach the same rationales again: the model sees
    # each distinct one once (two rows, keep and remove), and the result is the one
    # recomputed by hand, reading by reading.
    explainer, x, targets, options, kept_minus_removed = _switch_case(mlp, 8, (0, 1, 2))
    sizes = (1, 2, 4)
    counter = _RowCounter(mlp)
    mask = MaskOptimization(counter).attribute(x, target=targets, tie_break_weight=0.0, **options)
    loop_rows = counter.rows
    counter.rows = 0
    ranked = MaskOptimization(counter).attribute(x, target=targets, tie_break="bands", **options)
    views = set()
    first = _band_readings(mask, kept_minus_removed, sizes, views)
    second = _band_readings(mask * _rank(first), kept_minus_removed, sizes, views)
    third = _band_readings(mask * _rank((first + second) / 2), kept_minus_removed, sizes, views)
    readings = mask * _rank((first + second + third) / 3)
    assert torch.allclose(ranked, _exchanged(readings, kept_minus_removed, sizes, views), atol=1e-5)
    # Read afresh at every level and reading, one reading of one example would take 4
    # rationales (of 1, 1, 2 and 4 groups: two of the three equal one-group cuts read
    # groups) and 11 switches (ranks 0 to 7 read at 1, 2, 2, 2, 1, 1, 1 and 1 cuts).
    assert len(views) < 3 * 3 * (4 + 11), "some views are cut again"
    assert counter.rows - loop_rows == 2 * len(views)


def test_path_tie_break_adds_the_mean_slope_of_the_loss_over_the_steps(mlp):
    # Noiseless, sufficiency alone: each step's slope is -d(-log p(x_keep))/dm at that
    # step's mask, recomputed here along the masks the optimization visits (free logits
    # from 2.0, Adam at the default step, recomputed with torch's Adam). Through a
    # nonlinear model the slopes along the path order the groups otherwise than the
    # final gradient alone.
    torch.manual_seed(5)
    x = torch.rand(3, 8) + 0.5
    targets = torch.tensor([0, 1, 2])
    options = dict(n_steps=3, path_average=False, noise_std=0.0, flip_fraction=0.0,
                   comprehensiveness_weight=0.0, compactness_weight=0.0)
    explainer = MaskOptimization(mlp)
    mask = explainer.attribute(x, target=targets, tie_break_weight=0.0, **options)
    ranked = explainer.attribute(x, target=targets, tie_break="path", **options)

    def probability(view):
        return torch.softmax(mlp(view), dim=1)[torch.arange(3), targets]

    logits = torch.full((3, 8), 2.0, requires_grad=True)
    adam = torch.optim.Adam([logits], lr=0.1, eps=1e-8)
    slopes = torch.zeros(3, 8)
    for _ in range(3):
        m = torch.sigmoid(logits)
        step_mask = m.detach().requires_grad_()
        (slope,) = torch.autograd.grad(torch.log(probability(step_mask * x)).sum(), step_mask)
        slopes += slope
        adam.zero_grad()
        (-torch.log(probability(m * x)).sum()).backward()
        adam.step()
    assert torch.allclose(torch.sigmoid(logits).detach(), mask, atol=1e-5), "the same path"
    final = mask.detach().requires_grad_()
    kept_minus_removed = probability(final * x) - probability((1 - final) * x)
    (gradient,) = torch.autograd.grad(kept_minus_removed.sum(), final)

    def z(values):
        return (values - values.mean(1, keepdim=True)) / values.std(1, unbiased=False, keepdim=True)

    assert torch.allclose(ranked, mask * _rank(z(gradient) + z(slopes / 3)), atol=1e-4)
    plain = explainer.attribute(x, target=targets, tie_break="gradient", **options)
    assert torch.allclose(plain, mask * _rank(gradient), atol=1e-4)
    assert not torch.allclose(ranked, plain, atol=1e-3)


def test_path_tie_break_costs_no_more_passes_than_the_gradient_and_is_batch_independent(mlp):
    torch.manual_seed(4)
    x = torch.rand(5, 8)
    targets = [0, 1, 2, 1, 0]
    calls = {"gradient": 0, "path": 0}

    def counted(tie_break):
        def forward(inputs):
            calls[tie_break] += 1
            return mlp(inputs)
        return forward

    results = {}
    for tie_break in calls:
        results[tie_break] = MaskOptimization(counted(tie_break)).attribute(
            x, target=targets, n_steps=20, tie_break=tie_break)
    assert calls["path"] == calls["gradient"]
    single = torch.cat([
        MaskOptimization(mlp).attribute(x[i : i + 1], target=targets[i], n_steps=20, tie_break="path")
        for i in range(5)
    ])
    assert torch.allclose(results["path"], single, atol=1e-5)


@pytest.mark.parametrize("tie_break", ["removal", "bands"])
def test_switch_tie_breaks_are_batch_independent_and_auto_picks_bands_for_few_groups(mlp, tie_break):
    torch.manual_seed(4)
    x = torch.rand(5, 8)
    targets = [0, 1, 2, 1, 0]
    explainer = MaskOptimization(mlp)
    # More examples and groups than one pass switches: the stacked switches must not
    # mix examples.
    batch = explainer.attribute(x, target=targets, n_steps=20, tie_break=tie_break)
    single = torch.cat([
        explainer.attribute(x[i : i + 1], target=targets[i], n_steps=20, tie_break=tie_break)
        for i in range(5)
    ])
    assert torch.allclose(batch, single, atol=1e-5)
    auto = explainer.attribute(x, target=targets, n_steps=20)
    assert torch.equal(auto, batch) == (tie_break == "bands")


def test_auto_tie_break_takes_the_gradient_beyond_the_removal_limit():
    from captum_maskopt.settings import MAX_REMOVAL_GROUPS

    features = MAX_REMOVAL_GROUPS + 1
    model = nn.Sequential(nn.Linear(features, 4), nn.Tanh(), nn.Linear(4, 2)).eval()
    x = torch.rand(1, features)
    explainer = MaskOptimization(model)
    auto = explainer.attribute(x, target=1, n_steps=2)
    assert torch.equal(auto, explainer.attribute(x, target=1, n_steps=2, tie_break="gradient"))
    with pytest.raises(ValueError, match="tie_break must be one of"):
        explainer.attribute(x, target=1, tie_break="occlusion")


def test_tie_break_multiplies_the_mask_by_its_rank_to_the_weight_and_keeps_pins(planted):
    x = torch.rand(3, 12) + 0.5
    x[:, 5] = 0.0  # equal to the baseline: pinned
    explainer = MaskOptimization(planted)
    mask = explainer.attribute(x, target=1, tie_break_weight=0.0)
    # The removal ranking: the bands would end with swaps, which trade two groups' values.
    once = explainer.attribute(x, target=1, tie_break_weight=1.0, tie_break="removal")
    squared = explainer.attribute(x, target=1, tie_break_weight=2.0, tie_break="removal")
    softened = explainer.attribute(x, target=1, tie_break_weight=0.2, tie_break="removal")
    # The same optimization (same seed), then mask * rank ** w, rank in [0, 1].
    kept = mask > 0
    rank = once[kept] / mask[kept]
    assert float(rank.min()) >= -1e-6 and float(rank.max()) <= 1.0 + 1e-5
    assert torch.allclose(squared[kept] / mask[kept], rank**2, atol=1e-5)
    assert torch.allclose(softened[kept] / mask[kept], rank**0.2, atol=1e-4)
    assert bool((squared <= once + 1e-6).all()) and bool((once <= softened + 1e-6).all())
    for attribution in (once, squared, softened):
        assert (attribution[:, 5] == 0).all()
    assert not torch.allclose(once, mask)
    with pytest.raises(ValueError, match="tie_break_weight must be a finite number >= 0"):
        explainer.attribute(x, target=1, tie_break_weight=-0.5)


def test_path_average_keeps_range_batch_invariance_and_the_record(mlp):
    x = torch.rand(4, 8)
    targets = torch.tensor([0, 1, 2, 0])
    explainer = MaskOptimization(mlp)
    batch, record = explainer.attribute(x, target=targets, n_steps=80, path_average=True, return_record=True)
    assert ((batch >= 0) & (batch <= 1)).all()
    # Examples stop at different steps; each one's average is over its own steps.
    single = torch.cat([
        explainer.attribute(x[i : i + 1], target=targets[i], n_steps=80, path_average=True) for i in range(4)
    ])
    assert torch.allclose(batch, single, atol=1e-4)
    final, final_record = explainer.attribute(
        x, target=targets, n_steps=80, path_average=False, tie_break_weight=0.0, return_record=True
    )
    assert not torch.allclose(batch, final, atol=1e-3)
    # The record describes the final mask either way.
    assert torch.equal(record.steps, final_record.steps)
    assert torch.allclose(record.kept_fraction, final.mean(dim=1), atol=1e-5)


def test_seed_makes_results_reproducible(mlp):
    x = torch.rand(3, 8)
    explainer = MaskOptimization(mlp)
    first = explainer.attribute(x, target=0, n_steps=30, seed=7)
    again = explainer.attribute(x, target=0, n_steps=30, seed=7)
    other = explainer.attribute(x, target=0, n_steps=30, seed=8, tolerance=0.0)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_record_describes_each_example(planted):
    x = torch.rand(5, 12) + 0.5
    # The record describes the final mask, which is the attribution without the path
    # average and the final ranking.
    attributions, record = MaskOptimization(planted).attribute(
        x, target=1, n_steps=150, path_average=False, tie_break_weight=0.0, return_record=True
    )
    assert isinstance(record, OptimizationRecord)
    for name in ("steps", "converged", "keep_probability", "remove_probability", "kept_fraction", "loss"):
        assert getattr(record, name).shape == (5,)
    assert ((record.steps >= 1) & (record.steps <= 150)).all()
    # The explanation is sufficient and comprehensive on this model.
    assert (record.keep_probability > 0.5).all() and (record.remove_probability < 0.5).all()
    assert torch.allclose(record.kept_fraction, attributions.mean(dim=1), atol=1e-5)


def test_every_example_runs_all_steps_without_a_tolerance(mlp):
    _, record = MaskOptimization(mlp).attribute(
        torch.rand(3, 8), target=0, n_steps=25, tolerance=0.0, return_record=True
    )
    assert record.steps.tolist() == [25, 25, 25] and not record.converged.any()


def test_converged_examples_stop_early(planted):
    # With one budget (a drawn one moves the mask at every step) the mask settles.
    _, record = MaskOptimization(planted).attribute(
        torch.rand(4, 12) + 0.5, target=0, n_steps=500, target_kept_fraction=None, return_record=True
    )
    assert record.converged.all() and (record.steps < 500).all()


def test_pinned_and_uninformative_features_get_zero(planted):
    x = torch.rand(3, 12) + 0.5
    x[:, 5] = 0.0  # equal to the zero baseline: removing it changes nothing
    pins = torch.zeros(1, 12, dtype=torch.bool)
    pins[0, 6] = True
    attributions = MaskOptimization(planted).attribute(x, target=1, pinned_features=pins)
    assert (attributions[:, 5] == 0).all() and (attributions[:, 6] == 0).all()
    assert (attributions[:, 1] > 0.5).all()


def test_several_baselines_and_blur(cnn):
    torch.manual_seed(3)
    images = torch.rand(2, 3, 16, 16)
    means = images.mean(dim=(2, 3), keepdim=True)
    explainer = MaskOptimization(cnn)
    several = explainer.attribute(images, baselines=[0.0, 1.0, means], target=0, n_steps=20)
    single = explainer.attribute(images, baselines=0.0, target=0, n_steps=20)
    blurred = explainer.attribute(images, baselines=gaussian_blur(images, 4.0), target=0, n_steps=20)
    assert several.shape == single.shape == blurred.shape == images.shape
    assert not torch.allclose(several, single)


def test_gaussian_blur_keeps_the_mean_and_removes_detail():
    torch.manual_seed(4)
    images = torch.rand(1, 3, 24, 24)
    blurred = gaussian_blur(images, sigma=3.0)
    assert blurred.shape == images.shape
    assert blurred.std() < images.std() / 2
    assert torch.allclose(blurred.mean(), images.mean(), atol=0.02)
    constant = torch.full((1, 1, 10, 10), 0.4)
    assert torch.allclose(gaussian_blur(constant, 2.0), constant, atol=1e-6)


def _state(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: (p.requires_grad, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()},
        model.training,
    )


def _assert_same_state(model, before):
    params, grads, training = before
    after_params, after_grads, after_training = _state(model)
    assert all(torch.equal(params[k], after_params[k]) for k in params)
    for name, (requires_grad, grad) in grads.items():
        assert after_grads[name][0] == requires_grad
        assert (grad is None) == (after_grads[name][1] is None)
        if grad is not None:
            assert torch.equal(grad, after_grads[name][1])
    assert after_training == training


def test_caller_state_is_left_as_it_was(cnn):
    cnn.features[0].weight.grad = torch.full_like(cnn.features[0].weight, 0.5)
    cnn.head[2].bias.requires_grad_(False)
    images = torch.rand(2, 3, 8, 8)
    images_before = images.clone()
    before = _state(cnn)
    with torch.no_grad():
        attributions = MaskOptimization(cnn).attribute(images, target=1, n_steps=5)
        assert not torch.is_grad_enabled()
    assert torch.isfinite(attributions).all()
    assert torch.equal(images, images_before) and not images.requires_grad
    _assert_same_state(cnn, before)


@pytest.mark.parametrize("layer", [False, True])
def test_a_call_inside_inference_mode_gives_what_it_gives_outside(cnn, layer):
    """Evaluation loops run in ``torch.inference_mode()``, where Captum's gradient
    methods fail ("does not require grad"); the optimization needs gradients of the
    mask only, so it leaves inference mode for the call, with inputs and baselines
    made inside it, and the caller is back in inference mode afterwards."""
    explainer = LayerMaskOptimization(cnn, cnn.features[0]) if layer else MaskOptimization(cnn)
    images = torch.rand(2, 3, 8, 8)
    # Groups of 2 x 2 pixels (of the layer's 8 x 8 output too): an index that gathers.
    cells = (torch.arange(8) // 2).view(1, 1, 8, 1) * 4 + (torch.arange(8) // 2).view(1, 1, 1, 8)
    outside = explainer.attribute(images, target=1, n_steps=5, baselines=0.5, feature_mask=cells)
    with torch.inference_mode():
        inside = explainer.attribute(
            images.clone(), target=torch.tensor([1, 1]), n_steps=5,
            baselines=torch.full((1, 3, 8, 8), 0.5), feature_mask=cells.clone(),
        )
        assert torch.is_inference_mode_enabled()
    assert not inside.is_inference() and torch.equal(inside, outside)


class _Shift(NamedTuple):
    amount: torch.Tensor
    scale: float


def test_a_named_tuple_argument_reaches_the_model_as_it_was_given(mlp):
    """Additional forward arguments pass through the inference-mode copy: a named
    tuple keeps its class and fields (rebuilding it from one iterable fails), the
    same object when nothing in it was made in inference mode."""
    seen = []

    def forward(x, shift):
        seen.append(shift)
        return mlp(x * shift.scale + shift.amount)

    x = torch.rand(3, mlp.net[0].in_features)
    shift = _Shift(torch.tensor(0.5), 2.0)
    outside = MaskOptimization(forward).attribute(x, target=0, n_steps=3, additional_forward_args=(shift,))
    assert all(given is shift for given in seen)
    with torch.inference_mode():
        inside = MaskOptimization(forward).attribute(
            x, target=0, n_steps=3, additional_forward_args=(_Shift(torch.tensor(0.5), 2.0),)
        )
    assert isinstance(seen[-1], _Shift) and not seen[-1].amount.is_inference()
    assert torch.equal(inside, outside)


def test_state_is_restored_when_the_model_raises(cnn):
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyError("model failure")
        return cnn(x)

    before = _state(cnn)
    with torch.no_grad():
        with pytest.raises(KeyError, match="model failure"):
            MaskOptimization(flaky).attribute(torch.rand(2, 3, 8, 8), target=0, n_steps=5)
        assert not torch.is_grad_enabled()
    _assert_same_state(cnn, before)


def test_training_mode_is_warned_about_and_kept(mlp):
    mlp.train()
    with pytest.warns(UserWarning, match=r"training mode \(SmallMLP\)"):
        MaskOptimization(mlp).attribute(torch.rand(2, 8), target=0, n_steps=3)
    assert mlp.training
    mlp.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MaskOptimization(mlp).attribute(torch.rand(2, 8), target=0, n_steps=3)
        # A fresh wrapper is in training mode, and computes what the model in eval mode
        # does: Captum's tutorials end their models so.
        MaskOptimization(nn.Sequential(mlp, nn.Softmax(dim=1))).attribute(torch.rand(2, 8), target=0, n_steps=3)
        # Nothing in it computes otherwise in training mode.
        mode_free = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)).train()
        MaskOptimization(mode_free).attribute(torch.rand(2, 8), target=0, n_steps=3)
    with pytest.warns(UserWarning, match=r"training mode \(Dropout\)"):
        MaskOptimization(nn.Sequential(mlp, nn.Dropout(0.5))).attribute(torch.rand(2, 8), target=0, n_steps=3)


class _FailsOnCall(nn.Module):
    """``net`` that raises on its ``fail_on``-th call (never if 0)."""

    def __init__(self, net: nn.Module, fail_on: int) -> None:
        super().__init__()
        self.net, self.fail_on, self.calls = net, fail_on, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyError("model failure")
        return self.net(x)


@pytest.mark.parametrize("fail_on", [0, 4])
def test_a_model_in_training_mode_gets_its_running_statistics_back(fail_on):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )
    model = _FailsOnCall(net, fail_on).train()
    net(torch.rand(4, 3, 8, 8) * 3)  # running statistics away from their initial values
    before = _state(model)
    with pytest.warns(UserWarning, match="training mode"):
        if fail_on:
            with pytest.raises(KeyError, match="model failure"):
                MaskOptimization(model).attribute(torch.rand(2, 3, 8, 8), target=0, n_steps=5)
        else:
            MaskOptimization(model).attribute(torch.rand(2, 3, 8, 8), target=0, n_steps=5)
    assert model.calls >= (fail_on or 5)
    # The views' forward passes moved the statistics; the call put them back.
    _assert_same_state(model, before)
    assert net[1].num_batches_tracked.item() == 1


def test_a_layer_call_on_a_model_in_training_mode_gets_its_running_statistics_back():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).train()
    model(torch.rand(8, 6))
    before = _state(model)
    with pytest.warns(UserWarning, match="training mode"):
        LayerMaskOptimization(model, model[1]).attribute(torch.rand(4, 6), target=1, n_steps=5)
    _assert_same_state(model, before)


_BATCH_NORM_NET = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


def _global_forward(x):
    return _BATCH_NORM_NET(x)


class _Holder:
    """A callable object that holds the model, as a pipeline or an explainer does."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x):
        return self.model(x)

    def logits(self, x):
        return self.model(x)


FORWARD_FUNCTIONS = {
    "lambda": lambda model: (lambda x: model(x)),
    "global function": lambda model: _global_forward,
    "partial": lambda model: functools.partial(lambda m, x: m(x), model),
    "callable object": _Holder,
    "bound method of an object": lambda model: _Holder(model).logits,
}


@pytest.mark.parametrize("wrapping", FORWARD_FUNCTIONS, ids=list(FORWARD_FUNCTIONS))
def test_a_function_that_runs_a_model_in_training_mode_gets_the_models_guard(wrapping):
    # Captum users often pass a function, e.g. forward(ids, mask) -> model(...).logits:
    # the model it runs is warned about and its running statistics are put back.
    torch.manual_seed(0)
    model = _BATCH_NORM_NET.train()
    model(torch.rand(8, 6))
    before = _state(model)
    with pytest.warns(UserWarning, match=r"training mode \(BatchNorm1d\)"):
        MaskOptimization(FORWARD_FUNCTIONS[wrapping](model)).attribute(torch.rand(4, 6), target=1, n_steps=5)
    _assert_same_state(model, before)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MaskOptimization(FORWARD_FUNCTIONS[wrapping](model.eval())).attribute(torch.rand(4, 6), target=1, n_steps=5)


def test_tuple_inputs_and_additional_forward_args(mlp):
    def forward(a, b, scale, flag):
        assert flag == "ok"
        return mlp(torch.cat([a, b], dim=1) * scale)

    a, b = torch.rand(3, 5), torch.rand(3, 3)
    scale = torch.rand(3, 1) + 0.5
    attributions = MaskOptimization(forward).attribute(
        (a, b), target=(2,), additional_forward_args=(scale, "ok"), n_steps=10
    )
    assert isinstance(attributions, tuple)
    assert attributions[0].shape == a.shape and attributions[1].shape == b.shape


def test_feature_mask_groups_share_values_across_tuple_inputs(mlp):
    def forward(a, b):
        return mlp(torch.cat([a, b], dim=1))

    a, b = torch.rand(2, 5) + 0.1, torch.rand(2, 3) + 0.1
    mask_a = torch.tensor([[0, 0, 1, 1, 2]])
    mask_b = torch.tensor([[2, 3, 3]])
    attr_a, attr_b = MaskOptimization(forward).attribute(
        (a, b), target=0, feature_mask=(mask_a, mask_b), n_steps=10
    )
    assert torch.equal(attr_a[:, 4], attr_b[:, 0])
    assert torch.equal(attr_a[:, 0], attr_a[:, 1]) and torch.equal(attr_b[:, 1], attr_b[:, 2])


def test_feature_mask_ids_need_not_be_consecutive(mlp):
    # As in Captum's FeatureAblation: ids with gaps (superpixel labels that start at 1,
    # say) group the features as their consecutive renumbering does, for one mask of
    # the batch, per-example masks and a layer's tensor alike.
    x = torch.rand(2, 8) + 0.1
    consecutive = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    per_example = torch.tensor([[0, 0, 1, 1, 2, 2, 2, 2], [2, 2, 3, 3, 4, 4, 4, 4]])
    layer_ids = torch.arange(16).unsqueeze(0) // 4
    explainer, layered = MaskOptimization(mlp), LayerMaskOptimization(mlp, mlp.net[0])

    def attribute(ids: torch.Tensor) -> torch.Tensor:
        return explainer.attribute(x, target=[0, 2], feature_mask=ids, n_steps=10, seed=0)

    def attribute_layer(ids: torch.Tensor) -> torch.Tensor:
        return layered.attribute(x, target=[0, 2], feature_mask=ids, n_steps=10, seed=0)

    assert torch.equal(attribute(consecutive * 3 + 1), attribute(consecutive))
    assert torch.equal(attribute(per_example * 5 + 2), attribute(per_example))
    assert torch.equal(attribute_layer(layer_ids * 7 + 1), attribute_layer(layer_ids))
    # Not a mask of equal values: the groups still get different attributions.
    assert len(torch.unique(attribute(consecutive * 3 + 1)[0])) > 1

    # Across tuple inputs an id names one group wherever it appears, gaps or not.
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return mlp(torch.cat([a, b], dim=1))

    pair = (x[:, :5], x[:, 5:])
    masks = (torch.tensor([[0, 0, 1, 1, 2]]), torch.tensor([[2, 3, 3]]))
    gapped = tuple(mask * 4 + 3 for mask in masks)
    kwargs = dict(target=[0, 2], n_steps=10, seed=0)
    expected = MaskOptimization(forward).attribute(pair, feature_mask=masks, **kwargs)
    given = MaskOptimization(forward).attribute(pair, feature_mask=gapped, **kwargs)
    assert all(torch.equal(g, e) for g, e in zip(given, expected))


def test_multi_label_model_with_sigmoid(planted):
    x = torch.rand(3, 12) + 0.5
    attributions = MaskOptimization(planted).attribute(x, target=1, probability="sigmoid")
    assert set(attributions.topk(2, dim=1).indices[0].tolist()) == {1, 6}


def test_single_output_model_without_target():
    def score(x):
        return x[:, 2] * 3.0 - 1.0  # one logit per example

    x = torch.rand(4, 6) + 0.5
    attributions = MaskOptimization(score).attribute(x, probability="sigmoid")
    assert (attributions.argmax(dim=1) == 2).all()


def test_hinge_and_target_fraction_options(planted):
    x = torch.rand(3, 12) + 0.5
    attributions = MaskOptimization(planted).attribute(
        x, target=0, comprehensiveness="hinge", target_kept_fraction=0.2
    )
    assert set(attributions.topk(2, dim=1).indices[0].tolist()) == {3, 9}


def test_noise_depends_only_on_seed_step_and_group():
    from captum_maskopt.optimization import mask_noise

    cpu = torch.device("cpu")
    small = mask_noise(5, 3, 11, cpu, torch.float32, 0.03, 0.05)
    large = mask_noise(9, 3, 11, cpu, torch.float32, 0.03, 0.05)
    assert torch.equal(small[0], large[0][:5]) and torch.equal(small[1], large[1][:5])
    other_step = mask_noise(5, 4, 11, cpu, torch.float32, 0.03, 0.05)
    assert not torch.equal(small[0], other_step[0])
    noise, to_zero, to_one = mask_noise(20000, 0, 2**40, cpu, torch.float32, 0.03, 0.05)
    assert abs(noise.std().item() - 0.03) < 0.002 and abs(noise.mean().item()) < 0.002
    assert abs(to_zero.float().mean().item() - 0.05) < 0.01
    assert abs(to_one.float().mean().item() - 0.05) < 0.01
    assert not (to_zero & to_one).any()
