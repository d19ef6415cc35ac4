"""Experiment of issue 15 (dropped): the token-level layer methods of ``compare text``
with baselines that keep the special tokens ([CLS] pad ... pad [SEP], as in Captum's
BERT tutorial) instead of all pads; the arguments are those of ``captum-maskopt``::

    python scripts/experiments/special_baseline.py compare text --level token ...
"""
import sys
import torch
from captum_maskopt.text import integration
from captum_maskopt.cli import main

original = integration.TextExplainer.explain_with

def explain_with(self, attribution, texts, target=None, name=None, pad_baselines=True, **kw):
    if not pad_baselines:
        return original(self, attribution, texts, target, name, pad_baselines, **kw)
    encoding = self.encode(texts)
    keep_special = torch.where(encoding.special & (encoding.attention_mask.bool()), encoding.input_ids,
                               torch.full_like(encoding.input_ids, self.pad_id))
    return original(self, attribution, texts, target, name, False, baselines=keep_special, **kw)

integration.TextExplainer.explain_with = explain_with
sys.exit(main(sys.argv[1:]))
