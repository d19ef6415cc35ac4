"""LayerMaskOptimization: masking a layer's output for token-id models."""

import pytest
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from captum_maskopt import LayerMaskOptimization, MaskOptimization

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, num_labels=2,
    )
    return transformers.BertForSequenceClassification(config).eval()


def _batch():
    torch.manual_seed(1)
    ids = torch.randint(5, 60, (3, 10))
    ids[:, 0], ids[0, 6], ids[0, 7:] = 2, 3, 0  # [CLS]=2, [SEP]=3, padding=0
    ids[1:, 9] = 3
    return ids, (ids != 0).long()


def _no_hooks(module):
    return all(
        len(m._forward_hooks) == 0 and len(m._forward_pre_hooks) == 0 for m in module.modules()
    )


def test_bert_embeddings_with_pad_baselines_and_attention_mask(bert):
    ids, attention = _batch()

    def forward(input_ids, attention_mask):
        return bert(input_ids=input_ids, attention_mask=attention_mask).logits

    special = (ids == 2) | (ids == 3)
    explainer = LayerMaskOptimization(forward, bert.bert.embeddings)
    attributions, record = explainer.attribute(
        ids, baselines=torch.zeros_like(ids), target=1,
        additional_forward_args=(attention,), n_steps=20,
        pinned_features=special.unsqueeze(-1), return_record=True,
    )
    reference = LayerIntegratedGradients(forward, bert.bert.embeddings).attribute(
        ids, baselines=torch.zeros_like(ids), target=1, additional_forward_args=(attention,), n_steps=5
    )
    assert attributions.shape == reference.shape == (3, 10, 32)
    assert ((attributions >= 0) & (attributions <= 1)).all()
    # One value per token, shared over the hidden dimension.
    assert torch.equal(attributions, attributions[..., :1].expand_as(attributions))
    # Padding equals the baseline and special tokens are pinned: both get 0.
    assert (attributions[0, 7:] == 0).all() and (attributions[special] == 0).all()
    assert record.steps.shape == (3,)
    assert _no_hooks(bert)


def test_layer_batch_gives_the_same_as_one_at_a_time(bert):
    ids, attention = _batch()

    def forward(input_ids, attention_mask):
        return bert(input_ids=input_ids, attention_mask=attention_mask).logits

    explainer = LayerMaskOptimization(forward, bert.bert.embeddings)
    kwargs = dict(baselines=0, target=0, n_steps=15)
    batch = explainer.attribute(ids, additional_forward_args=(attention,), **kwargs)
    single = torch.cat([
        explainer.attribute(ids[i : i + 1], additional_forward_args=(attention[i : i + 1],), **kwargs)
        for i in range(3)
    ])
    assert torch.allclose(batch, single, atol=1e-4)


