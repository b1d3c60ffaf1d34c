"""Importing a user's module named on the command line (``--env module:ID``,
``--network module:function``): the current folder is searched last, as ``python -m``
searches it (an installed console script such as ``semigrad`` does not)."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


def import_user_module(module: str) -> ModuleType:
    """``importlib.import_module(module)``, with the current folder on ``sys.path`` (last)."""
    cwd = os.getcwd()
    if not any(isinstance(p, str) and os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)
    return importlib.import_module(module)
