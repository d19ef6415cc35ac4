"""Image metrics, feature masks and pictures on hand-checked cases."""

import math

import pytest
import torch
from torch import nn

pytest.importorskip("torchvision")
pytest.importorskip("matplotlib")

from captum_maskopt import metrics  # noqa: E402
from captum_maskopt.vision import (  # noqa: E402
    RISE,
    attribution_figure,
    image_infidelity,
    image_sensitivity,
    masked_image,
    patch_mask,
    patch_removal,
    pixel_map,
    pointing_game,
    probabilities_with_pixels,
    soft_mask,
    superpixel_mask,
)


class LinearProbability(nn.Module):
    """Two classes whose class-1 probability is exactly ``0.5 + sum(w * x)``: logits
    ``log(1 - p), log(p)``. Linear in the pixels, so the ideal attribution for removing
    pixels to 0 is ``w * x``, summed over channels."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = 0.5 + (x * self.weight).flatten(1).sum(1)
        return torch.stack([torch.log(1 - p), torch.log(p)], dim=1)


def test_pixel_map_sums_channels_and_keeps_signs():
    a = torch.tensor([1.0, -3.0, 0.5]).view(1, 3, 1, 1).expand(2, 3, 4, 5)
    assert torch.allclose(pixel_map(a), torch.full((2, 4, 5), -1.5))
    maps = torch.rand(2, 4, 5)
    assert pixel_map(maps) is not None and torch.equal(pixel_map(maps), maps)
    with pytest.raises(ValueError, match="attributions"):
        pixel_map(torch.rand(4, 5))


def test_pointing_game_hits_misses_and_tolerance():
    region = torch.zeros(64, 64, dtype=torch.bool)
    region[10:20, 10:20] = True
    maps = torch.zeros(4, 64, 64)
    maps[0, 15, 15] = 1.0  # inside
    maps[1, 15, 19 + 10] = 1.0  # 10 px right of the region: within 15 px
    maps[2, 15, 19 + 20] = 1.0  # 20 px right: outside the tolerance
    maps[3] = 1.0  # flat: the maximum is everywhere, also far away
    assert pointing_game(maps, region).tolist() == [True, True, False, False]
    assert pointing_game(maps, region, tolerance=0).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="region"):
        pointing_game(maps, region.float())


def test_share_inside_on_an_image_region():
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[:2] = True  # the top half
    a = torch.zeros(2, 4, 4)
    a[0, 0, 0], a[0, 3, 3] = 3.0, 1.0  # 3 of 4 inside
    a[1, 3, 3], a[1, 0, 0] = 2.0, -5.0  # negative evidence inside does not count
    shares = metrics.share_inside(a.flatten(1), region.flatten())
    assert shares.tolist() == [0.75, 0.0]
    assert math.isnan(float(metrics.share_inside(torch.zeros(1, 16), region.flatten())[0]))


def test_probabilities_with_pixels_uses_the_substrate_where_removed():
    seen = []

    def model(x):
        seen.append(x.clone())
        return torch.zeros(x.shape[0], 3)

    image = torch.ones(1, 3, 2, 2)
    substrate = torch.full((1, 3, 2, 2), -1.0)
    probabilities_with = probabilities_with_pixels(model, image, substrate, batch_size=1)
    keep = torch.tensor([[True, False, False, True], [False, False, False, False]])
    out = probabilities_with(keep)
    assert out.shape == (2, 3) and torch.allclose(out, torch.full((2, 3), 1 / 3, dtype=torch.float64))
    assert len(seen) == 2  # batch_size=1: one view per pass
    assert seen[0][0, :, 0, 0].tolist() == [1.0] * 3 and seen[0][0, :, 0, 1].tolist() == [-1.0] * 3
    assert bool((seen[1] == -1).all())


def test_deletion_and_insertion_auc_by_hand():
    # Class-1 probability is 0.5 + 0.1 * (number of the first 4 pixels kept); the other
    # 12 pixels do nothing. The right ranking puts those 4 first.
    weight = torch.zeros(1, 1, 4, 4)
    weight[0, 0, 0, :] = 0.1
    model = LinearProbability(weight)
    image = torch.ones(1, 1, 4, 4)
    right = weight.flatten(1)
    wrong = -right
    delete = probabilities_with_pixels(model, image, torch.zeros_like(image))
    target = torch.tensor([1])
    fractions, curve = metrics.deletion_curve(delete, right, target, n_points=5)
    # Removing 0, 4, 8, 12, 16 pixels: the evidence is gone after the first 4.
    assert torch.allclose(curve[0], torch.tensor([0.9, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64))
    good = float(metrics.area_under_curve(fractions, curve)[0])
    assert good == pytest.approx(0.25 * (0.9 + 0.5) / 2 + 0.75 * 0.5)
    _, curve = metrics.deletion_curve(delete, wrong, target, n_points=5)
    assert torch.allclose(curve[0], torch.tensor([0.9, 0.9, 0.9, 0.9, 0.5], dtype=torch.float64))
    _, curve = metrics.insertion_curve(delete, right, target, n_points=5)
    assert torch.allclose(curve[0], torch.tensor([0.5, 0.9, 0.9, 0.9, 0.9], dtype=torch.float64))


def test_patch_removal_removes_whole_patches_and_marks_them():
    inputs = torch.rand(6, 3, 10, 12) + 1.0
    perturbation, perturbed = patch_removal(patch_size=4, removal_probability=0.5, baseline=-2.0, seed=1)(inputs)
    removed = perturbation.bool()
    assert perturbation.shape == inputs.shape
    assert bool((perturbed[removed] == -2.0).all()) and torch.equal(perturbed[~removed], inputs[~removed])
    # Whole 4 x 4 patches, every channel: constant within each patch.
    patches = removed[:, 0, :8, :12].reshape(6, 2, 4, 3, 4)
    assert bool((patches == patches[:, :, :1, :, :1]).all())
    assert bool((removed == removed[:, :1]).all())
    assert 0 < removed.float().mean() < 1
    again, _ = patch_removal(patch_size=4, removal_probability=0.5, baseline=-2.0, seed=1)(inputs)
    assert torch.equal(again, perturbation)
    with pytest.raises(ValueError, match="removal_probability"):
        patch_removal(removal_probability=1.0)


def test_infidelity_is_zero_for_the_exact_linear_attribution():
    torch.manual_seed(0)
    weight = torch.rand(1, 3, 8, 8) * 1e-3
    model = LinearProbability(weight)
    images = torch.rand(2, 3, 8, 8)
    target = torch.tensor([1, 1])
    exact = (weight * images).sum(1)
    # Scale does not matter (infidelity is normalised); a shuffled map is wrong.
    perfect = image_infidelity(model, images, 5.0 * exact, target, n_perturb_samples=16, patch_size=2)
    shuffled = exact.flatten(1)[:, torch.randperm(64)].view(2, 8, 8)
    worse = image_infidelity(model, images, shuffled, target, n_perturb_samples=16, patch_size=2)
    assert bool((perfect < 1e-10).all())
    assert bool((worse > 100 * perfect.clamp_min(1e-14)).all())
    with pytest.raises(ValueError, match="maps"):
        image_infidelity(model, images, exact[:1], target)


def test_sensitivity_max_by_hand_and_without_re_explaining_the_inputs():
    images = torch.rand(2, 3, 6, 6) + 1.0
    calls = []

    def constant(batch, target):
        calls.append(batch.shape[0])
        return torch.ones(batch.shape[0], 6, 6)

    def channel_sum(batch, target):
        return batch.sum(1)

    assert torch.equal(
        image_sensitivity(constant, images, torch.ones(2, 6, 6), torch.tensor([0, 1]), n_perturb_samples=2),
        torch.zeros(2),
    )
    # Only the perturbed copies were explained, never the original images again.
    assert sum(calls) == 4
    maps = images.sum(1)
    radius = 0.02
    values = image_sensitivity(channel_sum, images, maps, torch.tensor([0, 1]), n_perturb_samples=3,
                               perturb_radius=radius)
    # A channel sum moves by at most 3 * radius per pixel.
    bound = 3 * radius * math.sqrt(36) / maps.flatten(1).norm(dim=1)
    assert bool((values > 0).all()) and bool((values <= bound + 1e-6).all())
    state = torch.random.get_rng_state()
    image_sensitivity(channel_sum, images, maps, torch.tensor([0, 1]), n_perturb_samples=1)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_superpixel_and_patch_masks():
    torch.manual_seed(0)
    images = torch.zeros(2, 3, 32, 48)
    images[0, :, :, 24:] = 1.0  # two flat halves
    images[1] = torch.rand(3, 32, 48)
    masks = superpixel_mask(images, n_segments=6)
    assert masks.shape == (2, 1, 32, 48) and masks.dtype == torch.long
    for mask in masks:
        ids = torch.unique(mask)
        assert torch.equal(ids, torch.arange(len(ids)))  # numbered without gaps
    # No superpixel of the two-halves image straddles the edge.
    left, right = set(masks[0, 0, :, :24].unique().tolist()), set(masks[0, 0, :, 24:].unique().tolist())
    assert not left & right
    patches = patch_mask(images, patch_size=16)
    assert patches.shape == (1, 1, 32, 48) and patches.unique().tolist() == list(range(6))
    assert patches[0, 0, 17, 33].item() == 5
    with pytest.raises(ValueError, match="patch_size"):
        patch_mask(images, patch_size=0)
    with pytest.raises(ValueError, match="images"):
        superpixel_mask(torch.zeros(3, 8, 8))


def test_rise_finds_the_evidence_and_is_batch_invariant():
    class LeftHalf(nn.Module):
        def forward(self, x):
            score = 8.0 * x[:, :, :, :8].mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(score), score], dim=1)

    images = torch.ones(2, 3, 16, 16)
    images[1] *= 0.5
    model = LeftHalf()
    together = RISE(model).attribute(images, target=1, n_masks=200, perturbations_per_eval=50)
    assert together.shape == images.shape
    assert bool((together[:, :, :, :6].mean((1, 2, 3)) > together[:, :, :, 10:].mean((1, 2, 3))).all())
    alone = RISE(model).attribute(images[1:], target=1, n_masks=200, perturbations_per_eval=7)
    assert torch.allclose(together[1:], alone, atol=1e-5)


def test_soft_mask_and_masked_image_by_hand():
    values = torch.tensor([[-1.0, 0.0], [2.0, 4.0]])
    assert soft_mask(values, quantile=1.0).tolist() == [[0.0, 0.0], [0.5, 1.0]]
    assert soft_mask(-values.abs()).max() == 0.0
    image = torch.ones(3, 2, 2)
    baseline = torch.zeros(3, 2, 2)
    baseline[2] = 1.0  # blue
    seen = masked_image(image, torch.tensor([[1.0, 0.0], [0.5, 0.0]]), baseline)
    assert seen.shape == (2, 2, 3)
    assert seen[0, 0].tolist() == [1.0, 1.0, 1.0] and seen[0, 1].tolist() == [0.0, 0.0, 1.0]
    assert seen[1, 0].tolist() == [0.5, 0.5, 1.0]
    with pytest.raises(ValueError, match="mask"):
        masked_image(image, torch.full((2, 2), 2.0))


def test_attribution_figure_layout_and_errors():
    images = [torch.rand(3, 8, 8), torch.rand(3, 8, 8)]
    maps = [{"A": torch.rand(8, 8), "B": torch.zeros(8, 8)} for _ in images]
    outline = torch.tensor([[1.0, 1.0], [6.0, 1.0], [6.0, 6.0]]).numpy()
    figure = attribution_figure(images, maps, titles=["one", "two"], outlines=[outline, None])
    # Two images x three kinds of rows; the image column plus one per method.
    assert len(figure.axes) == 2 * 3 * 3
    figure = attribution_figure(images[:1], maps[:1], kinds=("masked_image",))
    assert len(figure.axes) == 3
    with pytest.raises(ValueError, match="kinds"):
        attribution_figure(images, maps, kinds=("contour",))
    with pytest.raises(ValueError, match="same length"):
        attribution_figure(images, maps[:1])
    with pytest.raises(ValueError, match="per-pixel map"):
        attribution_figure(images[:1], [{"A": torch.rand(4, 4)}])
