"""Hyperparameter studies: a search space over a base job request, trials run as jobs."""
