"""Evaluation: accuracy loops, task-vector edits (addition, negation, pairs), tau-Jp, disentanglement."""
