"""GPU behaviour (skipped without CUDA): results on the inputs' device, no
device-to-host syncs inside the steps, autocast."""

import warnings

import pytest
import torch

from captum_maskopt import LayerMaskOptimization, MaskOptimization

from conftest import SmallCNN

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _images():
    torch.manual_seed(0)
    return torch.rand(4, 3, 32, 32)


def test_runs_on_the_inputs_device_and_agrees_with_the_cpu():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    images = _images()
    cpu = MaskOptimization(model).attribute(images, target=1, n_steps=40)
    gpu, record = MaskOptimization(model.cuda()).attribute(
        images.cuda(), target=1, n_steps=40, return_record=True
    )
    assert gpu.device.type == "cuda" and record.steps.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-3)


def _sync_count(model, images, n_steps):
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            MaskOptimization(model).attribute(
                images, target=1, n_steps=n_steps, check_every=1000
            )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_no_device_to_host_sync_inside_the_steps():
    model = SmallCNN().eval().cuda()
    images = _images().cuda()
    # Set-up syncs (argument checks) are fixed; the steps themselves add none.
    assert _sync_count(model, images, 5) == _sync_count(model, images, 30)


def test_autocast():
    model = SmallCNN().eval().cuda()
    attributions = MaskOptimization(model).attribute(
        _images().cuda(), target=0, n_steps=10, autocast=True
    )
    assert attributions.dtype == torch.float32 and torch.isfinite(attributions).all()


def test_layer_variant_on_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, num_labels=2,
    )
    bert = transformers.BertForSequenceClassification(config).eval().cuda()
    ids = torch.randint(5, 60, (3, 12), device="cuda")
    attention = torch.ones_like(ids)

    def forward(input_ids, attention_mask):
        return bert(input_ids=input_ids, attention_mask=attention_mask).logits

    attributions = LayerMaskOptimization(forward, bert.bert.embeddings).attribute(
        ids, baselines=0, target=1, additional_forward_args=(attention,), n_steps=10
    )
    assert attributions.shape == (3, 12, 32) and attributions.device.type == "cuda"
