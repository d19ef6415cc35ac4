"""Unit tests for the mask parametrizations."""

import math

import pytest
import torch

from captum_maskopt.parametrizations import FreeLogitMask, GaussianKernelMask1D, SmoothMask2D

CPU, F32 = torch.device("cpu"), torch.float32


def test_free_logits_are_a_sigmoid():
    p = FreeLogitMask(3, init_logit=0.0)
    params = p.init_params(2, CPU, F32)
    assert params["logit"].shape == (2, 3)
    pinned = torch.zeros(2, 3, dtype=torch.bool)
    evaluation = p.evaluate(params, pinned, total_variation=True)
    assert torch.allclose(evaluation.values, torch.full((2, 3), 0.5))
    assert evaluation.kernel_width is None and evaluation.total_variation is None


def test_gaussian_mask_matches_the_formula():
    p = GaussianKernelMask1D(3)
    params = {
        "weight": torch.tensor([[1.0, 0.0, -2.0]]),
        "log_width": torch.log(torch.tensor([[1.0, 1.0, 2.0]])),
    }
    pinned = torch.zeros(1, 3, dtype=torch.bool)
    mask = p.mask(params, pinned)
    # logit_j = sum_i w_i exp(-(i-j)^2 / sigma_i^2)
    logits = [
        1.0 * math.exp(-(0 - j) ** 2 / 1.0) - 2.0 * math.exp(-(2 - j) ** 2 / 4.0)
        for j in range(3)
    ]
    expected = torch.sigmoid(torch.tensor([logits]))
    assert torch.allclose(mask, expected, atol=1e-6)


def test_gaussian_mask_pinned_groups_do_not_contribute():
    p = GaussianKernelMask1D(3)
    params = p.init_params(1, CPU, F32)
    params["weight"] = torch.tensor([[5.0, 0.0, 0.0]])
    free = p.mask(params, torch.zeros(1, 3, dtype=torch.bool))
    pinned = p.mask(params, torch.tensor([[True, False, False]]))
    assert free[0, 1] > 0.9 and torch.allclose(pinned, torch.full((1, 3), 0.5))


def test_gaussian_initial_mask_keeps_most_of_the_input():
    p = GaussianKernelMask1D(10)
    mask = p.mask(p.init_params(1, CPU, F32), torch.zeros(1, 10, dtype=torch.bool))
    assert mask.min() > 0.9


def test_kernel_width_regularizer_rewards_wide_kernels():
    p = GaussianKernelMask1D(8)
    pinned = torch.zeros(1, 8, dtype=torch.bool)
    narrow = {"weight": torch.zeros(1, 8), "log_width": torch.full((1, 8), math.log(0.5))}
    wide = {"weight": torch.zeros(1, 8), "log_width": torch.full((1, 8), math.log(4.0))}
    wide_loss = p.evaluate(wide, pinned, False).kernel_width
    assert wide_loss < p.evaluate(narrow, pinned, False).kernel_width
    assert wide_loss.item() == pytest.approx(-math.log(4.0))


def test_gaussian_width_is_clamped_to_the_sequence_length():
    p = GaussianKernelMask1D(4)
    huge = {"weight": torch.zeros(1, 4), "log_width": torch.full((1, 4), 50.0)}
    loss = p.evaluate(huge, torch.zeros(1, 4, dtype=torch.bool), False).kernel_width
    assert loss.item() == pytest.approx(-math.log(4.0))


def test_smooth2d_shapes_and_smoothness():
    p = SmoothMask2D((20, 12), cell_size=4)
    assert p.coarse == (5, 3) and p.n_groups == 240
    params = p.init_params(2, CPU, F32)
    params["weight"] = torch.randn(2, 15) * 3
    mask = p.mask(params, torch.zeros(2, 240, dtype=torch.bool))
    assert mask.shape == (2, 240) and 0 <= mask.min() and mask.max() <= 1
    image = mask.view(2, 20, 12)
    # Upsampled from 4x4 cells: neighbouring pixels differ far less than the cells do.
    pixel_step = (image[:, 1:] - image[:, :-1]).abs().max()
    coarse = p.coarse_mask(params)
    cell_step = (coarse[:, 1:] - coarse[:, :-1]).abs().max()
    assert pixel_step < cell_step


