"""The job event log and its live delivery: what SSE streams and /metrics read."""