class TokenModel(nn.Module):
    """Class 1 evidence is token 7 and nothing else."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 4)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.embedding.weight.zero_()
            self.embedding.weight[7, 0] = 1.0
            self.embedding.weight[:, 1] = 0.1  # every token carries a little, uninformative
            # Not saturated (probability 0.9997 with one token 7), which would be warned about.
            self.head.weight.copy_(torch.tensor([[-4.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]]))
            self.head.bias.zero_()

    def forward(self, ids):
        return self.head(self.embedding(ids).sum(dim=1))


def test_planted_token_ranks_first():
    model = TokenModel().eval()
    ids = torch.tensor([[1, 4, 7, 9, 2, 5], [7, 3, 3, 8, 8, 1], [6, 6, 6, 6, 6, 7]])
    attributions = LayerMaskOptimization(model, model.embedding).attribute(ids, baselines=0, target=1)
    assert attributions[..., 0].argmax(dim=1).tolist() == [2, 0, 5]


def test_word_piece_groups_and_layer_input():
    model = TokenModel().eval()
    ids = torch.tensor([[1, 4, 7, 9, 2, 5]])
    words = torch.tensor([[[0], [1], [1], [2], [3], [3]]])  # (N, T, 1) word ids
    attributions = LayerMaskOptimization(model, model.embedding).attribute(
        ids, baselines=0, target=1, feature_mask=words
    )
    assert torch.equal(attributions[0, 1], attributions[0, 2])
    # Masking the input of the head instead: attributions shaped like that input.
    on_input = LayerMaskOptimization(model, model.head).attribute(
        ids, target=1, attribute_to_layer_input=True, n_steps=5
    )
    assert on_input.shape == (1, 4)


def test_layer_with_tuple_output():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10, 3)

        def forward(self, ids):
            e = self.embedding(ids)
            return e, e * 2

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()
            self.head = nn.Linear(3, 2)

        def forward(self, ids):
            a, b = self.pair(ids)
            return self.head((a + b).mean(1))

    model = Model().eval()
    out = LayerMaskOptimization(model, model.pair).attribute(
        torch.tensor([[1, 2, 3]]), target=0, n_steps=5
    )
    assert isinstance(out, tuple) and [o.shape for o in out] == [(1, 3, 3), (1, 3, 3)]


class _TitleAndBody(nn.Module):
    """Two token fields, each with its own embedding; class 1 evidence is token 7 in
    either field and nothing else."""

    def __init__(self):
        super().__init__()
        self.title = nn.Embedding(20, 2)
        self.body = nn.Embedding(20, 2)
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            for embedding in (self.title, self.body):
                embedding.weight.zero_()
                embedding.weight[7, 0] = 1.0
                embedding.weight[:, 1] = 0.1
            self.head.weight.copy_(torch.tensor([[-4.0, 0.0], [4.0, 0.0]]))
            self.head.bias.zero_()

    def forward(self, title_ids, body_ids):
        return self.head(self.title(title_ids).sum(dim=1) + self.body(body_ids).sum(dim=1))


def test_a_list_of_layers_is_masked_together_and_returned_per_layer():
    model = _TitleAndBody().eval()
    titles = torch.tensor([[1, 4, 9, 2], [3, 5, 7, 8]])
    bodies = torch.tensor([[3, 7, 5, 6, 8], [1, 2, 3, 4, 5]])
    both = LayerMaskOptimization(model, [model.title, model.body])
    title, body = both.attribute((titles, bodies), baselines=(0, 0), target=1)
    assert title.shape == (2, 4, 2) and body.shape == (2, 5, 2)
    # One ranking over the positions of both fields: the evidence first wherever it is.
    scores = torch.cat([title[..., 0], body[..., 0]], dim=1)
    assert scores.argmax(dim=1).tolist() == [4 + 1, 2]
    assert _no_hooks(model)
    # The list's order is the output's; a list of one layer gives a list of one, as
    # LayerIntegratedGradients does, holding what the layer alone gives.
    body_first = LayerMaskOptimization(model, [model.body, model.title]).attribute((titles, bodies), target=1)
    assert [a.shape for a in body_first] == [(2, 5, 2), (2, 4, 2)]
    alone = LayerMaskOptimization(model, model.title).attribute((titles, bodies), target=1, n_steps=5)
    listed = LayerMaskOptimization(model, [model.title]).attribute((titles, bodies), target=1, n_steps=5)
    assert isinstance(listed, list) and len(listed) == 1 and torch.equal(listed[0], alone)


def test_layers_that_feed_one_another_or_repeat_are_refused_clearly():
    model = _TitleAndBody().eval()
    ids = (torch.tensor([[1, 7, 2]]), torch.tensor([[3, 4]]))
    # The head is computed from the title's output: its replacement would undo the
    # title's mask, whichever of the two comes first.
    for layers, pattern in (
        ([model.title, model.head], r"layer\[1\] is computed from layer\[0\]'s tensors"),
        ([model.head, model.title], r"layer\[0\] is computed from layer\[1\]'s tensors"),
    ):
        with pytest.raises(ValueError, match=pattern):
            LayerMaskOptimization(model, layers).attribute(ids, target=1, n_steps=3)
        assert _no_hooks(model)
    with pytest.raises(ValueError, match=r"layer lists a module twice \(layer\[2\]\)"):
        LayerMaskOptimization(model, [model.title, model.body, model.title])
    for empty_or_tuple, named in (([], "an empty list"), ((model.title,), "tuple")):
        with pytest.raises(TypeError, match=f"a non-empty list of them, got {named}"):
            LayerMaskOptimization(model, empty_or_tuple)
    with pytest.raises(TypeError, match=r"layer\[1\] must be a torch\.nn\.Module, got str"):
        LayerMaskOptimization(model, [model.title, "body"])


class _DropoutBranches(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.drop = nn.Dropout(0.5)
        self.left = nn.Linear(4, 3)
        self.right = nn.Linear(4, 3)

    def forward(self, x, y):
        return self.left(self.drop(x)) + self.right(self.drop(y))


def test_independent_layers_of_a_model_in_training_mode_are_not_taken_for_dependent():
    # Dropout draws anew in every pass: the check's passes start from one random state,
    # so that a draw is not taken for a dependence between the two branches.
    model = _DropoutBranches().train()
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.warns(UserWarning, match=r"training mode"):
        left, right = LayerMaskOptimization(model, [model.left, model.right]).attribute((x, y), target=0, n_steps=3)
    assert left.shape == right.shape == (3, 3)


class _LstmClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, ids):
        _, (h, _) = self.lstm(self.embedding(ids))
        return self.head(h[-1])


def test_a_layer_whose_output_nests_tensors_is_refused_clearly():
    # The classifier reads the LSTM's (h, c), not its outputs: masking only the plain
    # tensor of (output, (h, c)) would explain nothing the prediction uses.
    model = _LstmClassifier().eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(TypeError, match=r"layer's output holds tensors inside a tuple.*\[1\]"):
        LayerMaskOptimization(model, model.lstm).attribute(ids, target=0, n_steps=3)
    assert _no_hooks(model)
    # Its input is one plain tensor, and the embedding layer's output too.
    to_input = LayerMaskOptimization(model, model.lstm).attribute(
        ids, target=0, n_steps=3, attribute_to_layer_input=True
    )
    embedding = LayerMaskOptimization(model, model.embedding).attribute(ids, target=0, n_steps=3)
    assert to_input.shape == embedding.shape == (1, 4, 4)


@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_torchscript_model_after_an_eager_layer(compile_with):
    model = TokenModel().eval()
    ids = torch.tensor([[1, 4, 7, 9, 2, 5]])
    embedded = model.embedding(ids).detach()
    head = model.head
    rest = torch.jit.script(head) if compile_with == "script" else torch.jit.trace(head, embedded.sum(1))

    def forward(input_ids):
        return rest(model.embedding(input_ids).sum(dim=1))

    attributions = LayerMaskOptimization(forward, model.embedding).attribute(ids, baselines=0, target=1)
    assert attributions[0, :, 0].argmax().item() == 2


def test_a_torch_compiled_model_gets_its_layer_hooks_through_its_uncompiled_module():
    # Graphs that torch.compile cached before the hooks existed skip them (here: those
    # compiled for MaskOptimization's views); Captum's LayerIntegratedGradients then
    # fails with "Forward hook did not obtain any outputs". The layer form runs the
    # uncompiled module, and says so.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    x = torch.randn(4, 8)
    expected = LayerMaskOptimization(model, model[0]).attribute(x, target=0, n_steps=5)
    compiled = torch.compile(model, backend="eager")
    MaskOptimization(compiled).attribute(x, target=0, n_steps=5)
    with pytest.warns(UserWarning, match=r"compiled by torch\.compile.*forward_func\._orig_mod") as caught:
        attributions = LayerMaskOptimization(compiled, model[0]).attribute(x, target=0, n_steps=5)
    assert {w.filename for w in caught if "torch.compile" in str(w.message)} == {__file__}
    torch.testing.assert_close(attributions, expected, rtol=0, atol=1e-6)
    assert _no_hooks(model)


def test_script_module_layer_is_refused_clearly():
    scripted = torch.jit.script(TokenModel().eval())
    with pytest.raises(TypeError, match="TorchScript"):
        LayerMaskOptimization(scripted, scripted.embedding)


def test_data_parallel_wrapper():
    model = TokenModel().eval()
    wrapped = nn.DataParallel(model)
    ids = torch.tensor([[1, 4, 7, 9, 2, 5]])
    attributions = LayerMaskOptimization(wrapped, model.embedding).attribute(ids, baselines=0, target=1)
    assert attributions[0, :, 0].argmax().item() == 2
    assert _no_hooks(model)


class _LeftHalf(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :7]


def test_a_conv_layer_gets_a_spatial_mask_that_finds_the_evidence():
    """Conv2d -> ReLU -> Conv2d -> pool -> Linear, where only the left half of the
    second convolution's output reaches the pool: the mask over the first layer's
    (N, C, H, W) output keeps the left columns and not the right ones. Before the
    redesign the layer class used a 2-D mask without its image settings and returned
    one constant value per example."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), _LeftHalf(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2),
    ).eval()
    with torch.no_grad():
        model[0].bias.zero_()
        model[2].weight.abs_()
        model[2].bias.zero_()
        model[6].weight.copy_(8.0 * torch.tensor([[-1.0] * 6, [1.0] * 6]))
        model[6].bias.zero_()
    images = torch.rand(2, 3, 14, 14)
    attributions = LayerMaskOptimization(model, model[0]).attribute(images, target=1, n_steps=60)
    assert attributions.shape == (2, 6, 14, 14)
    location = attributions[:, 0]
    assert torch.equal(attributions, location.unsqueeze(1).expand_as(attributions))
    assert (location.flatten(1).std(dim=1) > 0.1).all()
    # Columns 8 and beyond never reach the pooled half (3 x 3 kernels).
    assert (location[..., :7].mean(dim=(1, 2)) > location[..., 8:].mean(dim=(1, 2)) + 0.2).all()


def test_token_positions_get_free_logits_and_the_paper_preset_its_kernel_mask(bert):
    # The class docstring's promise: at a sequence layer "auto" optimizes one free logit
    # per position, and settings="paper" the paper's Gaussian-kernel mask there.
    ids, attention = _batch()

    def explain(**settings):
        return LayerMaskOptimization(
            lambda i, a: bert(input_ids=i, attention_mask=a).logits, bert.bert.embeddings
        ).attribute(ids, baselines=0, target=1, additional_forward_args=(attention,), n_steps=3, **settings)

    assert torch.equal(explain(), explain(parametrization="logits"))
    assert torch.equal(explain(settings="paper"), explain(settings="paper", parametrization="gaussian1d"))
    assert not torch.equal(explain(settings="paper"), explain(settings="paper", parametrization="logits"))
