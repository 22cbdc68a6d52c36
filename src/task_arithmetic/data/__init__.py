"""Datasets: one registry of tasks (real and embedded), their splits, class names and templates."""
