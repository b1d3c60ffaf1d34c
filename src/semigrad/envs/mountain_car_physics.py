"""MountainCar-v0's constants, those of gymnasium's ``MountainCarEnv``: the one home of the
numbers that both forms of the step compute with, the tensor env (``semigrad.envs.mountain_car``,
whose docstring gives the equations) and its compiled CPU loop
(``semigrad.envs.mountain_car_kernel``).

It imports nothing from semigrad, so the env and its kernel each import it and not each other.
"""

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.5
GOAL_VELOCITY = 0.0
FORCE = 0.001
GRAVITY = 0.0025
MAX_EPISODE_STEPS = 200
INIT_LOW, INIT_HIGH = -0.6, -0.4
