"""Unit tests for the loss terms, on hand-checkable values."""

import math

import pytest
import torch

from captum_maskopt import objective as obj


def test_sufficiency_is_negative_log_probability():
    p = torch.tensor([1.0, 0.5, 0.25])
    expected = torch.tensor([0.0, math.log(2), math.log(4)])
    assert torch.allclose(obj.sufficiency_loss(p), expected, atol=1e-5)


def test_sufficiency_is_finite_at_zero_probability():
    loss = obj.sufficiency_loss(torch.tensor([0.0]))
    assert torch.isfinite(loss).all() and loss.item() > 10


def test_comprehensiveness_log_form():
    p = torch.tensor([0.0, 0.5, 0.75])
    expected = torch.tensor([0.0, math.log(2), math.log(4)])
    assert torch.allclose(obj.comprehensiveness_loss(p, "log"), expected, atol=1e-5)


def test_comprehensiveness_hinge_form_is_zero_below_margin():
    p = torch.tensor([0.05, 0.1, 0.6])
    loss = obj.comprehensiveness_loss(p, "hinge", margin=0.1)
    assert torch.allclose(loss, torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_comprehensiveness_rejects_unknown_form():
    with pytest.raises(ValueError, match="form"):
        obj.comprehensiveness_loss(torch.tensor([0.5]), "square")


def test_kept_fraction_weights_groups_by_size():
    mask = torch.tensor([[1.0, 0.0, 0.5]])
    sizes = torch.tensor([[3.0, 1.0, 0.0]])  # the last group is pinned: size 0
    shares = obj.group_shares(sizes)
    assert torch.allclose(shares, torch.tensor([[0.75, 0.25, 0.0]]))
    assert torch.allclose(obj.kept_fraction(mask, shares), torch.tensor([0.75]))


def test_group_shares_of_a_fully_pinned_example_are_zero():
    assert obj.group_shares(torch.zeros(1, 3)).abs().sum() == 0


def test_compactness_squared_mean_and_target_fraction():
    kept = torch.tensor([0.2, 0.5])
    assert torch.allclose(obj.compactness_loss(kept), torch.tensor([0.04, 0.25]))
    target = obj.compactness_loss(kept, target_fraction=0.35)
    assert target[0].item() == 0.0
    assert target[1].item() == pytest.approx(0.15**2 / 0.35)


def test_kernel_width_loss_averages_over_valid_groups():
    log_width = torch.tensor([[math.log(2.0), math.log(4.0), 100.0]])
    valid = torch.tensor([[True, True, False]])
    expected = -(math.log(2.0) + math.log(4.0)) / 2
    assert obj.kernel_width_loss(log_width, valid).item() == pytest.approx(expected)


def test_total_variation_of_constant_mask_is_zero():
    assert obj.total_variation_loss(torch.full((2, 4, 5), 0.3)).abs().max() == 0


def test_total_variation_counts_eight_neighbours():
    grid = torch.zeros(1, 3, 3)
    grid[0, 1, 1] = 1.0  # one bright cell: 8 neighbour pairs differ by 1
    assert obj.total_variation_loss(grid).item() == pytest.approx(8 / 9)


def test_probabilities():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert torch.allclose(obj.class_probabilities(logits, "softmax"), torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(obj.class_probabilities(torch.tensor([0.0]), "sigmoid"), torch.tensor([0.5]))
    probs = torch.tensor([[0.1, 0.9]])
    assert obj.class_probabilities(probs, "identity") is probs
    with pytest.raises(ValueError, match="probability"):
        obj.class_probabilities(probs, "logsoftmax")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_auto_reads_a_softmax_output_as_it_is_and_logits_through_a_softmax(dtype):
    """A model that ends in a softmax over 1000 classes still sums to 1 within its
    dtype's rounding; logits, their absolute values and a row summing to 0.9 do not."""
    from captum_maskopt.formatting import resolve_probability

    torch.manual_seed(0)
    logits = torch.randn(4, 1000)
    assert resolve_probability("auto", torch.softmax(logits, dim=1).to(dtype)) == "identity"
    assert resolve_probability("auto", torch.softmax(logits, dim=1).reshape(2, 2, 1000).to(dtype)) == "identity"
    assert resolve_probability("auto", logits.to(dtype)) == "softmax"
    assert resolve_probability("auto", logits.abs().to(dtype)) == "softmax"
    assert resolve_probability("auto", (0.9 * torch.softmax(logits[:, :3], dim=1)).to(dtype)) == "softmax"
    assert resolve_probability("softmax", torch.softmax(logits, dim=1).to(dtype)) == "softmax"


# ------------------------------------------------------------------ weighted terms


def _state(n: int = 3, groups: int = 4) -> obj.ObjectiveState:
    from captum_maskopt.parametrizations import MaskEvaluation

    torch.manual_seed(0)
    values = torch.rand(n, groups)
    evaluation = MaskEvaluation(values, torch.rand(n), None)
    shares = torch.full((n, groups), 1.0 / groups)
    return obj.ObjectiveState(torch.rand(2, n), torch.rand(2, n), evaluation, shares, (2, 2))


def test_the_objective_is_the_weighted_sum_of_the_terms():
    from captum_maskopt.settings import MaskOptimizationSettings

    settings = MaskOptimizationSettings(
        sufficiency_weight=2.0, comprehensiveness_weight=0.5, compactness_weight=3.0,
        smoothness_weight=1.2, total_variation_weight=4.0, target_kept_fraction=0.2,
        comprehensiveness="hinge",
    )
    state = _state()
    kept = obj.kept_fraction(state.evaluation.values, state.shares)
    expected = (
        2.0 * obj.sufficiency_loss(state.keep).mean(0)
        + 0.5 * obj.comprehensiveness_loss(state.remove, "hinge", 0.1).mean(0)
        + 3.0 * obj.compactness_loss(kept, 0.2)
        + 1.2 * state.evaluation.kernel_width
        + 4.0 * obj.total_variation_loss(state.evaluation.values.view(-1, 2, 2))
    )
    objective = obj.Objective(settings, smooth_grid=False)
    assert [t.name for t in objective.terms] == list(obj.OBJECTIVE_TERMS)
    assert torch.allclose(objective(state), expected)


def test_terms_of_weight_zero_are_left_out_and_tv_defaults_by_mask():
    from captum_maskopt.settings import IMAGE_TOTAL_VARIATION_WEIGHT, MaskOptimizationSettings

    settings = MaskOptimizationSettings(comprehensiveness_weight=0.0, smoothness_weight=0.0)
    names = [t.name for t in obj.Objective(settings, smooth_grid=False).terms]
    assert names == ["sufficiency", "compactness"]
    image = obj.Objective(settings, smooth_grid=True)
    assert [t.weight for t in image.terms if t.name == "total_variation"] == [IMAGE_TOTAL_VARIATION_WEIGHT]
    assert image.needs_total_variation and not obj.Objective(settings, False).needs_total_variation


def test_a_new_term_is_one_registered_function(monkeypatch, mlp):
    """Registering a builder is all it takes for attribute() to optimize a new term:
    here a strong reward for keeping feature 0, which the mask then keeps."""
    from captum_maskopt import MaskOptimization

    monkeypatch.setattr(obj.OBJECTIVE_TERMS, "_entries", dict(obj.OBJECTIVE_TERMS._entries))

    @obj.OBJECTIVE_TERMS.register("keep_feature_0")
    def _keep_feature_0(settings, smooth_grid):
        return obj.WeightedTerm("keep_feature_0", 5.0, lambda s: 1.0 - s.evaluation.values[:, 0])

    x = torch.randn(4, 8)
    # One compactness pressure and the final mask (no path average), as designed for.
    final = {"n_steps": 60, "compactness_weight": 2.0, "path_average": False, "target_kept_fraction": None,
             "tie_break_weight": 0.0}
    attributions = MaskOptimization(mlp).attribute(x, target=0, **final)
    assert (attributions[:, 0] > 0.95).all()
    monkeypatch.undo()
    plain = MaskOptimization(mlp).attribute(x, target=0, **final)
    assert not (plain[:, 0] > 0.95).all()


def test_a_tuple_of_budgets_draws_one_per_step_and_example():
    from captum_maskopt.settings import MaskOptimizationSettings

    levels = (0.01, 0.1, 0.5)
    torch.manual_seed(0)
    shares = torch.rand(6, 5)
    shares = shares / shares.sum(dim=1, keepdim=True)
    level_tensor = torch.tensor(levels)
    keys = obj.example_keys(shares)

    def draws(keys, seed):
        return torch.stack([obj.drawn_budgets(level_tensor, keys, step, seed) for step in range(60)], dim=1)

    sequences = draws(keys, 3)
    assert set(sequences.flatten().tolist()) <= {float(torch.tensor(v)) for v in levels}
    # Each example follows a sequence of its own, and the same one in any batch.
    assert len({tuple(row.tolist()) for row in sequences}) == 6
    assert torch.equal(obj.example_keys(shares.flip(0)), keys.flip(0))
    assert torch.equal(draws(keys.flip(0), 3), sequences.flip(0))
    assert not torch.equal(draws(keys, 4), sequences)
    # Every level is drawn about as often as the others.
    counts = torch.stack([(sequences == float(torch.tensor(v))).sum() for v in levels]).double()
    assert counts.min() > 0.2 * counts.sum()
    settings = MaskOptimizationSettings(target_kept_fraction=list(levels), seed=3, n_steps=200,
                                        sufficiency_weight=0.0, comprehensiveness_weight=0.0)
    assert settings.target_kept_fraction == levels
    [term] = [t for t in obj.Objective(settings, smooth_grid=False).terms if t.name == "compactness"]
    state = _state()
    kept = obj.kept_fraction(state.evaluation.values, state.shares)
    for step in (0, 1, 57):
        budgets = obj.drawn_budgets(level_tensor, obj.example_keys(state.shares), step, seed=3)
        assert torch.allclose(term.loss(state._replace(step=step)), obj.compactness_loss(kept, budgets))
    # The final mask, scored after the loop, is held to the mean budget.
    assert torch.allclose(term.loss(state), obj.compactness_loss(kept, sum(levels) / 3))


def test_drawn_budgets_keep_the_attribution_batch_invariant():
    from captum_maskopt import MaskOptimization

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 3)).eval()
    x = torch.randn(4, 6)
    method = MaskOptimization(model)
    options = {"target": 1, "n_steps": 30, "target_kept_fraction": (0.1, 0.5), "path_average": True}
    together = method.attribute(x, **options)
    alone = torch.cat([method.attribute(x[i:i + 1], **options) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(together, method.attribute(x, **{**options, "target_kept_fraction": 0.1}))


def test_saturated_marks_probabilities_within_the_clamp_of_0_or_1():
    probability = torch.tensor([0.0, 5e-7, 2e-6, 0.5, 1 - 2e-6, 1 - 5e-7, 1.0])
    assert obj.saturated(probability).tolist() == [True, True, False, False, False, True, True]
    # Scores read as they are ("identity") outside [0, 1] are no probabilities.
    assert not obj.saturated(torch.tensor([-0.5, 1.5])).any()
    # float64 probabilities are read at the same 1e-6.
    assert obj.saturated(probability.double()).tolist() == obj.saturated(probability).tolist()
