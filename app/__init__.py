"""trainyard: a REST model-training service."""

__version__ = "0.1.0"
