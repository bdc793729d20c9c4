"""Evaluation: score held-out generations with raw rewards, one point per model, hypervolume, collapse, report."""
