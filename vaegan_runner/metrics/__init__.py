"""Evaluation metrics for generative models: pure functions over features, logits and codes."""
