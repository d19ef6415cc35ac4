"""Experiment of issue 15: the token-level mask values of LayerMaskOptimization at its
defaults on two planted-shortcut validation snippets, to see how word pieces add up
under a sum::

    python scripts/experiments/token_pieces.py
"""
import torch
from captum_maskopt import LayerMaskOptimization
from captum_maskopt.text import TextExplainer
from captum_maskopt.text.classifier import load_shortcut_classifier
from captum_maskopt.text.data import load_shortcut_snippets, load_snippets
model, tokenizer, token = load_shortcut_classifier()
planted = [p.text for p, c in zip(load_shortcut_snippets("validation"), load_snippets("validation")) if p.text != c.text and c.label == 0][:2]
ex = TextExplainer(model, tokenizer)
enc = ex.encode(planted)
lmo = LayerMaskOptimization(ex.forward, ex.layer)
attr, rec = lmo.attribute(enc.input_ids, baselines=torch.full_like(enc.input_ids, ex.pad_id), target=1,
                          additional_forward_args=(enc.attention_mask,), return_record=True)
print(token, rec.keep_probability, rec.remove_probability, rec.kept_fraction, rec.steps)
for row in range(2):
    toks = tokenizer.convert_ids_to_tokens(enc.input_ids[row])
    vals = attr[row].mean(-1)
    print(" ".join(f"{t}:{v:.2f}" for t, v in zip(toks, vals.tolist()) if t != "[PAD]"))
