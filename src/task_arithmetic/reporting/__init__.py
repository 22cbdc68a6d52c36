"""Tables, plots and claims from whatever evaluation results exist for a model."""
