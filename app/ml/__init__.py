"""Model specs, building, data loading and training. Imports no other project module."""
