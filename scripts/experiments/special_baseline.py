"""Experiment of issue 15: the token-level layer methods of ``compare text`` with
baselines that keep the special tokens ([CLS] pad ... pad [SEP], as in Captum's BERT
tutorial, :meth:`TextEncoding.baseline_ids`) instead of all pads, or
(``--pinned-specials``) with all pads and the special tokens passed to
LayerMaskOptimization as ``pinned_features`` (what the text quick start advised before:
[CLS] leaves every kept view, stays in every removed one). With ``--word-peers`` the
word-level perturbation peers (ShapleyValueSampling, Lime, KernelShap, FeatureAblation)
get that baseline instead, as ``TextExplainer.explain`` does: the special tokens (their
feature group 0) are then never removed. The other arguments are those of
``captum-maskopt``::

    python scripts/experiments/special_baseline.py [--pinned-specials] compare text --level token ...
    python scripts/experiments/special_baseline.py --word-peers compare text --methods ShapleyValueSampling,Lime ...

With ``--checkpoint`` give each variant a file of its own: the rows are filed under the
same names as the plain run's. On the packaged classifier (mean-pooled tokens) the
baselines changed nothing; on a classifier that reads the [CLS] token
(``finetuned_text_model.py``) the special-keeping baseline did best.
"""
import contextlib
import dataclasses
import sys

from captum_maskopt.cli import main
from captum_maskopt.text import integration

original = integration.TextExplainer.explain_with
original_space = integration.TextExplainer.embedding_space
pinned_specials = "--pinned-specials" in sys.argv[1:]
word_peers = "--word-peers" in sys.argv[1:]
arguments = [a for a in sys.argv[1:] if a not in ("--pinned-specials", "--word-peers")]


def keep_special(self, attribution, texts, target=None, name=None, pad_baselines=True, **kw):
    if not pad_baselines:
        return original(self, attribution, texts, target, name, pad_baselines, **kw)
    baselines = self.encode(texts).baseline_ids(self.pad_id)
    return original(self, attribution, texts, target, name, False, baselines=baselines, **kw)


def pin_special(self, attribution, texts, target=None, name=None, pad_baselines=True, **kw):
    if name == "LayerMaskOptimization":
        kw = dict(kw, pinned_features=self.encode(texts).special.unsqueeze(-1))
    return original(self, attribution, texts, target, name, pad_baselines, **kw)


@contextlib.contextmanager
def space_keeping_special(self, encoding):
    with original_space(self, encoding) as space:
        yield dataclasses.replace(space, baselines=space.baselines_keeping_specials())


if word_peers:
    integration.TextExplainer.embedding_space = space_keeping_special
else:
    integration.TextExplainer.explain_with = pin_special if pinned_specials else keep_special
sys.exit(main(arguments))
