"""The corridor of ``examples/custom_env.py`` as the module ``corridor_env`` (tests/ is on
sys.path under pytest): importing it registers ``Corridor-v0`` with gymnasium, so the tests use
the id ``corridor_env:Corridor-v0`` and check the example the docs show."""

import runpy
from pathlib import Path

_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_env.py"

globals().update({k: v for k, v in runpy.run_path(str(_EXAMPLE)).items()
                  if not k.startswith("__")})
