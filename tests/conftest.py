"""Test-wide settings: one torch thread (the suite's networks are tiny; more threads only
contend on a shared 2-core machine) and headless matplotlib."""

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
