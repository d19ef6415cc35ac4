"""Experiment of issue 15 (cost): the ``"bands"`` final ranking read fewer times than
the library's three, or (``--moved-only``) its later readings limited to the groups
whose band (the interval between two neighbouring cuts of the removal metrics'
rationales) the readings so far moved, the others keeping their last reading. The
other arguments are those of ``captum-maskopt``::

    python scripts/experiments/band_readings.py [--readings N] compare text ...
    git apply scripts/experiments/band_readings_moved_only.diff   # then:
    python scripts/experiments/band_readings.py --moved-only compare text ...

``--moved-only`` needs the switch that the diff adds to ``captum_maskopt/optimization.py``
(not kept: ``git apply -R`` it afterwards). Give each variant a ``--checkpoint`` file of
its own (the rows are filed under the same names as the plain run's) and pair them
with ``scripts/summarize_checkpoint.py A --difference M M --against B``. On the
validation split neither paid: see ``README.md``.
"""
import sys

from captum_maskopt import optimization
from captum_maskopt.cli import main

arguments = sys.argv[1:]
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
    optimization._BAND_READINGS = readings
    del arguments[at:at + 2]
sys.exit(main(arguments))
