"""Compression jobs (int8, float16, prune), version lineage and the bill (API.md "Distillation,
compression, lineage")."""
