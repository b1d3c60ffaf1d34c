"""The worked example runs end to end (small step counts) and prints what it promises."""

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notebook_walkthrough.py"


def test_notebook_walkthrough_runs(capsys):
    main = runpy.run_path(str(EXAMPLE), run_name="walkthrough")["main"]
    assert main(["--scale", "0.05"]) == 0
    out = capsys.readouterr().out
    for section in ("1. Tensors", "2. Semi-gradient TD(0)", "3. The notebook's update",
                    "4. State-action control"):
        assert section in out
    # semi-gradient: nothing reaches v(S'); the notebook's rule: +alpha * gamma = +0.76
    assert "d loss / d v(S') = +0.0000" in out and "d loss / d v(S') = +0.7600" in out
    assert "Monte Carlo v_pi" in out
    assert "stopped: diverged by step" in out  # the notebook's rule is stopped
    assert "greedy policy" in out and "random policy" in out
