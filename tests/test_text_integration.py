"""TextExplainer on a small BERT built from a config (no download): tokenization,
word grouping, pinned specials, offsets and rationales."""

import pytest
import torch

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
