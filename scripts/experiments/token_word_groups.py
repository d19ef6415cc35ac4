"""Experiment of issue 15 (token-level sufficiency): where the token-level call loses
against the word-level one. ``compare text --level token`` runs ``LayerMaskOptimization``
as a Captum user calls it, one group per token position (word pieces, ``[CLS]`` and
``[SEP]`` included) and all-pad baselines. This script gives that same call the word
groups of ``TextEncoding.feature_mask()`` (``TOKEN_GROUPS=words``: the special tokens
and padding form group 0, free under the all-pad baseline as they are in the plain
call), or those groups and the baseline that keeps ``[CLS]``/``[SEP]``
(``TOKEN_GROUPS=words-special``); ``TOKEN_GROUPS=tokens`` (the default) leaves the call
as it is. The other arguments are those of ``captum-maskopt``::

    TOKEN_GROUPS=words python scripts/experiments/token_word_groups.py compare text \\
        --level token --split validation --snippets 64 --paragraphs 0 --shortcut 0 \\
        --methods LayerMaskOptimization --checkpoint words.jsonl

Give each variant a checkpoint of its own (the rows are filed under the plain row's
name) and pair them with ``scripts/summarize_checkpoint.py words.jsonl --difference
LayerMaskOptimization LayerMaskOptimization --against tokens.jsonl``. Results in
``README.md``.
"""
import os
import sys
from typing import Any, Dict, Sequence

from captum_maskopt.attr import LayerMaskOptimization
from captum_maskopt.cli import main
from captum_maskopt.text import integration

TOKEN_GROUPS = os.environ.get("TOKEN_GROUPS", "tokens")
if TOKEN_GROUPS not in ("tokens", "words", "words-special"):
    raise SystemExit(f"TOKEN_GROUPS must be tokens, words or words-special, got {TOKEN_GROUPS!r}")

_encode = integration.TextExplainer.encode
_attribute = LayerMaskOptimization.attribute
# The encoding of the batch being explained, for the attribute call that follows it.
_last: Dict[str, Any] = {}


def _remembering_encode(self: integration.TextExplainer, texts: Sequence[str], windows: bool = False) -> integration.TextEncoding:
    encoding = _encode(self, texts, windows)
    _last.update(encoding=encoding, pad_id=self.pad_id)
    return encoding


def _grouped_attribute(self: LayerMaskOptimization, inputs: Any, *args: Any, **kwargs: Any) -> Any:
    encoding = _last["encoding"]
    if TOKEN_GROUPS != "tokens" and inputs.shape == encoding.input_ids.shape:
        kwargs["feature_mask"] = encoding.feature_mask()
        if TOKEN_GROUPS == "words-special":
            kwargs["baselines"] = encoding.baseline_ids(_last["pad_id"])
    return _attribute(self, inputs, *args, **kwargs)


integration.TextExplainer.encode = _remembering_encode  # type: ignore[method-assign]
LayerMaskOptimization.attribute = _grouped_attribute  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
