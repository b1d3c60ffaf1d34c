"""Figures, one module per subject. Matplotlib runs headless (Agg); files are written atomically."""

import matplotlib

matplotlib.use("Agg")
