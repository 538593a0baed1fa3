"""Which workers are alive and what they consume, from the `workers` table they report to."""