def test_gradients_reach_every_parameter():
    p = GaussianKernelMask1D(5)
    params = {k: v.requires_grad_() for k, v in p.init_params(2, CPU, F32).items()}
    pinned = torch.zeros(2, 5, dtype=torch.bool)
    evaluation = p.evaluate(params, pinned, False)
    (evaluation.values.sum() + evaluation.kernel_width.sum()).backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in params.values())


def test_smooth2d_total_variation_is_the_coarse_grids_neighbour_differences():
    from captum_maskopt.objective import total_variation_loss

    p = SmoothMask2D((12, 16), cell_size=4)  # 3 x 4 cells
    params = p.init_params(2, CPU, F32)
    params["weight"] = torch.randn(2, 12) * 2
    evaluation = p.evaluate(params, torch.zeros(2, 192, dtype=torch.bool), True)
    coarse = p.coarse_mask(params)
    # total_variation_loss divides by the cell count; ours by the pixel count.
    expected = total_variation_loss(coarse) * 12 / 192
    assert torch.allclose(evaluation.total_variation, expected, atol=1e-6)
    assert p.evaluate(params, torch.zeros(2, 192, dtype=torch.bool), False).total_variation is None


def test_smooth2d_kernels_stay_within_a_small_window():
    # On a 28 x 28 grid an unbounded width reward (-log 28 = -3.3) would outweigh
    # compactness; the widths stop at max_width cells.
    p = SmoothMask2D((224, 224), cell_size=8)
    huge = {"weight": torch.zeros(1, 784), "log_width": torch.full((1, 784), 50.0)}
    loss = p.evaluate(huge, torch.zeros(1, 224 * 224, dtype=torch.bool), False).kernel_width
    assert loss.item() == pytest.approx(-math.log(3.0))
    wider = SmoothMask2D((224, 224), cell_size=8, max_width=10.0)
    loss = wider.evaluate(huge, torch.zeros(1, 224 * 224, dtype=torch.bool), False).kernel_width
    assert loss.item() == pytest.approx(-math.log(10.0))


# --------------------------------------------------------- objects and factories


def test_attribute_takes_a_parametrization_object_or_factory(mlp):
    from captum_maskopt import MaskOptimization

    x = torch.randn(3, 8)
    method = MaskOptimization(mlp)
    by_name = method.attribute(x, target=0, n_steps=15, parametrization="logits")
    # The registry's name, an object and a factory are one parametrization.
    assert torch.equal(method.attribute(x, target=0, n_steps=15, parametrization=FreeLogitMask(8)), by_name)
    factory = lambda groups, settings: FreeLogitMask(groups.n_groups)  # noqa: E731
    assert torch.equal(method.attribute(x, target=0, n_steps=15, parametrization=factory), by_name)
    # Constructor arguments are reachable.
    started_low = method.attribute(
        x, target=0, n_steps=1, noise_std=0.0, flip_fraction=0.0,
        parametrization=FreeLogitMask(8, init_logit=-3.0),
    )
    assert (started_low < 0.1).all()


def test_a_parametrization_of_the_wrong_size_or_type_is_refused(mlp):
    from captum_maskopt import MaskOptimization

    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="parametrization has 5 groups but the input has 8"):
        MaskOptimization(mlp).attribute(x, target=0, parametrization=FreeLogitMask(5))
    with pytest.raises(TypeError, match="factory must return a MaskParametrization, got int"):
        MaskOptimization(mlp).attribute(x, target=0, parametrization=lambda g, s: 3)


# ---------------------------------------------------------- starting from a ranking


