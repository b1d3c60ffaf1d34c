"""The numba-compiled CPU loops, loaded with the tensor form as the fallback.

On a CPU each eager PyTorch operation costs 2-4 us of dispatch however small its tensors, so
some hot paths also exist as one loop compiled by numba (Lam, Pitrou & Seibert 2015) that
works on the tensors' memory. Each sits beside its tensor form and is imported the ordinary
way by a small function there (``envs/cartpole_kernel.py`` beside ``envs/cartpole.py``,
``replay_kernel.py`` beside ``buffers.py``, ``q_loss_kernel.py`` beside ``losses.py``); the
tensor form runs on any device, and the tests check that the two agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable


def load_kernel(importer: Callable[[], Callable], compiled: bool | None, what: str,
                fits: bool = True, needs: str = "", stacklevel: int = 3) -> Callable | None:
    """``importer()`` (a function that imports a kernel module the ordinary way and returns its
    numba-compiled function), or None where the tensor form runs.

    ``fits``: whether the loop applies to the caller's tensors (``needs`` says what it needs,
    e.g. "on the CPU"). ``compiled=False``: None. ``compiled=None`` (automatic): None where it
    does not fit, else the kernel, or, when numba is missing or cannot compile or cache the
    loop here, a ``RuntimeWarning`` and None. ``compiled=True``: the kernel, or an error saying
    how to fix it (``ValueError`` where it does not fit, ``RuntimeError`` without numba).
    ``what`` names the loop in messages; ``stacklevel`` points the warning at the caller's
    caller.
    """
    if compiled is False or (compiled is None and not fits):
        return None
    if not fits:
        raise ValueError(f"compiled: {what} runs {needs}. Leave compiled unset to choose "
                         "automatically")
    try:
        return importer()
    except Exception as err:  # numba missing, or unable to compile / cache here
        if compiled:
            raise RuntimeError(f"compiled=True: {what} is unavailable ({type(err).__name__}: "
                               f"{err}); install numba, or pass compiled=False") from err
        warnings.warn(f"{what} is unavailable ({type(err).__name__}: {err}); using tensor "
                      "operations (slower on a CPU)", RuntimeWarning, stacklevel=stacklevel)
        return None
