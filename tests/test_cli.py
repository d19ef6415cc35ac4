"""The main job's command, end to end on a few examples."""

import pytest

from captum_maskopt.cli import main


def test_demo_prints_the_comparison(capsys):
    assert main(["demo", "--n", "4"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("MaskOptimization")]
    assert len(lines) == 1
    # MaskOptimization finds the planted pair in every example.
    assert lines[0].split()[1] == "1.0000"
    assert "IntegratedGradients" in out


def test_demo_rejects_bad_n():
    with pytest.raises(SystemExit):
        main(["demo", "--n", "0"])
