"""Experiment of issue 15 (sufficiency): after the ``"bands"`` readings, one pass of
swaps over the cuts of the hard rationales, a kept group next to a cut against a
removed one next to it, kept where the swap raises ``w * p_keep - p_remove`` of that
rationale (``optimization._exchanged_at_cuts``, the defaults' final step since
2026-12-07). ``EXCHANGE=0`` turns the swaps off (the defaults before), ``EXCHANGE_KEEP_WEIGHT=w``
sets ``w`` (``optimization.EXCHANGE_KEEP_WEIGHT``), ``EXCHANGES=1:0,1:1,2:0`` the
(inside, outside) positions tried at each cut (``optimization.CUT_EXCHANGES``) and
``READINGS=N`` the readings before them (``optimization.BAND_READINGS``). The other
arguments are those of ``captum-maskopt``::

    EXCHANGE=0 python scripts/experiments/band_exchange.py compare text \\
        --split validation --snippets 64 --paragraphs 0 --shortcut 0 \\
        --methods MaskOptimization --checkpoint off.jsonl

Give each variant a checkpoint of its own (the rows are filed under the plain row's
name) and pair them with ``scripts/summarize_checkpoint.py on.jsonl --difference
MaskOptimization MaskOptimization --against off.jsonl``. Results in ``README.md``.
"""
import os
import sys

from captum_maskopt import optimization
from captum_maskopt.cli import main

if os.environ.get("EXCHANGE", "1") == "0":
    optimization.CUT_EXCHANGES = ()
elif "EXCHANGES" in os.environ:
    optimization.CUT_EXCHANGES = tuple(
        (int(inside), int(outside))
        for inside, outside in (pair.split(":") for pair in os.environ["EXCHANGES"].split(","))
    )
if "EXCHANGE_KEEP_WEIGHT" in os.environ:
    optimization.EXCHANGE_KEEP_WEIGHT = float(os.environ["EXCHANGE_KEEP_WEIGHT"])
if "READINGS" in os.environ:
    optimization.BAND_READINGS = int(os.environ["READINGS"])

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
