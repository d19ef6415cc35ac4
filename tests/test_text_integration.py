"""TextExplainer on a small BERT built from a config (no download): tokenization,
word grouping, pinned specials, offsets and rationales."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_maskopt.tables import InputError
from captum_maskopt.text import TextExplainer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "great", "film", "dull", "a", "plot", "!", ",",
             "wonder", "##ful", "##ly", "<", ">", "b", "/", "and"]
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
        cls_token="[CLS]", sep_token="[SEP]", model_max_length=32,
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=19, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
    )
    return transformers.BertForSequenceClassification(config).eval()


TEXTS = ["A wonderfully great film!", "Dull <b>plot</b>, dull film and a dull plot"]


def test_encoding_groups_word_pieces_and_keeps_offsets(model, tokenizer):
    encoding = TextExplainer(model, tokenizer).encode(TEXTS)
    first = encoding.word_spans[0]
    assert [TEXTS[0][s:e] for s, e in first] == ["A", "wonderfully", "great", "film", "!"]
    # "wonderfully" is three word pieces of one word.
    pieces = (encoding.word_index[0] == 1).sum().item()
    assert pieces == 3
    assert encoding.special[0, 0] and encoding.special[0, -1]  # [CLS], padding
    assert encoding.feature_mask().shape == (2, encoding.input_ids.shape[1], 1)


def test_explain_returns_word_scores_with_offsets(model, tokenizer):
    explainer = TextExplainer(model, tokenizer)
    results = explainer.explain(TEXTS, n_steps=15)
    assert len(results) == 2
    for text, result in zip(TEXTS, results):
        assert [text[s:e] for s, e in result.spans] == result.words
        assert result.scores.shape == (len(result.words),)
        assert ((result.scores >= 0) & (result.scores <= 1)).all()
        assert 0 < result.probability <= 1 and result.target in (0, 1)
        assert 1 <= result.extra["record"]["steps"] <= 15
        for start, end in result.rationale_spans(top_fraction=0.4):
            assert text[start:end].strip() == text[start:end] and end > start


def test_baselines_keep_special_tokens_and_padding(model, tokenizer):
    explainer = TextExplainer(model, tokenizer)
    encoding = explainer.encode(TEXTS)
    ids = encoding.baseline_ids(explainer.pad_id)
    special = encoding.special
    assert torch.equal(ids[special], encoding.input_ids[special])
    assert (ids[~special] == explainer.pad_id).all()
    assert (encoding.input_ids[~special] != explainer.pad_id).all()
    with explainer.embedding_space(encoding) as space:
        kept = space.baselines_keeping_specials()
        # The same baseline seen from the embedding layer's output.
        with torch.no_grad():
            expected = model.bert.embeddings(ids)
        torch.testing.assert_close(kept, expected)


def _encoder_inputs(model, run) -> list:
    """What the encoder is given (the embedding layer's output, as the explainer
    substitutes it) in each forward pass of ``run()``."""
    seen = []
    hook = model.bert.encoder.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone())
    )
    try:
        run()
    finally:
        hook.remove()
    return seen


def _count_views_keeping_specials(views_seen, encoding, model) -> int:
    """Asserts that every view holds the input's own [CLS] and [SEP] embeddings, and
    counts the views in which some word differs from the input."""
    with torch.no_grad():
        original = model.bert.embeddings(encoding.input_ids)[0]
    special = encoding.special[0]
    assert special.sum() >= 2
    changed = 0
    for views in views_seen:
        torch.testing.assert_close(views[:, special], original[special].expand(len(views), -1, -1))
        changed += int(not torch.allclose(views[:, ~special], original[~special].expand(len(views), -1, -1)))
    return changed


def test_explain_keeps_cls_and_sep_in_every_view(model, tokenizer):
    explainer = TextExplainer(model, tokenizer)
    text = TEXTS[:1]
    seen = _encoder_inputs(model, lambda: explainer.explain(text, n_steps=5))
    assert len(seen) > 5
    # [CLS] and [SEP] are the input's own embeddings in every forward pass, while the
    # words are masked.
    assert _count_views_keeping_specials(seen, explainer.encode(text), model) > 0


@pytest.mark.parametrize("method", ["ShapleyValueSampling", "FeatureAblation"])
def test_the_perturbation_peers_keep_cls_and_sep_in_every_sample(model, tokenizer, method):
    from captum_maskopt.text.peers import PEERS

    explainer = TextExplainer(model, tokenizer)
    text = TEXTS[:1]
    encoding = explainer.encode(text)
    results = []
    seen = _encoder_inputs(model, lambda: results.extend(PEERS[method](explainer, text, None, {})))
    with torch.no_grad():
        all_pad = model.bert.embeddings(torch.full_like(encoding.input_ids, explainer.pad_id))
    # The one pass on all-pad ids records the pad embeddings the samples are made of.
    samples_seen = [views for views in seen if not torch.equal(views, all_pad)]
    assert len(samples_seen) == len(seen) - 1 and len(samples_seen) > 2
    assert _count_views_keeping_specials(samples_seen, encoding, model) > 0
    assert results[0].scores.abs().sum() > 0


def test_word_scores_follow_the_token_masks(model, tokenizer):
    explainer = TextExplainer(model, tokenizer)
    encoding = explainer.encode(TEXTS[:1])
    token_scores = torch.arange(encoding.input_ids.shape[1], dtype=torch.float64).unsqueeze(0)
    probabilities = explainer.predict(encoding)
    words = explainer.word_attributions(
        encoding, token_scores, torch.tensor([1]), probabilities, "mean", "test"
    )[0]
    # Tokens: [CLS]=0, a=1, wonder=2, ##ful=3, ##ly=4, great=5, film=6, !=7.
    assert words.scores.tolist() == [1.0, 3.0, 5.0, 6.0, 7.0]


def test_rationales_by_fraction_and_threshold(model, tokenizer):
    result = TextExplainer(model, tokenizer).explain(TEXTS[:1], n_steps=5)[0]
    result.scores = torch.tensor([0.1, 0.9, 0.8, 0.2, 0.05], dtype=torch.float64)
    assert result.rationale(top_fraction=0.4).tolist() == [False, True, True, False, False]
    assert result.rationale(threshold=0.15).tolist() == [False, True, True, True, False]
    # Neighbouring words merge into one character span.
    assert result.rationale_spans(top_fraction=0.4) == [(2, 19)]
    with pytest.raises(ValueError, match="exactly one"):
        result.rationale()


def test_any_captum_layer_method_on_the_same_words(model, tokenizer):
    from captum.attr import LayerIntegratedGradients

    explainer = TextExplainer(model, tokenizer)
    results = explainer.explain_with(LayerIntegratedGradients, TEXTS, n_steps=10)
    assert [r.method for r in results] == ["LayerIntegratedGradients"] * 2
    ours = explainer.explain(TEXTS, n_steps=3)
    assert [r.words for r in results] == [r.words for r in ours]
    assert len(results[1].words) == 16  # Dull < b > plot < / b > , dull film and a dull plot


@pytest.mark.parametrize("keep_special_tokens", [False, True])
def test_layer_methods_get_pad_baselines_keeping_the_special_tokens_when_asked(
    model, tokenizer, keep_special_tokens
):
    from captum.attr import LayerIntegratedGradients

    explainer = TextExplainer(model, tokenizer)
    encoding = explainer.encode(TEXTS)
    given = []

    class Recording(LayerIntegratedGradients):
        def attribute(self, inputs, baselines=None, **kwargs):
            given.append(baselines)
            return super().attribute(inputs, baselines=baselines, **kwargs)

    explainer.explain_with(Recording, TEXTS, n_steps=4, keep_special_tokens=keep_special_tokens)
    (baselines,) = given
    special = encoding.special
    assert (baselines[~special] == explainer.pad_id).all()
    if keep_special_tokens:
        assert torch.equal(baselines, encoding.baseline_ids(explainer.pad_id))
    else:
        assert (baselines == explainer.pad_id).all()


def test_layer_mask_values_pool_by_the_mean_of_the_pieces(model, tokenizer):
    from captum_maskopt import LayerMaskOptimization

    explainer = TextExplainer(model, tokenizer)
    call = {"n_steps": 4}
    summed = explainer.explain_with(LayerMaskOptimization, TEXTS[:1], **call)[0]
    averaged = explainer.explain_with(LayerMaskOptimization, TEXTS[:1], reduce="mean", **call)[0]
    # "wonderfully" is three pieces (wonder ##ful ##ly): the sum counts them, the mean does not.
    assert averaged.words[1].lower() == "wonderfully"
    assert float(summed.scores[1]) == pytest.approx(3 * float(averaged.scores[1]), rel=1e-6)
    assert torch.allclose(summed.scores[[0, 2, 3, 4]], averaged.scores[[0, 2, 3, 4]])
    with pytest.raises(ValueError, match="reduce must be 'sum' or 'mean'"):
        explainer.explain_with(LayerMaskOptimization, TEXTS[:1], reduce="max", **call)


def test_visualization_record(model, tokenizer):
    from captum.attr import visualization

    result = TextExplainer(model, tokenizer).explain(TEXTS[:1], n_steps=5)[0]
    html = visualization.visualize_text([result.visualization_record(label=1)])
    assert "wonderfully" in html.data


def test_bad_texts(model, tokenizer):
    explainer = TextExplainer(model, tokenizer)
    with pytest.raises(TypeError, match="list of strings"):
        explainer.explain("just one string")
    with pytest.raises(ValueError, match="empty"):
        explainer.explain([])


def test_html_report_escapes_markup_and_lists_methods(model, tokenizer):
    from captum.attr import LayerIntegratedGradients

    from captum_maskopt.text.report import render_html_report

    explainer = TextExplainer(model, tokenizer)
    ours = explainer.explain(TEXTS, n_steps=3)
    ig = explainer.explain_with(LayerIntegratedGradients, TEXTS, n_steps=5)
    page = render_html_report(
        [{"MaskOptimization": a, "IntegratedGradients": b} for a, b in zip(ours, ig)],
        labels=[1, 0],
    )
    # The review's markup is shown, not run: no raw tag of it, only escaped brackets.
    assert "<b>" not in page and "</b>" not in page and "&lt;" in page and "&gt;" in page
    assert page.count("<table>") == 2 and page.count("<th>MaskOptimization</th>") == 2
    assert "Legend" in page and "true label: negative" in page
    # Every character of the text survives (escaped), between and inside words.
    import html as html_module
    import re

    second = page.split("<h2>Document 2</h2>")[1].split("</tr>")[0]
    visible = html_module.unescape(re.sub(r"<[^>]+>", "", second.split("<td>")[1]))
    assert visible == TEXTS[1]


# ---------------------------------------------------------------- long texts: windows

LONG = "Dull plot, dull film and a dull plot, a dull film and a great plot, dull, dull film"


class _BagOfWords(torch.nn.Module):
    """Logit of class 1 = sum over attended tokens of one embedding coordinate: "great"
    carries all the evidence, so it must be the top word wherever it sits."""

    def __init__(self, tokenizer):
        super().__init__()
        self.embeddings = torch.nn.Embedding(len(tokenizer), 2)
        with torch.no_grad():
            self.embeddings.weight.zero_()
            self.embeddings.weight[:, 1] = 1.0
            self.embeddings.weight[tokenizer.convert_tokens_to_ids("great"), 0] = 4.0

    def forward(self, input_ids, attention_mask):
        values = self.embeddings(input_ids)
        evidence = (values[..., 0] * attention_mask).sum(1) - 2.0
        return torch.stack([-evidence, evidence], dim=1)


def test_a_model_without_a_config_gets_its_class_count_from_its_output(tokenizer):
    # _BagOfWords has no config.num_labels and no n_classes: one forward pass tells.
    explainer = TextExplainer(_BagOfWords(tokenizer), tokenizer)
    assert explainer.n_classes == 2
    assert explainer.class_index("1") == 1
    with pytest.raises(InputError, match=r"--target: class 2 is out of range for 2 classes"):
        explainer.class_index(2, "--target")


def test_a_warning_from_explain_points_at_the_callers_line(tokenizer):
    # _BagOfWords is not in eval mode, and defined outside torch.nn: it may compute
    # otherwise in training mode, which the call warns about.
    explainer = TextExplainer(_BagOfWords(tokenizer), tokenizer)
    with pytest.warns(UserWarning, match="training mode") as caught:
        explainer.explain(["a great film"], n_steps=2)
    assert {w.filename for w in caught if "training mode" in str(w.message)} == {__file__}


def test_windows_cover_every_word_with_one_id(model, tokenizer):
    explainer = TextExplainer(model, tokenizer, max_length=8, window_overlap=2)
    encoding = explainer.encode(["Great film!", LONG], windows=True)
    n, windows, length = encoding.input_ids.shape
    assert n == 2 and windows > 2 and length == 8
    # The short text has one window; its other windows are all padding.
    assert encoding.attention_mask[0, 1:].sum() == 0 and (encoding.word_index[0, 1:] == -1).all()
    words = encoding.word_index[1]
    assert set(words[words >= 0].tolist()) == set(range(len(encoding.word_spans[1])))
    # Consecutive windows share window_overlap tokens, with the same word ids.
    for w in range(windows - 1):
        tail = words[w][words[w] >= 0][-2:]
        head = words[w + 1][words[w + 1] >= 0][:2]
        assert tail.tolist() == head.tolist()
    assert [LONG[s:e] for s, e in encoding.word_spans[1]][-3:] == [",", "dull", "film"]


def test_one_window_through_the_window_path_equals_the_layer_path(model, tokenizer):
    from captum_maskopt.text.integration import _single_window

    explainer = TextExplainer(model, tokenizer)
    encoding = explainer.encode(TEXTS, windows=True)
    assert encoding.input_ids.shape[1] == 1
    flat = _single_window(encoding)
    common = dict(target=torch.tensor([1, 0]), return_record=True, n_steps=12, seed=3)
    layer_result, _ = __import__("captum_maskopt").LayerMaskOptimization(
        explainer.forward, explainer.layer
    ).attribute(
        flat.input_ids, baselines=flat.baseline_ids(explainer.pad_id),
        additional_forward_args=(flat.attention_mask,), feature_mask=flat.feature_mask(),
        pinned_features=flat.special.unsqueeze(-1), **common,
    )
    window_result, _ = explainer._explain_windows(encoding, dict(
        additional_forward_args=(encoding.attention_mask,), feature_mask=encoding.feature_mask(),
        pinned_features=encoding.special.unsqueeze(-1), **common,
    ))
    torch.testing.assert_close(window_result[:, 0], layer_result, atol=1e-5, rtol=0)


def test_long_text_is_explained_over_windows(tokenizer):
    bag = _BagOfWords(tokenizer).eval()
    explainer = TextExplainer(bag, tokenizer, layer=bag.embeddings, max_length=8, window_overlap=2)
    with pytest.warns(UserWarning, match="truncated"):
        explainer.encode([LONG])
    result = explainer.explain([LONG], target=1, n_steps=60)[0]
    assert len(result.words) == len(LONG.replace(",", " ,").split())
    assert result.words[int(result.scores.argmax())] == "great"
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    # The document's probability is that of the mean of its windows' logits.
    encoding = explainer.encode([LONG], windows=True)
    assert result.probability == pytest.approx(float(explainer.predict(encoding)[0, 1]))


@pytest.mark.parametrize("max_length", [32, 8])
def test_explain_inside_inference_mode_gives_what_it_gives_outside(model, tokenizer, max_length):
    """An evaluation loop under ``torch.inference_mode()`` makes the encoding's ids,
    masks and groups inference tensors, which autograd may not save; explain (one
    window, and the windowed path at ``max_length=8``) gives the same scores there."""
    explainer = TextExplainer(model, tokenizer, max_length=max_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncation warning of the short windows
        outside = explainer.explain(TEXTS, n_steps=5)
        with torch.inference_mode():
            inside = explainer.explain(TEXTS, n_steps=5)
    for a, b in zip(outside, inside):
        assert a.words == b.words and torch.equal(a.scores, b.scores)


def test_a_long_texts_views_run_each_distinct_window_once(model, tokenizer, monkeypatch):
    # The final ranking's views differ from one another in a word or two, so most
    # windows of a long text recur unchanged: without gradients each distinct window
    # is run once per call, a shorter text's all-padding windows never and a short
    # last window without the others' padding, with the word scores of running every
    # window of every view.
    from captum_maskopt.text import integration

    texts = [LONG + ", a great film and a dull plot", "Great film, a dull plot!"]
    explainer = TextExplainer(model, tokenizer, max_length=8, window_overlap=2)
    encoding = explainer.encode(texts, windows=True)
    assert encoding.input_ids.shape[1] > 2 and not encoding.attention_mask[1, -1].any()
    # One run for both texts, so the shorter one has windows of padding in it.
    monkeypatch.setattr(integration, "_RUN_COST_POSITIONS", 10**12)
    views = []

    def record_view(module, args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        # The views run the model on pad ids with the embeddings substituted.
        if bool((ids == tokenizer.pad_token_id).all()):
            views.append([torch.is_grad_enabled(), mask.clone(), None])

    def record_embeddings(module, args, kwargs):
        if views and views[-1][2] is None:
            views[-1][2] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    hooks = [model.register_forward_pre_hook(record_view, with_kwargs=True),
             model.bert.encoder.register_forward_pre_hook(record_embeddings, with_kwargs=True)]
    try:
        scores = [r.scores for r in explainer.explain(texts, n_steps=12, seed=1)]
    finally:
        for hook in hooks:
            hook.remove()
    # The first pass on pad ids records the baselines' embeddings, for every window.
    views = views[1:]
    assert views and all(embedded is not None for _, _, embedded in views)
    assert all(bool(mask.any(-1).all()) for _, mask, _ in views)
    # Each pass is as long as its longest window: the last window's padding is not run.
    assert all(bool(mask[:, -1].any()) for _, mask, _ in views)
    without_gradients = [
        (embedded[row].numpy().tobytes(), mask[row].numpy().tobytes())
        for grad, mask, embedded in views if not grad for row in range(mask.shape[0])
    ]
    assert len(without_gradients) > 100
    assert len(set(without_gradients)) == len(without_gradients)

    def every_window(self, values, attention_mask):
        return self._forward(values, attention_mask)

    monkeypatch.setattr(integration._WindowLogits, "__call__", every_window)
    for once, every in zip(scores, (r.scores for r in explainer.explain(texts, n_steps=12, seed=1))):
        torch.testing.assert_close(once, every, atol=1e-6, rtol=0)


class _MaskedAttention(torch.nn.Module):
    """One attention layer that masks padded keys with -inf, as hand-written models do:
    a window of padding alone has no key to attend to and gives NaN logits."""

    def __init__(self, tokenizer):
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = torch.nn.Embedding(len(tokenizer), 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask):
        values = self.embeddings(input_ids)
        scores = (values @ values.transpose(1, 2)).masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        return self.head((scores.softmax(-1) @ values)[:, 0])


def test_a_model_that_gives_padding_windows_nan_explains_short_and_long_texts_together(
    tokenizer, monkeypatch
):
    from captum_maskopt.text import integration

    model = _MaskedAttention(tokenizer).eval()
    explainer = TextExplainer(model, tokenizer, layer=model.embeddings, max_length=8, window_overlap=2)
    texts = [LONG, "Great film!"]
    encoding = explainer.encode(texts, windows=True)
    padding_window = encoding.input_ids[1, -1:], encoding.attention_mask[1, -1:]
    assert torch.isnan(model(*padding_window)).all()
    # The short text's windows of padding are left out of its mean: not NaN times 0.
    alone = explainer.predict(explainer.encode(texts[1:], windows=True))
    torch.testing.assert_close(explainer.predict(encoding)[1:], alone)
    monkeypatch.setattr(integration, "_RUN_COST_POSITIONS", 10**12)
    together = explainer.explain(texts, n_steps=6)
    assert all(bool(torch.isfinite(result.scores).all()) for result in together)
    assert together[1].probability == pytest.approx(float(alone[0, together[1].target]))


def test_bad_window_settings(model, tokenizer):
    with pytest.raises(ValueError, match="window_overlap"):
        TextExplainer(model, tokenizer, max_length=8, window_overlap=6)
    with pytest.raises(ValueError, match="max_length"):
        TextExplainer(model, tokenizer, max_length=3)


def _padded_positions(windows, longest, runs, run_cost):
    return sum(
        len(run) * max(windows[i] for i in run) * max(longest[i] for i in run) + run_cost
        for run in runs
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=7))
def test_length_chunks_pad_least_among_all_splits(longest):
    from itertools import permutations

    from captum_maskopt.text.integration import _RUN_COST_POSITIONS, _length_chunks

    windows = [1] * len(longest)
    runs = _length_chunks(windows, longest)
    assert sorted(i for run in runs for i in run) == list(range(len(longest)))
    cost = _padded_positions(windows, longest, runs, _RUN_COST_POSITIONS)

    # Every split of the texts into runs (as cuts of every order of them) pads at least as much.
    def splits(order):
        for mask in range(2 ** (len(order) - 1)):
            runs, run = [], [order[0]]
            for k, i in enumerate(order[1:]):
                if mask >> k & 1:
                    runs.append(run)
                    run = []
                run.append(i)
            yield runs + [run]

    best = min(
        _padded_positions(windows, longest, split, _RUN_COST_POSITIONS)
        for order in permutations(range(len(longest)))
        for split in splits(list(order))
    )
    assert cost == best


def test_select_drops_the_padding_of_the_texts_left_out(model, tokenizer):
    explainer = TextExplainer(model, tokenizer, max_length=8, window_overlap=2)
    both = explainer.encode(["Great film!", LONG], windows=True)
    alone = explainer.encode(["Great film!"], windows=True)
    short = both.select([0])
    assert short.input_ids.shape == alone.input_ids.shape == (1, 1, 5)
    for name in ("input_ids", "attention_mask", "word_index"):
        assert torch.equal(getattr(short, name), getattr(alone, name)), name
    assert short.texts == ["Great film!"] and short.word_spans == alone.word_spans
    assert torch.equal(both.select([1, 0]).input_ids[0], both.input_ids[1])


def test_explain_runs_short_and_long_texts_apart_in_their_order(model, tokenizer, monkeypatch):
    from captum_maskopt.text import integration

    texts = ["Great film!", LONG, "Dull.", LONG + ", a great film"]
    explainer = TextExplainer(model, tokenizer)
    shapes = []
    run = explainer._explain_encoding

    def recording(encoding, targets, kwargs):
        shapes.append(tuple(encoding.input_ids.shape[:1]) + tuple(encoding.input_ids.shape[2:]))
        return run(encoding, targets, kwargs)

    monkeypatch.setattr(explainer, "_explain_encoding", recording)
    common = dict(target=[1, 0, 1, 0], n_steps=12, seed=3)
    split = explainer.explain(texts, **common)
    # The two short texts run together without the long ones' padding.
    short, long = (explainer.encode(texts[i::2]).input_ids.shape[1] for i in (0, 1))
    assert short < long / 3
    assert sorted(shapes) == [(2, short), (2, long)]
    shapes.clear()
    monkeypatch.setattr(integration, "_RUN_COST_POSITIONS", 10**9)
    together = explainer.explain(texts, **common)
    assert shapes == [(4, long)]
    for text, target, a, b in zip(texts, common["target"], split, together):
        assert a.text == b.text == text and a.target == b.target == target
        torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=0)
        assert a.probability == pytest.approx(b.probability, abs=1e-6)


@pytest.mark.parametrize("target", [[1, 0, 1], torch.tensor([1, 0, 1]), 0.5, [0.0, 1.0], True])
def test_explain_names_a_target_that_is_not_one_class_per_text(model, tokenizer, target):
    with pytest.raises(ValueError, match=r"target must be None, an int or one class index per text \(2\)"):
        TextExplainer(model, tokenizer).explain(TEXTS, target=target, n_steps=2)


@pytest.mark.parametrize("target", [1, torch.tensor(1), torch.tensor([1]), [1, 1]])
def test_explain_takes_one_class_for_all_texts_in_captum_forms(model, tokenizer, target):
    results = TextExplainer(model, tokenizer).explain(TEXTS, target=target, n_steps=2)
    assert [result.target for result in results] == [1, 1]
