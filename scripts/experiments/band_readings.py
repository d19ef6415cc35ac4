"""Experiment of issue 15 (cost): the ``"bands"`` final ranking read fewer times than
the library's three, or (``--moved-only``) its later readings limited to the groups
whose band (the interval between two neighbouring cuts of the removal metrics'
rationales) the readings so far moved, the others keeping their last reading. The
other arguments are those of ``captum-maskopt``::

    python scripts/experiments/band_readings.py [--readings N] compare text ...
    git apply scripts/experiments/band_readings_moved_only.diff   # then:
    python scripts/experiments/band_readings.py --moved-only compare text ...
    python scripts/experiments/band_readings.py --nearest-cut compare text ...

``--moved-only`` needs the switch that the diff adds to ``captum_maskopt/optimization.py``
(not kept: ``git apply -R`` it afterwards). ``--nearest-cut`` reads each group at the
one cut of the metrics' rationales nearest its rank instead of at the two around it
(both where it lies halfway), about a quarter fewer switched views. Give each variant a ``--checkpoint`` file of
its own (the rows are filed under the same names as the plain run's) and pair them
with ``scripts/summarize_checkpoint.py A --difference M M --against B``. On the
validation split none of them paid: see ``README.md``.
"""
import sys
from typing import Tuple

import torch
from torch import Tensor

from captum_maskopt import optimization
from captum_maskopt.cli import main


def _nearest_cut_level_effects(
    scores: Tensor, pinned: Tensor, fractions: Tuple[float, ...], readings: "optimization._RationaleReadings"
) -> Tensor:
    """``optimization._banded_level_effects`` with each group read at one of the two
    cuts around its rank: the nearer (rank distance to where the cut falls, between
    two ranks), both where they are equally near."""
    valid = ~pinned
    rank, cuts = optimization._ranks_and_cuts(scores, pinned, fractions)
    n_levels = len(cuts) - 2
    stacked = torch.stack(cuts, dim=1)  # (n, n_levels + 2)
    # Per group the level of the largest cut at or below its rank (0: none) ...
    below = sum((rank >= cut.unsqueeze(1)).long() for cut in cuts[1:-1])
    assert isinstance(below, Tensor)
    low_cut = stacked.gather(1, below)
    high_cut = stacked.gather(1, below + 1)
    to_low = rank.to(scores.dtype) - low_cut.to(scores.dtype) + 0.5
    to_high = high_cut.to(scores.dtype) - rank.to(scores.dtype) - 0.5
    has_low = below >= 1
    has_high = below + 1 <= n_levels
    use_low = has_low & (~has_high | (to_low <= to_high))
    use_high = has_high & (~has_low | (to_high <= to_low))
    total = torch.zeros_like(scores)
    times = torch.zeros_like(scores)
    for level in range(1, n_levels + 1):
        context = (rank < cuts[level].unsqueeze(1)) & valid
        near = ((use_low & (below == level)) | (use_high & (below + 1 == level))) & valid
        if not bool(near.any()):
            continue
        total += readings.read(context, near).masked_fill(~near, 0.0)
        times += near.to(scores.dtype)
    mean = total / times.clamp_min(1)
    resolution = optimization._EFFECT_RESOLUTION
    return (torch.round(mean / resolution) * resolution).masked_fill(pinned, 0.0)


arguments = sys.argv[1:]
if "--nearest-cut" in arguments:
    arguments.remove("--nearest-cut")
    optimization._banded_level_effects = _nearest_cut_level_effects
if "--moved-only" in arguments:
    arguments.remove("--moved-only")
    if not hasattr(optimization, "_REREAD_MOVED_ONLY"):
        sys.exit("--moved-only: apply scripts/experiments/band_readings_moved_only.diff first")
    setattr(optimization, "_REREAD_MOVED_ONLY", True)
if "--readings" in arguments:
    at = arguments.index("--readings")
    try:
        readings = int(arguments[at + 1])
    except (IndexError, ValueError):
        sys.exit("--readings: expected a whole number of readings, at least 1")
    if readings < 1:
        sys.exit(f"--readings: expected at least 1, got {readings}")
    optimization.BAND_READINGS = readings
    del arguments[at:at + 2]
sys.exit(main(arguments))
