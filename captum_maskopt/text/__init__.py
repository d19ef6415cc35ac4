"""Text integration: word-level rationales for Hugging Face classifiers, and the
packaged data and classifiers the comparisons run on. Needs ``transformers``
(``pip install captum-maskopt[text]``)."""

from captum_maskopt.text.integration import TextEncoding, TextExplainer, WordAttribution

__all__ = ["TextEncoding", "TextExplainer", "WordAttribution"]
