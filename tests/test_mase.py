"""LayerMASE: the MASE-style baseline of perturbations on a layer's output."""

import pytest
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from captum_maskopt.text.mase import LayerMASE


class TokenModel(nn.Module):
    """Class 1 evidence is token 7 and nothing else; the head reads it."""

    def __init__(self, weight: float = 2.0):
        super().__init__()
        self.embedding = nn.Embedding(20, 4)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.embedding.weight.zero_()
            self.embedding.weight[7, 0] = 1.0
            self.embedding.weight[:, 1] = 0.1  # every token carries a little, uninformative
            self.head.weight.copy_(
                torch.tensor([[-weight, 0.0, 0.0, 0.0], [weight, 0.0, 0.0, 0.0]])
            )
            self.head.bias.zero_()

    def forward(self, ids):
        return self.head(self.embedding(ids).sum(dim=1))


IDS = torch.tensor([[1, 4, 7, 9, 2, 5], [7, 3, 3, 8, 8, 1], [6, 6, 6, 6, 6, 7]])


def _no_hooks(module):
    return all(
        len(m._forward_hooks) == 0 and len(m._forward_pre_hooks) == 0 for m in module.modules()
    )


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, before, training=False):
    return (
        _no_hooks(model)
        and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        and all(p.grad is None and p.requires_grad for p in model.parameters())
        and all(m.training == training for m in model.modules())
    )


def test_planted_token_ranks_first():
    model = TokenModel().eval()
    attributions = LayerMASE(model, model.embedding).attribute(IDS, target=1, n_samples=256)
    assert attributions[..., 0].argmax(dim=1).tolist() == [2, 0, 5]
    assert (attributions[torch.arange(3), torch.tensor([2, 0, 5]), 0] > 0).all()


def test_shape_matches_layer_integrated_gradients():
    model = TokenModel().eval()
    attributions = LayerMASE(model, model.embedding).attribute(IDS, target=1, n_samples=8)
    reference = LayerIntegratedGradients(model, model.embedding).attribute(IDS, target=1, n_steps=5)
    assert attributions.shape == reference.shape == (3, 6, 4)
    assert attributions.dtype == reference.dtype
    # One value per token, repeated over the embedding dimension.
    assert torch.equal(attributions, attributions[..., :1].expand_as(attributions))
    assert torch.isfinite(attributions).all()


def test_batch_gives_the_same_as_one_at_a_time():
    model = TokenModel().eval()
    explainer = LayerMASE(model, model.embedding)
    targets = [1, 0, 1]
    batch = explainer.attribute(IDS, target=targets, n_samples=32)
    single = torch.cat([
        explainer.attribute(IDS[i : i + 1], target=targets[i], n_samples=32) for i in range(3)
    ])
    chunked = explainer.attribute(IDS, target=targets, n_samples=32, internal_batch_size=5)
    assert torch.allclose(batch, single, atol=1e-6, rtol=0)
    assert torch.allclose(batch, chunked, atol=1e-6, rtol=0)


def test_seed_reproducibility():
    model = TokenModel().eval()
    explainer = LayerMASE(model, model.embedding)
    first = explainer.attribute(IDS, target=1, n_samples=16, seed=3)
    again = explainer.attribute(IDS, target=1, n_samples=16, seed=3)
    other = explainer.attribute(IDS, target=1, n_samples=16, seed=4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_hooks_removed_and_model_unchanged(grad_enabled):
    model = TokenModel().eval()
    before = _snapshot(model)
    with torch.set_grad_enabled(grad_enabled):
        LayerMASE(model, model.embedding).attribute(IDS, baselines=0, target=1, n_samples=8)
        assert torch.is_grad_enabled() == grad_enabled
    assert _unchanged(model, before)


@pytest.mark.parametrize("fail_on_call", [1, 2])
def test_hooks_removed_and_model_unchanged_when_the_model_raises(fail_on_call):
    model = TokenModel().eval()
    before = _snapshot(model)
    calls = []

    def forward(ids):
        calls.append(1)
        out = model(ids)  # the layer runs (and is hooked) before the failure
        if len(calls) == fail_on_call:
            raise RuntimeError("model failed")
        return out

    with torch.no_grad():
        with pytest.raises(RuntimeError, match="model failed"):
            LayerMASE(forward, model.embedding).attribute(IDS, target=1, n_samples=8)
        assert not torch.is_grad_enabled()
    assert _unchanged(model, before)
    # The explainer still works afterwards.
    again = LayerMASE(model, model.embedding).attribute(IDS, target=1, n_samples=8)
    assert again.shape == (3, 6, 4)


def test_training_mode_is_kept_and_warned_about():
    model = TokenModel().train()
    before = _snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        LayerMASE(model, model.embedding).attribute(IDS, target=1, n_samples=4)
    assert _unchanged(model, before, training=True)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(n_samples=1), ValueError),
        (dict(noise_scale=0.0), ValueError),
        (dict(ridge=-1.0), ValueError),
        (dict(seed=1.5), TypeError),
        (dict(internal_batch_size=0), ValueError),
        (dict(target=2), IndexError),
    ],
)
def test_bad_arguments(kwargs, error):
    model = TokenModel().eval()
    kwargs = {"target": 1, **kwargs}
    with pytest.raises(error):
        LayerMASE(model, model.embedding).attribute(IDS, **kwargs)
    assert _no_hooks(model)


def test_bert_with_attention_mask():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, num_labels=2,
    )
    bert = transformers.BertForSequenceClassification(config).eval()
    before = _snapshot(bert)
    ids = torch.randint(5, 60, (3, 10))
    ids[:, 0], ids[0, 6], ids[0, 7:] = 2, 3, 0  # [CLS]=2, [SEP]=3, padding=0
    ids[1:, 9] = 3
    attention = (ids != 0).long()

    def forward(input_ids, attention_mask):
        return bert(input_ids=input_ids, attention_mask=attention_mask).logits

    explainer = LayerMASE(forward, bert.bert.embeddings)
    attributions = explainer.attribute(
        ids, baselines=torch.zeros_like(ids), target=1,
        additional_forward_args=(attention,), n_samples=16, internal_batch_size=20,
    )
    reference = LayerIntegratedGradients(forward, bert.bert.embeddings).attribute(
        ids, baselines=torch.zeros_like(ids), target=1,
        additional_forward_args=(attention,), n_steps=4,
    )
    assert attributions.shape == reference.shape == (3, 10, 32)
    assert torch.isfinite(attributions).all()
    assert torch.equal(attributions, attributions[..., :1].expand_as(attributions))
    single = explainer.attribute(
        ids[1:2], target=1, additional_forward_args=(attention[1:2],), n_samples=16
    )
    assert torch.allclose(attributions[1:2], single, atol=1e-6, rtol=0)
    assert _unchanged(bert, before)


def test_a_batch_of_a_short_and_a_long_text_on_the_real_classifier(sentiment):
    """The ridge systems of a snippet padded to a paragraph's length made the batched
    LU solve fail inside oneMKL ("Pivots given to lu_solve must all be greater or
    equal to 1"); the Cholesky solve explains both."""
    from captum_maskopt.text import TextExplainer, load_paragraphs, load_snippets
    from captum_maskopt.text.peers import PEERS

    explainer = TextExplainer(*sentiment)
    texts = [load_snippets("test")[3].text, load_paragraphs("test")[0].text]
    for word in PEERS["MASE"](explainer, texts, None, {}):
        assert len(word.scores) == len(word.words) > 0
        assert torch.isfinite(word.scores).all() and word.scores.abs().max() > 0
