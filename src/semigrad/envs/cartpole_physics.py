"""CartPole-v1's constants, those of gymnasium's ``CartPoleEnv``: the one home of the numbers
that both forms of the step compute with, the tensor env (``semigrad.envs.cartpole``, whose
docstring gives the equations) and its compiled CPU loop (``semigrad.envs.cartpole_kernel``).

It imports nothing from semigrad, so the env and its kernel each import it and not each other.
"""

import math

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5
POLEMASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360
MAX_EPISODE_STEPS = 500
INIT_LOW, INIT_HIGH = -0.05, 0.05
