"""Image families of the embedded world; each renders a batch from labels and a style."""
