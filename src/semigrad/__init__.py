"""semigrad: value-function approximation for reinforcement learning on PyTorch.

Layers, lowest first (lower layers never import higher ones):
``losses``, ``nets``, ``envs``, ``buffers`` -> ``algos`` -> ``run`` -> ``commands`` / ``cli``.
"""

__version__ = "0.1.0"
