"""Experiment of issue 15 (sufficiency): the ``"bands"`` final ranking reading ``w *
p_keep - p_remove`` instead of the library's ``p_keep - p_remove``, so that a group's
worth counts what it does to the kept view (sufficiency) ``w`` times as much as what it
does to the removed view (comprehensiveness). The other arguments are those of
``captum-maskopt``::

    KEEP_WEIGHT=2 python scripts/experiments/band_keep_weight.py compare text ...

Give each weight a ``--checkpoint`` file of its own (the rows are filed under the same
names as the plain run's) and pair them with ``scripts/summarize_checkpoint.py A
--difference M M --against B``. On the development sets both directions traded one
AOPC figure for the other (see ``README.md``): weight 1 was kept.
"""
import os
import sys
from typing import Optional, Tuple

from torch import Tensor

from captum_maskopt import optimization
from captum_maskopt.cli import main

KEEP_WEIGHT = float(os.environ.get("KEEP_WEIGHT", "1"))
_band_readings = optimization._band_readings


def _weighted_band_readings(
    predict: optimization.Predict, mask: Tensor, pinned: Tensor, fractions: Tuple[float, ...], weight: float
) -> Tensor:
    def weighted(views: Tensor, rows: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        keep, remove = predict(views, rows)
        return keep * KEEP_WEIGHT, remove

    return _band_readings(weighted, mask, pinned, fractions, weight)


optimization._band_readings = _weighted_band_readings

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
