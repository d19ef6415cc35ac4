"""MaskOptimization inside Captum: NoiseTunnel, metrics, visualization, TorchScript."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import NoiseTunnel, visualization  # noqa: E402
from captum.metrics import infidelity, sensitivity_max  # noqa: E402

from captum_maskopt import MaskOptimization  # noqa: E402


def test_noise_tunnel(cnn):
    images = torch.rand(2, 3, 12, 12)
    tunnel = NoiseTunnel(MaskOptimization(cnn))
    attributions = tunnel.attribute(
        images, nt_type="smoothgrad", nt_samples=3, stdevs=0.05, target=1, n_steps=5
    )
    assert attributions.shape == images.shape and torch.isfinite(attributions).all()


def test_infidelity_and_sensitivity(cnn):
    images = torch.rand(2, 3, 12, 12)
    attributions = MaskOptimization(cnn).attribute(images, target=0, n_steps=10)

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.05
        return noise, inputs - noise

    score = infidelity(cnn, perturb, images, attributions, target=0)
    assert score.shape == (2,) and torch.isfinite(score).all()
    sensitivity = sensitivity_max(
        MaskOptimization(cnn).attribute, images, target=0, n_steps=5, n_perturb_samples=2
    )
    assert sensitivity.shape == (2,) and torch.isfinite(sensitivity).all()


def test_visualize_image_attr(cnn):
    image = torch.rand(1, 3, 12, 12)
    attributions = MaskOptimization(cnn).attribute(image, target=2, n_steps=5)
    figure, axis = visualization.visualize_image_attr(
        attributions[0].permute(1, 2, 0).numpy(),
        image[0].permute(1, 2, 0).numpy(),
        method="blended_heat_map",
        sign="positive",
        use_pyplot=False,
    )
    assert figure is not None and axis is not None


def test_visualize_text(planted):
    x = torch.rand(1, 12) + 0.5
    attributions = MaskOptimization(planted).attribute(x, target=1)
    words = [f"w{i}" for i in range(12)]
    record = visualization.VisualizationDataRecord(
        attributions[0], 0.9, "1", "1", "1", attributions.sum().item(), words, 0.0
    )
    html = visualization.visualize_text([record])
    assert "w1" in html.data and "w6" in html.data


@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_torchscript_models(mlp, compile_with):
    x = torch.rand(3, 8)
    compiled = torch.jit.script(mlp) if compile_with == "script" else torch.jit.trace(mlp, x)
    eager = MaskOptimization(mlp).attribute(x, target=1, n_steps=20)
    scripted = MaskOptimization(compiled).attribute(x, target=1, n_steps=20)
    assert np.allclose(eager.numpy(), scripted.numpy(), atol=1e-4)
