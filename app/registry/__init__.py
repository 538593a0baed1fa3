"""The model registry: named models, their versions and labels."""
