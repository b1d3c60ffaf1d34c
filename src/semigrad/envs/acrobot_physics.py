"""Acrobot-v1's constants, those of gymnasium's ``AcrobotEnv``: the one home of the numbers
that both forms of the step compute with, the tensor env (``semigrad.envs.acrobot``, whose
docstring gives the equations) and its compiled CPU loop (``semigrad.envs.acrobot_kernel``).

It imports nothing from semigrad, so the env and its kernel each import it and not each other.
"""

import math

DT = 0.2
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
GRAVITY = 9.8
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
TORQUES = (-1.0, 0.0, 1.0)
MAX_EPISODE_STEPS = 500
INIT_LOW, INIT_HIGH = -0.1, 0.1
