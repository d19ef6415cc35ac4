"""Image settings of MaskOptimization on a small torchvision model built without
weights: shapes, smoothness, batch invariance, feature masks, the caller's state."""

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from captum_maskopt import MaskOptimization  # noqa: E402
from captum_maskopt.baselines import gaussian_blur  # noqa: E402
from captum_maskopt.vision import image_settings, superpixel_mask  # noqa: E402

STEPS = 20


@pytest.fixture(scope="module")
def squeezenet():
    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    x[:, :, 8:20, 8:20] += 0.5  # a brighter square, something to find
    return x


def test_image_settings_baselines(images):
    blur = image_settings(images)["baselines"]
    assert torch.equal(blur, gaussian_blur(images, 10.0))
    low, high, mean = image_settings(images, baseline="colours", value_range=(-1.0, 1.0))["baselines"]
    assert (low, high) == (-1.0, 1.0) and mean.shape == (3, 3, 1, 1)
    assert torch.allclose(mean[1, :, 0, 0], images[1].mean(dim=(1, 2)))
    assert image_settings(images, baseline="zero") == {"baselines": 0.0}
    with pytest.raises(ValueError, match="baseline must be one of"):
        image_settings(images, baseline="noise")
    with pytest.raises(ValueError, match="images must be"):
        image_settings(images[0])
    with pytest.raises(ValueError, match="value_range"):
        image_settings(images, baseline="colours", value_range=(1.0, -1.0))


@pytest.fixture(scope="module")
def explained(squeezenet, images):
    before = images.clone()
    parameters = [p.clone() for p in squeezenet.parameters()]
    settings = image_settings(images)
    baseline_before = settings["baselines"].clone()
    attributions, record = MaskOptimization(squeezenet).attribute(
        images, target=4, n_steps=STEPS, return_record=True, **settings
    )
    assert torch.equal(images, before) and torch.equal(settings["baselines"], baseline_before)
    assert all(torch.equal(p, q) for p, q in zip(squeezenet.parameters(), parameters))
    assert not squeezenet.training
    return attributions, record


def test_shapes_range_and_channels(explained, images):
    attributions, record = explained
    assert attributions.shape == images.shape and attributions.dtype == images.dtype
    assert float(attributions.min()) >= 0.0 and float(attributions.max()) <= 1.0
    # One mask value per pixel location, shared by the channels.
    assert torch.equal(attributions, attributions[:, :1].expand_as(attributions))
    assert record.steps.shape == (3,) and bool((record.steps <= STEPS).all())


def test_the_mask_is_smooth(squeezenet, images):
    # The optimized mask itself: the final ranking (tie_break_weight) orders single
    # pixels inside it on purpose.
    attributions = MaskOptimization(squeezenet).attribute(
        images, target=4, n_steps=STEPS, tie_break_weight=0.0, **image_settings(images)
    )
    mask = attributions[:, 0]
    assert float(mask.max() - mask.min()) > 0.05  # not a flat (collapsed) mask
    # Bilinear upsampling of 8-pixel cells: neighbouring pixels differ by at most an
    # eighth of the largest jump between cells, itself at most 1.
    steps = torch.cat([(mask[:, 1:] - mask[:, :-1]).flatten(1), (mask[:, :, 1:] - mask[:, :, :-1]).flatten(1)], 1)
    assert float(steps.abs().max()) <= 1 / 8 + 1e-6
    assert float(steps.abs().mean()) < 0.05


def test_an_image_does_not_depend_on_its_batch(explained, squeezenet, images):
    attributions, _ = explained
    # The last image, alone: not first in a batch, not with the same neighbours.
    alone = MaskOptimization(squeezenet).attribute(
        images[2:], target=4, n_steps=STEPS, **image_settings(images[2:])
    )
    assert torch.allclose(alone, attributions[2:], atol=1e-4)


def test_superpixels_as_feature_mask(squeezenet, images):
    mask = superpixel_mask(images[:1], n_segments=12)
    attributions = MaskOptimization(squeezenet).attribute(
        images[:1], target=4, feature_mask=mask, n_steps=10, **image_settings(images[:1])
    )
    assert attributions.shape == (1, 3, 32, 32)
    for segment in mask.unique():
        values = attributions[0, 0][mask[0, 0] == segment]
        assert torch.allclose(values, values[0].expand_as(values))
