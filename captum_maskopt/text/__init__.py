"""Text integration: word-level rationales for Hugging Face classifiers, and the
packaged data and classifiers the comparisons run on. Needs ``transformers``
(``pip install captum-maskopt[text]``)."""

from captum_maskopt.text.integration import (
    TEXT_SETTINGS, EmbeddingSpace, TextEncoding, TextExplainer, WordAttribution, text_settings,
)
from captum_maskopt.text.mase import LayerMASE
from captum_maskopt.text.data import (
    SHORTCUT_TOKEN,
    TextExample,
    evidence_words,
    load_paragraphs,
    load_shortcut_paragraphs,
    load_shortcut_snippets,
    load_snippets,
    rotten_tomatoes_path,
    with_shortcut,
)
from captum_maskopt.text.classifier import (
    SentimentClassifier,
    evaluate_accuracy,
    load_sentiment_classifier,
    load_shortcut_classifier,
    load_tokenizer,
)

__all__ = [
    "TEXT_SETTINGS", "text_settings", "EmbeddingSpace", "TextEncoding", "TextExplainer",
    "WordAttribution", "LayerMASE",
]
__all__ += [
    "SHORTCUT_TOKEN", "TextExample", "evidence_words", "load_paragraphs", "load_shortcut_paragraphs",
    "load_shortcut_snippets", "load_snippets", "rotten_tomatoes_path", "with_shortcut",
]
__all__ += [
    "SentimentClassifier", "evaluate_accuracy", "load_sentiment_classifier",
    "load_shortcut_classifier", "load_tokenizer",
]