def test_standardized_scores_ignore_invalid_groups_and_clip():
    from captum_maskopt.parametrizations import standardized_scores

    scores = torch.tensor([[1.0, 2.0, 3.0, 100.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    z = standardized_scores(scores, valid)
    std = math.sqrt(2 / 3)
    assert torch.allclose(z[0], torch.tensor([-1 / std, 0.0, 1 / std, 0.0], dtype=torch.float64))
    assert torch.equal(z[1], torch.zeros(4, dtype=torch.float64))  # all equal: no ranking
    spiky = standardized_scores(torch.tensor([[0.0] * 99 + [1.0]]), torch.ones(1, 100, dtype=torch.bool))
    assert float(spiky.max()) == 3.0


def test_free_logits_start_from_scores_in_their_order():
    p = FreeLogitMask(6, start_scale=2.0)
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.0, 0.1, -0.2]])
    valid = torch.ones(1, 6, dtype=torch.bool)
    uniform = p.init_params(1, CPU, F32)
    started = p.start_from(uniform, scores, valid)
    assert torch.equal(started["logit"][0].argsort(), scores[0].argsort())
    # The uniform start moved by the standardized scores times the scale.
    z = (scores - scores.mean()) / scores.std(unbiased=False)
    assert torch.allclose(started["logit"], 2.0 + 2.0 * z, atol=1e-5)


@pytest.mark.parametrize("kernels", [GaussianKernelMask1D(6), SmoothMask2D((2, 3), cell_size=1)])
def test_kernel_masks_refuse_to_start_from_scores(kernels):
    # A kernel weight spreads over its neighbours, so a start from scores would not
    # give the scores' ranking; they say so rather than start from something else.
    with pytest.raises(ValueError, match="cannot start from scores"):
        kernels.start_from(kernels.init_params(1, CPU, F32), torch.zeros(1, 6), torch.ones(1, 6, dtype=torch.bool))


def test_initial_mask_gradient_starts_from_gradient_times_input_halfway(mlp):
    from captum_maskopt import MaskOptimization

    x = torch.randn(3, 8)
    method = MaskOptimization(mlp)
    quiet = dict(noise_std=0.0, flip_fraction=0.0, path_average=False, parametrization="logits",
                 tie_break_weight=0.0)
    # No step: the mask is the start itself.
    started = method.attribute(x, target=0, n_steps=1, learning_rate=1e-9, initial_mask="gradient", **quiet)
    uniform = method.attribute(x, target=0, n_steps=1, learning_rate=1e-9, **quiet)
    assert float((uniform - uniform[:, :1]).abs().max()) < 1e-6
    # Halfway between the baseline (0, the default) and the input.
    halfway = (0.5 * x).requires_grad_()
    probability = torch.softmax(mlp(halfway), dim=1)[:, 0].sum()
    (gradient,) = torch.autograd.grad(probability, halfway)
    expected = (gradient * x).argsort(dim=1)
    assert torch.equal(started.argsort(dim=1), expected)


def test_a_parametrization_without_a_start_from_scores_is_refused_by_name(mlp):
    from captum_maskopt import MaskOptimization
    from captum_maskopt.parametrizations import MaskEvaluation, MaskParametrization

    class Constant(MaskParametrization):
        n_groups = 8

        def init_params(self, n, device, dtype):
            return {"logit": torch.zeros(n, 8, device=device, dtype=dtype)}

        def evaluate(self, params, pinned, total_variation):
            return MaskEvaluation(torch.sigmoid(params["logit"]), None, None)

    with pytest.raises(ValueError, match="initial_mask='gradient': Constant cannot start from scores"):
        MaskOptimization(mlp).attribute(torch.randn(2, 8), target=0, parametrization=Constant(),
                                        initial_mask="gradient")
    with pytest.raises(ValueError, match="initial_mask"):
        MaskOptimization(mlp).attribute(torch.randn(2, 8), target=0, initial_mask="random")
