"""Evaluation of models on the ShapeWorld world, judged by its oracle: `seer eval --suite base` (see base.py)."""
