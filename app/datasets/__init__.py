"""Datasets: streamed upload, parsing into stored arrays, and their records."""
