"""Experiment of issue 15: how often LayerMaskOptimization, called at token level as a
Captum user calls LayerIntegratedGradients, ranks the planted shortcut word first, at
today's defaults and at the earlier ones (a word's score: its pieces' mean)::

    python scripts/experiments/token_shortcut.py validation
"""
import torch, sys
from captum_maskopt import LayerMaskOptimization
from captum_maskopt.settings import MaskOptimizationSettings
from captum_maskopt.text import TextExplainer
from captum_maskopt.text.classifier import load_shortcut_classifier
from captum_maskopt.text.data import load_shortcut_snippets, load_snippets
model, tokenizer, token = load_shortcut_classifier()
split = sys.argv[1]
planted = [p.text for p, c in zip(load_shortcut_snippets(split), load_snippets(split)) if p.text != c.text and c.label == 0][:16]
ex = TextExplainer(model, tokenizer)
# The defaults before the text settings became attribute()'s own.
OLD = MaskOptimizationSettings(n_steps=200, comprehensiveness="log", target_kept_fraction=None, path_average=False, parametrization="paper")
for label, kw in (("new defaults", {}), ("old defaults", {"settings": OLD})):
    rs = ex.explain_with(LayerMaskOptimization, planted, None, "LMO", True, reduce="mean", **kw)
    firsts = [r.words[int(r.scores.argmax())].lower() == token for r in rs]
    print(label, sum(firsts), "of", len(rs), flush=True)
