"""Inference: a bounded cache of loaded models and the predict path."""
