"""Experiment of issue 15: the token-level layer methods of ``compare text`` with
baselines that keep the special tokens ([CLS] pad ... pad [SEP], as in Captum's BERT
tutorial, :meth:`TextEncoding.baseline_ids`) instead of all pads, or
(``--pinned-specials``) with all pads and the special tokens passed to
LayerMaskOptimization as ``pinned_features`` (what the text quick start advised before:
[CLS] leaves every kept view, stays in every removed one). The other arguments are
those of ``captum-maskopt``::

    python scripts/experiments/special_baseline.py [--pinned-specials] compare text --level token ...

With ``--checkpoint`` give each variant a file of its own: the rows are filed under the
same names as the plain run's. On the packaged classifier (mean-pooled tokens) the
baselines changed nothing; on a classifier that reads the [CLS] token
(``finetuned_text_model.py``) the special-keeping baseline did best. Its
``--word-peers`` mode, which gave the word-level perturbation peers that baseline,
measured the change that made it theirs in ``compare text`` (2026-12-06) and went with
it; the IntegratedGradients peer has it too since then, so this script's plain mode
changes the other layer methods only.
"""
import sys

from captum_maskopt.cli import main
from captum_maskopt.text import integration

original = integration.TextExplainer.explain_with
pinned_specials = "--pinned-specials" in sys.argv[1:]
arguments = [a for a in sys.argv[1:] if a != "--pinned-specials"]


def keep_special(self, attribution, texts, target=None, name=None, pad_baselines=True, **kw):
    return original(self, attribution, texts, target, name, pad_baselines, **dict(kw, keep_special_tokens=True))


def pin_special(self, attribution, texts, target=None, name=None, pad_baselines=True, **kw):
    if name == "LayerMaskOptimization":
        kw = dict(kw, pinned_features=self.encode(texts).special.unsqueeze(-1))
    return original(self, attribution, texts, target, name, pad_baselines, **kw)


integration.TextExplainer.explain_with = pin_special if pinned_specials else keep_special
sys.exit(main(arguments))
